//! What each party draws for a request, and how the dealer corrects P0's part: written once,
//! used by the dealer, by each party's client and by the test double.
//!
//! Every material has *random parts* (a, b; r; A; B), which both parties draw from their own PRG,
//! and *correlated parts* (c = a⊙b; r²; r >> f and msb(r); C = A·B). P1 draws its correlated
//! parts from its PRG too; P0's are the correction the dealer computes and sends to P0 alone.

use heapless::Vec as Parts2;

use super::recycle::Recycled;
use super::{MaskId, Material, Request};
use crate::error::Error;
use crate::gemm::{RightOperand, Width};
use crate::protocol::lookup::{LOOKUP_SLOTS, TableBins, lookup_bins};
use crate::ring::{self, Ring};
use crate::share::{Expander, Seed, Shares, streams};
use crate::transport::Role;

/// The default bound on the ring elements of one part of one request, 2^28 (2 GiB of u64):
/// far above any Transformer layer's need, and a bound on what a request can make anybody
/// allocate. The dealer's bound is configurable ([`Dealer::with_max_request_elements`]).
///
/// [`Dealer::with_max_request_elements`]: super::Dealer::with_max_request_elements
pub const MAX_REQUEST_ELEMENTS: usize = 1 << 28;

/// Bytes of an encoded request header.
pub(crate) const HEADER_LEN: usize = 40;

const TAG_BEAVER: u64 = 1;
const TAG_SQUARE: u64 = 2;
const TAG_TRUNC: u64 = 3;
const TAG_MASK: u64 = 4;
const TAG_TRIPLE: u64 = 5;

const TAG_AND: u64 = 6;
// Tag 7 was a less-than-zero comparison, now a `Below` against 0.
const TAG_OWNED_MASK: u64 = 8;
const TAG_OWNED_TRIPLE: u64 = 9;
const TAG_BROADCAST: u64 = 10;
const TAG_TRUNC_SQUARE: u64 = 11;
const TAG_BELOW: u64 = 12;
const TAG_FUSED: u64 = 13;
const TAG_FUSED_SQUARE: u64 = 14;
const TAG_OWNED_TABLE: u64 = 15;
const TAG_OWNED_LOOKUP: u64 = 16;
/// The bit of a [`Request::Fused`] header's mode word that asks for x's square too.
const FUSED_WITH_SQUARE: u64 = 4;
/// The bit of a [`Request::Fused`] header's mode word that asks for y's square too.
const FUSED_Y_SQUARE: u64 = 8;
/// Where a [`Request::Fused`] header keeps x's width (bits 8 to 15 of its mode word; 0, as in
/// material stored before widths, for the ring's), and y's (bits 16 to 23).
const FUSED_WIDTH_AT: u32 = 8;
const FUSED_Y_WIDTH_AT: u32 = 16;
/// Where a [`Request::Below`] header keeps its width (bits 8 to 15 of its last word, beside
/// the square flag in bit 0).
const BELOW_WIDTH_AT: u32 = 8;

/// At most this many random and this many correlated parts per material (a fused product of
/// two truncated operands that squares x too has nine correlated parts).
pub(crate) const MAX_PARTS: usize = 10;

/// How the parties' shares of a part combine into its secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// The shares add up (mod 2^k).
    Additive,
    /// The shares XOR (packed bits).
    Xor,
    /// One party holds the whole part; the other holds nothing.
    Owned(Role),
}

use Sharing::{Additive, Owned, Xor};

/// Part lengths (in ring elements) and sharings of a request: (random parts, correlated parts).
pub(crate) struct Layout {
    pub random: Parts2<(usize, Sharing), MAX_PARTS>,
    pub correlated: Parts2<(usize, Sharing), MAX_PARTS>,
}

fn parts(lens: &[(usize, Sharing)]) -> Parts2<(usize, Sharing), MAX_PARTS> {
    Parts2::from_slice(lens).expect("at most MAX_PARTS parts")
}

impl Sharing {
    /// Turns P1's share `theirs` of a random part into the part's secret, in place, given P0's
    /// share `mine` (empty where P1 owns the part; the whole part where P0 does).
    fn secret_into<R: Ring>(self, theirs: &mut Shares<R>, mine: &[R]) {
        match self {
            Additive => ring::add_assign(theirs, mine),
            Xor => xor_assign(theirs, mine),
            Owned(Role::P0) => theirs.extend_from(mine),
            Owned(Role::P1) => {}
        }
    }
}

/// Elementwise `acc[i] ^= x[i]`.
fn xor_assign<R: Ring>(acc: &mut [R], x: &[R]) {
    for (a, x) in acc.iter_mut().zip(x) {
        *a = *a ^ *x;
    }
}

/// Turns P1's share of an additive correlated part into P0's, in place: the secret, given
/// element by element, less P1's share. The secret must have the part's length.
fn correct<R: Ring>(share: &mut [R], secret: impl IntoIterator<Item = R>) -> Result<(), Error> {
    let mut written = 0;
    for (s, v) in share.iter_mut().zip(secret) {
        *s = v.wrapping_sub(s);
        written += 1;
    }
    if written == share.len() { Ok(()) } else { Err(Error::MaterialMismatch) }
}

/// Like [`correct`], for a secret made of packed bits: element q of `share` becomes
/// `value(bit from + q of words, q)` less P1's share. A word of bits at a time, each read at
/// a fixed shift (the loop vectorises).
fn correct_bits<R: Ring>(
    share: &mut [R],
    words: &[R],
    from: usize,
    value: impl Fn(R, usize) -> R,
) -> Result<(), Error> {
    let bits = R::BITS as usize;
    if words.len() * bits < from + share.len() {
        return Err(Error::MaterialMismatch);
    }
    for (c, chunk) in share.chunks_mut(bits).enumerate() {
        let word = crate::protocol::compare::bits_from(words, from + c * bits);
        for (b, s) in chunk.iter_mut().enumerate() {
            *s = value(word.shr_logical(b as u32) & R::ONE, c * bits + b).wrapping_sub(s);
        }
    }
    Ok(())
}

/// Like [`correct`], for a secret made of pairs: element i of `share` becomes `value(x[i], y[j])`
/// less P1's share, y's element j the one multiplying i when y is repeated along rows or
/// columns of `len` ([`broadcast_index`]), found a row at a time rather than by a division.
fn correct_pairs<R: Ring>(
    share: &mut [R],
    (x, y): (&[R], &[R]),
    (len, broadcast): (usize, Option<bool>),
    value: impl Fn(R, R) -> R,
) -> Result<(), Error> {
    let len = len.max(1);
    // y's elements the pairs read: one per element, per row, or per column of the rows given.
    let read = match broadcast {
        None => share.len(),
        Some(true) => share.len().div_ceil(len),
        Some(false) => len.min(share.len()),
    };
    if x.len() != share.len() || y.len() < read {
        return Err(Error::MaterialMismatch);
    }
    let rows = share.chunks_mut(len).zip(x.chunks(len));
    match broadcast {
        None => share.iter_mut().zip(x).zip(y).for_each(|((s, a), b)| *s = value(*a, *b).wrapping_sub(s)),
        Some(true) => {
            for ((s, xs), b) in rows.zip(y) {
                s.iter_mut().zip(xs).for_each(|(s, a)| *s = value(*a, *b).wrapping_sub(s));
            }
        }
        Some(false) => {
            for (s, xs) in rows {
                s.iter_mut().zip(xs).zip(y).for_each(|((s, a), b)| *s = value(*a, *b).wrapping_sub(s));
            }
        }
    }
    Ok(())
}

/// Ring words holding `bits` packed bits.
pub(crate) fn words_for_bits<R: Ring>(bits: usize) -> usize {
    bits.div_ceil(R::BITS as usize)
}

/// Elements of a vector multiplying a `rows × len` matrix: the matrix's shape for `None`, one
/// per row (`Some(true)`) or per column (`Some(false)`) when it is repeated along the other axis
/// ([`Request::Broadcast`], [`Request::Fused`]).
pub(crate) fn broadcast_len(rows: usize, len: usize, broadcast: Option<bool>) -> usize {
    match broadcast {
        None => rows * len,
        Some(true) => rows,
        Some(false) => len,
    }
}

/// The element of such a vector ([`broadcast_len`]) that multiplies element `i` of the matrix.
pub(crate) fn broadcast_index(len: usize, broadcast: Option<bool>, i: usize) -> usize {
    match broadcast {
        None => i,
        Some(true) => i / len.max(1),
        Some(false) => i % len.max(1),
    }
}

