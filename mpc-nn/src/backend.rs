//! The [`Backend`] trait: primitive operations on secret vectors, and the numerical functions
//! written once over them.
//!
//! A backend holds "secret" vectors: plain reals ([`Plain`](crate::Plain)), fixed-point ring
//! values in the clear ([`Fixed`](crate::Fixed), the simulated setting), or one party's additive
//! shares ([`Secure`](crate::Secure)). Code written against this trait runs unchanged in every
//! setting.
//!
//! ## Precision
//! Values are fixed-point with the backend's [`Backend::frac_bits`] (f) fractional bits, except
//! inside numerical functions, which move some steps to `f + EXTRA_BITS` bits to keep their
//! errors small ([`Backend::extend`], [`Backend::reduce`]). Every product names the precision of
//! its operands; its result has the same precision. `Plain` ignores precision.
//!
//! ## Bits
//! Comparisons return *bits*: 0 or 1 as plain integers in the ring (not fixed-point), 0.0 or 1.0
//! in `Plain`. Bits multiply values exactly ([`Backend::mul_bits`],
//! [`Backend::mul_bits_public`]).

use alloc::vec::Vec;
use core::fmt::Debug;
use core::ops::{Deref, DerefMut};

use mpc_core::Error;
use mpc_core::transport::Role;

use crate::numerics::{self, EXTRA_BITS};

/// The result of a backend operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Two operands of an elementwise product.
pub type Pair<'a, E> = (&'a [E], &'a [E]);

/// The operands of a secret matrix product: X (m × k), Y (k × n), m, k, n.
pub type Matmul<'a, E> = (&'a [E], &'a [E], usize, usize, usize);

/// A broadcast product: X (`rows × len`), y (`rows` values if the flag is set, else `len`),
/// rows, len, per-row flag.
pub type Broadcast<'a, E> = (&'a [E], &'a [E], usize, usize, bool);

/// One product of [`Backend::mul_shifted`]: x (`rows × len`) and y (the same shape, or one
/// value per row or column), each shifted right by its bits first.
pub use mpc_core::protocol::FusedOperands as Fused;

/// Where the last bound's bits start among `comparisons` bound-major bits of `n` values and
/// `bounds` bounds ([`Backend::below_times_square`]'s products are theirs).
pub(crate) fn last_bound(comparisons: usize, n: usize, bounds: usize) -> Result<usize> {
    comparisons.checked_sub(n).filter(|_| bounds > 0).ok_or(Error::ShapeMismatch)
}

/// What a comparison may assume of its values' distance to its bounds ([`Backend::below`],
/// [`Backend::max_rows`]). Under MPC a smaller spread opens fewer bits of each value and
/// compares fewer digits (at 16 fractional bits, [`Spread::ACTIVATIONS`] halves both and saves a
/// round); out of the stated spread the comparisons' bits are wrong (nothing leaks: the opening
/// stays uniformly masked), so the spread is a promise about the data, like the ring's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// Anything the ring holds at the values' precision (|x - t| < 2^(k-2) in the ring).
    Full,
    /// |x - t| < 2^bits in real units for every value x and bound t (and |x| < 2^bits where
    /// the comparison also multiplies or squares x).
    Within(u32),
}

impl Spread {
    /// Activations of a trained Transformer (GeLU inputs, attention scores and their
    /// differences): within 2^16 = 65536 of the bounds, far beyond any checkpoint's values,
    /// and at the default 16 fractional bits a 34-bit comparison (8 four-bit digits).
    pub const ACTIVATIONS: Spread = Spread::Within(16);

    /// The comparisons' width m in a ring of `ring_bits` for values at `frac` bits: |x - t| <
    /// 2^(m-2) in the ring, so frac + bits + 2, at most the ring's.
    pub fn width(self, frac: u32, ring_bits: u32) -> u32 {
        match self {
            Spread::Full => ring_bits,
            Spread::Within(bits) => frac.saturating_add(bits).saturating_add(2).min(ring_bits),
        }
    }
}

