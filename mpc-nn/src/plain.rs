//! The plaintext reference backend: reals (f64 by default, f32 for speed) and exact math.

use alloc::vec::Vec;
use core::fmt::Debug;

use mpc_core::Error;
use mpc_core::transport::Role;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, LinalgScalar};

use crate::backend::{Backend, Matmul, Pair, Product, Result, Spread};

/// A float type the plaintext backend computes in.
pub trait PlainFloat: LinalgScalar + Debug + Default + Send + Sync + PartialOrd {
    /// From f64 (rounding).
    fn from_f64(x: f64) -> Self;
    /// To f64 (exactly).
    fn to_f64(self) -> f64;
    /// e^self, libm's at this precision.
    fn exp(self) -> Self;
    /// erf(self), libm's at this precision.
    fn erf(self) -> Self;
}

impl PlainFloat for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn exp(self) -> Self {
        libm::expf(self)
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl PlainFloat for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn exp(self) -> Self {
        libm::exp(self)
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
}

/// A matrix product for [`Plain`]: `c = a · b` for row-major a (m × k), b (k × n) and c
/// (m × n), whose lengths [`Plain`] checks before calling it (c is zero on entry).
pub type PlainGemm<F> = fn(m: usize, k: usize, n: usize, a: &[F], b: &[F], c: &mut [F]);

/// Plaintext reals; the numerical functions are the exact ones (libm). Matrices multiply with
/// matrixmultiply's GEMM (through ndarray) unless another is given ([`Plain::with_gemm`]: a
/// benchmark's baseline takes the fastest one on its CPU). `Plain<f32>` is the plaintext baseline
/// for timings; `Plain<f64>` (the default) the accuracy reference.
#[derive(Clone, Copy, Debug)]
pub struct Plain<F = f64> {
    gemm: PlainGemm<F>,
}

impl<F: PlainFloat> Plain<F> {
    /// The backend, with matrixmultiply's GEMM.
    pub const fn new() -> Self {
        Self { gemm: matrixmultiply_gemm::<F> }
    }

    /// The backend, multiplying matrices with `gemm`.
    pub const fn with_gemm(gemm: PlainGemm<F>) -> Self {
        Self { gemm }
    }

    /// `a (m×k) · b (k×n)`.
    fn product(&self, a: &[F], b: &[F], m: usize, k: usize, n: usize) -> Result<Vec<F>> {
        if a.len() != m * k || b.len() != k * n {
            return Err(Error::ShapeMismatch);
        }
        let mut c = alloc::vec![F::zero(); m * n];
        (self.gemm)(m, k, n, a, b, &mut c);
        Ok(c)
    }
}

impl<F: PlainFloat> Default for Plain<F> {
    fn default() -> Self {
        Self::new()
    }
}

/// `c = a (m×k) · b (k×n)` with matrixmultiply's GEMM (through ndarray): [`Plain`]'s default.
/// Reads the first m·k, k·n and m·n values; leaves `c` as it is if a slice is shorter.
pub fn matrixmultiply_gemm<F: PlainFloat>(m: usize, k: usize, n: usize, a: &[F], b: &[F], c: &mut [F]) {
    let (Some(a), Some(b), Some(c)) = (a.get(..m * k), b.get(..k * n), c.get_mut(..m * n)) else { return };
    let views =
        (ArrayView2::from_shape((m, k), a), ArrayView2::from_shape((k, n), b), ArrayViewMut2::from_shape((m, n), c));
    if let (Ok(av), Ok(bv), Ok(mut cv)) = views {
        general_mat_mul(F::one(), &av, &bv, F::zero(), &mut cv);
    }
}

fn map<F: PlainFloat>(x: &[F], f: impl Fn(f64) -> f64) -> Vec<F> {
    x.iter().map(|&v| F::from_f64(f(v.to_f64()))).collect()
}

/// Each row of `x` (masked: each value times its mask's) divided by its sum (zero rows stay
/// zero), in `F`.
fn normalise<F: PlainFloat>(mut x: Vec<F>, len: usize, mask: Option<&[f64]>) -> Result<Vec<F>> {
    if let Some(mask) = mask {
        if mask.len() != x.len() {
            return Err(Error::ShapeMismatch);
        }
        x.iter_mut().zip(mask).for_each(|(v, &k)| *v = *v * F::from_f64(k));
    }
    for row in x.chunks_mut(len) {
        let s = row.iter().fold(F::zero(), |s, &v| s + v);
        if s != F::zero() {
            row.iter_mut().for_each(|v| *v = *v / s);
        }
    }
    Ok(x)
}

fn check_rows<F>(x: &[F], rows: usize, len: usize) -> Result<()> {
    if x.len() != rows * len || len == 0 { Err(Error::ShapeMismatch) } else { Ok(()) }
}

/// 2^`e`, for scaling by a multiplication (exact, as `ldexp` is, but inlined: `ldexp` a value at a
/// time was a quarter of the plaintext forward's elementwise work).
fn power_of_two(e: i32) -> f64 {
    libm::ldexp(1.0, e)
}

/// `a` times `c`, in `F` (for `Plain<f32>`, f32 arithmetic: the baseline computes as a plain f32
/// forward does; `Plain<f64>`'s results are unchanged).
fn scaled<F: PlainFloat>(a: &[F], c: f64) -> Vec<F> {
    let c = F::from_f64(c);
    a.iter().map(|&x| x * c).collect()
}

fn widen<F: PlainFloat>(x: &[F]) -> Vec<f64> {
    x.iter().map(|v| v.to_f64()).collect()
}

impl<F: PlainFloat + 'static> Backend for Plain<F> {
    type Elem = F;
    type Vector = Vec<F>;
    type Weight = (usize, usize, Vec<F>);