/// Bits of the digits of [`Request::Below`]'s tables for `bounds` bounds a value: 4 below
/// [`WIDE_DIGITS_FROM`] bounds, 8 from there.
///
/// A value's tables cost 2^(w+1) bits a digit offline, once for all its bounds; each comparison
/// costs one AND level per halving of the digits online. Four-bit digits (16 in Z_2^64, 512 bits
/// of tables) suit a value compared with a bound or two (ReLU, a maximum's step, a saturation);
/// eight-bit digits (8, 4096 bits) save a round and about half the gates of every comparison,
/// which pays where one value meets many bounds (the piecewise starts of the reciprocal and the
/// inverse square root).
pub(crate) const fn below_digit_bits(bounds: usize) -> u32 {
    if bounds < WIDE_DIGITS_FROM { 4 } else { 8 }
}

/// Bound count from which [`Request::Below`] takes eight-bit digits ([`below_digit_bits`]).
pub(crate) const WIDE_DIGITS_FROM: usize = 16;

/// Digits covering the low `width` - 2 bits in [`Request::Below`]'s tables, rounded up to a
/// power of two as the tree's halves need: 16 or 8 for the full u64 ring (62 bits), 8 or 4 for
/// a width of 34 or the full u32 ring.
pub(crate) const fn below_digits(bounds: usize, width: u32) -> usize {
    ((width - 2) as usize).div_ceil(below_digit_bits(bounds) as usize).next_power_of_two()
}

/// Whether an opening shifted by `shift` bits at `width` bits reads its value as a dealer
/// truncation does (public + w·msb(r) - (r >> s), the dealer's r >> s and msb among the
/// material): with a shift, or narrower than the ring (c = x + 2^(m-2) + r mod 2^m, whose wrap
/// past 2^m the ring sees). Only an unshifted full-width opening gives the value as c - r.
pub(crate) const fn opening_wraps<R: Ring>(shift: u32, width: u32) -> bool {
    shift > 0 || width < R::BITS
}

/// The low bits of r a [`Request::Below`]'s digits skip: a comparison that squares its
/// truncated value (`square` with `times: Some(s)`) reads it at the truncation's resolution, its
/// digits covering bits s to m - 2 only (its bits may then err within 2^(s+1) of a bound, in
/// the ring, with the opening's carry); none otherwise.
pub(crate) const fn below_skip(times: Option<u32>, square: bool) -> u32 {
    match (square, times) {
        (true, Some(s)) => s,
        _ => 0,
    }
}

/// The bits a [`Request::Below`]'s digits cover, plus the two above them: its width less the
/// skipped low bits ([`below_skip`]); what [`below_digits`] and [`below_table_words`] take.
pub(crate) const fn below_digit_width(times: Option<u32>, square: bool, width: u32) -> u32 {
    width.saturating_sub(below_skip(times, square))
}

/// Whether a [`Request::Below`]'s products carry the opening's wrap ([`opening_wraps`]).
pub(crate) const fn below_wraps<R: Ring>(times: Option<u32>, width: u32) -> bool {
    match times {
        None => false,
        Some(s) => opening_wraps::<R>(s, width),
    }
}

/// The comparisons of a [`Request::Below`] of `n` values and `bounds` bounds whose bits are
/// multiplied by their values (with `times`): all of them, or with a `square` those of the last
/// bound only (a saturating function's top asymptote); they are the last ones, bound-major.
pub(crate) const fn below_products(n: usize, bounds: usize, square: bool) -> usize {
    if square { n } else { n * bounds }
}

/// Ring words of a [`Request::Below`]'s value truncations and cross products for `n` values
/// and `m` comparisons with products ([`below_products`]): with a wrap ([`below_wraps`]),
/// (r mod 2^width) >> s and bit width - 1 of r per value, then U_k·msb and
/// U_k·((r mod 2^width) >> s) per comparison; without one only U_k·r (the value is c - r
/// itself); nothing without products.
pub(crate) const fn below_times_lens<R: Ring>(n: usize, m: usize, times: Option<u32>, width: u32) -> (usize, usize) {
    match times {
        None => (0, 0),
        Some(_) if below_wraps::<R>(times, width) => (2 * n, 8 * m),
        Some(_) => (0, 4 * m),
    }
}

/// Ring words of a [`Request::Below`]'s squares for `n` values: r² per value at full width
/// without a shift; with a wrap ([`below_wraps`]), hi² and hi·msb for hi = ρ >> s, ρ = r mod
/// 2^width (y = p - hi + w·msb, see [`BelowMaterial`](super::BelowMaterial)).
pub(crate) const fn below_square_len<R: Ring>(n: usize, square: bool, times: Option<u32>, width: u32) -> usize {
    match (square, below_wraps::<R>(times, width)) {
        (false, _) => 0,
        (true, false) => n,
        (true, true) => 2 * n,
    }
}

/// Refuses a [`Request::Below`] width its comparisons cannot take (malformed): above the
/// ring's, below two digits (the tree's halves, above the skipped bits: [`below_skip`]), or,
/// with a square that wraps, under half the ring above its shift (the square's 2^(2(width - s))
/// term must vanish); and a shift (too large) that leaves no room for the truncation's offset
/// at that width.
pub(crate) fn below_width_check<R: Ring>(
    bounds: usize,
    times: Option<u32>,
    square: bool,
    width: u32,
) -> Result<(), Error> {
    let digit_width = below_digit_width(times, square, width);
    let fits = width <= R::BITS
        && digit_width >= below_digit_bits(bounds) + 3
        && !(square && below_wraps::<R>(times, width) && 2 * digit_width < R::BITS);
    if !fits {
        return Err(Error::Malformed("comparison width"));
    }
    if times.is_some_and(|s| s.saturating_add(2) >= width) {
        return Err(Error::TooLarge);
    }
    Ok(())
}

/// Bits of one digit's tables: 2^w of `[v < digit]`, then 2^w of `[v == digit]`.
pub(crate) const fn below_table_bits(bounds: usize) -> usize {
    2 << below_digit_bits(bounds)
}

/// Ring words of one value's digit tables in [`Request::Below`].
pub(crate) const fn below_table_words<R: Ring>(bounds: usize, width: u32) -> usize {
    (below_digits(bounds, width) * below_table_bits(bounds)).div_ceil(R::BITS as usize)
}

/// A header's width: 0 (material stored before widths) is the ring's.
fn ring_width<R: Ring>(width: u32) -> u32 {
    if width == 0 { R::BITS } else { width }
}

/// The cross products a [`Request::Fused`] needs, by which operands are truncated (`None` for y:
/// a [`Request::FusedSquare`], whose cross products are a·a, or msb·hi and hi·hi).
///
/// Two truncated operands of which one is narrow (opened below the ring's width) have a fourth,
/// msb·msb: its factor 2^(m_x - s_x + m_y - s_y) vanishes in the ring only for m_x + m_y >= k +
/// s_x + s_y.
pub(crate) const fn fused_cross_parts(x_truncated: bool, y_truncated: Option<bool>, narrow: bool) -> usize {
    match (x_truncated, y_truncated) {
        (false, None) | (false, Some(false)) => 1,
        (true, Some(true)) if narrow => 4,
        (true, Some(true)) => 3,
        _ => 2,
    }
}

/// Why a fused layout's parts fit in [`MAX_PARTS`]: at most two random and nine correlated.
const FUSED_PARTS: &str = "a fused layout has at most MAX_PARTS parts";

/// The layout of a fused product of x (`nx` elements) with y (its length and shift), or of a
/// fused square without y: the masks; each truncated operand's r >> s and msb(r); the cross
/// products (x's square's last).
fn fused_layout(
    nx: usize,
    (x_truncated, x_narrow): (bool, bool),
    y: Option<(usize, bool)>,
    square: Option<(usize, bool)>,
) -> Layout {
    let mut random = parts(&[(nx, Additive)]);
    let mut correlated = Parts2::new();
    for (n, truncated) in core::iter::once((nx, x_truncated)).chain(y) {
        if truncated {
            correlated.extend_from_slice(&[(n, Additive), (n, Additive)]).expect(FUSED_PARTS);
        }
    }
    if let Some((ny, _)) = y {
        random.push((ny, Additive)).expect(FUSED_PARTS);
    }
    for _ in 0..fused_cross_parts(x_truncated, y.map(|(_, truncated)| truncated), x_narrow) {
        correlated.push((nx, Additive)).expect(FUSED_PARTS);
    }
    // A square's cross products, of its operand's length, come last.
    if let Some((n, truncated)) = square {
        for _ in 0..fused_cross_parts(truncated, None, false) {
            correlated.push((n, Additive)).expect(FUSED_PARTS);
        }
    }
    Layout { random, correlated }
}