/// `c` at `frac` fractional bits in the 64-bit ring (two's complement), rounded to nearest and
/// saturating at the range's edges (NaN is 0): [`mpc_core::FixedPoint::encode`] for any precision
/// up to 62 bits, where the session formats stop at 30 (numerical functions keep constants at
/// their products' wide precisions).
pub(crate) fn encode_at(c: f64, frac: u32) -> u64 {
    let scaled = libm::round(libm::ldexp(c, frac as i32));
    // `as` saturates (and maps NaN to 0); the lower edge mirrors the upper one.
    (scaled as i64).max(-i64::MAX) as u64
}

/// How [`Backend::reduce`] removes `bits` under MPC: with the session's method when it drops at
/// most the session's `f` bits (a value of session products), with dealer pairs, which never
/// fail, when it drops more: such values sit high in the ring, where a local truncation would
/// wrap often.
pub(crate) fn reduce_method(
    bits: u32,
    f: u32,
    session: mpc_core::protocol::Truncation,
) -> mpc_core::protocol::Truncation {
    // The rule of a product's truncation, for a value at `bits` bits times 1 at 0 bits.
    Product { a: bits, b: 0, out: 0, pow2: 0 }.truncation(f, session)
}

/// `y` repeated along the axis of a `rows × len` matrix.
pub fn broadcast_values<E: Copy>(y: &[E], rows: usize, len: usize, per_row: bool) -> Vec<E> {
    if per_row {
        y.iter().flat_map(|&v| core::iter::repeat_n(v, len)).collect()
    } else {
        (0..rows).flat_map(|_| y.iter().copied()).collect()
    }
}

/// Rows `indices` of a row-major `rows × width` table held in the clear (the plaintext and
/// simulated lookups).
pub(crate) fn gather_rows<E: Copy>(
    table: (usize, usize, &[E]),
    indices: Option<&[usize]>,
    count: usize,
    vocab: usize,
) -> Result<Vec<E>> {
    let (rows, width, data) = table;
    let idx = indices.ok_or(Error::ShapeMismatch)?;
    if rows != vocab || idx.len() != count || idx.iter().any(|&i| i >= vocab) {
        return Err(Error::ShapeMismatch);
    }
    Ok(idx.iter().flat_map(|&i| data[i * width..(i + 1) * width].iter().copied()).collect())
}

/// How the model owner's weights take part in the computation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WeightMode {
    /// Secret-shared between P0 and P1 (CrypTen's and MPCFormer's setting): every linear layer is
    /// a private × private product; W - B is opened once per loaded model.
    #[default]
    Shared,
    /// Known to P0 in the clear (the real deployment): P1 sends its masked share one way and
    /// each party runs one local GEMM.
    Owner,
}

impl WeightMode {
    /// The mode's name on the command line: `shared` or `owner`.
    pub const fn name(self) -> &'static str {
        match self {
            WeightMode::Shared => "shared",
            WeightMode::Owner => "owner",
        }
    }

    /// Whether a linear layer's truncation under `truncation` takes a round of its own
    /// ([`Backend::linear_truncation_takes_a_round`]): with secret-shared weights under dealer
    /// truncation; owner weights carry it in their product's messages, local truncation sends
    /// nothing.
    pub fn linear_truncation_takes_a_round(self, truncation: mpc_core::protocol::Truncation) -> bool {
        self == WeightMode::Shared && truncation == mpc_core::protocol::Truncation::Dealer
    }
}

/// The fixed-point precisions of a product: operands at `a` and `b` fractional bits, the result
/// at `out`, its real value multiplied by 2^`pow2` (`pow2 <= 0`, folded into the truncation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Product {
    /// Fractional bits of the left operands.
    pub a: u32,
    /// Fractional bits of the right operands.
    pub b: u32,
    /// Fractional bits of the result.
    pub out: u32,
    /// Power of two multiplying the result.
    pub pow2: i32,
}

