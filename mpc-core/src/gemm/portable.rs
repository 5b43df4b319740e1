//! The blocked GEMM in safe, portable Rust.
//!
//! Loop nest after Goto and van de Geijn: blocks of B (KC×NC) and of A (MC×KC) are packed into
//! contiguous panels, then an MR×NR register tile of C accumulates over the KC dimension. The
//! tile is a fixed-size array, which the compiler keeps in vector registers.

use crate::ring::Ring;

/// Rows of the register tile.
#[cfg(feature = "alloc")]
pub(crate) const MR: usize = 4;
/// Columns of the register tile (three 512-bit vectors of u64).
#[cfg(feature = "alloc")]
pub(crate) const NR: usize = 24;
#[cfg(feature = "alloc")]
const KC: usize = 256;
#[cfg(feature = "alloc")]
const MC: usize = 64;
#[cfg(feature = "alloc")]
const NC: usize = 384;
/// Products with at most this many rows read B in place instead of packing it.
#[cfg(feature = "alloc")]
const IN_PLACE_ROWS: usize = 32;

#[cfg(feature = "alloc")]
/// Computes one MR×NR register tile of `A_panel · B_panel` over `kc` steps, from a packed A
/// panel (`a_panel`: kc groups of MR values) and kc rows of NR values of B, row `p` at
/// `b[p * b_stride..]` (a packed panel: `b_stride` = NR; B read in place: its row length).
pub(crate) trait Tile<R: Ring> {
    /// The tile.
    fn tile(kc: usize, a_panel: &[R], b: &[R], b_stride: usize) -> [[R; NR]; MR];
}

/// The tile in plain Rust, left to the compiler's vectoriser.
#[cfg(feature = "alloc")]
pub(crate) struct PortableTile;

#[cfg(feature = "alloc")]
impl<R: Ring> Tile<R> for PortableTile {
    #[inline(always)]
    fn tile(kc: usize, a_panel: &[R], b: &[R], b_stride: usize) -> [[R; NR]; MR] {
        micro_kernel(kc, a_panel, b, b_stride)
    }
}

/// `c += a · b` (see [`crate::gemm::gemm_acc`]).
pub fn gemm_acc<R: Ring>(m: usize, k: usize, n: usize, a: &[R], b: &[R], c: &mut [R]) {
    #[cfg(feature = "alloc")]
    gemm_acc_inline::<R, PortableTile>(m, k, n, a, b, c);
    #[cfg(not(feature = "alloc"))]
    row_streaming(m, k, n, a, b, c);
}

/// The kernel body, inlined into each instruction-set wrapper so that it is compiled once per
/// target feature level, with the tile `K`.
#[cfg(feature = "alloc")]
#[inline(always)]
pub(crate) fn gemm_acc_inline<R: Ring, K: Tile<R>>(m: usize, k: usize, n: usize, a: &[R], b: &[R], c: &mut [R]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm operand too short");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    blocked::<R, K>(m, k, n, a, b, c);
}

/// Without an allocator: i-k-j order, streaming rows of B into rows of C.
#[cfg(not(feature = "alloc"))]
fn row_streaming<R: Ring>(m: usize, k: usize, n: usize, a: &[R], b: &[R], c: &mut [R]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm operand too short");
    for i in 0..m {
        let c_row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let a_ip = a[i * k + p];
            for (cv, bv) in c_row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *cv = cv.wrapping_add(&a_ip.wrapping_mul(bv));
            }
        }
    }
}