impl Request {
    /// Whether a dimension of the request is zero. Such requests are refused: they would make
    /// material with nothing random in it (a zero-k triple's C = A · B is 0, so its correction
    /// would be P1's share itself).
    pub fn is_empty(&self) -> bool {
        match *self {
            Request::Beaver { n }
            | Request::Square { n }
            | Request::Trunc { n, .. }
            | Request::TruncSquare { n, .. }
            | Request::FusedSquare { n, .. } => n == 0,
            Request::MatmulMask { k, n } | Request::OwnedMask { k, n } | Request::OwnedTable { k, n } => {
                k == 0 || n == 0
            }
            Request::MatmulTriple { m, k, n, .. }
            | Request::OwnedTriple { m, k, n, .. }
            | Request::OwnedLookup { m, k, n, .. } => m == 0 || k == 0 || n == 0,
            Request::And { words } => words == 0,
            Request::Broadcast { rows, len, .. } | Request::Fused { rows, len, .. } => rows == 0 || len == 0,
            Request::Below { n, bounds, .. } => n == 0 || bounds == 0,
        }
    }

    /// Whether the request makes a matmul mask (which gets an identity that triples name).
    pub fn is_mask(&self) -> bool {
        matches!(self, Request::MatmulMask { .. } | Request::OwnedMask { .. } | Request::OwnedTable { .. })
    }

    /// Checks that the request is not empty ([`Request::is_empty`]), every part holds at most
    /// `max_elements`, and the shift fits the ring.
    pub fn validate<R: Ring>(&self, max_elements: usize) -> Result<(), Error> {
        if self.is_empty() {
            return Err(Error::Malformed("zero-sized request"));
        }
        let ok = |x: Option<usize>| matches!(x, Some(v) if v <= max_elements);
        let fits = match *self {
            Request::Beaver { n } | Request::Square { n } => ok(Some(n)),
            Request::Trunc { n, frac_bits } => ok(Some(n)) && frac_bits < R::BITS.saturating_sub(2),
            // The square is local only while q² = 2^(2(k-f)) vanishes in the ring.
            Request::TruncSquare { n, frac_bits } => ok(Some(n)) && frac_bits <= R::BITS / 2,
            Request::MatmulMask { k, n } | Request::OwnedMask { k, n } | Request::OwnedTable { k, n } => {
                ok(k.checked_mul(n))
            }
            Request::OwnedLookup { m, k, n, .. } => {
                let slots = lookup_bins(m).checked_mul(LOOKUP_SLOTS);
                ok(k.checked_mul(LOOKUP_SLOTS))
                    && ok(slots.and_then(|s| s.checked_mul(m)))
                    && ok(slots.and_then(|s| s.checked_mul(n)))
                    && ok(m.checked_mul(n))
            }
            Request::MatmulTriple { m, k, n, .. } | Request::OwnedTriple { m, k, n, .. } => {
                ok(k.checked_mul(n)) && ok(m.checked_mul(k)) && ok(m.checked_mul(n))
            }
            Request::And { words } => ok(Some(words)),
            // Each factor alone too: the short vector has `rows` or `len` entries even when the
            // matrix is empty.
            Request::Broadcast { rows, len, .. } => ok(rows.checked_mul(len)) && ok(Some(rows)) && ok(Some(len)),
            Request::Below { n, bounds, times, square, width } => {
                if square && times.is_none() {
                    return Err(Error::Malformed("a comparison's square needs its products"));
                }
                below_width_check::<R>(bounds, times, square, width)?;
                ok(n.checked_mul(bounds).and_then(|m| m.checked_mul(8)))
                    && ok(n.checked_mul(below_table_words::<R>(bounds, below_digit_width(times, square, width))))
            }
            // Each shift leaves room for the truncation's offset, and the msb·msb cross term
            // vanishes only while the two shifts add up to at most k; a narrow operand's msb·msb
            // terms are read off the dealer's msb (a fourth cross product, and a square's linear
            // term), so its shifts need only fit its width.
            Request::Fused { rows, len, x_shift, y_shift, with_square, y_square, x_width, y_width, .. } => {
                if with_square && y_square {
                    return Err(Error::Malformed("a fused product squares one of its operands"));
                }
                if [x_width, y_width].iter().any(|&m| m > R::BITS || m < 3) {
                    return Err(Error::Malformed("fused operand width"));
                }
                let (x_narrow, y_narrow) = (x_width < R::BITS, y_width < R::BITS);
                ok(rows.checked_mul(len))
                    && ok(Some(rows))
                    && ok(Some(len))
                    && x_shift.saturating_add(2) < x_width
                    && y_shift.saturating_add(2) < y_width
                    && (x_narrow || y_narrow || x_shift.saturating_add(y_shift) <= R::BITS)
                    && (!with_square || x_narrow || x_shift.saturating_mul(2) <= R::BITS)
                    && (!y_square || y_narrow || y_shift.saturating_mul(2) <= R::BITS)
            }
            Request::FusedSquare { n, shift, width } => {
                if width > R::BITS || width < 3 {
                    return Err(Error::Malformed("square width"));
                }
                // Below the ring's width the square's msb·msb term is read off msb(r) (linear).
                ok(Some(n))
                    && shift.saturating_add(2) < width
                    && (width < R::BITS || shift.saturating_mul(2) <= R::BITS)
            }
        };
        if fits { Ok(()) } else { Err(Error::TooLarge) }
    }

    /// Ring elements of P0's correction (what the dealer sends for this request).
    pub fn correction_len<R: Ring>(&self) -> usize {
        self.layout::<R>().correlated.iter().map(|(len, _)| len).sum()
    }

    pub(crate) fn layout<R: Ring>(&self) -> Layout {
        match *self {
            Request::Beaver { n } => {
                Layout { random: parts(&[(n, Additive), (n, Additive)]), correlated: parts(&[(n, Additive)]) }
            }
            Request::Square { n } => Layout { random: parts(&[(n, Additive)]), correlated: parts(&[(n, Additive)]) },
            Request::Trunc { n, .. } => {
                Layout { random: parts(&[(n, Additive)]), correlated: parts(&[(n, Additive), (n, Additive)]) }
            }
            Request::TruncSquare { n, .. } => Layout {
                random: parts(&[(n, Additive)]),
                correlated: parts(&[(n, Additive), (n, Additive), (n, Additive), (n, Additive)]),
            },
            Request::MatmulMask { k, n } => Layout { random: parts(&[(k * n, Additive)]), correlated: parts(&[]) },
            Request::MatmulTriple { m, k, n, .. } => {
                Layout { random: parts(&[(m * k, Additive)]), correlated: parts(&[(m * n, Additive)]) }
            }
            Request::And { words } => {
                Layout { random: parts(&[(words, Xor), (words, Xor)]), correlated: parts(&[(words, Xor)]) }
            }
            Request::OwnedMask { k, n } => {
                Layout { random: parts(&[(k * n, Owned(Role::P0))]), correlated: parts(&[]) }
            }
            // The key of B's rows' buckets (P0 sends it to P1 with F), then B.
            Request::OwnedTable { k, n } => {
                Layout { random: parts(&[(1, Owned(Role::P0)), (k * n, Owned(Role::P0))]), correlated: parts(&[]) }
            }
            Request::OwnedLookup { m, k, n, .. } => {
                let slots = lookup_bins(m) * LOOKUP_SLOTS;
                Layout {
                    random: parts(&[
                        (LOOKUP_SLOTS * k, Owned(Role::P1)),
                        (m * slots, Owned(Role::P1)),
                        (slots * n, Owned(Role::P0)),
                    ]),
                    correlated: parts(&[(slots * n, Additive), (m * n, Additive)]),
                }
            }
            Request::OwnedTriple { m, k, n, .. } => {
                Layout { random: parts(&[(m * k, Owned(Role::P1))]), correlated: parts(&[(m * n, Additive)]) }
            }
            Request::Broadcast { rows, len, per_row } => Layout {
                random: parts(&[(rows * len, Additive), (broadcast_len(rows, len, Some(per_row)), Additive)]),
                correlated: parts(&[(rows * len, Additive)]),
            },
            Request::Below { n, bounds, times, square, width } => {
                let m = n * bounds;
                let bits = words_for_bits::<R>(m);
                let (value, cross) = below_times_lens::<R>(n, below_products(n, bounds, square), times, width);
                let mut correlated = parts(&[
                    (n * below_table_words::<R>(bounds, below_digit_width(times, square, width)), Xor),
                    (m, Additive),
                    (m, Additive),
                    (m, Additive),
                    (m, Additive),
                ]);
                if times.is_some() {
                    let _ = correlated.extend_from_slice(&[(value, Additive), (cross, Additive)]);
                }
                if square {
                    let _ = correlated.push((below_square_len::<R>(n, square, times, width), Additive));
                }
                Layout { random: parts(&[(n, Additive), (bits, Xor), (bits, Xor), (bits, Xor)]), correlated }
            }
            Request::Fused { rows, len, broadcast, x_shift, y_shift, with_square, y_square, x_width, y_width } => {
                let x_wraps = opening_wraps::<R>(x_shift, x_width);
                let y = (broadcast_len(rows, len, broadcast), opening_wraps::<R>(y_shift, y_width));
                let square = match (with_square, y_square) {
                    (true, _) => Some((rows * len, x_wraps)),
                    (false, true) => Some(y),
                    (false, false) => None,
                };
                fused_layout(rows * len, (x_wraps, x_width.min(y_width) < R::BITS), Some(y), square)
            }
            Request::FusedSquare { n, shift, width } => {
                fused_layout(n, (opening_wraps::<R>(shift, width), false), None, None)
            }
        }
    }