impl Product {
    /// Operands and result at `frac` bits.
    pub const fn at(frac: u32) -> Self {
        Self { a: frac, b: frac, out: frac, pow2: 0 }
    }

    /// How [`Backend::mul_public`] multiplies x (at `f` bits) by the public constants `c`: with
    /// `c` at `f` bits where every constant is exact there (halves, quarters: the session's
    /// truncation), else at `f` + [`EXTRA_BITS`] bits, so that a
    /// constant like 1/768 keeps a relative precision of 1e-5 (at 16 bits it is 85/2^16, 0.4 %
    /// off: a LayerNorm's mean and variance would be biased by as much).
    pub fn public(f: u32, c: &[f64]) -> Self {
        let exact = c.iter().all(|&c| {
            let scaled = libm::ldexp(c, f as i32);
            scaled == libm::round(scaled)
        });
        let b = if exact { f } else { f + EXTRA_BITS };
        Self { a: f, b, out: f, pow2: 0 }
    }

    /// The same, with the result multiplied by 2^`pow2`.
    pub const fn scaled(self, pow2: i32) -> Self {
        Self { pow2, ..self }
    }

    /// How a protocol truncates this product: with the session's method at the session
    /// precision `f`; with dealer pairs (which never fail) at extended precision, where ring
    /// values are large.
    pub fn truncation(&self, f: u32, session: mpc_core::protocol::Truncation) -> mpc_core::protocol::Truncation {
        if self.a <= f && self.b <= f && self.out <= f { session } else { mpc_core::protocol::Truncation::Dealer }
    }

    /// Bits the ring product is shifted right by: a + b - out - pow2.
    pub fn shift(&self) -> Result<u32> {
        let shift = self.a as i64 + self.b as i64 - self.out as i64 - self.pow2 as i64;
        u32::try_from(shift).map_err(|_| Error::ShapeMismatch)
    }
}

/// Primitive operations on secret vectors, and numerical functions built from them.
pub trait Backend {
    /// One element: a real (`Plain`) or a ring element (`Fixed`, `Secure`).
    type Elem: Copy + Default + Debug + Send + Sync + 'static;
    /// A secret vector (zeroized on drop where it holds shares).
    type Vector: Clone + Debug + Deref<Target = [Self::Elem]> + DerefMut;
    /// A weight matrix prepared for [`Backend::linear`].
    type Weight: Debug;

    /// Fractional bits of fixed-point values (0 for `Plain`).
    fn frac_bits(&self) -> u32;
    /// Wraps elements into a vector.
    fn wrap(&self, elems: Vec<Self::Elem>) -> Self::Vector;

    // ------------------------------------------------------------------ input and output

    /// Makes `n` values owned by `owner` secret (`Some` at the owner, `None` elsewhere).
    fn input(&mut self, owner: Role, values: Option<&[f64]>, n: usize) -> Result<Self::Vector>;
    /// Reveals values to both parties.
    fn reveal(&mut self, x: &[Self::Elem]) -> Result<Vec<f64>>;
    /// A public vector as a secret one, at `frac` fractional bits.
    fn public(&self, values: &[f64], frac: u32) -> Self::Vector;

    // ------------------------------------------------------------------ local, exact