    fn frac_bits(&self) -> u32 {
        0
    }
    fn wrap(&self, elems: Vec<F>) -> Vec<F> {
        elems
    }
    fn input(&mut self, _owner: Role, values: Option<&[f64]>, n: usize) -> Result<Vec<F>> {
        match values {
            Some(v) if v.len() == n => Ok(v.iter().map(|&x| F::from_f64(x)).collect()),
            _ => Err(Error::ShapeMismatch),
        }
    }
    fn reveal(&mut self, x: &[F]) -> Result<Vec<f64>> {
        Ok(widen(x))
    }
    fn public(&self, values: &[f64], _frac: u32) -> Vec<F> {
        values.iter().map(|&x| F::from_f64(x)).collect()
    }
    fn add(&self, a: &[F], b: &[F]) -> Vec<F> {
        a.iter().zip(b).map(|(&x, &y)| x + y).collect()
    }
    fn sub(&self, a: &[F], b: &[F]) -> Vec<F> {
        a.iter().zip(b).map(|(&x, &y)| x - y).collect()
    }
    fn mul_int(&self, a: &[F], k: i64) -> Vec<F> {
        scaled(a, k as f64)
    }
    fn add_scalar(&self, a: &[F], c: f64, _frac: u32) -> Vec<F> {
        let c = F::from_f64(c);
        a.iter().map(|&x| x + c).collect()
    }
    fn mul_bits_public(&self, bits: &[F], c: &[f64], _frac: u32) -> Vec<F> {
        bits.iter().zip(c).map(|(&b, &c)| b * F::from_f64(c)).collect()
    }
    fn mul_scalar(&self, a: &[F], c: f64, _frac: u32) -> Vec<F> {
        scaled(a, c)
    }
    fn affine(&self, terms: &[(&[F], f64, u32)], c: f64, _frac: u32) -> Vec<F> {
        // One pass a term, summed in the default's order (the terms, then c).
        let Some((&(first, c0, _), rest)) = terms.split_first() else { return Vec::new() };
        let mut acc = scaled(first, c0);
        for &(a, ck, _) in rest {
            let ck = F::from_f64(ck);
            acc.iter_mut().zip(a).for_each(|(acc, &x)| *acc = *acc + x * ck);
        }
        let c = F::from_f64(c);
        acc.iter_mut().for_each(|acc| *acc = *acc + c);
        acc
    }
    fn extend(&self, a: &[F], _bits: u32, pow2: i32) -> Vec<F> {
        scaled(a, power_of_two(pow2))
    }
    fn sum_rows(&self, a: &[F], _rows: usize, len: usize) -> Vec<F> {
        a.chunks(len.max(1)).map(|r| F::from_f64(r.iter().map(|v| v.to_f64()).sum())).collect()
    }
    fn reduce(&mut self, a: &[F], _bits: u32) -> Result<Vec<F>> {
        Ok(a.to_vec())
    }
    fn mul_many(&mut self, pairs: &[Pair<'_, F>], p: Product) -> Result<Vec<Vec<F>>> {
        pairs
            .iter()
            .map(|(a, b)| {
                if a.len() == b.len() {
                    let scale = F::from_f64(power_of_two(p.pow2));
                    Ok(a.iter().zip(*b).map(|(&x, &y)| x * y * scale).collect())
                } else {
                    Err(Error::ShapeMismatch)
                }
            })
            .collect()
    }
    fn square(&mut self, x: &[F], p: Product) -> Result<Vec<F>> {
        let scale = F::from_f64(power_of_two(p.pow2));
        Ok(x.iter().map(|&v| v * v * scale).collect())
    }
    fn mul_public(&mut self, x: &[F], c: &[f64]) -> Result<Vec<F>> {
        Ok(self.mul_bits_public(x, c, 0))
    }
    fn matmul_many(&mut self, products: &[Matmul<'_, F>]) -> Result<Vec<Vec<F>>> {
        products.iter().map(|&(a, b, m, k, n)| self.product(a, b, m, k, n)).collect()
    }
    fn load_weight(&mut self, w: Option<Vec<f64>>, k: usize, n: usize) -> Result<Self::Weight> {
        match w {
            Some(w) if w.len() == k * n => Ok((k, n, w.iter().map(|&x| F::from_f64(x)).collect())),
            _ => Err(Error::ShapeMismatch),
        }
    }
    fn linear(&mut self, x: &[F], m: usize, w: &Self::Weight) -> Result<Vec<F>> {
        self.product(x, &w.2, m, w.0, w.1)
    }
    fn linear_wide(&mut self, x: &[F], m: usize, w: &Self::Weight) -> Result<Vec<F>> {
        self.linear(x, m, w)
    }
    fn matmul_many_wide(&mut self, products: &[Matmul<'_, F>]) -> Result<Vec<Vec<F>>> {
        self.matmul_many(products)
    }
    fn lookup(
        &mut self,
        table: &Self::Weight,
        indices: Option<&[usize]>,
        count: usize,
        vocab: usize,
    ) -> Result<Vec<F>> {
        let (rows, width, data) = table;
        crate::backend::gather_rows((*rows, *width, data), indices, count, vocab)
    }
    fn ltz(&mut self, x: &[F]) -> Result<Vec<F>> {
        Ok(map(x, |v| if v < 0.0 { 1.0 } else { 0.0 }))
    }
    fn mul_bits(&mut self, pairs: &[Pair<'_, F>]) -> Result<Vec<Vec<F>>> {
        Ok(pairs.iter().map(|(b, v)| b.iter().zip(*v).map(|(&b, &v)| b * v).collect()).collect())
    }
    fn max_rows(&mut self, x: &[F], rows: usize, len: usize, _spread: Spread) -> Result<Vec<F>> {
        check_rows(x, rows, len)?;
        Ok(x.chunks(len).map(|r| F::from_f64(r.iter().map(|v| v.to_f64()).fold(f64::NEG_INFINITY, f64::max))).collect())
    }

    fn exp(&mut self, x: &[F]) -> Result<Vec<F>> {
        Ok(x.iter().map(|&v| v.exp()).collect())
    }
    fn reciprocal(&mut self, x: &[F]) -> Result<Vec<F>> {
        Ok(map(x, |v| 1.0 / v))
    }
    fn inv_sqrt(&mut self, x: &[F]) -> Result<Vec<F>> {
        Ok(map(x, |v| 1.0 / libm::sqrt(v)))
    }
    fn inv_sqrt_wide(&mut self, x: &[F], _frac: u32) -> Result<(Vec<F>, u32)> {
        Ok((self.inv_sqrt(x)?, 0))
    }
    fn erf(&mut self, x: &[F]) -> Result<Vec<F>> {
        Ok(x.iter().map(|&v| v.erf()).collect())
    }
    fn gelu(&mut self, x: &[F]) -> Result<Vec<F>> {
        let (half, one, root2) = (F::from_f64(0.5), F::one(), F::from_f64(core::f64::consts::SQRT_2));
        Ok(x.iter().map(|&v| half * v * (one + (v / root2).erf())).collect())
    }
    fn gelu_of_product(&mut self, z: &[F]) -> Result<Vec<F>> {
        self.gelu(z)
    }
    fn tanh(&mut self, x: &[F]) -> Result<Vec<F>> {
        Ok(map(x, libm::tanh))
    }
    fn sigmoid(&mut self, x: &[F]) -> Result<Vec<F>> {
        Ok(map(x, |v| 1.0 / (1.0 + libm::exp(-v))))
    }
    fn softmax(&mut self, x: &[F], rows: usize, len: usize, mask: Option<&[f64]>) -> Result<Vec<F>> {
        check_rows(x, rows, len)?;
        let max = self.max_rows(x, rows, len, Spread::Full)?;
        let e = x.chunks(len).zip(&max).flat_map(|(row, &m)| row.iter().map(move |&v| (v - m).exp())).collect();
        normalise(e, len, mask)
    }
    fn two_quad(&mut self, x: &[F], rows: usize, len: usize, mask: Option<&[f64]>) -> Result<Vec<F>> {
        check_rows(x, rows, len)?;
        let five = F::from_f64(5.0);
        normalise(x.iter().map(|&v| (v + five) * (v + five)).collect(), len, mask)
    }
    fn two_relu(&mut self, x: &[F], rows: usize, len: usize, mask: Option<&[f64]>) -> Result<Vec<F>> {
        check_rows(x, rows, len)?;
        normalise(x.iter().map(|&v| if v > F::zero() { v } else { F::zero() }).collect(), len, mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 8.0
            })
            .collect()
    }

    /// f32 results against their f64 values: to f32's precision (1e-5, relative above 1).
    fn assert_close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} against {w}");
        }
    }