    /// The header's five words: a tag, then the sizes (and a mask identity).
    pub(crate) fn words(&self) -> [u64; HEADER_LEN / 8] {
        match *self {
            Request::Beaver { n } => [TAG_BEAVER, n as u64, 0, 0, 0],
            Request::Square { n } => [TAG_SQUARE, n as u64, 0, 0, 0],
            Request::Trunc { n, frac_bits } => [TAG_TRUNC, n as u64, frac_bits as u64, 0, 0],
            Request::TruncSquare { n, frac_bits } => [TAG_TRUNC_SQUARE, n as u64, frac_bits as u64, 0, 0],
            Request::MatmulMask { k, n } => [TAG_MASK, k as u64, n as u64, 0, 0],
            Request::MatmulTriple { m, k, n, mask } => [TAG_TRIPLE, m as u64, k as u64, n as u64, mask],
            Request::And { words } => [TAG_AND, words as u64, 0, 0, 0],
            Request::Below { n, bounds, times, square, width } => {
                let flags = u64::from(square) | (u64::from(width) & 0xFF) << BELOW_WIDTH_AT;
                [TAG_BELOW, n as u64, bounds as u64, times.map_or(0, |s| u64::from(s) + 1), flags]
            }
            Request::Fused { rows, len, broadcast, x_shift, y_shift, with_square, y_square, x_width, y_width } => {
                let mode = match broadcast {
                    None => 0,
                    Some(true) => 1,
                    Some(false) => 2,
                } | if with_square { FUSED_WITH_SQUARE } else { 0 }
                    | if y_square { FUSED_Y_SQUARE } else { 0 }
                    | (u64::from(x_width) & 0xFF) << FUSED_WIDTH_AT
                    | (u64::from(y_width) & 0xFF) << FUSED_Y_WIDTH_AT;
                [TAG_FUSED, rows as u64, len as u64, mode, u64::from(x_shift) | (u64::from(y_shift) << 32)]
            }
            Request::FusedSquare { n, shift, width } => {
                [TAG_FUSED_SQUARE, n as u64, u64::from(shift), u64::from(width), 0]
            }
            Request::Broadcast { rows, len, per_row } => [TAG_BROADCAST, rows as u64, len as u64, per_row as u64, 0],
            Request::OwnedMask { k, n } => [TAG_OWNED_MASK, k as u64, n as u64, 0, 0],
            Request::OwnedTriple { m, k, n, mask } => [TAG_OWNED_TRIPLE, m as u64, k as u64, n as u64, mask],
            Request::OwnedTable { k, n } => [TAG_OWNED_TABLE, k as u64, n as u64, 0, 0],
            Request::OwnedLookup { m, k, n, mask } => [TAG_OWNED_LOOKUP, m as u64, k as u64, n as u64, mask],
        }
    }

    /// The fixed-length header P0 sends to the dealer: five little-endian u64 words.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (chunk, w) in out.chunks_exact_mut(8).zip(self.words()) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Decodes and validates a header received from a peer, with parts of at most `max_elements`.
    pub fn decode<R: Ring>(bytes: &[u8], max_elements: usize) -> Result<Request, Error> {
        if bytes.len() != HEADER_LEN {
            return Err(Error::Malformed("request header length"));
        }
        let mut w = [0u64; 5];
        for (word, chunk) in w.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        let size = |x: u64| usize::try_from(x).map_err(|_| Error::TooLarge);
        let unused_zero = |ws: &[u64]| ws.iter().all(|&x| x == 0);
        let req = match w[0] {
            TAG_BEAVER if unused_zero(&w[2..]) => Request::Beaver { n: size(w[1])? },
            TAG_SQUARE if unused_zero(&w[2..]) => Request::Square { n: size(w[1])? },
            TAG_TRUNC if unused_zero(&w[3..]) => Request::Trunc {
                n: size(w[1])?,
                frac_bits: u32::try_from(w[2]).map_err(|_| Error::Malformed("truncation shift"))?,
            },
            TAG_TRUNC_SQUARE if unused_zero(&w[3..]) => Request::TruncSquare {
                n: size(w[1])?,
                frac_bits: u32::try_from(w[2]).map_err(|_| Error::Malformed("truncation shift"))?,
            },
            TAG_MASK if unused_zero(&w[3..]) => Request::MatmulMask { k: size(w[1])?, n: size(w[2])? },
            TAG_TRIPLE => Request::MatmulTriple { m: size(w[1])?, k: size(w[2])?, n: size(w[3])?, mask: w[4] },
            TAG_AND if unused_zero(&w[2..]) => Request::And { words: size(w[1])? },
            TAG_BELOW if w[4] & !(1 | 0xFF << BELOW_WIDTH_AT) == 0 && w[3] <= u64::from(u32::MAX) => Request::Below {
                n: size(w[1])?,
                bounds: size(w[2])?,
                times: w[3].checked_sub(1).map(|s| s as u32),
                square: w[4] & 1 == 1,
                // Headers from before the width (stored material) meant the full ring.
                width: ring_width::<R>((w[4] >> BELOW_WIDTH_AT) as u32),
            },
            TAG_FUSED
                if w[3] & !(FUSED_WITH_SQUARE | FUSED_Y_SQUARE | 0xFF << FUSED_WIDTH_AT | 0xFF << FUSED_Y_WIDTH_AT)
                    <= 2 =>
            {
                Request::Fused {
                    rows: size(w[1])?,
                    len: size(w[2])?,
                    broadcast: [None, Some(true), Some(false)][(w[3] & 3) as usize],
                    x_shift: w[4] as u32,
                    y_shift: (w[4] >> 32) as u32,
                    with_square: w[3] & FUSED_WITH_SQUARE != 0,
                    y_square: w[3] & FUSED_Y_SQUARE != 0,
                    // Headers from before the widths (stored material) meant the full ring.
                    x_width: ring_width::<R>((w[3] >> FUSED_WIDTH_AT) as u32 & 0xFF),
                    y_width: ring_width::<R>((w[3] >> FUSED_Y_WIDTH_AT) as u32 & 0xFF),
                }
            }
            TAG_FUSED_SQUARE if unused_zero(&w[4..]) => Request::FusedSquare {
                n: size(w[1])?,
                shift: u32::try_from(w[2]).map_err(|_| Error::TooLarge)?,
                // Headers from before the width (stored material) meant the full ring.
                width: ring_width::<R>(u32::try_from(w[3]).map_err(|_| Error::Malformed("square width"))?),
            },
            TAG_BROADCAST if w[3] <= 1 && w[4] == 0 => {
                Request::Broadcast { rows: size(w[1])?, len: size(w[2])?, per_row: w[3] == 1 }
            }
            TAG_OWNED_MASK if unused_zero(&w[3..]) => Request::OwnedMask { k: size(w[1])?, n: size(w[2])? },
            TAG_OWNED_TRIPLE => Request::OwnedTriple { m: size(w[1])?, k: size(w[2])?, n: size(w[3])?, mask: w[4] },
            TAG_OWNED_TABLE if unused_zero(&w[3..]) => Request::OwnedTable { k: size(w[1])?, n: size(w[2])? },
            TAG_OWNED_LOOKUP => Request::OwnedLookup { m: size(w[1])?, k: size(w[2])?, n: size(w[3])?, mask: w[4] },
            _ => return Err(Error::Malformed("request header")),
        };
        req.validate::<R>(max_elements)?;
        Ok(req)
    }
}

