//! One real party of the two-party computation, over any transport.

use alloc::vec::Vec;

use mpc_core::preprocessing::Preprocessing;
use mpc_core::protocol::{OwnedMatrix, PreparedMatrix, Truncation};
use mpc_core::share::Shares;
use mpc_core::transport::{Role, Transport};
use mpc_core::{Error, Party};

use crate::backend::{Backend, Broadcast, Fused, Matmul, Pair, Product, Result, Spread, WeightMode};

/// One party's shares, computing with its peer through a [`Party`].
///
/// Products at the session precision use the session's truncation; products at extended
/// precision (inside the numerical functions, where ring values are large) always use dealer
/// truncation, which never fails.
#[derive(Debug)]
pub struct Secure<T: Transport, P: Preprocessing<u64>> {
    party: Party<u64, T, P>,
    weights: WeightMode,
}

/// A weight matrix prepared under the session's [`WeightMode`].
#[derive(Debug)]
pub enum SecureWeight {
    /// Secret-shared, with W - B opened.
    Shared(PreparedMatrix<u64>),
    /// P0's own, with F = W - B sent to P1.
    Owned(OwnedMatrix<u64>),
    /// A secret-shared table for lookups: P1 keeps its share, P0 prepared its share as a matrix
    /// of its own, so that P1's one-hot rows meet each share with no opening of P0's.
    Table {
        /// P1's share of the table (empty at P0).
        share: Shares<u64>,
        /// P0's share, prepared as P0's own matrix.
        owned: OwnedMatrix<u64>,
    },
}

impl<T: Transport, P: Preprocessing<u64>> Secure<T, P> {
    /// Computes through `party`, with secret-shared weights.
    pub fn new(party: Party<u64, T, P>) -> Self {
        Self { party, weights: WeightMode::Shared }
    }

    /// Sets how weights are held (both parties must agree).
    pub fn with_weight_mode(mut self, weights: WeightMode) -> Self {
        self.weights = weights;
        self
    }

    /// How weights are held.
    pub fn weight_mode(&self) -> WeightMode {
        self.weights
    }

    /// The protocol engine.
    pub fn party(&self) -> &Party<u64, T, P> {
        &self.party
    }

    /// The protocol engine, mutably.
    pub fn party_mut(&mut self) -> &mut Party<u64, T, P> {
        &mut self.party
    }

    /// Unwraps the protocol engine.
    pub fn into_party(self) -> Party<u64, T, P> {
        self.party
    }

    fn is_p0(&self) -> bool {
        self.party.role() == Role::P0
    }

    fn truncation_for(&self, p: Product) -> Truncation {
        p.truncation(self.frac_bits(), self.party.truncation())
    }
}

fn zip(a: &[u64], b: &[u64], f: impl Fn(u64, u64) -> u64) -> Shares<u64> {
    Shares::from_vec(a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect())
}

use crate::backend::{encode_at as encode, reduce_method};

/// The bounds of a comparison at `frac` bits, encoded, and its width for `spread`.
fn comparison(bounds: &[f64], frac: u32, spread: Spread) -> (Vec<u64>, u32) {
    (bounds.iter().map(|&t| encode(t, frac)).collect(), spread.width(frac, u64::BITS))
}

impl<T: Transport, P: Preprocessing<u64>> Backend for Secure<T, P> {
    type Elem = u64;
    type Vector = Shares<u64>;
    type Weight = SecureWeight;