    /// The scalings by powers of two and the one-pass affine give, in f64, exactly what `ldexp`
    /// and the trait's default composition give; in f32, the same values to f32's precision.
    #[test]
    fn scalings_and_affine_match_the_exact_composition() {
        let (x, y, z) = (values(257, 1), values(257, 2), values(257, 3));
        let mut exact = Plain::<f64>::new();
        let p = Product { a: 0, b: 0, out: 0, pow2: -5 };
        let products = exact.mul_many(&[(&x, &y)], p).unwrap();
        let expected: Vec<f64> = x.iter().zip(&y).map(|(a, b)| libm::ldexp(a * b, -5)).collect();
        assert_eq!(products[0], expected);
        let squares: Vec<f64> = x.iter().map(|a| libm::ldexp(a * a, -5)).collect();
        assert_eq!(exact.square(&x, p).unwrap(), squares);
        assert_eq!(exact.extend(&x, 3, -3), x.iter().map(|a| libm::ldexp(*a, -3)).collect::<Vec<_>>());
        let terms: [(&[f64], f64, u32); 3] = [(&x, 0.75, 0), (&y, -1.5, 0), (&z, 3.0, 0)];
        let composed: Vec<f64> =
            x.iter().zip(&y).zip(&z).map(|((a, b), c)| ((a * 0.75 + b * -1.5) + c * 3.0) + 0.25).collect();
        assert_eq!(exact.affine(&terms, 0.25, 0), composed);
        assert_eq!(exact.mul_scalar(&x, -2.5, 0), x.iter().map(|a| a * -2.5).collect::<Vec<_>>());
        assert!(exact.affine(&[], 1.0, 0).is_empty());

        let narrow = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (xf, yf, zf) = (narrow(&x), narrow(&y), narrow(&z));
        let mut fast = Plain::<f32>::new();
        assert_close(&fast.mul_many(&[(&xf, &yf)], p).unwrap()[0], &expected);
        assert_close(&fast.square(&xf, p).unwrap(), &squares);
        assert_close(&fast.affine(&[(&xf, 0.75, 0), (&yf, -1.5, 0), (&zf, 3.0, 0)], 0.25, 0), &composed);
        assert_close(&fast.add_scalar(&xf, 0.5, 0), &x.iter().map(|a| a + 0.5).collect::<Vec<_>>());
        assert_close(&fast.mul_int(&xf, -3), &x.iter().map(|a| a * -3.0).collect::<Vec<_>>());
    }

