//! Products of operands that are truncated first, in one round: the opening that truncates an
//! operand also masks it for the product (see [`FusedMaterial`]).
//!
//! [`FusedMaterial`]: crate::preprocessing::FusedMaterial

use alloc::vec::Vec;

use super::{Party, Segment, truncation_lift, truncation_public, truncation_wrap};
use crate::error::Error;
use crate::preprocessing::deal::{broadcast_len, fused_cross_parts, opening_wraps};
use crate::preprocessing::{FusedMaterial, Preprocessing, PreprocessingExt, Request};
use crate::ring::Ring;
use crate::share::Shares;
use crate::transport::Transport;

/// One product of [`Party::mul_fused`]: (x >> `x_shift`) · (y >> `y_shift`) for x of
/// `rows × len` elements and y of the same shape, or (`broadcast`) one value per row
/// (`Some(true)`) or per column (`Some(false)`), repeated along the other axis. A shift of 0
/// leaves its operand as it is. With `with_square`, x's square (x >> `x_shift`)² comes out of
/// the same opening too (with `y_square`, y's).
#[derive(Clone, Copy, Debug)]
pub struct FusedOperands<'a, R> {
    /// The left operand, `rows × len`.
    pub x: &'a [R],
    /// Bits x is shifted right by first.
    pub x_shift: u32,
    /// The right operand.
    pub y: &'a [R],
    /// Bits y is shifted right by first.
    pub y_shift: u32,
    /// Rows of x.
    pub rows: usize,
    /// Columns of x.
    pub len: usize,
    /// How y repeats (see [`Request::Fused`]).
    pub broadcast: Option<bool>,
    /// Whether x's square is made too, from x's one opening (returned right after the product).
    pub with_square: bool,
    /// Whether y's square is made too, from y's one opening (returned right after the product;
    /// not together with `with_square`): a broadcast y squared once, not once a row.
    pub y_square: bool,
    /// x's opening width m: x is opened mod 2^m, m - `x_shift` bits on the wire (below the
    /// ring's width), for |x| < 2^(m-2) - 2^`x_shift` in the ring (a bit on 3, a value in
    /// [-1, 1] at b bits on b + 3); `None` is the ring's.
    pub width: Option<u32>,
    /// y's opening width, as x's `width` (not for a square, whose y is x).
    pub y_width: Option<u32>,
}

impl<'a, R> FusedOperands<'a, R> {
    /// An elementwise product of x and y (of the same length) shifted by their bits.
    pub fn elementwise(x: &'a [R], x_shift: u32, y: &'a [R], y_shift: u32) -> Self {
        Self {
            x,
            x_shift,
            y,
            y_shift,
            rows: 1,
            len: x.len(),
            broadcast: None,
            with_square: false,
            y_square: false,
            width: None,
            y_width: None,
        }
    }

    /// The square of x shifted by `shift` bits: one opening serves the truncation and both
    /// factors ([`Request::FusedSquare`]).
    pub fn square(x: &'a [R], shift: u32) -> Self {
        Self::elementwise(x, shift, x, shift)
    }

    /// Whether this item squares one operand: y is x itself (the same slice) at the same shift,
    /// elementwise. Such an item opens x once.
    pub fn is_square(&self) -> bool {
        core::ptr::eq(self.x, self.y) && self.x_shift == self.y_shift && self.broadcast.is_none()
    }

    /// Ring elements this item opens (before a narrow square's packing).
    pub fn opened_len(&self) -> usize {
        if self.is_square() { self.x.len() } else { self.x.len() + self.y_len() }
    }

    /// Products this item returns: 2 with a square, else 1.
    pub fn outputs(&self) -> usize {
        1 + usize::from(self.with_square || self.y_square)
    }

    /// Elements of y.
    pub fn y_len(&self) -> usize {
        broadcast_len(self.rows, self.len, self.broadcast)
    }
}

