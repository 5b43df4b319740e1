//! The blocked GEMM in safe, portable Rust.
//!
//! Loop nest after Goto and van de Geijn: blocks of B (KC×NC) and of A (MC×KC) are packed into
//! contiguous panels, then an MR×NR register tile of C accumulates over the KC dimension. The
//! tile is a fixed-size array, which the compiler keeps in vector registers. Products of a dozen
//! rows or more multiply the steps in pairs (Winograd's inner product, `Corrections`): half
//! the multiplications, for two additions each.

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
/// Products with fewer rows than this multiply steps one at a time: a paired tile's column
/// corrections cost about a product of one row (measured on AMD Zen 4: pairing lost at 1 to 8
/// rows, 4 × 768 · 768 from 18 to 13 G mac/s, and gained from 12).
#[cfg(feature = "alloc")]
const PAIRED_MIN_ROWS: usize = 12;
/// Products with at most this many rows read B in place instead of packing it.
#[cfg(feature = "alloc")]
const IN_PLACE_ROWS: usize = 32;

#[cfg(feature = "alloc")]
/// Computes one MR×NR register tile of `A_panel · B_panel` over `kc` steps, from a packed A
/// panel (`a_panel`: kc groups of MR values) and kc rows of NR values of B, row `p` at
/// `b[p * b_stride..]` (a packed panel: `b_stride` = NR; B read in place: its row length).
pub(crate) trait Tile<R: Ring> {
    /// Whether the tile can multiply steps in pairs, Winograd's inner product (given its rows'
    /// and columns' [`Corrections`]).
    const PAIRED: bool = false;
    /// The tile `Σ_p a_ip · b_pj`; with `corrections`, computed as
    /// `Σ_q (a_i,2q + b_2q+1,j) · (a_i,2q+1 + b_2q,j) − ξ_i − η_j` (one odd last step alone).
    fn tile(
        kc: usize,
        a_panel: &[R],
        b: &[R],
        b_stride: usize,
        corrections: Option<Corrections<'_, R>>,
    ) -> [[R; NR]; MR];
}

/// What a paired tile subtracts (Winograd 1968, exact in any commutative ring): for each row i
/// of the tile ξ_i = Σ_q a_i,2q · a_i,2q+1, for each column j η_j = Σ_q b_2q,j · b_2q+1,j, over
/// the block's pairs of steps. Each is made once per packed block and serves every tile that
/// shares its rows or columns, so the tiles do half the multiplications: where multiplies are
/// the bottleneck (a u64 multiply and its dependent add cost 1.4 cycles on AMD Zen 4, two on
/// Intel's `vpmullq`), the two additions that replace one of them are cheaper. η costs a
/// product of one row, so products of fewer than [`PAIRED_MIN_ROWS`] rows are not paired.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy)]
pub(crate) struct Corrections<'a, R> {
    /// ξ of the tile's MR rows.
    pub(crate) rows: &'a [R; MR],
    /// η of the tile's NR columns.
    pub(crate) cols: &'a [R; NR],
}

/// The tile in plain Rust, left to the compiler's vectoriser.
#[cfg(feature = "alloc")]
pub(crate) struct PortableTile;

#[cfg(feature = "alloc")]
impl<R: Ring> Tile<R> for PortableTile {
    const PAIRED: bool = true;

