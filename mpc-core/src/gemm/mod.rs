//! Wrapping matrix multiplication over the ring: `C += A · B`.
//!
//! No maintained crate multiplies integers modulo 2^64 fast (matrixmultiply, gemm and faer only
//! have float kernels), so this module carries its own: a GotoBLAS-style blocked GEMM whose
//! register-tiled micro-kernel is plain safe Rust, multiplying steps in pairs where that halves
//! the multiplications (Winograd's inner product, exact in the ring). The compiler vectorises it; under `std` the
//! same code is also compiled for AVX-512 (native 64-bit `vpmullq`) and AVX2, and the widest
//! one the CPU supports is picked at run time ([`kernel_name`] tells which). On CPUs with
//! AMX-INT8, products of more than a few rows run as byte-limb products on tile registers. A
//! right-hand operand used again and again (a model's weights, a weight mask) is packed once
//! ([`PackedRhs`]): for AMX in byte limbs, as few as narrow values such as fixed-point weights
//! need; for the other kernels in the blocked GEMM's panels, so that no product copies it.

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod amx;
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

/// A right-hand operand B (k × n) packed for this CPU's fastest u64 kernel, made once by
/// [`Ring::pack_rhs`] for a matrix used in many products (a model's weights): for AMX, cut into
/// as few byte limbs as its values need; for the other kernels, in the panels and block order
/// their products read, with the paired tiles' column corrections. Built for u64 on x86-64
/// under `std` (where the kernel is picked at run time).
pub struct PackedRhs {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    inner: x86::Packed,
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    _never: core::convert::Infallible,
}

impl core::fmt::Debug for PackedRhs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            self.inner.fmt(f)
        }
        #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
        {
            let _ = f;
            match self._never {}
        }
    }
}

impl PackedRhs {
    /// Whether this packing is of a k × n operand.
    pub fn has_shape(&self, k: usize, n: usize) -> bool {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            self.inner.rows() == k && self.inner.cols() == n
        }
        #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
        {
            let _ = (k, n);
            match self._never {}
        }
    }
}

/// What a packing of a right operand may assume about its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// Any values (shares, masks): every byte limb, and no look at the values, so that the
    /// packing never branches on a secret.
    Full,
    /// Values the packing party knows in the clear (its own weights): as few limbs as the widest
    /// value needs (owner weights at 16 fractional bits: three signed digits).
    Narrowest,
}

/// A right-hand matrix B (k × n) kept for many products `A · B` (a model's weights, a weight
/// mask): packed once for this CPU's kernel where it has a packed form, which then replaces the
/// plain values (no second copy in memory), plain otherwise.
#[cfg(feature = "alloc")]
pub struct RightOperand<R: Ring> {
    k: usize,
    n: usize,
    /// B, or nothing when `packed` holds it.
    plain: crate::share::Shares<R>,
    packed: Option<PackedRhs>,
}

#[cfg(feature = "alloc")]
impl<R: Ring> RightOperand<R> {
    /// Keeps `b` (k × n, row-major) for products, packed as `width` allows.
    ///
    /// # Panics
    /// If `b` does not hold k × n values.
    pub fn new(k: usize, n: usize, b: crate::share::Shares<R>, width: Width) -> Self {
        let packed = Self::pack(k, n, &b, width);
        // Without a packed form `b` is kept; with one it is dropped (and zeroed) here.
        Self::holding(k, n, packed, || b)
    }

    /// As [`RightOperand::new`] from borrowed values, copied only where there is no packed form.
    ///
    /// # Panics
    /// If `b` does not hold k × n values.
    pub fn from_slice(k: usize, n: usize, b: &[R], width: Width) -> Self {
        let packed = Self::pack(k, n, b, width);
        Self::holding(k, n, packed, || crate::share::Shares::from_vec(b.to_vec()))
    }

    /// Keeps a uniformly random B (k × n: a mask) that `fill` draws, a band of whole rows at a
    /// time, in order. Where the kernel packs, each band is packed as it is drawn (no k × n
    /// buffer of B beside its packed form); elsewhere the bands are kept as they come.
    pub fn drawn(k: usize, n: usize, mut fill: impl FnMut(&mut [R])) -> Self {
        let packed = R::pack_rhs_drawn(k, n, &mut fill);
        Self::holding(k, n, packed, || {
            // Appended a band at a time from a small buffer: no fill pass over the k × n.
            let band_rows = (DRAWN_BAND / n.max(1)).clamp(1, k.max(1));
            let mut b = crate::share::Shares::with_capacity(k * n);
            let mut band = crate::share::Shares::zeros(band_rows * n);
            for first in (0..k).step_by(band_rows) {
                let rows = &mut band[..(k - first).min(band_rows) * n];
                fill(rows);
                b.extend_from(rows);
            }
            b
        })
    }