impl<R: Ring> FusedOperands<'_, R> {
    /// The width this item's x is opened at (the ring's unless a narrow square).
    pub fn x_width(&self) -> u32 {
        self.width.unwrap_or(R::BITS).min(R::BITS)
    }

    /// The width this item's y is opened at (the ring's unless narrow).
    pub fn y_width(&self) -> u32 {
        self.y_width.unwrap_or(R::BITS).min(R::BITS)
    }

    /// Whether x is opened as a dealer truncation opens it (shifted, or narrow).
    fn x_wraps(&self) -> bool {
        opening_wraps::<R>(self.x_shift, self.x_width())
    }

    /// Whether y is opened as a dealer truncation opens it.
    fn y_wraps(&self) -> bool {
        opening_wraps::<R>(self.y_shift, self.y_width())
    }

    /// The opening of x: its width, and a narrow x's shift, whose low bits are not sent
    /// ([`Segment::truncated`]).
    fn x_segment(&self) -> Segment {
        Segment::truncated::<R>(self.x.len(), self.x_width(), self.x_shift)
    }

    /// The opening of y, as x's.
    fn y_segment(&self) -> Segment {
        Segment::truncated::<R>(self.y_len(), self.y_width(), self.y_shift)
    }

    /// Ring words this item sends (each party as many): its openings, packed unless they take
    /// the ring's width.
    pub fn opened_words(&self) -> usize {
        let words = |s: Segment| crate::wire::packed_words::<R>(s.len, s.sent_bits::<R>());
        let x = words(self.x_segment());
        if self.is_square() { x } else { x + words(self.y_segment()) }
    }

    /// The request for this product's material.
    pub fn request(&self) -> Request {
        if self.is_square() {
            return Request::FusedSquare { n: self.x.len(), shift: self.x_shift, width: self.x_width() };
        }
        Request::Fused {
            rows: self.rows,
            len: self.len,
            broadcast: self.broadcast,
            x_shift: self.x_shift,
            y_shift: self.y_shift,
            with_square: self.with_square,
            y_square: self.y_square,
            x_width: self.x_width(),
            y_width: self.y_width(),
        }
    }
}

/// An opened operand: its value is public (added by P0) plus a linear form in the dealer's
/// values, `mask` alone for an operand opened as in a Beaver product, w·msb - hi for a
/// truncated one (`SHIFTED`), where the public part p and w are read off the opening c.
#[derive(Clone, Copy)]
struct Opened<'a, R: Ring, const SHIFTED: bool> {
    c: &'a [R],
    shift: u32,
    /// The opening's width (the ring's but for a narrow square).
    width: u32,
    mask: &'a [R],
    hi: &'a [R],
    msb: &'a [R],
}

impl<'a, R: Ring, const SHIFTED: bool> Opened<'a, R, SHIFTED> {
    fn new(c: &'a [R], (shift, width): (u32, u32), mask: &'a [R], trunc: &'a [Shares<R>; 2]) -> Self {
        Self { c, shift, width, mask, hi: &trunc[0], msb: &trunc[1] }
    }

    /// The public part at element `i`.
    #[inline(always)]
    fn public(&self, i: usize) -> R {
        if SHIFTED { truncation_public(self.c[i], self.shift, self.width) } else { self.c[i] }
    }

    /// w at element `i` (truncated operands).
    #[inline(always)]
    fn wrap(&self, i: usize) -> R {
        truncation_wrap(self.c[i].shr_logical(self.width - 1), self.shift, self.width)
    }

    /// This party's share of the linear form at element `i`.
    #[inline(always)]
    fn linear(&self, i: usize) -> R {
        if SHIFTED { self.wrap(i).wrapping_mul(&self.msb[i]).wrapping_sub(&self.hi[i]) } else { self.mask[i] }
    }
}

/// This party's shares of the products of one item, written over its first cross product:
/// for each element i of x and its element j of y, the dealer's quadratic terms plus
/// p_x·(y's linear form) + p_y·(x's linear form), plus p_x·p_y at P0. With both operands
/// truncated the quadratic terms are hi_x·hi_y - w_x·msb_x·hi_y - w_y·hi_x·msb_y, and
/// w_x·w_y·msb_x·msb_y for a narrow operand.
fn products<R: Ring, const XS: bool, const YS: bool>(
    it: &FusedOperands<'_, R>,
    x: Opened<'_, R, XS>,
    y: Opened<'_, R, YS>,
    cross: &mut [Shares<R>],
    p0: bool,
) -> Shares<R> {
    let (first, rest) = cross.split_first_mut().expect("at least one cross product");
    let mut z = core::mem::take(first);
    // With a narrow operand w_x·w_y need not vanish: its msb·msb term.
    let msb_msb = rest.get(2);
    for row in 0..it.rows {
        for col in 0..it.len {
            let i = row * it.len + col;
            let j = match it.broadcast {
                None => i,
                Some(true) => row,
                Some(false) => col,
            };
            let quadratic = match (XS, YS) {
                (false, false) => z[i],
                (false, true) => y.wrap(j).wrapping_mul(&z[i]).wrapping_sub(&rest[0][i]),
                (true, false) => x.wrap(i).wrapping_mul(&z[i]).wrapping_sub(&rest[0][i]),
                (true, true) => {
                    let (wx, wy) = (x.wrap(i), y.wrap(j));
                    let q =
                        rest[1][i].wrapping_sub(&wx.wrapping_mul(&z[i])).wrapping_sub(&wy.wrapping_mul(&rest[0][i]));
                    match msb_msb {
                        Some(msb_msb) => q.wrapping_add(&wx.wrapping_mul(&wy).wrapping_mul(&msb_msb[i])),
                        None => q,
                    }
                }
            };
            let (px, py) = (x.public(i), y.public(j));
            let share =
                quadratic.wrapping_add(&px.wrapping_mul(&y.linear(j))).wrapping_add(&py.wrapping_mul(&x.linear(i)));
            z[i] = if p0 { share.wrapping_add(&px.wrapping_mul(&py)) } else { share };
        }
    }
    z
}

