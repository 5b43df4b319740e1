//! x86-64 kernels, picked at run time: an AVX-512 register tile written with intrinsics (native
//! 64-bit `vpmullq` on 512-bit vectors, which the vectoriser does not choose by itself), and the
//! portable tile compiled for AVX2.
//!
//! With [`super::amx`] and the other SIMD modules the crate root lists, this is the workspace's only `unsafe`: calls of `#[target_feature]` functions from code that
//! was not compiled with those features (each behind a runtime check), and the vector loads and
//! stores of the AVX-512 tile (each within a slice whose length is checked first).
#![allow(unsafe_code)]

use std::sync::OnceLock;
use std::vec::Vec;

use super::portable::{self, MR, NR, Tile};

/// The instruction sets the u64 GEMM can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    Amx,
    Avx512,
    Avx2,
    Portable,
}

impl Kernel {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx-int8",
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }
}

impl Kernel {
    /// Whether this CPU runs the kernel.
    fn available(self) -> bool {
        match self {
            // Its products of few rows, and the packing, run on the AVX-512 kernel.
            Kernel::Amx => Kernel::Avx512.available() && super::amx::available(),
            Kernel::Avx512 => {
                std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512dq")
                    && std::is_x86_feature_detected!("avx512vl")
            }
            Kernel::Avx2 => std::is_x86_feature_detected!("avx2"),
            Kernel::Portable => true,
        }
    }
}

/// Every kernel this CPU runs, widest first (for tests that check each one).
pub(crate) fn supported() -> Vec<Kernel> {
    [Kernel::Amx, Kernel::Avx512, Kernel::Avx2, Kernel::Portable].into_iter().filter(|k| k.available()).collect()
}

/// The environment variable that caps the kernel (`amx-int8`, `avx512`, `avx2` or `portable`):
/// to measure or test the narrower kernels on a CPU that has the wider ones.
pub(crate) const KERNEL_VARIABLE: &str = "MPCFORMER_GEMM_KERNEL";

/// The widest kernel this CPU runs, detected once, or the one [`KERNEL_VARIABLE`] names if this
/// CPU runs it (an unknown or unsupported name is ignored).
pub(crate) fn selected() -> Kernel {
    static SELECTED: OnceLock<Kernel> = OnceLock::new();
    *SELECTED.get_or_init(|| {
        let supported = supported();
        let asked = std::env::var(KERNEL_VARIABLE).ok();
        supported.iter().copied().find(|k| asked.as_deref() == Some(k.name())).unwrap_or(supported[0])
    })
}

/// Products with fewer rows than this skip AMX when B is not packed ahead: packing B costs
/// about what a product of this many rows does.
const AMX_MIN_ROWS: usize = 16;

/// `c += a · b` on the widest kernel that reads B as it is. Products that pay for packing B take
/// the AMX kernel through [`pack_for_product`] before they get here (the only place that decides).
pub(crate) fn gemm_acc_u64(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    let kernel = match selected() {
        Kernel::Amx => Kernel::Avx512,
        kernel => kernel,
    };
    gemm_acc_with(kernel, m, k, n, a, b, c);
}

/// B packed (all eight limbs, no scan, on up to `threads` threads) for one product of `m` rows,
/// when the selected kernel packs B for a product of that many rows.
pub(crate) fn pack_for_product(
    m: usize,
    k: usize,
    n: usize,
    b: &[u64],
    threads: usize,
) -> Option<super::amx::PackedRhs> {
    (selected() == Kernel::Amx && m >= AMX_MIN_ROWS && k > 0 && n > 0)
        .then(|| super::amx::PackedRhs::unsigned(k, n, b, threads))
}

/// A right-hand operand packed once for many products, in the selected kernel's form.
pub(crate) enum Packed {
    /// Byte limbs for AMX tiles.
    Amx(super::amx::PackedRhs),
    /// The blocked GEMM's panels, with their paired tiles' corrections (every other kernel).
    Panels(portable::Panels<u64>),
}

impl Packed {
    pub(crate) fn rows(&self) -> usize {
        match self {
            Packed::Amx(p) => p.rows(),
            Packed::Panels(p) => p.rows(),
        }
    }

    pub(crate) fn cols(&self) -> usize {
        match self {
            Packed::Amx(p) => p.cols(),
            Packed::Panels(p) => p.cols(),
        }
    }
}