    /// Keeps `b` (k × n, row-major) as it is, never packed: a table read by rows
    /// ([`RightOperand::row_major`]) as well as multiplied.
    ///
    /// # Panics
    /// If `b` does not hold k × n values.
    pub fn unpacked(k: usize, n: usize, b: crate::share::Shares<R>) -> Self {
        assert_eq!(b.len(), k * n, "right operand of {k} x {n}");
        Self::holding(k, n, None, || b)
    }

    /// B's rows, row-major, where it is kept unpacked ([`RightOperand::unpacked`], or a kernel
    /// without a packed form); `None` where it is packed.
    pub fn row_major(&self) -> Option<&[R]> {
        (self.packed.is_none() && self.plain.len() == self.k * self.n).then_some(&self.plain[..])
    }

    fn pack(k: usize, n: usize, b: &[R], width: Width) -> Option<PackedRhs> {
        assert_eq!(b.len(), k * n, "right operand of {k} x {n}");
        R::pack_rhs(k, n, b, width)
    }

    /// The operand held as `packed`, or as the values `plain` gives where there is no packed form.
    fn holding(k: usize, n: usize, packed: Option<PackedRhs>, plain: impl FnOnce() -> crate::share::Shares<R>) -> Self {
        match packed {
            Some(packed) => RightOperand { k, n, plain: crate::share::Shares::zeros(0), packed: Some(packed) },
            None => RightOperand { k, n, plain: plain(), packed: None },
        }
    }

    /// Rows of B.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// Whether B is held packed for this CPU's kernel.
    pub fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    /// Readies this thread for products of `m` rows with B: where B is packed, the buffer the
    /// left operand is packed into is allocated and written now. A rehearsal calls it where it
    /// skips the product, so that the first query does not pay for fresh pages (about 20 µs
    /// each on a VM whose host reclaims untouched memory).
    pub fn warm_for(&self, m: usize) {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if let Some(PackedRhs { inner: x86::Packed::Amx(_) }) = self.packed {
            amx::warm_lhs(m, self.k);
        }
        #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
        let _ = m;
    }

    /// `c += a · B` for row-major `a` (m × k) and `c` (m × n), wrapping.
    ///
    /// # Panics
    /// If `a` or `c` is shorter than its dimensions require.
    pub fn gemm_acc(&self, m: usize, a: &[R], c: &mut [R]) {
        R::gemm_acc_packed(m, self.k, self.n, a, &self.plain, self.packed.as_ref(), c);
    }
}

#[cfg(feature = "alloc")]
impl<R: Ring> core::fmt::Debug for RightOperand<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RightOperand({}x{}, packed: {})", self.k, self.n, self.is_packed())
    }
}

/// Ring elements of a band [`RightOperand::drawn`] keeps in its buffer where it does not pack.
#[cfg(feature = "alloc")]
const DRAWN_BAND: usize = 1 << 14;

/// Packs u64 `b` (k × n) drawn by `fill` ([`Ring::pack_rhs_drawn`]), when this CPU's kernel has
/// a packed form.
pub(crate) fn pack_rhs_drawn_u64(k: usize, n: usize, fill: &mut dyn FnMut(&mut [u64])) -> Option<PackedRhs> {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        Some(PackedRhs { inner: x86::pack_rhs_drawn(k, n, fill, threads()) })
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        let _ = (k, n, fill);
        None
    }
}

/// Packs u64 `b` (k × n) for repeated products, when this CPU's kernel has a packed form.
pub(crate) fn pack_rhs_u64(k: usize, n: usize, b: &[u64], width: Width) -> Option<PackedRhs> {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        if b.len() < k * n {
            return None;
        }
        Some(PackedRhs { inner: x86::pack_rhs(k, n, b, width, threads()) })
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        let _ = (k, n, b, width);
        None
    }
}