    fn frac_bits(&self) -> u32 {
        self.party.fixed_point().frac_bits()
    }
    fn wrap(&self, elems: Vec<u64>) -> Shares<u64> {
        Shares::from_vec(elems)
    }
    fn input(&mut self, owner: Role, values: Option<&[f64]>, n: usize) -> Result<Shares<u64>> {
        self.party.input_fixed(owner, values, n)
    }
    fn reveal(&mut self, x: &[u64]) -> Result<Vec<f64>> {
        self.party.open_fixed(x)
    }
    fn public(&self, values: &[f64], frac: u32) -> Shares<u64> {
        let p0 = self.is_p0();
        Shares::from_vec(values.iter().map(|&v| if p0 { encode(v, frac) } else { 0 }).collect())
    }
    fn add(&self, a: &[u64], b: &[u64]) -> Shares<u64> {
        zip(a, b, u64::wrapping_add)
    }
    fn sub(&self, a: &[u64], b: &[u64]) -> Shares<u64> {
        zip(a, b, u64::wrapping_sub)
    }
    fn mul_int(&self, a: &[u64], k: i64) -> Shares<u64> {
        Shares::from_vec(a.iter().map(|x| x.wrapping_mul(k as u64)).collect())
    }
    fn add_scalar(&self, a: &[u64], c: f64, frac: u32) -> Shares<u64> {
        let mut out = Shares::from_vec(a.to_vec());
        self.party.add_public_scalar(&mut out, encode(c, frac));
        out
    }
    fn mul_bits_public(&self, bits: &[u64], c: &[f64], frac: u32) -> Shares<u64> {
        Shares::from_vec(bits.iter().zip(c).map(|(&b, &c)| b.wrapping_mul(encode(c, frac))).collect())
    }
    fn mul_scalar(&self, a: &[u64], c: f64, frac: u32) -> Shares<u64> {
        let c = encode(c, frac);
        Shares::from_vec(a.iter().map(|x| x.wrapping_mul(c)).collect())
    }
    fn affine(&self, terms: &[(&[u64], f64, u32)], c: f64, frac: u32) -> Shares<u64> {
        // One pass, one buffer: the composed default made and wiped a vector per operation.
        let coefficients: Vec<u64> = terms.iter().map(|&(_, ck, frac_k)| encode(ck, frac_k)).collect();
        // The shortest term's length, as the composed default's `add` (a zip) would give.
        let len = terms.iter().map(|t| t.0.len()).min().unwrap_or(0);
        let mut out = Shares::from_vec(
            (0..len)
                .map(|i| {
                    terms.iter().zip(&coefficients).fold(0u64, |s, (t, &ck)| s.wrapping_add(t.0[i].wrapping_mul(ck)))
                })
                .collect(),
        );
        self.party.add_public_scalar(&mut out, encode(c, frac));
        out
    }
    fn extend(&self, a: &[u64], bits: u32, pow2: i32) -> Shares<u64> {
        let shift = (bits as i32 + pow2) as u32;
        Shares::from_vec(a.iter().map(|x| x << shift).collect())
    }
    fn sum_rows(&self, a: &[u64], _rows: usize, len: usize) -> Shares<u64> {
        Shares::from_vec(a.chunks(len.max(1)).map(|r| r.iter().fold(0u64, |s, &v| s.wrapping_add(v))).collect())
    }
    fn reduce(&mut self, a: &[u64], bits: u32) -> Result<Shares<u64>> {
        // Both truncations already land within one unit on either side of the exact quotient
        // (the dealer's adds a borrow with probability equal to the dropped fraction), so no
        // half unit is added: the simulation's round-to-nearest is their deterministic twin.
        let method = reduce_method(bits, self.frac_bits(), self.party.truncation());
        Ok(self.party.truncate_many_by(alloc::vec![Shares::from_vec(a.to_vec())], bits, method)?.pop().expect("one"))
    }
    fn mul_many(&mut self, pairs: &[Pair<'_, u64>], p: Product) -> Result<Vec<Shares<u64>>> {
        let shift = p.shift()?;
        let method = self.truncation_for(p);
        let z = self.party.mul_many_ring(pairs)?;
        self.party.truncate_many_by(z, shift, method)
    }
    fn mul_broadcast_many(&mut self, items: &[Broadcast<'_, u64>], p: Product) -> Result<Vec<Shares<u64>>> {
        let shift = p.shift()?;
        let method = self.truncation_for(p);
        let z = self.party.mul_broadcast_many_ring(items)?;
        self.party.truncate_many_by(z, shift, method)
    }
    fn square(&mut self, x: &[u64], p: Product) -> Result<Shares<u64>> {
        let shift = p.shift()?;
        let method = self.truncation_for(p);
        let z = self.party.square_ring(x)?;
        Ok(self.party.truncate_many_by(alloc::vec![z], shift, method)?.pop().expect("one"))
    }
    fn mul_public(&mut self, x: &[u64], c: &[f64]) -> Result<Shares<u64>> {
        if x.len() != c.len() {
            return Err(Error::ShapeMismatch);
        }
        let p = Product::public(self.frac_bits(), c);
        let z = Shares::from_vec(x.iter().zip(c).map(|(&v, &c)| v.wrapping_mul(encode(c, p.b))).collect());
        Ok(self.party.truncate_many_by(alloc::vec![z], p.shift()?, self.truncation_for(p))?.pop().expect("one"))
    }
    fn matmul_many(&mut self, products: &[Matmul<'_, u64>]) -> Result<Vec<Shares<u64>>> {
        self.party.matmul_many(products)
    }
    fn load_weight(&mut self, w: Option<Vec<f64>>, k: usize, n: usize) -> Result<SecureWeight> {
        let owner = self.is_p0();
        if w.is_some() != owner || w.as_ref().is_some_and(|w| w.len() != k * n) {
            return Err(Error::ShapeMismatch);
        }
        match self.weights {
            WeightMode::Shared => {
                let shares = self.party.input_fixed(Role::P0, w.as_deref(), k * n)?;
                Ok(SecureWeight::Shared(self.party.prepare_matrix(&shares, k, n)?))
            }
            WeightMode::Owner => {
                let fixed = self.party.fixed_point();
                let encoded: Option<Vec<u64>> = w.map(|w| fixed.encode_owned(w));
                Ok(SecureWeight::Owned(self.party.prepare_owned(encoded, k, n)?))
            }
        }
    }
    fn linear(&mut self, x: &[u64], m: usize, w: &SecureWeight) -> Result<Shares<u64>> {
        match w {
            SecureWeight::Shared(w) => self.party.matmul_prepared(x, m, w),
            SecureWeight::Owned(w) => self.party.matmul_owned(x, m, w),
            SecureWeight::Table { .. } => Err(Error::MaterialMismatch),
        }
    }
    fn linear_wide(&mut self, x: &[u64], m: usize, w: &SecureWeight) -> Result<Shares<u64>> {
        match w {
            SecureWeight::Shared(w) => self.party.matmul_prepared_ring(x, m, w),
            SecureWeight::Owned(w) => self.party.matmul_owned_ring(x, m, w),
            SecureWeight::Table { .. } => Err(Error::MaterialMismatch),
        }
    }
    fn linear_truncation_takes_a_round(&self) -> bool {
        self.weights.linear_truncation_takes_a_round(self.party.truncation())
    }
    fn matmul_many_wide(&mut self, products: &[Matmul<'_, u64>]) -> Result<Vec<Shares<u64>>> {
        self.party.matmul_many_ring(products)
    }
    fn square_truncated(&mut self, z: &[u64], c: f64, p: Product) -> Result<Shares<u64>> {
        let (f, shift, method) = (self.frac_bits(), p.shift()?, self.truncation_for(p));
        let z = alloc::vec![Shares::from_vec(z.to_vec())];
        let squares = self.party.truncate_square_many(z, f, encode(c, f), self.party.truncation())?;
        Ok(self.party.truncate_many_by(squares, shift, method)?.pop().expect("one"))
    }
    fn load_table(&mut self, w: Option<Vec<f64>>, vocab: usize, width: usize) -> Result<SecureWeight> {
        match self.weights {
            WeightMode::Owner => {
                if w.is_some() != self.is_p0() || w.as_ref().is_some_and(|w| w.len() != vocab * width) {
                    return Err(Error::ShapeMismatch);
                }
                let fixed = self.party.fixed_point();
                let encoded: Option<Vec<u64>> = w.map(|w| fixed.encode_owned(w));
                Ok(SecureWeight::Owned(self.party.prepare_owned_table(encoded, vocab, width)?))
            }
            WeightMode::Shared => {
                let share = self.party.input_fixed(Role::P0, w.as_deref(), vocab * width)?;
                // P0's share is its table (handed over, not copied); P1 keeps its own.
                let (mine, share) = match self.is_p0() {
                    true => (Some(share.into_vec()), Shares::zeros(0)),
                    false => (None, share),
                };
                let owned = self.party.prepare_owned_table(mine, vocab, width)?;
                Ok(SecureWeight::Table { share, owned })
            }
        }
    }
    fn lookup(
        &mut self,
        table: &SecureWeight,
        indices: Option<&[usize]>,
        count: usize,
        vocab: usize,
    ) -> Result<Shares<u64>> {
        // P1's one-hot rows times the table (P0's share of them is zero): as ring integers 0/1
        // their product with a fixed-point table is exactly its rows, no truncation.
        let (owned, share) = match table {
            SecureWeight::Owned(w) => (w, None),
            SecureWeight::Table { share, owned } => (owned, Some(share)),
            SecureWeight::Shared(_) => return Err(Error::MaterialMismatch),
        };
        if owned.rows() != vocab {
            return Err(Error::ShapeMismatch);
        }
        let mut rows = self.party.lookup_owned(indices, count, owned)?;
        // With shared weights, P1 adds its share of the table's rows (P0's went through the product).
        if let (Some(share), Some(idx)) = (share, indices) {
            let width = owned.cols();
            for (r, &i) in idx.iter().enumerate() {
                mpc_core::ring::add_assign(&mut rows[r * width..(r + 1) * width], &share[i * width..(i + 1) * width]);
            }
        }
        Ok(rows)
    }
    fn ltz(&mut self, x: &[u64]) -> Result<Shares<u64>> {
        self.party.ltz(x)
    }
    fn mul_bits(&mut self, pairs: &[Pair<'_, u64>]) -> Result<Vec<Shares<u64>>> {
        self.party.mul_many_ring(pairs)
    }
    fn max_rows(&mut self, x: &[u64], rows: usize, len: usize, spread: Spread) -> Result<Shares<u64>> {
        let width = spread.width(self.party.fixed_point().frac_bits(), u64::BITS);
        self.party.max_rows(x, rows, len, width)
    }
    fn below(&mut self, x: &[u64], frac: u32, bounds: &[f64], spread: Spread) -> Result<Shares<u64>> {
        let (bounds, width) = comparison(bounds, frac, spread);
        self.party.below(x, &bounds, width)
    }
    fn below_times(
        &mut self,
        x: &[u64],
        frac: u32,
        bounds: &[f64],
        shift: u32,
        spread: Spread,
    ) -> Result<[Shares<u64>; 3]> {
        let (bounds, width) = comparison(bounds, frac, spread);
        self.party.below_times(x, &bounds, shift, width)
    }
    fn below_times_square(
        &mut self,
        x: &[u64],
        frac: u32,
        bounds: &[f64],
        shift: u32,
        spread: Spread,
    ) -> Result<[Shares<u64>; 4]> {
        let (bounds, width) = comparison(bounds, frac, spread);
        self.party.below_times_square(x, &bounds, shift, width)
    }
    fn mul_shifted(&mut self, items: &[Fused<'_, u64>]) -> Result<Vec<Shares<u64>>> {
        self.party.mul_fused(items)
    }
}
