//! The simulated setting: the protocol's fixed-point ring arithmetic, in the clear, with a
//! ledger that predicts the protocol's traffic.

use alloc::vec::Vec;

use mpc_core::protocol::Truncation;
use mpc_core::protocol::cost::{self, CommModel};
use mpc_core::transport::Role;
use mpc_core::{Error, FixedPoint, Ring};

use crate::backend::{Backend, Broadcast, Fused, Matmul, Pair, Product, Result, Spread, WeightMode};

/// Fixed-point ring values in the clear: the same algorithms and truncations as [`Secure`]
/// (truncation rounds to nearest, where the protocol lands within a unit or so of the quotient),
/// without any party. Its [`ledger`](Fixed::ledger) predicts exactly the bytes, messages and
/// rounds each party of a [`Secure`] run with the same settings counts.
///
/// [`Secure`]: crate::Secure
#[derive(Clone, Copy, Debug, Default)]
pub struct Fixed {
    fixed: FixedPoint,
    truncation: Truncation,
    weights: WeightMode,
    ledger: CommModel,
}

impl Fixed {
    /// A simulation at the given fixed-point format.
    pub fn new(fixed: FixedPoint) -> Self {
        Self { fixed, ..Self::default() }
    }

    /// The truncation method whose cost the ledger books.
    pub fn with_truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    /// The weight mode whose cost the ledger books.
    pub fn with_weight_mode(mut self, weights: WeightMode) -> Self {
        self.weights = weights;
        self
    }

    /// The predicted traffic so far.
    pub fn ledger(&self) -> &CommModel {
        &self.ledger
    }

    /// Starts a new prediction, as from a barrier (both parties having just received).
    pub fn reset_ledger(&mut self) {
        self.ledger = CommModel::default();
    }

    fn truncate_cost(&mut self, n: usize, p: Product) {
        let method = p.truncation(self.frac_bits(), self.truncation);
        cost::truncate::<u64>(&mut self.ledger, n, p.shift().unwrap_or(0), method);
    }
}

fn zip(a: &[u64], b: &[u64], f: impl Fn(u64, u64) -> u64) -> Vec<u64> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

/// The exact bits `[x_i < t_j]` for the bounds at `frac` bits, bound-major.
fn compared(x: &[u64], frac: u32, bounds: &[f64]) -> Vec<u64> {
    let bounds: Vec<i64> = bounds.iter().map(|&t| encode(t, frac).to_i64()).collect();
    bounds.iter().flat_map(|&t| x.iter().map(move |v| u64::from(v.to_i64() < t))).collect()
}

/// `v` shifted right by `bits` (arithmetically), rounded to nearest: half a unit of the last
/// place kept is added first.
fn round_shift(v: u64, bits: u32) -> u64 {
    let half = if bits == 0 { 0 } else { 1 << (bits - 1) };
    v.wrapping_add(half).shr_arith(bits)
}

/// The fixed-point matrix product a (m×k) · b (k×n), truncated by f.
fn fixed_product(a: &[u64], b: &[u64], m: usize, k: usize, n: usize, f: u32) -> Vec<u64> {
    let mut c = alloc::vec![0u64; m * n];
    mpc_core::gemm::gemm_acc(m, k, n, a, b, &mut c);
    c.iter().map(|v| v.shr_arith(f)).collect()
}

