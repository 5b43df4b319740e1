//! Products of operands that are truncated first, in one round: the opening that truncates an
//! operand also masks it for the product (see [`FusedMaterial`]).
//!
//! [`FusedMaterial`]: crate::preprocessing::FusedMaterial

use alloc::vec::Vec;

use super::{Party, truncation_opening, truncation_public, truncation_wrap};
use crate::error::Error;
use crate::preprocessing::deal::{broadcast_index, broadcast_len};
use crate::preprocessing::{Preprocessing, PreprocessingExt, Request};
use crate::ring::Ring;
use crate::share::Shares;
use crate::transport::Transport;

/// One product of [`Party::mul_fused`]: (x >> `x_shift`) · (y >> `y_shift`) for x of
/// `rows × len` elements and y of the same shape, or (`broadcast`) one value per row
/// (`Some(true)`) or per column (`Some(false)`), repeated along the other axis. A shift of 0
/// leaves its operand as it is.
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
}

impl<'a, R> FusedOperands<'a, R> {
    /// An elementwise product of x and y (of the same length) shifted by their bits.
    pub fn elementwise(x: &'a [R], x_shift: u32, y: &'a [R], y_shift: u32) -> Self {
        Self { x, x_shift, y, y_shift, rows: 1, len: x.len(), broadcast: None }
    }

    /// The request for this product's material.
    pub fn request(&self) -> Request {
        Request::Fused {
            rows: self.rows,
            len: self.len,
            broadcast: self.broadcast,
            x_shift: self.x_shift,
            y_shift: self.y_shift,
        }
    }

    /// Elements of y.
    pub fn y_len(&self) -> usize {
        broadcast_len(self.rows, self.len, self.broadcast)
    }

    /// The element of y that multiplies element `i` of x.
    fn y_index(&self, i: usize) -> usize {
        broadcast_index(self.len, self.broadcast, i)
    }
}

/// An opened operand: its value is `public[i]` (added by P0) plus a linear form in the dealer's
/// values (`mask` alone, or w·msb - hi for a truncated operand).
struct Opened<'a, R: Ring> {
    public: Vec<R>,
    /// w per element (truncated operands; empty otherwise).
    wrap: Vec<R>,
    mask: &'a [R],
    trunc: &'a [Shares<R>; 2],
}

impl<R: Ring> Opened<'_, R> {
    /// This party's share of the linear form at element `i`.
    fn linear(&self, i: usize) -> R {
        if self.wrap.is_empty() {
            self.mask[i]
        } else {
            self.wrap[i].wrapping_mul(&self.trunc[1][i]).wrapping_sub(&self.trunc[0][i])
        }
    }
}

/// Reads an operand's opening `o` (see [`Opened`]).
fn read<'a, R: Ring>(o: &[R], shift: u32, mask: &'a [R], trunc: &'a [Shares<R>; 2]) -> Opened<'a, R> {
    if shift == 0 {
        return Opened { public: o.to_vec(), wrap: Vec::new(), mask, trunc };
    }
    Opened {
        public: o.iter().map(|&c| truncation_public(c, shift)).collect(),
        wrap: o.iter().map(|c| truncation_wrap(c.msb(), shift)).collect(),
        mask,
        trunc,
    }
}

impl<R: Ring, T: Transport, P: Preprocessing<R>> Party<R, T, P> {
    /// The ring products (x >> s_x) · (y >> s_y) of every item (see [`FusedOperands`]), all
    /// opened in one round: a truncated operand is opened as a dealer truncation opens it
    /// (c = x + 2^(k-2) + r), an untruncated one as a Beaver product does, and the product is
    /// linear in the dealer's shares after that. The shifts round as [`Party::truncate`] does
    /// (within one unit below); values must satisfy |x|, |y| < 2^(k-2). The products are not
    /// truncated.
    pub fn mul_fused(&mut self, items: &[FusedOperands<'_, R>]) -> Result<Vec<Shares<R>>, Error> {
        for it in items {
            let request = it.request();
            request.validate::<R>(usize::MAX)?;
            if it.x.len() != it.rows * it.len || it.y.len() != it.y_len() {
                return Err(Error::ShapeMismatch);
            }
        }
        let mut materials = Vec::with_capacity(items.len());
        for it in items {
            materials.push(self.material(|p| p.fused(it.request()))?);
        }
        let p0 = self.is_p0();
        // A truncated operand is opened as a dealer truncation opens it, another as a Beaver
        // product does.
        let mask_operand = |v: &[R], shift: u32, mask: &[R]| -> Shares<R> {
            if shift == 0 {
                Shares::from_vec(v.iter().zip(mask).map(|(x, a)| x.wrapping_sub(a)).collect())
            } else {
                truncation_opening(&[v], mask, p0)
            }
        };
        let mut openings = Vec::with_capacity(2 * items.len());
        for (it, mat) in items.iter().zip(&materials) {
            if mat.x_mask.len() != it.x.len() || mat.y_mask.len() != it.y.len() {
                return Err(Error::MaterialMismatch);
            }
            openings.push(mask_operand(it.x, it.x_shift, &mat.x_mask));
            openings.push(mask_operand(it.y, it.y_shift, &mat.y_mask));
        }
        let refs: Vec<&[R]> = openings.iter().map(|o| &o[..]).collect();
        let opened = self.open_many(&refs)?;
        let mut out = Vec::with_capacity(items.len());
        for ((it, mat), o) in items.iter().zip(&materials).zip(opened.chunks_exact(2)) {
            let x = read(&o[0], it.x_shift, &mat.x_mask, &mat.x_trunc);
            let y = read(&o[1], it.y_shift, &mat.y_mask, &mat.y_trunc);
            let cross = &mat.cross;
            let z = (0..it.x.len()).map(|i| {
                let j = it.y_index(i);
                let quadratic = match (x.wrap.is_empty(), y.wrap.is_empty()) {
                    (true, true) => cross[0][i],
                    (true, false) => y.wrap[j].wrapping_mul(&cross[0][i]).wrapping_sub(&cross[1][i]),
                    (false, true) => x.wrap[i].wrapping_mul(&cross[0][i]).wrapping_sub(&cross[1][i]),
                    (false, false) => cross[2][i]
                        .wrapping_sub(&x.wrap[i].wrapping_mul(&cross[0][i]))
                        .wrapping_sub(&y.wrap[j].wrapping_mul(&cross[1][i])),
                };
                let share = quadratic
                    .wrapping_add(&x.public[i].wrapping_mul(&y.linear(j)))
                    .wrapping_add(&y.public[j].wrapping_mul(&x.linear(i)));
                if p0 { share.wrapping_add(&x.public[i].wrapping_mul(&y.public[j])) } else { share }
            });
            out.push(Shares::from_vec(z.collect()));
        }
        Ok(out)
    }
}