/// This party's shares of a square ([`FusedOperands::is_square`]), written over its first cross
/// product: x = p + L for the public p and the linear form L, so x² = p² + 2p·L + L², where L²
/// is the dealer's a² for an untruncated x, and (r >> s)² - 2w·msb(r)·(r >> s) + w²·msb(r) for
/// a truncated (or narrow) one (msb² = msb; w² vanishes in the ring for 2s <= k at full width).
fn square_products<R: Ring, const SHIFTED: bool>(
    x: Opened<'_, R, SHIFTED>,
    cross: &mut [Shares<R>],
    p0: bool,
) -> Shares<R> {
    let twice = |v: R| v.wrapping_add(&v);
    let (first, rest) = cross.split_first_mut().expect("at least one cross product");
    let mut z = core::mem::take(first);
    for i in 0..z.len() {
        let quadratic = if SHIFTED {
            let w = x.wrap(i);
            let w_squared = w.wrapping_mul(&w).wrapping_mul(&x.msb[i]);
            rest[0][i].wrapping_sub(&twice(w.wrapping_mul(&z[i]))).wrapping_add(&w_squared)
        } else {
            z[i]
        };
        let p = x.public(i);
        let share = quadratic.wrapping_add(&twice(p.wrapping_mul(&x.linear(i))));
        z[i] = if p0 { share.wrapping_add(&p.wrapping_mul(&p)) } else { share };
    }
    z
}

/// Cross products of a fused item's product ([`fused_cross_parts`]), and of its square
/// ([`FusedOperands::with_square`], [`FusedOperands::y_square`]) with the squared operand's
/// length.
fn cross_products<R: Ring>(it: &FusedOperands<'_, R>) -> (usize, usize, usize) {
    let (squares, len) = match (it.with_square, it.y_square) {
        (true, _) => (fused_cross_parts(it.x_wraps(), None, false), it.x.len()),
        (false, true) => (fused_cross_parts(it.y_wraps(), None, false), it.y.len()),
        (false, false) => (0, 0),
    };
    let y_truncated = (!it.is_square()).then_some(it.y_wraps());
    (fused_cross_parts(it.x_wraps(), y_truncated, it.x_width().min(it.y_width()) < R::BITS), squares, len)
}

/// This party's share of an operand's opening, appended to `openings`: x - a for an
/// untruncated operand, x + 2^(m-2) + r for a truncated one (or a narrow one, opened mod 2^m).
fn push_opening<R: Ring>(openings: &mut Shares<R>, v: &[R], (shift, width): (u32, u32), mask: &[R], p0: bool) {
    // One pass: x - a, or x + r + this party's 2^(m-2).
    if !opening_wraps::<R>(shift, width) {
        openings.extend_with(v.iter().zip(mask).map(|(x, a)| x.wrapping_sub(a)));
    } else {
        let lift = truncation_lift::<R>(p0, width);
        openings.extend_with(v.iter().zip(mask).map(|(x, r)| x.wrapping_add(r).wrapping_add(&lift)));
    }
}