impl core::fmt::Debug for Packed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Packed::Amx(p) => p.fmt(f),
            Packed::Panels(p) => write!(f, "Panels({}x{})", p.rows(), p.cols()),
        }
    }
}

/// B packed for the selected kernel (AMX on up to `threads` threads).
pub(crate) fn pack_rhs(k: usize, n: usize, b: &[u64], width: super::Width, threads: usize) -> Packed {
    match (selected(), width) {
        (Kernel::Amx, super::Width::Full) => Packed::Amx(super::amx::PackedRhs::unsigned(k, n, b, threads)),
        (Kernel::Amx, super::Width::Narrowest) => Packed::Amx(super::amx::PackedRhs::new(k, n, b, threads)),
        _ => Packed::Panels(portable::Panels::new(k, n, b)),
    }
}

/// Packs a uniform B drawn by `fill`, a band of whole rows at a time, for the selected kernel.
pub(crate) fn pack_rhs_drawn(k: usize, n: usize, fill: &mut dyn FnMut(&mut [u64]), threads: usize) -> Packed {
    match selected() {
        Kernel::Amx => Packed::Amx(super::amx::PackedRhs::drawn(k, n, fill, threads)),
        _ => Packed::Panels(portable::Panels::drawn(k, n, |rows: &mut [u64], _| fill(rows))),
    }
}

/// `c += a · b` from B packed by [`pack_rhs`].
pub(crate) fn gemm_acc_packed(m: usize, a: &[u64], b: &Packed, c: &mut [u64]) {
    match b {
        Packed::Amx(b) => super::amx::gemm_acc_packed(m, a, b, c),
        Packed::Panels(b) => match selected() {
            // SAFETY: `selected()` picks these kernels only after detecting their features:
            // avx512f, avx512dq and avx512vl (or AMX, which implies them), or avx2.
            Kernel::Avx512 | Kernel::Amx => unsafe { gemm_panels_avx512(m, a, b, c) },
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { gemm_panels_avx2(m, a, b, c) },
            Kernel::Portable => portable::gemm_acc_panels_inline::<u64, portable::PortableTile>(m, a, b, c),
        },
    }
}

/// `c += a · b` with `kernel`; `false`, and nothing computed, when this CPU cannot run it.
pub(crate) fn gemm_acc_with(kernel: Kernel, m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) -> bool {
    if kernel != selected() && !kernel.available() {
        return false;
    }
    match kernel {
        Kernel::Amx => super::amx::gemm_acc(m, k, n, a, b, c),
        // SAFETY: Avx512 is either `selected()`, which picks it only after detecting avx512f,
        // avx512dq and avx512vl, or was just checked by `available()` for the same features,
        // exactly those `gemm_avx512` is compiled for.
        Kernel::Avx512 => unsafe { gemm_avx512(m, k, n, a, b, c) },
        // SAFETY: as above, avx2 was detected on this CPU.
        Kernel::Avx2 => unsafe { gemm_avx2(m, k, n, a, b, c) },
        Kernel::Portable => portable::gemm_acc(m, k, n, a, b, c),
    }
    true
}

#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn gemm_avx512(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    portable::gemm_acc_inline::<u64, Avx512Tile>(m, k, n, a, b, c);
}

#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn gemm_panels_avx512(m: usize, a: &[u64], b: &portable::Panels<u64>, c: &mut [u64]) {
    portable::gemm_acc_panels_inline::<u64, Avx512Tile>(m, a, b, c);
}

#[target_feature(enable = "avx2")]
fn gemm_panels_avx2(m: usize, a: &[u64], b: &portable::Panels<u64>, c: &mut [u64]) {
    portable::gemm_acc_panels_inline::<u64, portable::PortableTile>(m, a, b, c);
}

#[target_feature(enable = "avx2")]
fn gemm_avx2(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    portable::gemm_acc_inline::<u64, portable::PortableTile>(m, k, n, a, b, c);
}

/// The MR×NR tile with AVX-512 intrinsics: MR rows of three 8-lane accumulators, multiplying
/// steps in pairs (Winograd's inner product, [`portable::Corrections`]): per pair and output
/// vector one `vpmullq` of two sums instead of two products, which on AMD Zen 4 takes the
/// multiply-accumulate from 1.4 to 1.0 cycles a vector.
struct Avx512Tile;

