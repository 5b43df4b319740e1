//! `mpcformer bench gemm`: the wrapping u64 GEMM against an f64 GEMM on the same shapes.

use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rand_core::Rng;
use serde::Serialize;

/// One measured shape.
#[derive(Clone, Debug, Serialize)]
pub struct GemmReport {
    /// `MxK·KxN`.
    pub shape: String,
    /// Wrapping u64 multiply-accumulates per second on one thread, in billions.
    pub u64_gmacs: f64,
    /// f64 multiply-accumulates per second on one thread (matrixmultiply's dgemm), in billions.
    pub f64_gmacs: f64,
    /// `u64_gmacs / f64_gmacs`.
    pub ratio: f64,
    /// The u64 kernel in use (`amx-int8`, `avx512`, `avx2` or `portable`).
    pub kernel: &'static str,
    /// The CPU measured ([`crate::cpu_model`]).
    pub cpu: String,
    /// Threads of the parallel u64 measurement.
    pub threads: usize,
    /// Wrapping u64 multiply-accumulates per second on `threads` threads, in billions.
    pub u64_gmacs_threads: f64,
    /// `u64_gmacs_threads / u64_gmacs`.
    pub thread_speedup: f64,
    /// u64 multiply-accumulates per second on one thread with B packed once ahead
    /// ([`mpc_core::ring::Ring::pack_rhs`], as a model's weights are), full-width values, in billions;
    /// the plain kernel's rate where the CPU has no packed form.
    pub u64_packed_gmacs: f64,
    /// As `u64_packed_gmacs` with B of owner-weight width (|w| < 2^17: 16-bit fixed-point
    /// weights below 2 in magnitude), which the packed form holds in fewer byte limbs.
    pub u64_narrow_gmacs: f64,
    /// `u64_narrow_gmacs / f64_gmacs`: the rate of the owner-weight products.
    pub narrow_ratio: f64,
    /// As `u64_narrow_gmacs` on `threads` threads.
    pub u64_narrow_gmacs_threads: f64,
}

/// The shapes of BERT-base's linear layers at 128 tokens.
pub const BERT_BASE_SHAPES: [(usize, usize, usize); 3] = [(128, 768, 768), (128, 768, 3072), (128, 3072, 768)];

/// Times `f` repeatedly for at least `min_seconds` (after one warm-up call) and returns the best
/// seconds per call.
fn best_time(min_seconds: f64, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    while start.elapsed().as_secs_f64() < min_seconds {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

/// Measures one shape: u64 and f64 on one thread, and u64 on `threads` threads.
pub fn measure(m: usize, k: usize, n: usize, min_seconds: f64, threads: usize) -> GemmReport {
    // Benchmark data needs no entropy: a fixed seed keeps runs comparable.
    let mut rng =
        <mpc_core::share::Prg as rand_core::SeedableRng>::seed_from_u64(m as u64 ^ (k as u64) << 20 ^ (n as u64) << 40);
    let mut draw = |len: usize| (0..len).map(|_| rng.next_u64()).collect::<Vec<u64>>();
    let a = draw(m * k);
    let b = draw(k * n);
    let mut c = vec![0u64; m * n];
    let mut u64_on = |threads: usize| {
        best_time(min_seconds, || {
            c.fill(0);
            mpc_core::gemm::gemm_acc_u64_on(threads, m, k, n, &a, &b, &mut c)
        })
    };
    let t_u64 = u64_on(1);
    let t_threads = u64_on(threads);
    let mut packed_time = |b: &[u64], width: mpc_core::gemm::Width, threads: usize| {
        let packed = <u64 as mpc_core::ring::Ring>::pack_rhs(k, n, b, width);
        best_time(min_seconds, || {
            c.fill(0);
            mpc_core::gemm::gemm_acc_packed_u64_on(threads, m, k, n, &a, b, packed.as_ref(), &mut c)
        })
    };
    let t_packed = packed_time(&b, mpc_core::gemm::Width::Full, 1);
    let narrow: Vec<u64> = b.iter().map(|&x| ((x >> 46) as i64 - (1 << 17)) as u64).collect();
    let t_narrow = packed_time(&narrow, mpc_core::gemm::Width::Narrowest, 1);
    let t_narrow_threads = packed_time(&narrow, mpc_core::gemm::Width::Narrowest, threads);
    std::hint::black_box(&c);

    let af: Vec<f64> = a.iter().map(|&x| (x >> 40) as f64).collect();
    let bf: Vec<f64> = b.iter().map(|&x| (x >> 40) as f64).collect();
    let mut cf = vec![0f64; m * n];
    let t_f64 = best_time(min_seconds, || dgemm(m, k, n, &af, &bf, &mut cf));
    std::hint::black_box(&cf);
    let macs = (m * k * n) as f64;
    let u64_gmacs = macs / t_u64 / 1e9;
    let f64_gmacs = macs / t_f64 / 1e9;
    GemmReport {
        shape: format!("{m}x{k}·{k}x{n}"),
        u64_gmacs,
        f64_gmacs,
        ratio: u64_gmacs / f64_gmacs,
        kernel: mpc_core::gemm::kernel_name(),
        cpu: crate::cpu_model(),
        threads,
        u64_gmacs_threads: macs / t_threads / 1e9,
        thread_speedup: t_u64 / t_threads,
        u64_packed_gmacs: macs / t_packed / 1e9,
        u64_narrow_gmacs: macs / t_narrow / 1e9,
        narrow_ratio: macs / t_narrow / 1e9 / f64_gmacs,
        u64_narrow_gmacs_threads: macs / t_narrow_threads / 1e9,
    }
}

/// `c = a · b` in f64 for row-major slices, through ndarray, which hands f64 products to
/// matrixmultiply's dgemm (single-threaded build).
///
/// # Panics
/// If a slice's length does not match its dimensions.
pub fn dgemm(m: usize, k: usize, n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    let a = ArrayView2::from_shape((m, k), a).expect("a is m x k");
    let b = ArrayView2::from_shape((k, n), b).expect("b is k x n");
    let mut c = ArrayViewMut2::from_shape((m, n), c).expect("c is m x n");
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
}
