//! Fixed-point encoding of reals into the ring.
//!
//! A real `x` is stored as the ring element `round(x · 2^f)` (two's complement), where `f` is the
//! number of fractional bits (default 16, as in CrypTen). Encoding rounds to nearest, ties away
//! from zero (CrypTen truncates toward zero, which biases every input by up to one ulp).
//!
//! ## Range
//! With a k-bit ring an encoded value must satisfy |x| < 2^(k-1-f): ±2^47 for Z_2^64 and f = 16.
//! A product of two encodings carries 2f fractional bits before truncation, so a multiplication
//! is only meaningful while |x·y| < 2^(k-1-2f) (±2^31 for the defaults). Encoding saturates at the
//! range edge; [`FixedPoint::try_encode`] reports out-of-range and non-finite inputs instead.

use serde::{Deserialize, Serialize};

use crate::ring::Ring;

/// A fixed-point format: the number of fractional bits of every encoded value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FixedPoint {
    frac_bits: u32,
}

/// Why a real could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The input was NaN or infinite.
    NotFinite,
    /// |x| is at or beyond 2^(k-1-f), the largest magnitude the format holds.
    OutOfRange,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::NotFinite => f.write_str("value is not finite"),
            EncodeError::OutOfRange => f.write_str("value is outside the fixed-point range"),
        }
    }
}

impl core::error::Error for EncodeError {}

impl Default for FixedPoint {
    fn default() -> Self {
        Self::new(Self::DEFAULT_FRAC_BITS)
    }
}

impl FixedPoint {
    /// CrypTen's and MPCFormer's precision: 16 fractional bits.
    pub const DEFAULT_FRAC_BITS: u32 = 16;

    /// A format with `frac_bits` fractional bits.
    ///
    /// # Panics
    /// If `frac_bits > 30`: products would no longer fit a 64-bit ring.
    pub const fn new(frac_bits: u32) -> Self {
        assert!(frac_bits <= 30, "at most 30 fractional bits");
        Self { frac_bits }
    }

    /// The number of fractional bits f.
    pub const fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// The scale 2^f.
    pub fn scale(&self) -> f64 {
        (1u64 << self.frac_bits) as f64
    }

    /// The exclusive bound 2^(k-1-f) on |x| for ring `R`.
    pub fn max_abs<R: Ring>(&self) -> f64 {
        libm::ldexp(1.0, (R::BITS - 1 - self.frac_bits) as i32)
    }

    /// Encodes `x`, rounding to nearest and saturating at the range edge (NaN encodes as 0).
    pub fn encode<R: Ring>(&self, x: f64) -> R {
        Self::encode_scaled(x, self.scale(), Self::ring_bound::<R>())
    }

    /// 2^(k-1): the exclusive bound on |x · 2^f| that ring `R` holds.
    fn ring_bound<R: Ring>() -> f64 {
        libm::ldexp(1.0, (R::BITS - 1) as i32)
    }

    /// [`FixedPoint::encode`] with the scale and the ring's bound computed once by the caller.
    fn encode_scaled<R: Ring>(x: f64, scale: f64, bound: f64) -> R {
        let scaled = x * scale;
        // Fast path, exact like `libm::round` (half away from zero): the cast truncates, the
        // fraction r - trunc(r) is exact, and |r| < bound - 1 keeps the rounded value in range
        // (NaN and infinities fail the test and take the checked path below).
        if scaled.abs() < bound - 1.0 {
            let truncated = scaled as i64;
            let fraction = scaled - truncated as f64;
            return R::from_i64(truncated + (fraction >= 0.5) as i64 - (fraction <= -0.5) as i64);
        }
        match Self::try_encode_scaled(x, scale, bound) {
            Ok(v) => v,
            Err(EncodeError::NotFinite) if x.is_nan() => R::ZERO,
            Err(_) => {
                let edge = (1i64 << (R::BITS - 2)) - 1 + (1i64 << (R::BITS - 2));
                if x > 0.0 { R::from_i64(edge) } else { R::from_i64(-edge) }
            }
        }
    }

    /// Encodes `x`, rounding to nearest; fails on non-finite or out-of-range values.
    pub fn try_encode<R: Ring>(&self, x: f64) -> Result<R, EncodeError> {
        Self::try_encode_scaled(x, self.scale(), Self::ring_bound::<R>())
    }

    /// [`FixedPoint::try_encode`] with the scale and the ring's bound given.
    fn try_encode_scaled<R: Ring>(x: f64, scale: f64, bound: f64) -> Result<R, EncodeError> {
        if !x.is_finite() {
            return Err(EncodeError::NotFinite);
        }
        let scaled = libm::round(x * scale);
        if scaled >= bound || scaled <= -bound {
            return Err(EncodeError::OutOfRange);
        }
        Ok(R::from_i64(scaled as i64))
    }

    /// Decodes a ring element through its signed view.
    pub fn decode<R: Ring>(&self, v: R) -> f64 {
        v.to_i64() as f64 / self.scale()
    }