/// One party's parts of a material, before they are given their typed shape.
pub(crate) struct Parts<R: Ring> {
    pub random: Parts2<Shares<R>, MAX_PARTS>,
    pub correlated: Parts2<Shares<R>, MAX_PARTS>,
}

/// `n` uniform values from `prg`: drawn over a used buffer of `recycled` when it has one that
/// large, else into a new one.
fn uniform<R: Ring>(prg: &mut Expander, n: usize, recycled: &mut Recycled) -> Shares<R> {
    if let Some(mut s) = recycled.take(n) {
        prg.fill(&mut s);
        return s;
    }
    // Drawn a block at a time and appended: zeroing the buffer first would cost a pass over
    // memory (the stream is the same however it is cut).
    let mut s = Shares::with_capacity(n);
    let mut block = [R::ZERO; 512];
    while s.len() < n {
        let k = (n - s.len()).min(block.len());
        prg.fill(&mut block[..k]);
        s.extend_from(&block[..k]);
    }
    zeroize::Zeroize::zeroize(&mut block);
    s
}

/// `role`'s parts of `request` in the request's layout, each made by `part(length, correlated)`;
/// a part owned by the other party is empty.
fn shaped<R: Ring>(role: Role, request: &Request, mut part: impl FnMut(usize, bool) -> Shares<R>) -> Parts<R> {
    let layout = request.layout::<R>();
    let mut out = Parts { random: Parts2::new(), correlated: Parts2::new() };
    for &(len, sharing) in &layout.random {
        let made = match sharing {
            Owned(owner) if owner != role => Shares::zeros(0),
            _ => part(len, false),
        };
        let _ = out.random.push(made);
    }
    for &(len, _) in &layout.correlated {
        let _ = out.correlated.push(part(len, true));
    }
    out
}

/// Draws `role`'s parts of `request` from its PRG, over `recycled`'s buffers where it has them.
/// P0's correlated parts are left empty, for the dealer's correction to fill
/// ([`receive_correction`]).
pub(crate) fn draw<R: Ring>(role: Role, request: &Request, prg: &mut Expander, recycled: &mut Recycled) -> Parts<R> {
    shaped(
        role,
        request,
        |len, correlated| {
            if correlated && role == Role::P0 { Shares::default() } else { uniform(prg, len, recycled) }
        },
    )
}

/// P0's parts of an [`Request::OwnedMask`] with B taken off `w` (its `k × n` values) as the PRG
/// draws it: F = W - B in `w`'s buffer, where [`draw`] would put B (the stream is the same).
/// A `w` of another length, or another request, gives parts that [`into_material`]'s caller
/// finds the wrong size.
pub(crate) fn draw_off<R: Ring>(request: &Request, prg: &mut Expander, mut w: Shares<R>) -> Parts<R> {
    match *request {
        Request::OwnedMask { k, n } if k * n == w.len() => prg.subtract_from(&mut w),
        _ => w = Shares::default(),
    }
    let mut w = Some(w);
    shaped(Role::P0, request, |_, _| w.take().unwrap_or_default())
}

/// `role`'s parts of `request`, all zero (a rehearsal's answer).
pub(crate) fn zeros<R: Ring>(role: Role, request: &Request) -> Parts<R> {
    shaped(role, request, |len, _| Shares::zeros(len))
}

/// Fills P0's correlated parts of `request` with the dealer's correction, each non-empty part
/// the buffer `recv` receives it in (given the part's length).
pub(crate) fn receive_correction<R: Ring>(
    parts: &mut Parts<R>,
    request: &Request,
    mut recv: impl FnMut(usize) -> Result<Shares<R>, Error>,
) -> Result<(), Error> {
    let layout = request.layout::<R>();
    if parts.correlated.len() != layout.correlated.len() {
        return Err(Error::MaterialMismatch);
    }
    for (part, (len, _)) in parts.correlated.iter_mut().zip(&layout.correlated) {
        *part = if *len > 0 { recv(*len)? } else { Shares::zeros(0) };
    }
    Ok(())
}

fn next<T>(it: &mut impl Iterator<Item = T>) -> T {
    it.next().expect("part present by layout")
}

/// Gives parts their typed shape. `mask_id` is the identity a new matmul mask receives.
pub(crate) fn into_material<R: Ring>(request: &Request, parts: Parts<R>, mask_id: MaskId) -> Material<R> {
    let Parts { random, correlated } = parts;
    let mut random = random.into_iter();
    let mut correlated = correlated.into_iter();
    match *request {
        Request::Beaver { .. } => Material::Beaver(super::BeaverTriples {
            a: next(&mut random),
            b: next(&mut random),
            c: next(&mut correlated),
        }),
        Request::Square { .. } => {
            Material::Square(super::SquarePairs { r: next(&mut random), r2: next(&mut correlated) })
        }
        Request::Trunc { frac_bits, .. } => Material::Trunc(super::TruncPairs {
            r: next(&mut random),
            r_hi: next(&mut correlated),
            r_msb: next(&mut correlated),
            frac_bits,
        }),
        Request::TruncSquare { frac_bits, .. } => Material::TruncSquare(super::TruncSquarePairs {
            trunc: super::TruncPairs {
                r: next(&mut random),
                r_hi: next(&mut correlated),
                r_msb: next(&mut correlated),
                frac_bits,
            },
            r_hi_sq: next(&mut correlated),
            msb_r_hi: next(&mut correlated),
        }),
        Request::MatmulMask { k, n } => {
            Material::MatmulMask(super::MatmulMask { id: mask_id, k, n, b: next(&mut random) })
        }
        Request::MatmulTriple { m, mask, .. } => Material::MatmulTriple(super::MatmulTriple {
            mask,
            m,
            a: next(&mut random),
            c: next(&mut correlated),
            absorbed: false,
        }),
        Request::And { .. } => {
            Material::And(super::AndTriples { a: next(&mut random), b: next(&mut random), c: next(&mut correlated) })
        }
        Request::OwnedMask { k, n } => {
            Material::OwnedMask(super::MatmulMask { id: mask_id, k, n, b: next(&mut random) })
        }
        Request::OwnedTable { k, n } => {
            let key = next(&mut random);
            Material::OwnedTable(super::MatmulMask { id: mask_id, k, n, b: next(&mut random) }, key)
        }
        Request::OwnedLookup { m, mask, .. } => Material::OwnedLookup(super::OwnedLookup {
            mask,
            m,
            a: next(&mut random),
            route: next(&mut random),
            r0: next(&mut random),
            c: next(&mut correlated),
            c_route: next(&mut correlated),
        }),
        Request::OwnedTriple { m, mask, .. } => Material::OwnedTriple(super::MatmulTriple {
            mask,
            m,
            a: next(&mut random),
            c: next(&mut correlated),
            absorbed: false,
        }),
        Request::Broadcast { .. } => Material::Broadcast(super::BeaverTriples {
            a: next(&mut random),
            b: next(&mut random),
            c: next(&mut correlated),
        }),
        Request::Below { n, bounds, times, square, width } => Material::Below(super::BelowMaterial {
            n,
            bounds,
            width,
            r: next(&mut random),
            u: [next(&mut random), next(&mut random), next(&mut random)],
            tables: next(&mut correlated),
            arith: [next(&mut correlated), next(&mut correlated), next(&mut correlated), next(&mut correlated)],
            times,
            value_trunc: if times.is_some() { next(&mut correlated) } else { Shares::zeros(0) },
            cross: if times.is_some() { next(&mut correlated) } else { Shares::zeros(0) },
            square: if square { next(&mut correlated) } else { Shares::zeros(0) },
        }),
        Request::Fused { x_shift, y_shift, x_width, y_width, .. } => fused_material(
            opening_wraps::<R>(x_shift, x_width),
            Some(opening_wraps::<R>(y_shift, y_width)),
            random,
            correlated,
        ),
        Request::FusedSquare { shift, width, .. } => {
            fused_material(opening_wraps::<R>(shift, width), None, random, correlated)
        }
    }
}