    /// `a + b`.
    fn add(&self, a: &[Self::Elem], b: &[Self::Elem]) -> Self::Vector;
    /// `a - b`.
    fn sub(&self, a: &[Self::Elem], b: &[Self::Elem]) -> Self::Vector;
    /// `k · a` for a public integer `k`.
    fn mul_int(&self, a: &[Self::Elem], k: i64) -> Self::Vector;
    /// `a + c` for a public constant `c`, with `a` at `frac` bits.
    fn add_scalar(&self, a: &[Self::Elem], c: f64, frac: u32) -> Self::Vector;
    /// `bits[i] · c[i]`: public constants at `frac` bits selected by secret bits.
    fn mul_bits_public(&self, bits: &[Self::Elem], c: &[f64], frac: u32) -> Self::Vector;
    /// `a · c` for one public constant `c` at `frac` bits (exact: the product carries `frac`
    /// more bits than `a`); [`Backend::mul_bits_public`] with `c` repeated, encoded once.
    fn mul_scalar(&self, a: &[Self::Elem], c: f64, frac: u32) -> Self::Vector {
        self.mul_bits_public(a, &alloc::vec![c; a.len()], frac)
    }
    /// `c + Σ c_k · a_k` for public constants: each `(a_k, c_k, frac_k)` a
    /// [`Backend::mul_scalar`] (exact), `c` at `frac` bits, the scale every term lands at. The
    /// default composes those operations; a backend may do it in one pass (no temporaries).
    fn affine(&self, terms: &[(&[Self::Elem], f64, u32)], c: f64, frac: u32) -> Self::Vector {
        let mut acc: Option<Self::Vector> = None;
        for &(a, ck, frac_k) in terms {
            let term = self.mul_scalar(a, ck, frac_k);
            acc = Some(match acc {
                Some(acc) => self.add(&acc, &term),
                None => term,
            });
        }
        match acc {
            Some(acc) => self.add_scalar(&acc, c, frac),
            None => self.public(&[], frac),
        }
    }
    /// Multiplies by 2^`pow2` and adds `bits` of precision (`bits + pow2 >= 0`): exact.
    fn extend(&self, a: &[Self::Elem], bits: u32, pow2: i32) -> Self::Vector;
    /// Sums each row of a `rows × len` matrix.
    fn sum_rows(&self, a: &[Self::Elem], rows: usize, len: usize) -> Self::Vector;

    // ------------------------------------------------------------------ interactive