/// Each item's `x ⊙ broadcast(y)`, shifted right by `shift`.
fn broadcast_products(items: &[Broadcast<'_, u64>], shift: u32) -> Vec<Vec<u64>> {
    items
        .iter()
        .map(|&(x, y, rows, len, per_row)| {
            let y = crate::backend::broadcast_values(y, rows, len, per_row);
            zip(x, &y, |a, b| a.wrapping_mul(b).shr_arith(shift))
        })
        .collect()
}

use crate::backend::encode_at as encode;

impl Backend for Fixed {
    type Elem = u64;
    type Vector = Vec<u64>;
    type Weight = (usize, usize, Vec<u64>);

    fn frac_bits(&self) -> u32 {
        self.fixed.frac_bits()
    }
    fn wrap(&self, elems: Vec<u64>) -> Vec<u64> {
        elems
    }
    fn input(&mut self, _owner: Role, values: Option<&[f64]>, n: usize) -> Result<Vec<u64>> {
        match values {
            Some(v) if v.len() == n => Ok(self.fixed.encode_vec(v)),
            _ => Err(Error::ShapeMismatch),
        }
    }
    fn reveal(&mut self, x: &[u64]) -> Result<Vec<f64>> {
        cost::open::<u64>(&mut self.ledger, x.len());
        Ok(self.fixed.decode_vec(x))
    }
    fn public(&self, values: &[f64], frac: u32) -> Vec<u64> {
        values.iter().map(|&v| encode(v, frac)).collect()
    }
    fn add(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        zip(a, b, u64::wrapping_add)
    }
    fn sub(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        zip(a, b, u64::wrapping_sub)
    }
    fn mul_int(&self, a: &[u64], k: i64) -> Vec<u64> {
        a.iter().map(|x| x.wrapping_mul(k as u64)).collect()
    }
    fn add_scalar(&self, a: &[u64], c: f64, frac: u32) -> Vec<u64> {
        let c = encode(c, frac);
        a.iter().map(|x| x.wrapping_add(c)).collect()
    }
    fn mul_bits_public(&self, bits: &[u64], c: &[f64], frac: u32) -> Vec<u64> {
        bits.iter().zip(c).map(|(&b, &c)| b.wrapping_mul(encode(c, frac))).collect()
    }
    fn mul_scalar(&self, a: &[u64], c: f64, frac: u32) -> Vec<u64> {
        let c = encode(c, frac);
        a.iter().map(|x| x.wrapping_mul(c)).collect()
    }
    fn extend(&self, a: &[u64], bits: u32, pow2: i32) -> Vec<u64> {
        let shift = (bits as i32 + pow2) as u32;
        a.iter().map(|x| x << shift).collect()
    }
    fn sum_rows(&self, a: &[u64], _rows: usize, len: usize) -> Vec<u64> {
        a.chunks(len.max(1)).map(|r| r.iter().fold(0u64, |s, &v| s.wrapping_add(v))).collect()
    }
    fn reduce(&mut self, a: &[u64], bits: u32) -> Result<Vec<u64>> {
        let method = crate::backend::reduce_method(bits, self.frac_bits(), self.truncation);
        cost::truncate::<u64>(&mut self.ledger, a.len(), bits, method);
        Ok(a.iter().map(|&x| round_shift(x, bits)).collect())
    }
    fn mul_many(&mut self, pairs: &[Pair<'_, u64>], p: Product) -> Result<Vec<Vec<u64>>> {
        let shift = p.shift()?;
        let total = pairs.iter().map(|(a, _)| a.len()).sum();
        cost::mul::<u64>(&mut self.ledger, total);
        self.truncate_cost(total, p);
        pairs
            .iter()
            .map(|(a, b)| {
                if a.len() == b.len() {
                    Ok(zip(a, b, |x, y| x.wrapping_mul(y).shr_arith(shift)))
                } else {
                    Err(Error::ShapeMismatch)
                }
            })
            .collect()
    }
    fn mul_broadcast_many(&mut self, items: &[Broadcast<'_, u64>], p: Product) -> Result<Vec<Vec<u64>>> {
        let shift = p.shift()?;
        let opened = items.iter().map(|it| it.0.len() + it.1.len()).sum();
        let total = items.iter().map(|it| it.0.len()).sum();
        cost::broadcast::<u64>(&mut self.ledger, opened);
        self.truncate_cost(total, p);
        Ok(broadcast_products(items, shift))
    }
    fn square(&mut self, x: &[u64], p: Product) -> Result<Vec<u64>> {
        let shift = p.shift()?;
        cost::square::<u64>(&mut self.ledger, x.len());
        self.truncate_cost(x.len(), p);
        Ok(x.iter().map(|v| v.wrapping_mul(*v).shr_arith(shift)).collect())
    }
    fn mul_public(&mut self, x: &[u64], c: &[f64]) -> Result<Vec<u64>> {
        let p = Product::public(self.frac_bits(), c);
        let (shift, method) = (p.shift()?, p.truncation(self.frac_bits(), self.truncation));
        cost::truncate::<u64>(&mut self.ledger, x.len(), shift, method);
        Ok(x.iter().zip(c).map(|(&v, &c)| v.wrapping_mul(encode(c, p.b)).shr_arith(shift)).collect())
    }
    fn matmul_many(&mut self, products: &[Matmul<'_, u64>]) -> Result<Vec<Vec<u64>>> {
        let f = self.frac_bits();
        let wide = self.matmul_many_wide(products)?;
        cost::truncate::<u64>(&mut self.ledger, wide.iter().map(Vec::len).sum(), f, self.truncation);
        Ok(wide.into_iter().map(|v| v.into_iter().map(|x| x.shr_arith(f)).collect()).collect())
    }
    fn load_weight(&mut self, w: Option<Vec<f64>>, k: usize, n: usize) -> Result<Self::Weight> {
        match self.weights {
            WeightMode::Shared => cost::prepare_shared::<u64>(&mut self.ledger, k * n),
            WeightMode::Owner => cost::prepare_owned::<u64>(&mut self.ledger, k * n),
        }
        match w {
            Some(w) if w.len() == k * n => Ok((k, n, self.fixed.encode_owned(w))),
            _ => Err(Error::ShapeMismatch),
        }
    }
    fn linear(&mut self, x: &[u64], m: usize, w: &Self::Weight) -> Result<Vec<u64>> {
        let (k, n, data) = w;
        if x.len() != m * k {
            return Err(Error::ShapeMismatch);
        }
        match self.weights {
            WeightMode::Shared => {
                cost::matmul_prepared::<u64>(&mut self.ledger, m, *k);
                let f = self.frac_bits();
                cost::truncate::<u64>(&mut self.ledger, m * n, f, self.truncation);
            }
            WeightMode::Owner => cost::matmul_owned_truncated::<u64>(&mut self.ledger, m, *k, *n, self.truncation),
        }
        Ok(fixed_product(x, data, m, *k, *n, self.frac_bits()))
    }
    fn linear_wide(&mut self, x: &[u64], m: usize, w: &Self::Weight) -> Result<Vec<u64>> {
        let (k, n, data) = w;
        if x.len() != m * k {
            return Err(Error::ShapeMismatch);
        }
        match self.weights {
            WeightMode::Shared => cost::matmul_prepared::<u64>(&mut self.ledger, m, *k),
            WeightMode::Owner => cost::matmul_owned::<u64>(&mut self.ledger, m, *k),
        }
        Ok(fixed_product(x, data, m, *k, *n, 0))
    }
    fn linear_truncation_takes_a_round(&self) -> bool {
        self.weights.linear_truncation_takes_a_round(self.truncation)
    }
    fn matmul_many_wide(&mut self, products: &[Matmul<'_, u64>]) -> Result<Vec<Vec<u64>>> {
        cost::matmul::<u64>(&mut self.ledger, products.iter().map(|p| p.2 * p.3 + p.3 * p.4).sum());
        products
            .iter()
            .map(|&(a, b, m, k, n)| {
                if a.len() != m * k || b.len() != k * n {
                    return Err(Error::ShapeMismatch);
                }
                Ok(fixed_product(a, b, m, k, n, 0))
            })
            .collect()
    }
    fn square_truncated(&mut self, z: &[u64], c: f64, p: Product) -> Result<Vec<u64>> {
        let (f, shift) = (self.frac_bits(), p.shift()?);
        cost::truncate_square::<u64>(&mut self.ledger, z.len(), f, self.truncation);
        self.truncate_cost(z.len(), p);
        let c = encode(c, f);
        Ok(z.iter()
            .map(|x| {
                let y = round_shift(*x, f).wrapping_add(c);
                y.wrapping_mul(y).shr_arith(shift)
            })
            .collect())
    }
    fn lookup(
        &mut self,
        table: &Self::Weight,
        indices: Option<&[usize]>,
        count: usize,
        vocab: usize,
    ) -> Result<Vec<u64>> {
        let (rows, width, data) = table;
        // The protocol sends P1's masked one-hot rows (or slots) one way; the simulation gathers.
        cost::lookup_owned::<u64>(&mut self.ledger, count, (vocab, *width), true);
        crate::backend::gather_rows((*rows, *width, data), indices, count, vocab)
    }
    fn load_table(&mut self, w: Option<Vec<f64>>, vocab: usize, width: usize) -> Result<Self::Weight> {
        // Either way P0 prepares a matrix of its own (the table, or its share of it).
        cost::prepare_owned_table::<u64>(&mut self.ledger, vocab * width);
        match w {
            Some(w) if w.len() == vocab * width => Ok((vocab, width, self.fixed.encode_owned(w))),
            _ => Err(Error::ShapeMismatch),
        }
    }
    fn ltz(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        cost::below::<u64>(&mut self.ledger, x.len(), 1, u64::BITS, 0);
        Ok(x.iter().map(|v| u64::from(v.to_i64() < 0)).collect())
    }
    fn mul_bits(&mut self, pairs: &[Pair<'_, u64>]) -> Result<Vec<Vec<u64>>> {
        cost::mul::<u64>(&mut self.ledger, pairs.iter().map(|(b, _)| b.len()).sum());
        Ok(pairs.iter().map(|(b, v)| zip(b, v, u64::wrapping_mul)).collect())
    }
    fn max_rows(&mut self, x: &[u64], rows: usize, len: usize, spread: Spread) -> Result<Vec<u64>> {
        if x.len() != rows * len || len == 0 {
            return Err(Error::ShapeMismatch);
        }
        let width = spread.width(self.frac_bits(), u64::BITS);
        cost::max_rows::<u64>(&mut self.ledger, rows, len, width);
        Ok(x.chunks(len).map(|r| r.iter().copied().max_by_key(|v| v.to_i64()).expect("non-empty row")).collect())
    }
    fn below(&mut self, x: &[u64], frac: u32, bounds: &[f64], spread: Spread) -> Result<Vec<u64>> {
        cost::below::<u64>(&mut self.ledger, x.len(), bounds.len(), spread.width(frac, u64::BITS), 0);
        Ok(compared(x, frac, bounds))
    }
    fn below_times(
        &mut self,
        x: &[u64],
        frac: u32,
        bounds: &[f64],
        shift: u32,
        spread: Spread,
    ) -> Result<[Vec<u64>; 3]> {
        let bits = self.below(x, frac, bounds, spread)?;
        let y: Vec<u64> = x.iter().map(|&v| round_shift(v, shift)).collect();
        let products = bits.chunks(x.len().max(1)).flat_map(|b| zip(b, &y, u64::wrapping_mul)).collect();
        Ok([bits, products, y])
    }
    fn below_times_square(
        &mut self,
        x: &[u64],
        frac: u32,
        bounds: &[f64],
        shift: u32,
        spread: Spread,
    ) -> Result<[Vec<u64>; 4]> {
        // y, the square and the last bound's products are read off the comparisons' opening:
        // no traffic of their own; the digits skip y's dropped bits.
        cost::below::<u64>(&mut self.ledger, x.len(), bounds.len(), spread.width(frac, u64::BITS), shift);
        let bits = compared(x, frac, bounds);
        let last = crate::backend::last_bound(bits.len(), x.len(), bounds.len())?;
        let y: Vec<u64> = x.iter().map(|&v| round_shift(v, shift)).collect();
        let products = zip(&bits[last..], &y, u64::wrapping_mul);
        Ok([bits, products, zip(&y, &y, u64::wrapping_mul), y])
    }
    fn mul_shifted(&mut self, items: &[Fused<'_, u64>]) -> Result<Vec<Vec<u64>>> {
        if items.iter().any(|it| it.x.len() != it.rows * it.len || it.y.len() != it.y_len()) {
            return Err(Error::ShapeMismatch);
        }
        // Every item's operands go in one opening.
        cost::fused::<u64>(&mut self.ledger, items.iter().map(Fused::opened_words).sum());
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let y: Vec<u64> = it.y.iter().map(|&v| round_shift(v, it.y_shift)).collect();
            let repeated = match it.broadcast {
                None => None,
                Some(per_row) => Some(crate::backend::broadcast_values(&y, it.rows, it.len, per_row)),
            };
            let x: Vec<u64> = it.x.iter().map(|&v| round_shift(v, it.x_shift)).collect();
            out.push(zip(&x, repeated.as_ref().unwrap_or(&y), u64::wrapping_mul));
            if it.with_square {
                out.push(zip(&x, &x, u64::wrapping_mul));
            } else if it.y_square {
                out.push(zip(&y, &y, u64::wrapping_mul));
            }
        }
        Ok(out)
    }
}
