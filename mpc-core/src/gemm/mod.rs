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

/// The u64 entry point used by `impl Ring for u64`: on [`threads`] threads when the product is
/// large enough to pay for them.
pub(crate) fn gemm_acc_u64(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    #[cfg(feature = "std")]
    {
        gemm_acc_u64_on(threads(), m, k, n, a, b, c)
    }
    #[cfg(not(feature = "std"))]
    {
        single_thread_u64(m, k, n, a, b, c)
    }
}

fn single_thread_u64(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        x86::gemm_acc_u64(m, k, n, a, b, c)
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        portable::gemm_acc(m, k, n, a, b, c)
    }
}

/// Threads each GEMM of this process may use (1 unless [`set_threads`] said otherwise).
#[cfg(feature = "std")]
static THREADS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(1);

/// Products smaller than this many multiply-accumulates stay on the calling thread (a thread's
/// start costs about what a 2^20-MAC product takes).
#[cfg(feature = "std")]
const MIN_PARALLEL_MACS: usize = 1 << 21;

/// Lets every u64 GEMM of this process use up to `threads` threads (at least 1). A party that
/// has cores of its own (the deployment case: one party per machine) gives it their number;
/// in-process settings that run both parties on the same cores leave it at 1.
#[cfg(feature = "std")]
pub fn set_threads(threads: usize) {
    THREADS.store(threads.max(1), core::sync::atomic::Ordering::Relaxed);
}

/// Threads each u64 GEMM may use ([`set_threads`]; 1 without `std`).
pub fn threads() -> usize {
    #[cfg(feature = "std")]
    {
        THREADS.load(core::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "std"))]
    {
        1
    }
}

/// `c += a · b` in u64 on up to `threads` threads: the rows of `a` and `c` are cut into one band
/// per thread (each band a product of its own, on the CPU's kernel), the last on the calling
/// thread.
#[cfg(feature = "std")]
pub fn gemm_acc_u64_on(threads: usize, m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    let threads = threads.min(m.div_ceil(4)).max(1);
    if threads == 1 || m * k * n < MIN_PARALLEL_MACS {
        return single_thread_u64(m, k, n, a, b, c);
    }
    // Bands of whole 4-row register tiles, as even as possible.
    let band = m.div_ceil(threads).next_multiple_of(4);
    std::thread::scope(|scope| {
        let mut rows = c[..m * n].chunks_mut(band * n).zip(a[..m * k].chunks(band * k)).peekable();
        while let Some((c_band, a_band)) = rows.next() {
            let band_rows = c_band.len() / n.max(1);
            if rows.peek().is_some() {
                scope.spawn(move || single_thread_u64(band_rows, k, n, a_band, b, c_band));
            } else {
                single_thread_u64(band_rows, k, n, a_band, b, c_band);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn matrices<R: Ring>(m: usize, k: usize, n: usize, seed: u64) -> (Vec<R>, Vec<R>, Vec<R>) {
        let mut state = seed | 1;
        let mut next = move || {
            // xorshift64*: deterministic, full-width values, no dependence on the code under test.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            R::from_u64(state.wrapping_mul(0x2545_f491_4f6c_dd1d))
        };
        let a = (0..m * k).map(|_| next()).collect();
        let b = (0..k * n).map(|_| next()).collect();
        let c = (0..m * n).map(|_| next()).collect();
        (a, b, c)
    }

    fn check<R: Ring>(m: usize, k: usize, n: usize, seed: u64) {
        let (a, b, c0) = matrices::<R>(m, k, n, seed);
        let mut fast = c0.clone();
        let mut naive = c0.clone();
        gemm_acc(m, k, n, &a, &b, &mut fast);
        gemm_naive(m, k, n, &a, &b, &mut naive);
        assert_eq!(fast, naive, "dispatched kernel, {m}x{k}·{k}x{n}");
        let mut portable = c0;
        portable::gemm_acc(m, k, n, &a, &b, &mut portable);
        assert_eq!(portable, naive, "portable kernel, {m}x{k}·{k}x{n}");
    }

    /// Edges of every blocking level: tiles (4x24), B read in place (up to 32 rows) or packed,
    /// packing blocks (64, 256, 384) and beyond, and empty products.
    const ODD_SHAPES: [(usize, usize, usize); 11] = [
        (1, 1, 1),
        (3, 5, 7),
        (4, 24, 24),
        (5, 25, 23),
        (65, 257, 385),
        (7, 513, 30),
        (32, 300, 49),
        (33, 300, 49),
        (130, 3, 770),
        (0, 4, 4),
        (4, 0, 4),
    ];

    #[test]
    fn odd_shapes_match_the_naive_loop() {
        for &(m, k, n) in &ODD_SHAPES {
            check::<u64>(m, k, n, (m * 1000 + k * 10 + n) as u64);
            check::<u32>(m, k, n, (m + k + n) as u64);
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn products_on_several_threads_match_the_naive_loop() {
        // Large enough to be cut into bands, with rows that do not divide evenly.
        for &(m, k, n, threads) in &[(130, 131, 129, 2), (129, 257, 70, 3), (9, 1024, 300, 4), (128, 768, 64, 8)] {
            let (a, b, c0) = matrices::<u64>(m, k, n, (m + 3 * k + 7 * n) as u64);
            let mut banded = c0.clone();
            let mut naive = c0;
            gemm_acc_u64_on(threads, m, k, n, &a, &b, &mut banded);
            gemm_naive(m, k, n, &a, &b, &mut naive);
            assert_eq!(banded, naive, "{threads} threads, {m}x{k}·{k}x{n}");
        }
    }

    #[test]
    fn overwriting_form_ignores_old_contents() {
        let (a, b, _) = matrices::<u64>(6, 9, 31, 3);
        let mut c = vec![123u64; 6 * 31];
        gemm(6, 9, 31, &a, &b, &mut c);
        let mut expect = vec![0u64; 6 * 31];
        gemm_naive(6, 9, 31, &a, &b, &mut expect);
        assert_eq!(c, expect);
    }

    /// Every kernel this CPU runs, not only the selected one, against the naive loop.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[test]
    fn every_kernel_this_cpu_runs_matches_the_naive_loop() {
        let kernels = x86::supported();
        std::println!("kernels on this CPU: {:?} (selected: {})", kernels, kernel_name());
        assert!(kernels.contains(&x86::Kernel::Portable));
        for kernel in kernels {
            for &(m, k, n) in &ODD_SHAPES {
                let (a, b, c0) = matrices::<u64>(m, k, n, (m * 31 + k * 7 + n) as u64);
                let mut fast = c0.clone();
                let mut naive = c0;
                assert!(x86::gemm_acc_with(kernel, m, k, n, &a, &b, &mut fast), "{kernel:?} is supported");
                gemm_naive(m, k, n, &a, &b, &mut naive);
                assert_eq!(fast, naive, "{kernel:?}, {m}x{k}·{k}x{n}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_shapes_match_the_naive_loop(m in 0usize..70, k in 0usize..300, n in 0usize..100, seed: u64) {
            check::<u64>(m, k, n, seed);
        }
    }
}