#[cfg(feature = "alloc")]
#[inline(always)]
fn blocked<R: Ring, K: Tile<R>>(m: usize, k: usize, n: usize, a: &[R], b: &[R], c: &mut [R]) {
    use alloc::vec;
    // With few rows, each packed panel of B would serve a few tiles only and its packing (k·n
    // copies for m·k·n products) would weigh: B is read in place, and only a last, narrower panel
    // is packed (it needs its zero padding). Measured on AVX-512: +6 to +24 % at 16 to 32 rows,
    // nothing gained at 64.
    let in_place = m <= IN_PLACE_ROWS;
    let kc_max = KC.min(k);
    let nc_max = if in_place { NR } else { NC.min(n).div_ceil(NR) * NR };
    let mc_max = MC.min(m).div_ceil(MR) * MR;
    let mut b_pack = vec![R::ZERO; kc_max * nc_max];
    let mut a_pack = vec![R::ZERO; kc_max * mc_max];
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            if !in_place {
                pack_b(&b[pc * n..], n, jc, kc, nc, &mut b_pack);
            }
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                pack_a(&a[ic * k..], k, pc, mc, kc, &mut a_pack);
                for jr in (0..nc).step_by(NR) {
                    let nr = NR.min(nc - jr);
                    let (b_panel, b_stride) = match (in_place, nr == NR) {
                        (true, true) => (&b[pc * n + jc + jr..], n),
                        (true, false) => {
                            pack_b(&b[pc * n..], n, jc + jr, kc, nr, &mut b_pack);
                            (&b_pack[..NR * kc], NR)
                        }
                        (false, _) => (&b_pack[jr * kc..(jr + NR) * kc], NR),
                    };
                    for ir in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - ir);
                        let a_panel = &a_pack[ir * kc..(ir + MR) * kc];
                        let tile = K::tile(kc, a_panel, b_panel, b_stride);
                        let c0 = (ic + ir) * n + jc + jr;
                        for (i, row) in tile.iter().enumerate().take(mr) {
                            let c_row = &mut c[c0 + i * n..c0 + i * n + nr];
                            for (cv, t) in c_row.iter_mut().zip(row) {
                                *cv = cv.wrapping_add(t);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs rows `0..kc`, columns `jc..jc+nc` of B (row stride `ld`) into panels of NR columns,
/// each panel `kc × NR` contiguous, zero-padding the last panel.
#[cfg(feature = "alloc")]
#[inline(always)]
fn pack_b<R: Ring>(b: &[R], ld: usize, jc: usize, kc: usize, nc: usize, out: &mut [R]) {
    for (panel, j0) in (0..nc).step_by(NR).enumerate() {
        let w = NR.min(nc - j0);
        let dst = &mut out[panel * NR * kc..(panel + 1) * NR * kc];
        for p in 0..kc {
            let src = &b[p * ld + jc + j0..p * ld + jc + j0 + w];
            let d = &mut dst[p * NR..(p + 1) * NR];
            d[..w].copy_from_slice(src);
            d[w..].fill(R::ZERO);
        }
    }
}

/// Packs rows `0..mc`, columns `pc..pc+kc` of A (row stride `ld`) into panels of MR rows,
/// interleaved so that the MR values of one column are contiguous.
#[cfg(feature = "alloc")]
#[inline(always)]
fn pack_a<R: Ring>(a: &[R], ld: usize, pc: usize, mc: usize, kc: usize, out: &mut [R]) {
    for (panel, i0) in (0..mc).step_by(MR).enumerate() {
        let h = MR.min(mc - i0);
        let dst = &mut out[panel * MR * kc..(panel + 1) * MR * kc];
        for p in 0..kc {
            let d = &mut dst[p * MR..(p + 1) * MR];
            for i in 0..h {
                d[i] = a[(i0 + i) * ld + pc + p];
            }
            d[h..].fill(R::ZERO);
        }
    }
}

/// The MR×NR register tile of `A_panel · B` over `kc` steps (B's row `p` at `b[p * b_stride..]`).
#[cfg(feature = "alloc")]
#[inline(always)]
fn micro_kernel<R: Ring>(kc: usize, a_panel: &[R], b: &[R], b_stride: usize) -> [[R; NR]; MR] {
    let mut acc = [[R::ZERO; NR]; MR];
    for (p, a_col) in a_panel.chunks_exact(MR).take(kc).enumerate() {
        let b_row: &[R; NR] = b[p * b_stride..p * b_stride + NR].try_into().expect("panel width");
        for i in 0..MR {
            let ai = a_col[i];
            for j in 0..NR {
                acc[i][j] = acc[i][j].wrapping_add(&ai.wrapping_mul(&b_row[j]));
            }
        }
    }
    acc
}
