//! Wrapping matrix multiplication over the ring: `C += A · B`.
//!
//! No maintained crate multiplies integers modulo 2^64 fast (matrixmultiply, gemm and faer only
//! have float kernels), so this module carries its own: a GotoBLAS-style blocked GEMM whose
//! register-tiled micro-kernel is plain safe Rust. The compiler vectorises it; under `std` the
//! same code is also compiled for AVX-512 (native 64-bit `vpmullq`) and AVX2, and the widest
//! one the CPU supports is picked at run time ([`kernel_name`] tells which).

pub mod portable;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86;

use crate::ring::Ring;

/// `c += a · b` for row-major `a` (m×k), `b` (k×n) and `c` (m×n), wrapping in the ring.
///
/// # Panics
/// If a slice is shorter than its dimensions require.
pub fn gemm_acc<R: Ring>(m: usize, k: usize, n: usize, a: &[R], b: &[R], c: &mut [R]) {
    R::gemm_acc(m, k, n, a, b, c);
}

/// `c = a · b` (overwriting `c`).
pub fn gemm<R: Ring>(m: usize, k: usize, n: usize, a: &[R], b: &[R], c: &mut [R]) {
    c[..m * n].fill(R::ZERO);
    R::gemm_acc(m, k, n, a, b, c);
}

/// The plain triple loop, for checking the fast kernels.
pub fn gemm_naive<R: Ring>(m: usize, k: usize, n: usize, a: &[R], b: &[R], c: &mut [R]) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = c[i * n + j];
            for p in 0..k {
                acc = acc.wrapping_add(&a[i * k + p].wrapping_mul(&b[p * n + j]));
            }
            c[i * n + j] = acc;
        }
    }
}

/// The u64 kernel selected for this CPU: `"avx512"`, `"avx2"` or `"portable"`.
pub fn kernel_name() -> &'static str {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        x86::selected().name()
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        "portable"
    }
}

/// The u64 entry point used by `impl Ring for u64`.
pub(crate) fn gemm_acc_u64(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        x86::gemm_acc_u64(m, k, n, a, b, c)
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        portable::gemm_acc(m, k, n, a, b, c)
    }
}