    /// Softmax, 2Quad, 2ReLU (masked), GeLU, erf and exp: in f64 exactly the textbook formulas
    /// with libm's functions; in f32 (libm's f32 functions, f32 sums) the same to f32's precision.
    #[test]
    fn row_normalisations_and_functions_match_their_formulas() {
        let (rows, len) = (4, 16);
        let x = values(rows * len, 4);
        let mut mask = alloc::vec![1.0; rows * len];
        mask[3] = 0.0;
        mask[len + 5] = 0.0;
        let by_rows = |f: &dyn Fn(f64) -> f64, shift: &dyn Fn(usize) -> f64| -> Vec<f64> {
            let mut out: Vec<f64> = x.iter().enumerate().map(|(i, &v)| f(v - shift(i / len)) * mask[i]).collect();
            for row in out.chunks_mut(len) {
                let s: f64 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= s);
            }
            out
        };
        let max: Vec<f64> = x.chunks(len).map(|r| r.iter().copied().fold(f64::NEG_INFINITY, f64::max)).collect();
        let softmax = by_rows(&libm::exp, &|r| max[r]);
        let two_quad = by_rows(&|v| (v + 5.0) * (v + 5.0), &|_| 0.0);
        let two_relu = by_rows(&|v| v.max(0.0), &|_| 0.0);
        let gelu: Vec<f64> = x.iter().map(|&v| 0.5 * v * (1.0 + libm::erf(v / core::f64::consts::SQRT_2))).collect();
        let erf: Vec<f64> = x.iter().map(|&v| libm::erf(v)).collect();
        let exp: Vec<f64> = x.iter().map(|&v| libm::exp(v)).collect();