    /// Removes `bits` of precision, rounding to nearest.
    fn reduce(&mut self, a: &[Self::Elem], bits: u32) -> Result<Self::Vector>;
    /// Elementwise fixed-point products at the precisions of `p`, all pairs in one round.
    fn mul_many(&mut self, pairs: &[Pair<'_, Self::Elem>], p: Product) -> Result<Vec<Self::Vector>>;
    /// Elementwise fixed-point squares at the precisions of `p` (`p.a == p.b`).
    fn square(&mut self, x: &[Self::Elem], p: Product) -> Result<Self::Vector>;
    /// Elementwise product with public constants at the session precision.
    fn mul_public(&mut self, x: &[Self::Elem], c: &[f64]) -> Result<Self::Vector>;
    /// Matrix products of secret operands at the session precision, all in one round.
    fn matmul_many(&mut self, products: &[Matmul<'_, Self::Elem>]) -> Result<Vec<Self::Vector>>;
    /// Prepares the model owner's `k × n` weight matrix (row-major, `Some` where the weights are
    /// known: at P0, and in single-party backends) for [`Backend::linear`]. Given by value: a
    /// backend may encode the values in their own buffer (the weights are the largest thing the
    /// owner loads).
    fn load_weight(&mut self, w: Option<Vec<f64>>, k: usize, n: usize) -> Result<Self::Weight>;
    /// `x · W` for secret x (`m × k`) at the session precision.
    fn linear(&mut self, x: &[Self::Elem], m: usize, w: &Self::Weight) -> Result<Self::Vector>;
    /// `x · W` left at the product's double precision (2f fractional bits, not truncated), for
    /// a caller that fuses the truncation into what follows ([`Backend::square_truncated`]).
    fn linear_wide(&mut self, x: &[Self::Elem], m: usize, w: &Self::Weight) -> Result<Self::Vector>;
    /// Whether [`Backend::linear`]'s truncation takes a round of its own: then a caller that can
    /// fuse it into its next opening takes the product wide ([`Backend::linear_wide`]). True
    /// for secret-shared weights under dealer truncation; owner weights carry it in their
    /// product's messages, local truncation sends nothing, plaintext has none.
    fn linear_truncation_takes_a_round(&self) -> bool {
        false
    }
    /// Matrix products of secret operands left at double precision (see [`Backend::linear_wide`]).
    fn matmul_many_wide(&mut self, products: &[Matmul<'_, Self::Elem>]) -> Result<Vec<Self::Vector>>;
    /// Prepares the model owner's `vocab × width` embedding table for [`Backend::lookup`].
    fn load_table(&mut self, w: Option<Vec<f64>>, vocab: usize, width: usize) -> Result<Self::Weight> {
        self.load_weight(w, vocab, width)
    }
    /// Rows `indices` of a table, where the indices are the data owner's (P1's) secret: `Some`
    /// at P1 and in single-party backends. Plaintext backends gather; under MPC the table is
    /// multiplied by P1's one-hot rows, sent masked one way (`count × vocab` ring elements).
    fn lookup(
        &mut self,
        table: &Self::Weight,
        indices: Option<&[usize]>,
        count: usize,
        vocab: usize,
    ) -> Result<Self::Vector>;
    /// Bits `[x < 0]`.
    fn ltz(&mut self, x: &[Self::Elem]) -> Result<Self::Vector>;
    /// Exact products `bit · value`, all pairs in one round.
    fn mul_bits(&mut self, pairs: &[Pair<'_, Self::Elem>]) -> Result<Vec<Self::Vector>>;
    /// The maximum of each row of a `rows × len` matrix, its entries within `spread` of each
    /// other ([`Spread`]).
    fn max_rows(&mut self, x: &[Self::Elem], rows: usize, len: usize, spread: Spread) -> Result<Self::Vector>;
    /// Bits `[x_i < t_j]` for the values x at `frac` bits and every public bound t_j (reals,
    /// ascending or not), bound-major (entry `j · x.len() + i`). Under MPC one mask per value
    /// serves every bound, in five rounds (four for 16 bounds or more, one fewer for a
    /// [`Spread`] that halves the digits); the default compares each difference.
    fn below(&mut self, x: &[Self::Elem], frac: u32, bounds: &[f64], spread: Spread) -> Result<Self::Vector> {
        let _ = spread;
        let mut differences = Vec::with_capacity(x.len() * bounds.len());
        for &t in bounds {
            differences.extend_from_slice(&self.add_scalar(x, -t, frac));
        }
        self.ltz(&differences)
    }
    /// [`Backend::below`] together with y = x >> `shift` (rounded) and every comparison's bit
    /// times its value's y (not truncated): `[bits, products, y]`, bits and products
    /// bound-major. Under MPC in the comparisons' own rounds (their opening also
    /// truncates x); the default truncates, compares and multiplies.
    fn below_times(
        &mut self,
        x: &[Self::Elem],
        frac: u32,
        bounds: &[f64],
        shift: u32,
        spread: Spread,
    ) -> Result<[Self::Vector; 3]> {
        let bits = self.below(x, frac, bounds, spread)?;
        let y = self.reduce(x, shift)?;
        let pairs: Vec<Pair<'_, Self::Elem>> = bits.chunks(x.len().max(1)).map(|b| (b, &y[..])).collect();
        let products: Vec<Self::Elem> = self.mul_bits(&pairs)?.iter().flat_map(|p| p.iter().copied()).collect();
        let products = self.wrap(products);
        Ok([bits, products, y])
    }
    /// [`Backend::below`] together with y = x >> `shift`, the last bound's bits times their y (a
    /// saturating function's top asymptote: `x.len()` products, not truncated) and each y's
    /// square (not truncated): `[bits, products, squares, y]`. Under MPC in the comparisons' own
    /// rounds and traffic (their opening also truncates x and masks y for its square), the
    /// comparisons read at y's resolution (a bit may err for x within 2^-(frac - shift) of a
    /// bound); the default compares, truncates, then multiplies and squares.
    fn below_times_square(
        &mut self,
        x: &[Self::Elem],
        frac: u32,
        bounds: &[f64],
        shift: u32,
        spread: Spread,
    ) -> Result<[Self::Vector; 4]> {
        let bits = self.below(x, frac, bounds, spread)?;
        let y = if shift == 0 { self.wrap(x.to_vec()) } else { self.reduce(x, shift)? };
        let last = last_bound(bits.len(), x.len(), bounds.len())?;
        let products = self.mul_bits(&[(&bits[last..], &y)])?.pop().ok_or(Error::ShapeMismatch)?;
        let at = frac.checked_sub(shift).ok_or(Error::ShapeMismatch)?;
        let squares = self.square(&y, Product { a: at, b: at, out: 2 * at, pow2: 0 })?;
        Ok([bits, products, squares, y])
    }
    /// The products (x >> s_x) · (y >> s_y) of every item ([`Fused`]), left at the precision
    /// of the shifted operands (no truncation after); an item [`Fused::with_square`] also
    /// gives (x >> s_x)², one [`Fused::y_square`] (y >> s_y)², right after its product. Under MPC in one round: the opening that
    /// truncates an operand also masks it for the product (and the square). The shifts round to
    /// nearest (within one unit under MPC); the default truncates, then multiplies.
    fn mul_shifted(&mut self, items: &[Fused<'_, Self::Elem>]) -> Result<Vec<Self::Vector>> {
        let exact = Product { a: 0, b: 0, out: 0, pow2: 0 };
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let x = self.reduce(it.x, it.x_shift)?;
            let y = self.reduce(it.y, it.y_shift)?;
            let product = match it.broadcast {
                None => self.mul_many(&[(&x, &y)], exact)?,
                Some(per_row) => self.mul_broadcast_many(&[(&x, &y, it.rows, it.len, per_row)], exact)?,
            };
            out.extend(product);
            if it.with_square {
                out.push(self.square(&x, exact)?);
            } else if it.y_square {
                out.push(self.square(&y, exact)?);
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ built on the primitives

    /// Elementwise product at the session precision.
    fn mul(&mut self, x: &[Self::Elem], y: &[Self::Elem]) -> Result<Self::Vector> {
        let f = self.frac_bits();
        Ok(self.mul_many(&[(x, y)], Product::at(f))?.pop().expect("one product"))
    }
    /// Products of matrices with vectors repeated along an axis (`x ⊙ broadcast(y)`), at the
    /// precisions of `p`, all in one round. Under MPC each opens n + (rows or len) elements
    /// instead of 2n.
    fn mul_broadcast_many(&mut self, items: &[Broadcast<'_, Self::Elem>], p: Product) -> Result<Vec<Self::Vector>> {
        let expanded: Vec<Self::Vector> = items
            .iter()
            .map(|&(_, y, rows, len, per_row)| self.wrap(broadcast_values(y, rows, len, per_row)))
            .collect();
        let pairs: Vec<Pair<'_, Self::Elem>> = items.iter().zip(&expanded).map(|(it, y)| (it.0, &y[..])).collect();
        self.mul_many(&pairs, p)
    }
    /// Matrix product of secret `a` (m×k) and `b` (k×n) at the session precision.
    fn matmul(&mut self, a: &[Self::Elem], b: &[Self::Elem], m: usize, k: usize, n: usize) -> Result<Self::Vector> {
        Ok(self.matmul_many(&[(a, b, m, k, n)])?.pop().expect("one product"))
    }
    /// `(y + c)²` for y = `z` truncated to the session precision, where `z` is a product at double
    /// precision ([`Backend::linear_wide`]); the square is truncated as `p` says (its operands at
    /// the session precision). Under MPC with dealer truncation the square needs no message of
    /// its own: it is read off the truncation's opening.
    fn square_truncated(&mut self, z: &[Self::Elem], c: f64, p: Product) -> Result<Self::Vector> {
        let f = self.frac_bits();
        let y = self.reduce(z, f)?;
        let shifted = self.add_scalar(&y, c, f);
        self.square(&shifted, p)
    }
    /// ReLU: `x - [x < 0]·x`, the product read off the comparison ([`Backend::below_times`]).
    fn relu(&mut self, x: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::relu(self, x, Spread::Full)
    }
    /// e^x, accurate on [-128, 0] (absolute error below 8e-5 on [-64, 0]); clipped below -128.
    fn exp(&mut self, x: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::exp(self, x)
    }
    /// 1/x for x in [2^-12, 2^9] (relative error below 1e-3 on [1/64, 64]): scale by a public
    /// bound first.
    fn reciprocal(&mut self, x: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::reciprocal(self, x)
    }
    /// 1/√x for x in [2^-12, 2^11] (relative error below 1e-3).
    fn inv_sqrt(&mut self, x: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::inv_sqrt(self, x)
    }
    /// 1/√x for x at `frac` bits in [2^-12, 2^11] (within 9e-5 relative of 1/√ of x as given),
    /// and the fractional bits it is given at (wide, for a caller that truncates it as part of
    /// its next product; 0 in `Plain`). Four rounds under MPC.
    fn inv_sqrt_wide(&mut self, x: &[Self::Elem], frac: u32) -> Result<(Self::Vector, u32)> {
        Ok((numerics::inv_sqrt_wide(self, x, frac)?, numerics::INV_SQRT_BITS))
    }
    /// erf(x) for |x| < 2^16 ([`Spread::ACTIVATIONS`]; absolute error below 1.5e-4 on [-10, 10]).
    fn erf(&mut self, x: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::erf(self, x)
    }
    /// GeLU (erf form) for |x| < 2^16 ([`Spread::ACTIVATIONS`]; absolute error below 2e-4: 3.5e-5
    /// from the polynomial, 1.3e-4 from relu's stand-in beyond ±4).
    fn gelu(&mut self, x: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::gelu(self, x)
    }
    /// GeLU of a product at double precision ([`Backend::linear_wide`]), at f bits: under MPC
    /// the comparisons' opening also truncates it (no truncation of its own). The comparisons
    /// are read at f bits (a bit may err within 2^-f of ±4, where GeLU and relu differ by 1.3e-4).
    fn gelu_of_product(&mut self, z: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::gelu_of_product(self, z)
    }
    /// tanh on all reals (absolute error below 2.2e-4 on [-10, 10]).
    fn tanh(&mut self, x: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::tanh(self, x)
    }
    /// The logistic sigmoid on all reals (absolute error below 1.1e-4 on [-20, 20]).
    fn sigmoid(&mut self, x: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::sigmoid(self, x)
    }
    /// MPCFormer's Quad, 0.125x² + 0.25x + 0.5 (GeLU's replacement; absolute error below 1e-4 on
    /// [-10, 10]).
    fn quad(&mut self, x: &[Self::Elem]) -> Result<Self::Vector> {
        numerics::quad(self, x)
    }
    /// Softmax of each row (`rows × len`), with a public 0/1 mask over the row's entries, a row's
    /// scores within 2^16 of each other ([`Spread::ACTIVATIONS`]; absolute error below 9e-5 on
    /// rows of up to 512 entries in [-50, 50]).
    fn softmax(&mut self, x: &[Self::Elem], rows: usize, len: usize, mask: Option<&[f64]>) -> Result<Self::Vector> {
        numerics::softmax(self, x, rows, len, mask)
    }
    /// MPCFormer's 2Quad of each row: m·(x + 5)² / Σ m·(x + 5)² (absolute error below 4.5e-5 on
    /// rows of up to 512 entries in [-50, 50]).
    fn two_quad(&mut self, x: &[Self::Elem], rows: usize, len: usize, mask: Option<&[f64]>) -> Result<Self::Vector> {
        numerics::two_quad(self, x, rows, len, mask)
    }
    /// MPCFormer's 2ReLU of each row: m·relu(x) / Σ m·relu(x), scores within 2^16 of 0
    /// ([`Spread::ACTIVATIONS`]; absolute error below 4.5e-5 on rows of up to 512 entries in
    /// [-50, 50], where each row has a positive entry).
    fn two_relu(&mut self, x: &[Self::Elem], rows: usize, len: usize, mask: Option<&[f64]>) -> Result<Self::Vector> {
        numerics::two_relu(self, x, rows, len, mask)
    }
}