    #[inline(always)]
    fn tile(
        kc: usize,
        a_panel: &[R],
        b: &[R],
        b_stride: usize,
        corrections: Option<Corrections<'_, R>>,
    ) -> [[R; NR]; MR] {
        micro_kernel(kc, a_panel, b, b_stride, corrections)
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
    blocked::<R, K>(m, k, n, a, Rhs::Rows(b), c);
}

#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))] // packed only where a kernel is picked at run time
/// [`gemm_acc_inline`] from B held as [`Panels`].
#[cfg(feature = "alloc")]
#[inline(always)]
pub(crate) fn gemm_acc_panels_inline<R: Ring, K: Tile<R>>(m: usize, a: &[R], b: &Panels<R>, c: &mut [R]) {
    let (k, n) = (b.k, b.n);
    assert!(a.len() >= m * k && c.len() >= m * n, "gemm operand too short");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    blocked::<R, K>(m, k, n, a, Rhs::Panels(b), c);
}

#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))] // packed only where a kernel is picked at run time
/// Where [`blocked`] reads B.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy)]
enum Rhs<'a, R: Ring> {
    /// Row-major values, packed (or read in place) by each product.
    Rows(&'a [R]),
    /// Packed once for every product.
    Panels(&'a Panels<R>),
}

#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))] // packed only where a kernel is picked at run time
/// A right-hand operand B (k × n) packed once for many products (a model's weights, a weight
/// mask): each KC × NC block of B as [`pack_b`] packs it for a product, blocks in the order
/// the products read them, with the block's column corrections η for paired tiles. A product
/// then neither copies B nor reads it twice. The values are secret: wiped on drop.
#[cfg(feature = "alloc")]
pub(crate) struct Panels<R: Ring> {
    k: usize,
    n: usize,
    values: crate::share::Shares<R>,
    eta: crate::share::Shares<R>,
}

#[cfg(feature = "alloc")]
#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))] // packed only where a kernel is picked at run time
impl<R: Ring> Panels<R> {
    /// Packs row-major `b` (k × n).
    ///
    /// # Panics
    /// If `b` holds fewer than k × n values.
    pub(crate) fn new(k: usize, n: usize, b: &[R]) -> Self {
        assert!(b.len() >= k * n, "right operand of {k} x {n}");
        let mut panels = Self::empty(k, n);
        if n > 0 {
            for (p, row) in b[..k * n].chunks_exact(n).enumerate() {
                panels.put_row(p, row);
            }
        }
        panels.with_corrections()
    }

    /// Packs the B that `fill(rows, first)` writes a band of whole rows at a time (row `first`
    /// on), in order: no k × n buffer beside the packed form.
    pub(crate) fn drawn(k: usize, n: usize, mut fill: impl FnMut(&mut [R], usize)) -> Self {
        let mut panels = Self::empty(k, n);
        let band_rows = (DRAWN_ROWS / n.max(1)).clamp(1, k.max(1));
        let mut band = crate::share::Shares::zeros(band_rows * n);
        for first in (0..k).step_by(band_rows) {
            let rows = &mut band[..(k - first).min(band_rows) * n];
            fill(rows, first);
            for (r, row) in rows.chunks_exact(n.max(1)).enumerate() {
                panels.put_row(first + r, row);
            }
        }
        panels.with_corrections()
    }

    /// Room for B (k × n), zero.
    fn empty(k: usize, n: usize) -> Self {
        let padded = n.div_ceil(NR) * NR;
        Panels {
            k,
            n,
            values: crate::share::Shares::zeros(k * padded),
            eta: crate::share::Shares::zeros(k.div_ceil(KC) * padded),
        }
    }

    /// Every block's η, once all rows are in.
    fn with_corrections(mut self) -> Self {
        for jc in (0..self.n).step_by(NC) {
            for pc in (0..self.k).step_by(KC) {
                let (kc, nc) = (KC.min(self.k - pc), NC.min(self.n - jc));
                let (block, eta) = self.block_mut(jc, pc);
                pair_sums::<R, NR>(block, kc, nc.div_ceil(NR), eta);
            }
        }
        self
    }

    /// Rows of B.
    pub(crate) fn rows(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub(crate) fn cols(&self) -> usize {
        self.n
    }

    /// Where the block of rows `pc..`, columns `jc..` lies in `values` and its η in `eta`.
    fn ranges(&self, jc: usize, pc: usize) -> (core::ops::Range<usize>, core::ops::Range<usize>) {
        let (kc, padded) = (KC.min(self.k - pc), NC.min(self.n - jc).div_ceil(NR) * NR);
        // Every block column but the last is NC wide (a multiple of NR), so padded to itself.
        let (v, e) = (jc * self.k + pc * padded, jc * self.k.div_ceil(KC) + pc / KC * padded);
        (v..v + kc * padded, e..e + padded)
    }

    /// The packed block of rows `pc..`, columns `jc..`, and its η.
    fn block(&self, jc: usize, pc: usize) -> (&[R], &[R]) {
        let (values, eta) = self.ranges(jc, pc);
        (&self.values[values], &self.eta[eta])
    }

    fn block_mut(&mut self, jc: usize, pc: usize) -> (&mut [R], &mut [R]) {
        let (values, eta) = self.ranges(jc, pc);
        (&mut self.values[values], &mut self.eta[eta])
    }

    /// Writes row `p` of B into its place in every block column.
    fn put_row(&mut self, p: usize, row: &[R]) {
        let (pc, r) = (p / KC * KC, p % KC);
        for jc in (0..self.n).step_by(NC) {
            let kc = KC.min(self.k - pc);
            let nc = NC.min(self.n - jc);
            let (block, _) = self.block_mut(jc, pc);
            for (panel, j0) in (0..nc).step_by(NR).enumerate() {
                let at = panel * NR * kc + r * NR;
                copy_panel_row(&row[jc + j0..jc + j0 + NR.min(nc - j0)], &mut block[at..at + NR]);
            }
        }
    }
}

#[cfg_attr(not(all(feature = "std", target_arch = "x86_64")), allow(dead_code))] // packed only where a kernel is picked at run time
/// Rows [`Panels::drawn`] draws at a time: a band of about this many values.
#[cfg(feature = "alloc")]
const DRAWN_ROWS: usize = 1 << 14;

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
fn blocked<R: Ring, K: Tile<R>>(m: usize, k: usize, n: usize, a: &[R], b: Rhs<'_, R>, c: &mut [R]) {
    use alloc::vec;
    // With few rows, each packed panel of B would serve a few tiles only and its packing (k·n
    // copies for m·k·n products) would weigh: B is read in place, and only a last, narrower panel
    // is packed (it needs its zero padding). Measured on AVX-512: +6 to +24 % at 16 to 32 rows,
    // nothing gained at 64.
    let in_place = m <= IN_PLACE_ROWS && matches!(b, Rhs::Rows(_));
    let kc_max = KC.min(k);
    let nc_max = match b {
        Rhs::Panels(_) => 0,
        Rhs::Rows(_) if in_place => NR,
        Rhs::Rows(_) => NC.min(n).div_ceil(NR) * NR,
    };
    let mc_max = MC.min(m).div_ceil(MR) * MR;
    let mut b_pack = vec![R::ZERO; kc_max * nc_max];
    let mut a_pack = vec![R::ZERO; kc_max * mc_max];
    // A paired tile's corrections: ξ of the packed rows, η of the block's columns.
    let paired = K::PAIRED && m >= PAIRED_MIN_ROWS;
    let eta_len = if matches!(b, Rhs::Rows(_)) { NC.min(n).div_ceil(NR) * NR } else { 0 };
    let (mut xi, mut eta) = if paired { (vec![R::ZERO; mc_max], vec![R::ZERO; eta_len]) } else { (vec![], vec![]) };
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            if let Rhs::Rows(b) = b {
                if !in_place {
                    pack_b(&b[pc * n..], n, jc, kc, nc, &mut b_pack);
                }
                if paired {
                    column_corrections(&b[pc * n..], n, jc, kc, nc, &mut eta);
                }
            }
            // B's block packed once for every product, if it was.
            let packed_block = match b {
                Rhs::Rows(_) => None,
                Rhs::Panels(panels) => Some(panels.block(jc, pc)),
            };
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                pack_a(&a[ic * k..], k, pc, mc, kc, &mut a_pack);
                if paired {
                    pair_sums::<R, MR>(&a_pack, kc, mc.div_ceil(MR), &mut xi);
                }
                for jr in (0..nc).step_by(NR) {
                    let nr = NR.min(nc - jr);
                    let (b_panel, b_stride) = match (b, in_place, nr == NR) {
                        (Rhs::Rows(b), true, true) => (&b[pc * n + jc + jr..], n),
                        (Rhs::Rows(b), true, false) => {
                            pack_b(&b[pc * n..], n, jc + jr, kc, nr, &mut b_pack);
                            (&b_pack[..NR * kc], NR)
                        }
                        _ => (&packed_block.map_or(&b_pack[..], |(block, _)| block)[jr * kc..(jr + NR) * kc], NR),
                    };
                    for ir in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - ir);
                        let a_panel = &a_pack[ir * kc..(ir + MR) * kc];
                        let corrections = paired.then(|| Corrections {
                            rows: xi[ir..ir + MR].try_into().expect("MR rows"),
                            cols: packed_block.map_or(&eta[..], |(_, eta)| eta)[jr..jr + NR]
                                .try_into()
                                .expect("NR columns"),
                        });
                        let tile = K::tile(kc, a_panel, b_panel, b_stride, corrections);
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

/// η_j = Σ_q b_2q,j · b_2q+1,j for columns `jc..jc+nc` of rows `0..kc` of B (row stride `ld`),
/// into `out[..nc]` (zero beyond, for the padded columns of the last panel).
#[cfg(feature = "alloc")]
#[inline(always)]
fn column_corrections<R: Ring>(b: &[R], ld: usize, jc: usize, kc: usize, nc: usize, out: &mut [R]) {
    out.fill(R::ZERO);
    let out = &mut out[..nc];
    for q in 0..kc / 2 {
        let even = &b[2 * q * ld + jc..2 * q * ld + jc + nc];
        let odd = &b[(2 * q + 1) * ld + jc..(2 * q + 1) * ld + jc + nc];
        for ((eta, x), y) in out.iter_mut().zip(even).zip(odd) {
            *eta = eta.wrapping_add(&x.wrapping_mul(y));
        }
    }
}

/// The pair sums Σ_q x_2q,i · x_2q+1,i of `panels` panels of W values a step over `kc` steps,
/// packed as [`pack_a`] (W = MR: each row's ξ) or [`pack_b`] (W = NR: each column's η) packs
/// them, into `out` (W values a panel; zero for padding).
#[cfg(feature = "alloc")]
#[inline(always)]
fn pair_sums<R: Ring, const W: usize>(packed: &[R], kc: usize, panels: usize, out: &mut [R]) {
    for (panel, sums) in packed.chunks_exact(W * kc).zip(out.chunks_exact_mut(W)).take(panels) {
        let mut acc = [R::ZERO; W];
        for pair in panel.chunks_exact(2 * W).take(kc / 2) {
            for (i, acc) in acc.iter_mut().enumerate() {
                *acc = acc.wrapping_add(&pair[i].wrapping_mul(&pair[W + i]));
            }
        }
        sums.copy_from_slice(&acc);
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
        for (p, d) in dst.chunks_exact_mut(NR).enumerate().take(kc) {
            copy_panel_row(&b[p * ld + jc + j0..p * ld + jc + j0 + w], d);
        }
    }
}

/// Copies `src` (up to NR values of a row of B) into a panel's row `dst` (NR values), zero past
/// it. A whole row is copied as a fixed-size array: inline vector moves, no call per row.
#[cfg(feature = "alloc")]
#[inline(always)]
fn copy_panel_row<R: Ring>(src: &[R], dst: &mut [R]) {
    let dst: &mut [R; NR] = dst.try_into().expect("panel row of NR");
    match <&[R; NR]>::try_from(src) {
        Ok(whole) => *dst = *whole,
        Err(_) => {
            dst[..src.len()].copy_from_slice(src);
            dst[src.len()..].fill(R::ZERO);
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

/// The MR×NR register tile of `A_panel · B` over `kc` steps (B's row `p` at `b[p * b_stride..]`),
/// with `corrections` multiplying the steps in pairs ([`Corrections`]; an odd last step alone).
#[cfg(feature = "alloc")]
#[inline(always)]
fn micro_kernel<R: Ring>(
    kc: usize,
    a_panel: &[R],
    b: &[R],
    b_stride: usize,
    corrections: Option<Corrections<'_, R>>,
) -> [[R; NR]; MR] {
    let b_row = |p: usize| -> &[R; NR] { b[p * b_stride..p * b_stride + NR].try_into().expect("panel width") };
    let mut acc = [[R::ZERO; NR]; MR];
    // Steps multiplied one at a time: all of them, or the odd last one of a paired tile.
    let mut single = 0..kc;
    if let Some(corrections) = corrections {
        // The accumulators start at −ξ_i − η_j.
        for (row, xi) in acc.iter_mut().zip(corrections.rows) {
            for (c, eta) in row.iter_mut().zip(corrections.cols) {
                *c = R::ZERO.wrapping_sub(xi).wrapping_sub(eta);
            }
        }
        for (q, a_pair) in a_panel.chunks_exact(2 * MR).take(kc / 2).enumerate() {
            let (even, odd) = (b_row(2 * q), b_row(2 * q + 1));
            for i in 0..MR {
                let (a_even, a_odd) = (a_pair[i], a_pair[MR + i]);
                for j in 0..NR {
                    let product = a_even.wrapping_add(&odd[j]).wrapping_mul(&a_odd.wrapping_add(&even[j]));
                    acc[i][j] = acc[i][j].wrapping_add(&product);
                }
            }
        }
        single = kc / 2 * 2..kc;
    }
    for p in single {
        let b_row = b_row(p);
        for i in 0..MR {
            let ai = a_panel[p * MR + i];
            for j in 0..NR {
                acc[i][j] = acc[i][j].wrapping_add(&ai.wrapping_mul(&b_row[j]));
            }
        }
    }
    acc
}