/// A fused product's material in the order of [`fused_layout`] (a square's y parts empty).
fn fused_material<R: Ring>(
    x_truncated: bool,
    y_truncated: Option<bool>,
    mut random: impl Iterator<Item = Shares<R>>,
    mut correlated: impl Iterator<Item = Shares<R>>,
) -> Material<R> {
    let x_mask = next(&mut random);
    let y_mask = if y_truncated.is_some() { next(&mut random) } else { Shares::zeros(0) };
    let mut trunc = |truncated: bool| {
        if truncated { [next(&mut correlated), next(&mut correlated)] } else { [Shares::zeros(0), Shares::zeros(0)] }
    };
    let (x_trunc, y_trunc) = (trunc(x_truncated), trunc(y_truncated.unwrap_or(false)));
    Material::Fused(super::FusedMaterial { x_mask, y_mask, x_trunc, y_trunc, cross: correlated.collect() })
}

/// The generator of each request's material: request i with header h is drawn from the seed
/// PRF(seed, i, h), so that material is bound to the request it answers. P1 derives it from the
/// header *it* expects; the dealer derives P1's part from the header P0 sent. A P0 that sends
/// other headers (a zero-k triple, a reshaped or reordered request) gets corrections computed
/// from PRF values P1 never uses: the inference breaks, and P1's masks stay hidden.
pub(crate) struct RequestKeys {
    seed: Seed,
    next: u64,
}

impl RequestKeys {
    pub fn new(seed: Seed) -> Self {
        Self { seed, next: 0 }
    }

    /// The generator of the next request's material (advances the request index).
    pub fn prg(&mut self, request: &Request) -> Expander {
        let mut words = [0u64; 2 + HEADER_LEN / 8];
        words[0] = streams::MATERIAL;
        words[1] = self.next;
        words[2..].copy_from_slice(&request.words());
        self.next += 1;
        self.seed.derive(&words).expander(streams::DEALER)
    }
}

/// Hands out matmul mask identities in request order, as the dealer numbers its masks.
#[derive(Debug, Default)]
pub(crate) struct MaskIds(MaskId);

impl MaskIds {
    /// The identity the next mask will get.
    pub fn next(&self) -> MaskId {
        self.0
    }

    /// The identity a new mask made for `request` gets (advancing only for masks).
    pub fn assign(&mut self, request: &Request) -> MaskId {
        let id = self.0;
        if request.is_mask() {
            self.0 += 1;
        }
        id
    }
}

/// A mask B the dealer keeps.
struct Kept<R: Ring> {
    rows: usize,
    cols: usize,
    /// P0's own (an owned product's or a table's), not a shared one.
    owned: bool,
    b: RightOperand<R>,
    /// A table's order of rows (B is kept in it).
    order: Option<TableBins>,
}

/// The dealer's view: both parties' request keys, and every live matmul mask B in the clear.
pub(crate) struct DealerState<R: Ring> {
    keys: [RequestKeys; 2],
    /// Every live mask B in the clear, by identity.
    masks: alloc::collections::BTreeMap<MaskId, Kept<R>>,
    /// The identity the next mask gets (identities keep counting across releases, as the
    /// parties' [`MaskIds`] do).
    next_mask: MaskIds,
    /// Ring elements of the masks held.
    mask_elements: usize,
    /// The most mask elements held at once (a P0 that asks for masks without end is refused).
    max_mask_elements: usize,
    /// The working buffers of requests dealt (P1's parts, which never leave the dealer), drawn
    /// over by the next ones instead of being wiped and allocated again.
    recycled: Recycled,
}

impl<R: Ring> DealerState<R> {
    pub fn new(seeds: [Seed; 2]) -> Self {
        let [s0, s1] = seeds;
        Self {
            keys: [RequestKeys::new(s0), RequestKeys::new(s1)],
            masks: alloc::collections::BTreeMap::new(),
            next_mask: MaskIds::default(),
            mask_elements: 0,
            max_mask_elements: usize::MAX,
            recycled: Recycled::new(super::dealer::DEFAULT_RECYCLED),
        }
    }

    /// Refuses a mask that would make the masks held exceed `max` ring elements.
    pub fn limit_masks(&mut self, max: usize) {
        self.max_mask_elements = max;
    }

    /// Ring elements of the masks held.
    pub fn mask_elements(&self) -> usize {
        self.mask_elements
    }

    /// Forgets every mask whose identity is in `masks` (a model, or one inference's products,
    /// is gone): a long session's memory stays flat. Triples asking for a released mask are
    /// refused.
    pub fn release_masks(&mut self, masks: core::ops::Range<MaskId>) {
        let mut released = self.masks.split_off(&masks.start);
        let mut kept = released.split_off(&masks.end);
        self.masks.append(&mut kept);
        self.mask_elements -= released.values().map(|m| m.rows * m.cols).sum::<usize>();
    }

    /// Masks held.
    #[cfg(test)]
    pub fn live_masks(&self) -> usize {
        self.masks.len()
    }

    /// P0's correction parts of `request`, which must have been validated (what the dealer
    /// sends): as [`DealerState::deal`] makes them, except that a mask is packed band by band as
    /// both PRGs draw it (the dealer holds no k × n buffer of B beside its packed form).
    pub fn corrections(&mut self, request: &Request) -> Result<Parts2<Shares<R>, MAX_PARTS>, Error> {
        if let Request::OwnedTable { k, n } = *request {
            self.check_mask_room(k, n)?;
            // Both request indices advance; P0's stream is the key, then B's rows, each put in
            // its place in the table's order as it is drawn (no second k × n buffer).
            let [keys0, keys1] = &mut self.keys;
            let (mut p0, _) = (keys0.prg(request), keys1.prg(request));
            let mut key = [R::ZERO];
            p0.fill(&mut key);
            let order = TableBins::new(key[0].to_u64(), k);
            let mut sorted = Shares::zeros(k * n);
            let mut row = Shares::zeros(n);
            for r in 0..k {
                p0.fill(&mut row);
                let at = order.position(r);
                sorted[at * n..(at + 1) * n].copy_from_slice(&row);
            }
            self.keep_mask(request, RightOperand::unpacked(k, n, sorted), Some(order));
            return Ok(Parts2::new());
        }
        let (Request::MatmulMask { k, n } | Request::OwnedMask { k, n }) = *request else {
            // P0's random parts are its own draws, never sent: their buffers serve the next draw.
            let Parts { random, correlated } = self.deal(request)?;
            for used in random {
                self.recycled.put(used);
            }
            return Ok(correlated);
        };
        self.check_mask_room(k, n)?;
        let owned = matches!(request, Request::OwnedMask { .. });
        let [keys0, keys1] = &mut self.keys;
        // Both request indices advance, as the parties' do (P1 draws nothing for P0's own mask).
        let (mut p0, mut p1) = (keys0.prg(request), keys1.prg(request));
        // B is P0's draw (its own mask), or the sum of both parties' draws (a shared one).
        let mut theirs = alloc::vec::Vec::new();
        let b = RightOperand::drawn(k, n, |rows: &mut [R]| {
            p0.fill(rows);
            if !owned {
                theirs.resize(rows.len(), R::ZERO);
                p1.fill(&mut theirs);
                ring::add_assign(rows, &theirs);
            }
        });
        crate::share::wipe(&mut theirs);
        self.keep_mask(request, b, None);
        Ok(Parts2::new())
    }

    /// Refuses a k × n mask beyond the limit on the masks held.
    fn check_mask_room(&self, k: usize, n: usize) -> Result<(), Error> {
        if self.mask_elements.saturating_add(k.saturating_mul(n)) > self.max_mask_elements {
            return Err(Error::TooLarge);
        }
        Ok(())
    }

    /// Keeps the mask B that `request` made, under the next identity.
    fn keep_mask(&mut self, request: &Request, b: RightOperand<R>, order: Option<TableBins>) {
        let id = self.next_mask.assign(request);
        self.mask_elements += b.rows() * b.cols();
        let owned = matches!(request, Request::OwnedMask { .. } | Request::OwnedTable { .. });
        self.masks.insert(id, Kept { rows: b.rows(), cols: b.cols(), owned, b, order });
    }

