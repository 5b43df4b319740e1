//! The plaintext reference backend: reals in f64 and exact math.

use alloc::vec::Vec;

use mpc_core::Error;
use mpc_core::transport::Role;

use crate::backend::{Backend, Pair, Product, Result};

/// Plaintext reals; the numerical functions are the exact ones (libm).
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

fn map(x: &[f64], f: impl Fn(f64) -> f64) -> Vec<f64> {
    x.iter().map(|&v| f(v)).collect()
}

fn zip(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

/// Each row divided by its sum (zero rows stay zero).
fn normalise(x: Vec<f64>, len: usize) -> Vec<f64> {
    let mut x = x;
    for row in x.chunks_mut(len) {
        let s: f64 = row.iter().sum();
        if s != 0.0 {
            row.iter_mut().for_each(|v| *v /= s);
        }
    }
    x
}

fn masked(x: Vec<f64>, mask: Option<&[f64]>) -> Result<Vec<f64>> {
    match mask {
        None => Ok(x),
        Some(m) if m.len() != x.len() => Err(Error::ShapeMismatch),
        Some(m) => Ok(zip(&x, m, |v, k| v * k)),
    }
}

fn check_rows(x: &[f64], rows: usize, len: usize) -> Result<()> {
    if x.len() != rows * len || len == 0 { Err(Error::ShapeMismatch) } else { Ok(()) }
}

impl Backend for Plain {
    type Elem = f64;
    type Vector = Vec<f64>;

    fn frac_bits(&self) -> u32 {
        0
    }
    fn wrap(&self, elems: Vec<f64>) -> Vec<f64> {
        elems
    }
    fn input(&mut self, _owner: Role, values: Option<&[f64]>, n: usize) -> Result<Vec<f64>> {
        match values {
            Some(v) if v.len() == n => Ok(v.to_vec()),
            _ => Err(Error::ShapeMismatch),
        }
    }
    fn reveal(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(x.to_vec())
    }
    fn public(&self, values: &[f64], _frac: u32) -> Vec<f64> {
        values.to_vec()
    }
    fn add(&self, a: &[f64], b: &[f64]) -> Vec<f64> {
        zip(a, b, |x, y| x + y)
    }
    fn sub(&self, a: &[f64], b: &[f64]) -> Vec<f64> {
        zip(a, b, |x, y| x - y)
    }
    fn mul_int(&self, a: &[f64], k: i64) -> Vec<f64> {
        map(a, |x| x * k as f64)
    }
    fn add_scalar(&self, a: &[f64], c: f64, _frac: u32) -> Vec<f64> {
        map(a, |x| x + c)
    }
    fn mul_bits_public(&self, bits: &[f64], c: &[f64], _frac: u32) -> Vec<f64> {
        zip(bits, c, |b, c| b * c)
    }
    fn extend(&self, a: &[f64], _bits: u32, pow2: i32) -> Vec<f64> {
        map(a, |x| libm::ldexp(x, pow2))
    }
    fn sum_rows(&self, a: &[f64], _rows: usize, len: usize) -> Vec<f64> {
        a.chunks(len.max(1)).map(|r| r.iter().sum()).collect()
    }
    fn reduce(&mut self, a: &[f64], _bits: u32) -> Result<Vec<f64>> {
        Ok(a.to_vec())
    }
    fn mul_many(&mut self, pairs: &[Pair<'_, f64>], p: Product) -> Result<Vec<Vec<f64>>> {
        pairs
            .iter()
            .map(|(a, b)| {
                if a.len() == b.len() {
                    Ok(zip(a, b, |x, y| libm::ldexp(x * y, p.pow2)))
                } else {
                    Err(Error::ShapeMismatch)
                }
            })
            .collect()
    }
    fn square(&mut self, x: &[f64], p: Product) -> Result<Vec<f64>> {
        Ok(map(x, |v| libm::ldexp(v * v, p.pow2)))
    }
    fn mul_public(&mut self, x: &[f64], c: &[f64]) -> Result<Vec<f64>> {
        Ok(zip(x, c, |a, b| a * b))
    }
    fn matmul(&mut self, a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Result<Vec<f64>> {
        if a.len() != m * k || b.len() != k * n {
            return Err(Error::ShapeMismatch);
        }
        let mut c = alloc::vec![0.0; m * n];
        for i in 0..m {
            for p in 0..k {
                let aip = a[i * k + p];
                for j in 0..n {
                    c[i * n + j] += aip * b[p * n + j];
                }
            }
        }
        Ok(c)
    }
    fn ltz(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(map(x, |v| if v < 0.0 { 1.0 } else { 0.0 }))
    }
    fn mul_bits(&mut self, pairs: &[Pair<'_, f64>]) -> Result<Vec<Vec<f64>>> {
        Ok(pairs.iter().map(|(b, v)| zip(b, v, |b, v| b * v)).collect())
    }
    fn max_rows(&mut self, x: &[f64], rows: usize, len: usize) -> Result<Vec<f64>> {
        check_rows(x, rows, len)?;
        Ok(x.chunks(len).map(|r| r.iter().copied().fold(f64::NEG_INFINITY, f64::max)).collect())
    }

    fn exp(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(map(x, libm::exp))
    }
    fn reciprocal(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(map(x, |v| 1.0 / v))
    }
    fn inv_sqrt(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(map(x, |v| 1.0 / libm::sqrt(v)))
    }
    fn erf(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(map(x, libm::erf))
    }
    fn gelu(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(map(x, |v| 0.5 * v * (1.0 + libm::erf(v / core::f64::consts::SQRT_2))))
    }
    fn tanh(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(map(x, libm::tanh))
    }
    fn sigmoid(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(map(x, |v| 1.0 / (1.0 + libm::exp(-v))))
    }
    fn softmax(&mut self, x: &[f64], rows: usize, len: usize, mask: Option<&[f64]>) -> Result<Vec<f64>> {
        check_rows(x, rows, len)?;
        let max = self.max_rows(x, rows, len)?;
        let e: Vec<f64> = x.iter().enumerate().map(|(i, &v)| libm::exp(v - max[i / len])).collect();
        Ok(normalise(masked(e, mask)?, len))
    }
    fn two_quad(&mut self, x: &[f64], rows: usize, len: usize, mask: Option<&[f64]>) -> Result<Vec<f64>> {
        check_rows(x, rows, len)?;
        Ok(normalise(masked(map(x, |v| (v + 5.0) * (v + 5.0)), mask)?, len))
    }
    fn two_relu(&mut self, x: &[f64], rows: usize, len: usize, mask: Option<&[f64]>) -> Result<Vec<f64>> {
        check_rows(x, rows, len)?;
        Ok(normalise(masked(map(x, |v| v.max(0.0)), mask)?, len))
    }
}