    /// Encodes a slice (saturating, as [`FixedPoint::encode`]).
    pub fn encode_into<R: Ring>(&self, xs: &[f64], out: &mut [R]) {
        let (scale, bound) = (self.scale(), Self::ring_bound::<R>());
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = Self::encode_scaled(x, scale, bound);
        }
    }

    /// Decodes a slice.
    pub fn decode_into<R: Ring>(&self, vs: &[R], out: &mut [f64]) {
        for (o, &v) in out.iter_mut().zip(vs) {
            *o = self.decode(v);
        }
    }

    /// Encodes a slice into a new vector.
    #[cfg(feature = "alloc")]
    pub fn encode_vec<R: Ring>(&self, xs: &[f64]) -> alloc::vec::Vec<R> {
        let (scale, bound) = (self.scale(), Self::ring_bound::<R>());
        xs.iter().map(|&x| Self::encode_scaled(x, scale, bound)).collect()
    }

    /// Encodes a vector in its own buffer where `R` is as wide as f64 (the standard library
    /// collects a mapped `Vec` in place when the sizes agree): a model's weights are the largest
    /// thing the owner encodes, and a second buffer costs a page fault per 4 KiB.
    #[cfg(feature = "alloc")]
    pub fn encode_owned<R: Ring>(&self, xs: alloc::vec::Vec<f64>) -> alloc::vec::Vec<R> {
        let (scale, bound) = (self.scale(), Self::ring_bound::<R>());
        xs.into_iter().map(|x| Self::encode_scaled(x, scale, bound)).collect()
    }

    /// Decodes a slice into a new vector.
    #[cfg(feature = "alloc")]
    pub fn decode_vec<R: Ring>(&self, vs: &[R]) -> alloc::vec::Vec<f64> {
        vs.iter().map(|&v| self.decode(v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_by_rounding() {
        let fp = FixedPoint::default();
        assert_eq!(fp.encode::<u64>(1.5), 98304);
        assert_eq!(fp.encode::<u64>(-1.5).to_i64(), -98304);
        // CrypTen truncates 0.1 to 6553; rounding gives the nearer 6554.
        assert_eq!(fp.encode::<u64>(0.1), 6554);
        assert_eq!(fp.encode::<u64>(-0.1).to_i64(), -6554);
        assert_eq!(fp.decode(fp.encode::<u64>(-3.25)), -3.25);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn encodes_a_vector_in_its_own_buffer() {
        let fp = FixedPoint::default();
        let xs = alloc::vec![1.5, -0.1, f64::NAN, 1e300, -2.0e-6, 0.0];
        let expected: alloc::vec::Vec<u64> = fp.encode_vec(&xs);
        let buffer = xs.as_ptr() as usize;
        let encoded: alloc::vec::Vec<u64> = fp.encode_owned(xs);
        assert_eq!(encoded, expected);
        assert_eq!(encoded.as_ptr() as usize, buffer, "u64 reuses the f64 buffer");
        // A narrower ring gets a buffer of its own, the same values.
        assert_eq!(fp.encode_owned::<u32>(alloc::vec![1.5, -2.5]), fp.encode_vec::<u32>(&[1.5, -2.5]));
    }

    #[test]
    fn range_edges() {
        let fp = FixedPoint::default();
        let max = fp.max_abs::<u64>();
        assert_eq!(max, (1u64 << 47) as f64);
        assert_eq!(fp.try_encode::<u64>(max), Err(EncodeError::OutOfRange));
        assert_eq!(fp.try_encode::<u64>(-max), Err(EncodeError::OutOfRange));
        assert!(fp.try_encode::<u64>(max - 1.0).is_ok());
        assert_eq!(fp.try_encode::<u64>(f64::NAN), Err(EncodeError::NotFinite));
        assert_eq!(fp.encode::<u64>(f64::INFINITY), i64::MAX as u64);
        assert_eq!(fp.encode::<u64>(-1e300).to_i64(), -i64::MAX);
        assert_eq!(fp.encode::<u64>(f64::NAN), 0);
        assert_eq!(fp.encode::<u32>(1e9), i32::MAX as u32);
        assert_eq!(fp.decode(fp.encode::<u32>(-2.5)), -2.5);
    }

    /// The fast path of `encode` against the checked one (`libm::round`, then the range test):
    /// ties both ways, the neighbours of ties, values beside each ring's bound, huge values.
    #[test]
    fn fast_encoding_matches_the_checked_one() {
        fn checked<R: Ring>(fp: &FixedPoint, x: f64) -> R {
            let edge = (1i64 << (R::BITS - 2)) - 1 + (1i64 << (R::BITS - 2));
            match fp.try_encode::<R>(x) {
                Ok(v) => v,
                Err(_) if x.is_nan() => R::ZERO,
                Err(_) => R::from_i64(if x > 0.0 { edge } else { -edge }),
            }
        }
        for frac in [0, 16, 30] {
            let fp = FixedPoint::new(frac);
            let unit = 1.0 / fp.scale();
            let mut xs = alloc::vec![0.0, -0.0, f64::MIN_POSITIVE, 1e300, -1e300, f64::INFINITY];
            for k in -40i32..40 {
                let tie = (k as f64 + 0.5) * unit;
                xs.extend([tie, -tie, libm::nextafter(tie, 0.0), libm::nextafter(tie, f64::INFINITY)]);
            }
            for bits in [31, 32, 62, 63, 64] {
                let edge = libm::ldexp(1.0, bits - 1) * unit;
                for d in [-2.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5] {
                    xs.extend([edge + d * unit, -edge - d * unit]);
                }
            }
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            for _ in 0..2000 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                xs.push(f64::from_bits(seed) % 1e6);
            }
            for &x in &xs {
                assert_eq!(fp.encode::<u64>(x), checked::<u64>(&fp, x), "u64, f = {frac}, x = {x:e}");
                assert_eq!(fp.encode::<u32>(x), checked::<u32>(&fp, x), "u32, f = {frac}, x = {x:e}");
            }
        }
    }
}