// The tile is three vectors wide.
const _: () = assert!(NR == 24 && MR == 4);

impl Tile<u64> for Avx512Tile {
    const PAIRED: bool = true;

    #[inline(always)]
    fn tile(
        kc: usize,
        a_panel: &[u64],
        b: &[u64],
        b_stride: usize,
        corrections: Option<portable::Corrections<'_, u64>>,
    ) -> [[u64; NR]; MR] {
        // SAFETY: this tile is only used by `gemm_avx512` and `gemm_panels_avx512`, which run
        // only after `selected()` detected avx512f and avx512dq (or `available()` checked them).
        unsafe { tile_avx512(kc, a_panel, b, b_stride, corrections) }
    }
}

#[target_feature(enable = "avx512f,avx512dq")]
fn tile_avx512(
    kc: usize,
    a_panel: &[u64],
    b: &[u64],
    b_stride: usize,
    corrections: Option<portable::Corrections<'_, u64>>,
) -> [[u64; NR]; MR] {
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi64, _mm512_loadu_si512, _mm512_mullo_epi64, _mm512_set1_epi64, _mm512_setzero_si512,
        _mm512_storeu_si512, _mm512_sub_epi64,
    };
    assert!(a_panel.len() >= kc * MR, "panel too short");
    let load = |row: &[u64; NR]| {
        let p = row.as_ptr();
        // SAFETY: `row` holds NR = 24 u64, so the three unaligned 64-byte loads at offsets 0, 8
        // and 16 stay inside it.
        unsafe {
            [_mm512_loadu_si512(p.cast()), _mm512_loadu_si512(p.add(8).cast()), _mm512_loadu_si512(p.add(16).cast())]
        }
    };
    // Bounds-checked: B's row `p` holds NR = 24 u64 from `p * b_stride`.
    let b_row = |p: usize| -> &[u64; NR] { b[p * b_stride..p * b_stride + NR].try_into().expect("row of NR") };
    let mut acc: [[__m512i; 3]; MR] = [[_mm512_setzero_si512(); 3]; MR];
    // Steps multiplied one at a time: all of them, or the odd last one of a paired tile.
    let mut single = 0..kc;
    if let Some(corrections) = corrections {
        // The accumulators start at −ξ_i − η_j.
        let eta = load(corrections.cols);
        for (row, &xi) in acc.iter_mut().zip(corrections.rows) {
            let minus_xi = _mm512_set1_epi64(xi.wrapping_neg() as i64);
            for (c, eta) in row.iter_mut().zip(eta) {
                *c = _mm512_sub_epi64(minus_xi, eta);
            }
        }
        for (q, a_pair) in a_panel.chunks_exact(2 * MR).take(kc / 2).enumerate() {
            let (even, odd) = (load(b_row(2 * q)), load(b_row(2 * q + 1)));
            for (i, row) in acc.iter_mut().enumerate() {
                let (a_even, a_odd) = (_mm512_set1_epi64(a_pair[i] as i64), _mm512_set1_epi64(a_pair[MR + i] as i64));
                for ((c, even), odd) in row.iter_mut().zip(even).zip(odd) {
                    let product = _mm512_mullo_epi64(_mm512_add_epi64(a_even, odd), _mm512_add_epi64(a_odd, even));
                    *c = _mm512_add_epi64(*c, product);
                }
            }
        }
        single = kc / 2 * 2..kc;
    }
    for p in single {
        let b = load(b_row(p));
        for (row, &a) in acc.iter_mut().zip(&a_panel[p * MR..(p + 1) * MR]) {
            let a = _mm512_set1_epi64(a as i64);
            for (c, b) in row.iter_mut().zip(b) {
                *c = _mm512_add_epi64(*c, _mm512_mullo_epi64(a, b));
            }
        }
    }
    let mut out = [[0u64; NR]; MR];
    for (dst, row) in out.iter_mut().zip(acc) {
        for (v, c) in row.into_iter().enumerate() {
            // SAFETY: `dst` holds NR = 24 u64; the 64-byte store at offset 8·v, v < 3, stays inside.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().add(8 * v).cast(), c) };
        }
    }
    out
}