/// `c += a · b` for u64, from `packed` (B packed by [`pack_rhs_u64`]) when it is given and of
/// b's shape, on [`threads`] threads; from the plain `b` otherwise.
pub(crate) fn gemm_acc_packed_u64(
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    b: &[u64],
    packed: Option<&PackedRhs>,
    c: &mut [u64],
) {
    #[cfg(feature = "std")]
    {
        gemm_acc_packed_u64_on(threads(), m, k, n, a, b, packed, c)
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = packed;
        single_thread_u64(m, k, n, a, b, c)
    }
}

/// `c += a · b` in u64 on up to `threads` threads, from `packed` (made by
/// [`Ring::pack_rhs`] from this `b`) when it is given and of b's
/// shape, from the plain `b` otherwise (as [`gemm_acc_u64_on`]).
///
/// # Panics
/// If a slice is shorter than its dimensions require.
#[cfg(feature = "std")]
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc_packed_u64_on(
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    b: &[u64],
    packed: Option<&PackedRhs>,
    c: &mut [u64],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(packed) = packed.filter(|p| p.has_shape(k, n)) {
        assert!(a.len() >= m * k && c.len() >= m * n, "gemm operand too short");
        return in_bands(threads, m, k, n, a, c, |rows, a, c| x86::gemm_acc_packed(rows, a, &packed.inner, c));
    }
    let _ = packed;
    gemm_acc_u64_on(threads, m, k, n, a, b, c)
}

/// The u64 kernel selected for this CPU: `"amx-int8"`, `"avx512"`, `"avx2"` or `"portable"`. The
/// environment variable `MPCFORMER_GEMM_KERNEL` (one of those names) picks a narrower kernel the CPU
/// runs, read once per process, to measure or test it on a CPU that has the wider ones.
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
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm operand too short");
    // A kernel that packs B packs it once for every band.
    #[cfg(target_arch = "x86_64")]
    if let Some(packed) = x86::pack_for_product(m, k, n, b, threads) {
        return in_bands(threads, m, k, n, a, c, |rows, a, c| amx::gemm_acc_packed(rows, a, &packed, c));
    }
    in_bands(threads, m, k, n, a, c, |rows, a, c| single_thread_u64(rows, k, n, a, b, c));
}