    /// Deals `request`, which must have been validated: advances both PRGs exactly as the
    /// parties do and returns P0's complete parts (P1's are what P1 draws itself).
    pub fn deal(&mut self, request: &Request) -> Result<Parts<R>, Error> {
        let triple = match *request {
            Request::MatmulTriple { k, n, mask, .. } => Some((k, n, mask, false)),
            Request::OwnedTriple { k, n, mask, .. } => Some((k, n, mask, true)),
            _ => None,
        };
        if let Request::MatmulMask { k, n } | Request::OwnedMask { k, n } | Request::OwnedTable { k, n } = *request {
            self.check_mask_room(k, n)?;
        }
        if let Some((k, n, mask, owned)) = triple {
            match self.masks.get(&mask) {
                Some(kept) if (kept.rows, kept.cols, kept.owned) == (k, n, owned) => {}
                _ => return Err(Error::MaterialMismatch),
            }
        }
        let layout = request.layout::<R>();
        let [keys0, keys1] = &mut self.keys;
        // Both draws go over the buffers of earlier requests; what goes to P0 leaves the pool.
        let mut p0 = draw::<R>(Role::P0, request, &mut keys0.prg(request), &mut self.recycled);
        // P1's parts are the dealer's working buffers (P1 draws its own; these are never sent):
        // each random part becomes the part's secret, each correlated part P0's share of it.
        let Parts { random: mut secret, correlated: mut corr } =
            draw::<R>(Role::P1, request, &mut keys1.prg(request), &mut self.recycled);
        for ((part, mine), (_, sharing)) in secret.iter_mut().zip(p0.random.iter()).zip(&layout.random) {
            sharing.secret_into(part, mine);
        }
        match *request {
            Request::Beaver { .. } | Request::Broadcast { .. } => {
                let broadcast = match *request {
                    Request::Broadcast { len, per_row, .. } => (len, Some(per_row)),
                    _ => (0, None),
                };
                correct_pairs(&mut corr[0], (&secret[0], &secret[1]), broadcast, |a, b| a.wrapping_mul(&b))?;
            }
            Request::Square { .. } => correct(&mut corr[0], secret[0].iter().map(|r| r.wrapping_mul(r)))?,
            Request::Trunc { frac_bits, .. } => {
                correct(&mut corr[0], secret[0].iter().map(|r| r.shr_logical(frac_bits)))?;
                correct(&mut corr[1], secret[0].iter().map(|r| r.msb()))?;
            }
            Request::TruncSquare { frac_bits, .. } => {
                let hi = |r: &R| r.shr_logical(frac_bits);
                let r = &secret[0];
                correct(&mut corr[0], r.iter().map(hi))?;
                correct(&mut corr[1], r.iter().map(|r| r.msb()))?;
                correct(&mut corr[2], r.iter().map(|r| hi(r).wrapping_mul(&hi(r))))?;
                correct(&mut corr[3], r.iter().map(|r| r.msb().wrapping_mul(&hi(r))))?;
            }
            Request::MatmulMask { k, n } | Request::OwnedMask { k, n } => {
                let b = secret.pop().expect("mask part");
                self.keep_mask(request, RightOperand::new(k, n, b, Width::Full), None);
            }
            Request::OwnedTable { k, n } => {
                // Kept as rows in the order of their buckets under the table's key: every bin of
                // a lookup is then a block of rows.
                let mut b = secret.pop().expect("mask part");
                let key =
                    secret.pop().and_then(|key| key.first().map(|v| v.to_u64())).ok_or(Error::MaterialMismatch)?;
                let order = TableBins::new(key, k);
                order.sort_in_place(&mut b, n);
                self.keep_mask(request, RightOperand::unpacked(k, n, b), Some(order));
            }
            Request::OwnedLookup { m, k, n, mask } => {
                let (table, order) = match self.masks.get(&mask) {
                    Some(Kept { rows, cols, owned: true, b, order: Some(order) }) if (*rows, *cols) == (k, n) => {
                        (b.row_major().ok_or(Error::MaterialMismatch)?, order)
                    }
                    _ => return Err(Error::MaterialMismatch),
                };
                let (a, route, r0) = (&secret[0], &secret[1], &secret[2]);
                let slots = lookup_bins(m) * LOOKUP_SLOTS;
                // P0's shares: C - (P1's share), negated and then accumulated onto, for the slots'
                // products a · B and the route's A' · R0.
                for part in corr.iter_mut() {
                    part.iter_mut().for_each(|v| *v = v.wrapping_neg());
                }
                crate::protocol::lookup::bin_products(table, n, (order, lookup_bins(m)), a, &mut corr[0])?;
                crate::gemm::gemm_acc(m, slots, n, route, r0, &mut corr[1]);
            }
            Request::MatmulTriple { m, n, mask, .. } | Request::OwnedTriple { m, n, mask, .. } => {
                let b = &self.masks.get(&mask).ok_or(Error::MaterialMismatch)?.b;
                // P0's share A·B - (P1's share): negated, then the product accumulated onto it.
                let c = &mut corr[0];
                if c.len() != m * n {
                    return Err(Error::MaterialMismatch);
                }
                for v in c.iter_mut() {
                    *v = v.wrapping_neg();
                }
                b.gemm_acc(m, &secret[0], c);
            }
            Request::And { .. } => {
                let (a, b) = (&secret[0], &secret[1]);
                for ((c, x), y) in corr[0].iter_mut().zip(a.iter()).zip(b.iter()) {
                    *c = *c ^ (*x & *y);
                }
            }
            Request::Below { n, bounds, times, square, width } => {
                // Only r mod 2^width meets a narrow opening (its top bit is the wrap's): reduced
                // once here, and only then.
                let reduced;
                let r = if width < R::BITS {
                    reduced = Shares::from_vec(secret[0].iter().map(|v| ring::low_bits(*v, width)).collect());
                    &reduced
                } else {
                    &secret[0]
                };
                below_tables_into(r, bounds, (width, below_skip(times, square)), &mut corr[0]);
                let m = n * bounds;
                // The bits U_k of every comparison (U_4 = u2·u3), as ring values.
                let (u1, u2, u3) = (&secret[1][..], &secret[2][..], &secret[3][..]);
                let u23 = Shares::from_vec(u2.iter().zip(u3).map(|(a, b)| *a & *b).collect());
                let us: [&[R]; 4] = [u1, u2, u3, &u23];
                for (k, words) in us.iter().enumerate() {
                    correct_bits(&mut corr[1 + k], words, 0, |bit, _| bit)?;
                }
                let msb = |v: &R| v.shr_logical(width - 1);
                if let Some(s) = times {
                    let hi = |v: &R| v.shr_logical(s);
                    // Without a wrap, msb(r) has no weight and r >> 0 is r: neither is sent.
                    let wrapped = if below_wraps::<R>(times, width) { n } else { 0 };
                    let factors = [
                        Shares::from_vec(r[..wrapped].iter().map(msb).collect()),
                        Shares::from_vec(r.iter().map(hi).collect()),
                    ];
                    correct(&mut corr[5], factors[1][..wrapped].iter().chain(factors[0].iter()).copied())?;
                    // The products are those of the last bounds, whole blocks of n comparisons
                    // (bound-major): U_k·msb(r) (with a wrap) and U_k·(r >> s) per comparison.
                    let products = below_products(n, bounds, square);
                    let first = m - products;
                    let mut parts = corr[6].chunks_mut(products.max(1));
                    for words in us {
                        for factor in factors.iter().filter(|f| !f.is_empty()) {
                            let part = parts.next().ok_or(Error::MaterialMismatch)?;
                            for (block, values) in part.chunks_mut(n.max(1)).enumerate() {
                                correct_bits(values, words, first + block * n, |bit, i| bit.wrapping_mul(&factor[i]))?;
                            }
                        }
                    }
                    if parts.next().is_some() {
                        return Err(Error::MaterialMismatch);
                    }
                }
                if square {
                    // The square is of y = x >> s: hi² and, with a wrap, hi·msb.
                    let s = times.unwrap_or(0);
                    let hi = |i: usize| r[i].shr_logical(s);
                    let wrapped = if below_wraps::<R>(times, width) { n } else { 0 };
                    let by_msb = (0..wrapped).map(|i| hi(i).wrapping_mul(&msb(&r[i])));
                    correct(&mut corr[7], (0..n).map(|i| hi(i).wrapping_mul(&hi(i))).chain(by_msb))?;
                }
            }
            Request::Fused { rows, len, broadcast, x_shift, y_shift, with_square, y_square, x_width, y_width } => {
                // The squared operand's cross products come last in the layout.
                let squared = match (with_square, y_square) {
                    (true, _) => Some((&secret[0], (x_shift, x_width))),
                    (false, true) => Some((&secret[1], (y_shift, y_width))),
                    (false, false) => None,
                };
                let squares = squared.map_or(0, |(_, (s, m))| fused_cross_parts(opening_wraps::<R>(s, m), None, false));
                let at = corr.len().checked_sub(squares).ok_or(Error::MaterialMismatch)?;
                let (product, square) = corr.split_at_mut(at);
                let x = (&secret[0][..], (x_shift, x_width));
                fused_correct((rows, len, broadcast), x, (&secret[1], (y_shift, y_width)), product)?;
                if let Some((mask, at)) = squared {
                    square_correct(mask, at, square)?;
                }
            }
            Request::FusedSquare { shift, width, .. } => {
                let r = &secret[0];
                let truncated = opening_wraps::<R>(shift, width);
                if truncated {
                    // Only r mod 2^width meets a narrow opening; its top bit is the wrap's.
                    correct(&mut corr[0], r.iter().map(|v| ring::low_bits(*v, width).shr_logical(shift)))?;
                    correct(&mut corr[1], r.iter().map(|v| v.shr_logical(width - 1) & R::ONE))?;
                }
                square_correct(r, (shift, width), &mut corr[if truncated { 2 } else { 0 }..])?;
            }
        }
        for (part, (len, _)) in corr.iter().zip(&layout.correlated) {
            if part.len() != *len {
                return Err(Error::MaterialMismatch);
            }
        }
        p0.correlated = corr;
        for used in secret.into_iter() {
            self.recycled.put(used);
        }
        Ok(p0)
    }
}