impl<R: Ring, T: Transport, P: Preprocessing<R>> Party<R, T, P> {
    /// The ring products (x >> s_x) · (y >> s_y) of every item (see [`FusedOperands`]), all
    /// opened in one round: a truncated operand is opened as a dealer truncation opens it
    /// (c = x + 2^(k-2) + r), an untruncated one as a Beaver product does, and the product is
    /// linear in the dealer's shares after that. The shifts round as [`Party::truncate`] does
    /// (within one unit; 1.5 for a narrow operand, whose shifted-out low bits stay home); values
    /// must satisfy |x| < 2^(k-2) - 2^s_x, and y likewise. The products are not truncated. An item
    /// [`FusedOperands::with_square`] ([`FusedOperands::y_square`]) returns its product, then
    /// x's (y's) square. An x with a [`FusedOperands::width`] m is opened mod 2^m on m - s_x
    /// bits (|x| < 2^(m-2) - 2^s_x), its wrap read off the dealer's msb as a dealer truncation
    /// at width m reads it; a narrow y ([`FusedOperands::y_width`]) likewise.
    pub fn mul_fused(&mut self, items: &[FusedOperands<'_, R>]) -> Result<Vec<Shares<R>>, Error> {
        for it in items {
            let request = it.request();
            request.validate::<R>(usize::MAX)?;
            if it.x.len() != it.rows * it.len
                || it.y.len() != it.y_len()
                || ((it.with_square || it.y_square) && it.is_square())
                || (it.y_width.is_some() && it.is_square())
            {
                return Err(Error::ShapeMismatch);
            }
        }
        let mut materials = Vec::with_capacity(items.len());
        for it in items {
            materials.push(self.material(|p| p.fused(it.request()))?);
        }
        let p0 = self.is_p0();
        // Every opening in one buffer, opened in place: x's then y's of each item (a square's
        // x alone).
        let total: usize = items.iter().map(FusedOperands::opened_len).sum();
        let mut openings = Shares::with_capacity(total);
        let mut segments = Vec::with_capacity(items.len());
        for (it, mat) in items.iter().zip(&materials) {
            let trunc_ok =
                |t: &[Shares<R>; 2], truncated: bool, n: usize| !truncated || (t[0].len() == n && t[1].len() == n);
            let square = it.is_square();
            let ny = if square { 0 } else { it.y.len() };
            let (product_parts, square_parts, square_len) = cross_products(it);
            if mat.x_mask.len() != it.x.len()
                || mat.y_mask.len() != ny
                || !trunc_ok(&mat.x_trunc, it.x_wraps(), it.x.len())
                || !trunc_ok(&mat.y_trunc, !square && it.y_wraps(), ny)
                || mat.cross.len() != product_parts + square_parts
                || mat.cross[..product_parts].iter().any(|c| c.len() != it.x.len())
                || mat.cross[product_parts..].iter().any(|c| c.len() != square_len)
            {
                return Err(Error::MaterialMismatch);
            }
            push_opening(&mut openings, it.x, (it.x_shift, it.x_width()), &mat.x_mask, p0);
            segments.push(it.x_segment());
            if !square {
                push_opening(&mut openings, it.y, (it.y_shift, it.y_width()), &mat.y_mask, p0);
                segments.push(it.y_segment());
            }
        }
        let opened = self.open_in_widths(openings, &segments)?;
        let mut out = Vec::with_capacity(items.iter().map(FusedOperands::outputs).sum());
        let mut at = 0;
        for (it, mat) in items.iter().zip(&mut materials) {
            let (cx, rest) = opened[at..].split_at(it.x.len());
            at += it.opened_len();
            let (x_mask, x_trunc, y_mask, y_trunc) = (&mat.x_mask, &mat.x_trunc, &mat.y_mask, &mat.y_trunc);
            let (cross, square_cross) = mat.cross.split_at_mut(cross_products(it).0);
            let (sx, sy) = (it.x_shift, it.y_shift);
            let (xm, ym) = (it.x_width(), it.y_width());
            let square = |c: &[R], (s, m): (u32, u32), mask: &[R], trunc: &[Shares<R>; 2], cross: &mut [Shares<R>]| {
                if opening_wraps::<R>(s, m) {
                    square_products::<R, true>(Opened::new(c, (s, m), mask, trunc), cross, p0)
                } else {
                    square_products::<R, false>(Opened::new(c, (s, m), mask, trunc), cross, p0)
                }
            };
            if it.is_square() {
                out.push(square(cx, (sx, it.x_width()), x_mask, x_trunc, cross));
                continue;
            }
            let cy = &rest[..it.y.len()];
            // One loop per pair of operand kinds, chosen once per item.
            macro_rules! specialised {
                ($xs:literal, $ys:literal) => {
                    products::<R, $xs, $ys>(
                        it,
                        Opened::new(cx, (sx, xm), x_mask, x_trunc),
                        Opened::new(cy, (sy, ym), y_mask, y_trunc),
                        cross,
                        p0,
                    )
                };
            }
            out.push(match (it.x_wraps(), it.y_wraps()) {
                (false, false) => specialised!(false, false),
                (false, true) => specialised!(false, true),
                (true, false) => specialised!(true, false),
                (true, true) => specialised!(true, true),
            });
            if it.with_square {
                out.push(square(cx, (sx, xm), x_mask, x_trunc, square_cross));
            } else if it.y_square {
                out.push(square(cy, (sy, ym), y_mask, y_trunc, square_cross));
            }
        }
        self.recycle(materials.into_iter().flat_map(FusedMaterial::into_shares));
        Ok(out)
    }
}