        let mut exact = Plain::<f64>::new();
        assert_eq!(exact.softmax(&x, rows, len, Some(&mask)).unwrap(), softmax);
        assert_eq!(exact.two_quad(&x, rows, len, Some(&mask)).unwrap(), two_quad);
        assert_eq!(exact.two_relu(&x, rows, len, Some(&mask)).unwrap(), two_relu);
        assert_eq!(exact.gelu(&x).unwrap(), gelu);
        assert_eq!(exact.erf(&x).unwrap(), erf);
        assert_eq!(exact.exp(&x).unwrap(), exp);
        assert_eq!(exact.softmax(&x, rows, len, Some(&mask[1..])), Err(Error::ShapeMismatch));

        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let mut fast = Plain::<f32>::new();
        assert_close(&fast.softmax(&xf, rows, len, Some(&mask)).unwrap(), &softmax);
        assert_close(&fast.two_quad(&xf, rows, len, Some(&mask)).unwrap(), &two_quad);
        assert_close(&fast.two_relu(&xf, rows, len, Some(&mask)).unwrap(), &two_relu);
        assert_close(&fast.gelu(&xf).unwrap(), &gelu);
        assert_close(&fast.erf(&xf).unwrap(), &erf);
        assert_close(&fast.exp(&xf).unwrap(), &exp);
    }
}