/// Runs `product(rows, a_band, c_band)` on bands of the rows of `a` (m × k) and `c` (m × n), one
/// per thread (up to `threads`; the last on the calling thread), or once on all rows when the
/// product is too small to pay for threads.
#[cfg(feature = "std")]
fn in_bands(
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    c: &mut [u64],
    product: impl Fn(usize, &[u64], &mut [u64]) + Sync,
) {
    let threads = threads.min(m.div_ceil(4)).max(1);
    if threads == 1 || m * k * n < MIN_PARALLEL_MACS {
        return product(m, a, c);
    }
    // Bands of whole 4-row register tiles, as even as possible.
    let band = m.div_ceil(threads).next_multiple_of(4);
    let product = &product;
    std::thread::scope(|scope| {
        let mut rows = c[..m * n].chunks_mut(band * n).zip(a[..m * k].chunks(band * k)).peekable();
        while let Some((c_band, a_band)) = rows.next() {
            let band_rows = c_band.len() / n.max(1);
            if rows.peek().is_some() {
                scope.spawn(move || product(band_rows, a_band, c_band));
            } else {
                product(band_rows, a_band, c_band);
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

    /// Edges of every blocking level: tiles (4x24) and panels cut short, B read in place (up to
    /// 32 rows) or packed, packing blocks (64, 256, 384) and beyond, odd block depths (a paired
    /// tile's lone last step), paired (12 rows or more) and unpaired products, and empty products.
    const ODD_SHAPES: [(usize, usize, usize); 13] = [
        (1, 1, 1),
        (3, 5, 7),
        (4, 24, 24),
        (5, 25, 23),
        (65, 257, 385),
        (7, 513, 30),
        (32, 300, 49),
        (33, 300, 49),
        (130, 3, 770),
        (12, 2, 24),
        (16, 511, 50),
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
        // The last two also pack B on several threads (on CPUs whose kernel packs B).
        let shapes = [
            (130, 131, 129, 2),
            (129, 257, 70, 3),
            (9, 1024, 300, 4),
            (128, 768, 64, 8),
            (40, 300, 257, 3),
            (33, 520, 130, 4),
            (64, 300, 800, 2),
            (20, 257, 1000, 3),
        ];
        for &(m, k, n, threads) in &shapes {
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

    /// Products from a packed B (on CPUs with a packed form; the plain kernel elsewhere) against
    /// the naive loop: B of narrow values (owner weights: few signed limbs, at the edges of each
    /// limb count) and of full-width values, k beyond one int32 accumulation block.
    #[test]
    fn packed_products_match_the_naive_loop() {
        let narrow = |bound: i64| move |x: u64| ((x % (2 * bound as u64 + 1)) as i64 - bound) as u64;
        let widths: [(&str, &dyn Fn(u64) -> u64); 5] = [
            ("±2^17", &narrow(1 << 17)),
            ("±(2^22 - 1)", &narrow((1 << 22) - 1)),
            ("±2^22", &narrow(1 << 22)),
            ("±2^40", &narrow(1 << 40)),
            ("full", &|x| x),
        ];
        let mut shapes = ODD_SHAPES.to_vec();
        shapes.extend([(33, 2100, 70), (128, 64, 96), (17, 1025, 33)]);
        for (name, width) in widths {
            for &(m, k, n) in &shapes {
                let (a, b, c0) = matrices::<u64>(m, k, n, (m * 7 + k * 3 + n) as u64);
                let b: Vec<u64> = b.into_iter().map(width).collect();
                let packed = u64::pack_rhs(k, n, &b, Width::Narrowest);
                let mut fast = c0.clone();
                let mut naive = c0;
                u64::gemm_acc_packed(m, k, n, &a, &b, packed.as_ref(), &mut fast);
                gemm_naive(m, k, n, &a, &b, &mut naive);
                assert_eq!(fast, naive, "B {name}, {m}x{k}·{k}x{n}, packed: {packed:?}");
            }
        }
    }

    /// Panels packed once (drawn in bands, or from a slice) multiply as the naive loop does.
    #[test]
    fn panels_packed_once_match_the_naive_loop() {
        // Several block rows (k > KC, odd remainders) and block columns (n > NC, a ragged last
        // panel), paired (12 rows or more) and unpaired products; B drawn in bands as the dealer
        // draws a mask, and from a slice.
        for &(m, k, n) in &[
            (1, 3, 5),
            (11, 300, 30),
            (12, 513, 410),
            (40, 257, 25),
            (128, 64, 96),
            (65, 600, 800),
            (2, 0, 3),
            (2, 3, 0),
        ] {
            let (a, b, c0) = matrices::<u64>(m, k, n, (m * 5 + k * 11 + n) as u64);
            let mut bands = 0;
            let drawn = portable::Panels::drawn(k, n, |rows: &mut [u64], first| {
                assert_eq!(rows.len() % n.max(1), 0, "whole rows");
                rows.copy_from_slice(&b[first * n..first * n + rows.len()]);
                bands += 1;
            });
            assert!(bands > 0 || k == 0, "B drawn");
            assert_eq!((drawn.rows(), drawn.cols()), (k, n));
            let mut naive = c0.clone();
            gemm_naive(m, k, n, &a, &b, &mut naive);
            for panels in [drawn, portable::Panels::new(k, n, &b)] {
                let mut fast = c0.clone();
                portable::gemm_acc_panels_inline::<u64, portable::PortableTile>(m, &a, &panels, &mut fast);
                assert_eq!(fast, naive, "portable, {m}x{k}·{k}x{n}");
                #[cfg(target_arch = "x86_64")]
                {
                    let mut fast = c0.clone();
                    x86::gemm_acc_packed(m, &a, &x86::Packed::Panels(panels), &mut fast);
                    assert_eq!(fast, naive, "{}, {m}x{k}·{k}x{n}", kernel_name());
                }
            }
        }
    }

    /// A packing of another shape is not used (the plain B is).
    #[test]
    fn a_packing_of_another_shape_is_ignored() {
        let (a, b, c0) = matrices::<u64>(40, 30, 20, 9);
        let other = u64::pack_rhs(20, 30, &b, Width::Full);
        let mut fast = c0.clone();
        let mut naive = c0;
        u64::gemm_acc_packed(40, 30, 20, &a, &b, other.as_ref(), &mut fast);
        gemm_naive(40, 30, 20, &a, &b, &mut naive);
        assert_eq!(fast, naive);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_shapes_match_the_naive_loop(m in 0usize..70, k in 0usize..300, n in 0usize..100, seed: u64) {
            check::<u64>(m, k, n, seed);
        }
    }
}