/// XORs each value's digit tables for [`Request::Below`] from its mask r (see
/// [`BelowMaterial`](super::BelowMaterial)) into `tables`: per w-bit digit of r mod 2^(width-2)
/// ([`below_digit_bits`]), 2^w bits of `[v < digit]` (`[v > digit]` in the upper half of the
/// digits when bit k-2 of r is set; XORed with that bit in the lower half's top digit), then 2^w
/// bits of `[v == digit]`.
fn below_tables_into<R: Ring>(r: &[R], bounds: usize, (width, skip): (u32, u32), tables: &mut [R]) {
    let words = below_table_words::<R>(bounds, width - skip);
    let digits = below_digits(bounds, width - skip);
    let (w, table_bits) = (below_digit_bits(bounds), below_table_bits(bounds));
    let values = 1usize << w;
    let low_mask = (1u64 << (width - 2)) - 1;
    let half = digits / 2;
    if table_bits <= R::BITS as usize {
        // Both tables of a digit in one word (4-bit digits): each entry made in a register
        // from the digit and r's bit k-2 by masks, without a branch on either.
        let all = (1u64 << values) - 1;
        for (value, table) in r.iter().zip(tables.chunks_exact_mut(words)) {
            let flip = 0u64.wrapping_sub((value.shr_logical(width - 2) & R::ONE).to_u64());
            let low = (value.to_u64() & low_mask) >> skip;
            for d in 0..digits {
                let digit = (low >> (w * d as u32)) & (values as u64 - 1);
                let below = (1u64 << digit) - 1;
                let lt = match d {
                    // [v > digit] where r's bit k-2 is set.
                    _ if d >= half => below ^ (flip & (below ^ all ^ ((below << 1) | 1))),
                    // Negated there.
                    _ if d + 1 == half => below ^ (flip & all),
                    _ => below,
                };
                let entry = R::from_u64(lt ^ (1u64 << (values as u64 + digit)));
                let base = d * table_bits;
                let word = &mut table[base / R::BITS as usize];
                *word = *word ^ entry.shl((base % R::BITS as usize) as u32);
            }
        }
        return;
    }
    for (value, table) in r.iter().zip(tables.chunks_exact_mut(words)) {
        let flip = value.shr_logical(width - 2) & R::ONE == R::ONE;
        let low = (value.to_u64() & low_mask) >> skip;
        for d in 0..digits {
            let digit = ((low >> (w * d as u32)) & (values as u64 - 1)) as usize;
            let base = d * table_bits;
            // [v < digit] is the run of entries below the digit, [v > digit] the run above it.
            let (from, to) = if flip && d >= half { (digit + 1, values) } else { (0, digit) };
            xor_bit_range(table, base + from, base + to);
            if flip && d + 1 == half {
                xor_bit_range(table, base, base + values);
            }
            crate::protocol::compare::set_bit(table, base + values + digit, R::ONE);
        }
    }
}

/// Flips bits `from..to` of packed words, a word at a time.
fn xor_bit_range<R: Ring>(words: &mut [R], from: usize, to: usize) {
    let bits = R::BITS as usize;
    let mut at = from;
    while at < to {
        let (word, offset) = (at / bits, at % bits);
        let run = (bits - offset).min(to - at);
        words[word] = words[word] ^ ring::low_ones::<R>(run).shl(offset as u32);
        at += run;
    }
}

/// P0's cross products of a fused square of x (mask `r`, read mod 2^`width`, shifted by
/// `shift`), over P1's shares in `corr`: a·a, or msb(r)·(r >> s) and (r >> s)² for a truncated
/// (or narrow) x, msb being bit `width` - 1.
fn square_correct<R: Ring>(r: &[R], (shift, width): (u32, u32), corr: &mut [Shares<R>]) -> Result<(), Error> {
    match corr {
        [squares, ..] if shift == 0 && width == R::BITS => correct(squares, r.iter().map(|a| a.wrapping_mul(a))),
        [by_msb, squares, ..] => {
            // r mod 2^width, shifted; its top bit.
            let hi = |v: &R| ring::low_bits(*v, width).shr_logical(shift);
            let msb = |v: &R| v.shr_logical(width - 1) & R::ONE;
            correct(by_msb, r.iter().map(|v| msb(v).wrapping_mul(&hi(v))))?;
            correct(squares, r.iter().map(|v| hi(v).wrapping_mul(&hi(v))))
        }
        _ => Err(Error::MaterialMismatch),
    }
}

/// P0's correlated parts of a [`Request::Fused`] (see [`FusedMaterial`](super::FusedMaterial)),
/// in the layout's order, from the masks of x and y, over P1's shares in `corr`: each truncated
/// operand's r >> s and msb(r), then the cross products.
fn fused_correct<R: Ring>(
    shape: (usize, usize, Option<bool>),
    (x, (xs, xm)): (&[R], (u32, u32)),
    (y, (ys, ym)): (&[R], (u32, u32)),
    corr: &mut [Shares<R>],
) -> Result<(), Error> {
    let (_, len, broadcast) = shape;
    let mut parts = corr.iter_mut();
    let mut next = || parts.next().ok_or(Error::MaterialMismatch);
    // Each truncated operand's r mod 2^m, shifted, and its top bit.
    let hi = |v: R, (s, m): (u32, u32)| ring::low_bits(v, m).shr_logical(s);
    let msb = |v: R, m: u32| v.shr_logical(m - 1) & R::ONE;
    let (x_at, y_at) = ((xs, xm), (ys, ym));
    let (x_wraps, y_wraps) = (opening_wraps::<R>(xs, xm), opening_wraps::<R>(ys, ym));
    for (r, at, wraps) in [(x, x_at, x_wraps), (y, y_at, y_wraps)] {
        if wraps {
            correct(next()?, r.iter().map(|v| hi(*v, at)))?;
            correct(next()?, r.iter().map(|v| msb(*v, at.1)))?;
        }
    }
    let (xy, along) = ((x, y), (len, broadcast));
    match (x_wraps, y_wraps) {
        (false, false) => correct_pairs(next()?, xy, along, |a, b| a.wrapping_mul(&b))?,
        (false, true) => {
            correct_pairs(next()?, xy, along, |a, b| a.wrapping_mul(&msb(b, ym)))?;
            correct_pairs(next()?, xy, along, |a, b| a.wrapping_mul(&hi(b, y_at)))?;
        }
        (true, false) => {
            correct_pairs(next()?, xy, along, |a, b| msb(a, xm).wrapping_mul(&b))?;
            correct_pairs(next()?, xy, along, |a, b| hi(a, x_at).wrapping_mul(&b))?;
        }
        (true, true) => {
            correct_pairs(next()?, xy, along, |a, b| msb(a, xm).wrapping_mul(&hi(b, y_at)))?;
            correct_pairs(next()?, xy, along, |a, b| hi(a, x_at).wrapping_mul(&msb(b, ym)))?;
            correct_pairs(next()?, xy, along, |a, b| hi(a, x_at).wrapping_mul(&hi(b, y_at)))?;
            if xm.min(ym) < R::BITS {
                correct_pairs(next()?, xy, along, |a, b| msb(a, xm).wrapping_mul(&msb(b, ym)))?;
            }
        }
    }
    Ok(())
}
