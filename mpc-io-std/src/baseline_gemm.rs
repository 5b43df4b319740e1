//! The plaintext baseline's f32 matrix products: the benchmarks time `Plain<f32>` with each
//! maintained GEMM of [`CANDIDATES`] and take the faster on the CPU they run on, so that every
//! ratio is against the fastest plaintext this machine gives (matrixmultiply's sgemm won on the
//! project's Intel Xeon, the `gemm` crate that candle uses by a few percent on AMD Zen 4).
//!
//! The `gemm` crate's interface takes raw pointers and strides: this module is the crate's only
//! `unsafe`, one call whose slices are checked to hold the shapes first.
#![allow(unsafe_code)]

use mpc_nn::{PlainGemm, matrixmultiply_gemm};

/// Each GEMM the baseline may use, by the name the reports give it.
pub const CANDIDATES: [(&str, PlainGemm<f32>); 2] =
    [("matrixmultiply", matrixmultiply_gemm::<f32>), ("gemm", gemm_crate)];

/// `c = a (m×k) · b (k×n)`, row-major, with the `gemm` crate (one thread, its kernels picked at
/// run time for this CPU). Reads the first m·k, k·n and m·n values; leaves `c` as it is if a
/// slice is shorter.
pub fn gemm_crate(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (Some(a), Some(b), Some(c)) = (a.get(..m * k), b.get(..k * n), c.get_mut(..m * n)) else { return };
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let (Ok(k_stride), Ok(n_stride)) = (isize::try_from(k), isize::try_from(n)) else { return };
    // SAFETY: `a`, `b` and `c` hold exactly m·k, k·n and m·n values (sliced above), read
    // row-major (column stride 1, row strides k and n), so every element the call reads or
    // writes lies inside them; `c` is a unique borrow, aliased by neither input; beta = 1 and
    // alpha = 0 with `read_dst` false make it write c = a · b without reading c.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n_stride,
            false,
            a.as_ptr(),
            1,
            k_stride,
            b.as_ptr(),
            1,
            n_stride,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_candidate_multiplies_odd_shapes_alike() {
        for (m, k, n) in [(1, 1, 1), (3, 7, 5), (17, 33, 9), (128, 64, 130), (2, 0, 3), (0, 4, 4), (5, 3, 0)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
            // Small integers: every product and sum is exact in f32, whatever the order.
            let naive: Vec<f32> =
                (0..m * n).map(|at| (0..k).map(|p| a[at / n * k + p] * b[p * n + at % n]).sum()).collect();
            for (name, gemm) in CANDIDATES {
                let mut c = vec![f32::NAN; m * n];
                if k == 0 {
                    c.fill(0.0);
                }
                gemm(m, k, n, &a, &b, &mut c);
                assert_eq!(c, naive, "{name}: {m}x{k}·{k}x{n}");
            }
        }
    }

    #[test]
    fn short_slices_leave_the_output_alone() {
        let mut c = vec![7.0; 4];
        gemm_crate(2, 2, 2, &[1.0; 3], &[1.0; 4], &mut c);
        assert_eq!(c, vec![7.0; 4]);
    }
}
