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
        if Self::in_fast_range(x, scale, Self::fast_limit(bound)) {
            return Self::encode_fast(x, scale);
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

    /// The bound on |x · 2^f| below which [`FixedPoint::encode_fast`] is exact and in range:
    /// 2^51 (the rounding trick's) or, in a narrower ring, its bound less one.
    #[inline(always)]
    fn fast_limit(bound: f64) -> f64 {
        (bound - 1.0).min(2_251_799_813_685_248.0)
    }

    /// Whether `x` takes [`FixedPoint::encode_fast`] (NaN and infinities fail the test).
    #[inline(always)]
    fn in_fast_range(x: f64, scale: f64, limit: f64) -> bool {
        (x * scale).abs() < limit
    }

    /// Rounds r = x · 2^f half away from zero, exactly like `libm::round`, for |r| < 2^51,
    /// with no conversion instruction and no branch (so that loops of it vectorise): adding
    /// 1.5 · 2^52 rounds r to an integer (to even, the FPU's rounding) in the low mantissa
    /// bits, whose difference from the constant's bits is that integer; a tie (r - n = ±0.5
    /// exactly, the difference exact) then moves away from zero.
    #[inline(always)]
    fn encode_fast<R: Ring>(x: f64, scale: f64) -> R {
        const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52
        let r = x * scale;
        let shifted = r + MAGIC;
        let nearest = shifted.to_bits().wrapping_sub(MAGIC.to_bits()) as i64;
        let rest = r - (shifted - MAGIC);
        R::from_i64(nearest + ((rest == 0.5) & (r > 0.0)) as i64 - ((rest == -0.5) & (r < 0.0)) as i64)
    }

    /// Writes into each element of `out` the encoding of `value(index, element)` (saturating,
    /// as [`FixedPoint::encode`]). A block of 256 whose values are all in the fast range (read
    /// once more while in cache) takes the branch-free pass; another goes value by value.
    /// Reading the element itself lets a buffer of f64 bits be encoded in place.
    fn encode_each<R: Ring>(&self, out: &mut [R], value: impl Fn(usize, R) -> f64) {
        let (scale, bound) = (self.scale(), Self::ring_bound::<R>());
        let limit = Self::fast_limit(bound);
        for (b, block) in out.chunks_mut(256).enumerate() {
            let at = 256 * b;
            if block
                .iter()
                .enumerate()
                .fold(true, |all, (i, &o)| all & Self::in_fast_range(value(at + i, o), scale, limit))
            {
                for (i, o) in block.iter_mut().enumerate() {
                    *o = Self::encode_fast(value(at + i, *o), scale);
                }
            } else {
                for (i, o) in block.iter_mut().enumerate() {
                    *o = Self::encode_scaled(value(at + i, *o), scale, bound);
                }
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
        let n = out.len().min(xs.len());
        let xs = &xs[..n];
        self.encode_each(&mut out[..n], |i, _| xs[i]);
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
        let mut out = alloc::vec![R::ZERO; xs.len()];
        self.encode_into(xs, &mut out);
        out
    }

    /// Encodes a vector in its own buffer where `R` is as wide as f64 (each value read as f64
    /// bits and overwritten): a model's weights are the largest thing the owner encodes, and a
    /// second buffer costs a page fault per 4 KiB.
    #[cfg(feature = "alloc")]
    pub fn encode_owned<R: Ring>(&self, xs: alloc::vec::Vec<f64>) -> alloc::vec::Vec<R> {
        match bytemuck::allocation::try_cast_vec::<f64, R>(xs) {
            Ok(mut words) => {
                self.encode_each(&mut words, |_, w| f64::from_bits(bytemuck::cast::<R, u64>(w)));
                words
            }
            Err((_, xs)) => self.encode_vec(&xs),
        }
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
        // Values all in the fast range take the branch-free pass: the same as one at a time
        // (the checked `libm::round` path), ties rounded away from zero.
        let fine: alloc::vec::Vec<f64> = (0..1000)
            .map(|i| (i as f64 - 500.0) / 2048.0 + if i % 7 == 0 { 0.5 / 65536.0 } else { 1e-9 * i as f64 })
            .chain([1e9, -1e9, 3.0e10 + 0.5 / 65536.0, -2.5 / 65536.0, 1.5 / 65536.0])
            .collect();
        let checked: alloc::vec::Vec<u64> = fine.iter().map(|&x| fp.try_encode(x).expect("in range")).collect();
        assert_eq!(fp.encode_vec::<u64>(&fine), checked);
        assert_eq!(fp.encode_owned::<u64>(fine.clone()), checked);
        assert_eq!(fp.encode::<u64>(0.5 / 65536.0), 1, "a tie rounds away from zero");
        assert_eq!(fp.encode::<u64>(-0.5 / 65536.0).to_i64(), -1);
        assert_eq!(fp.encode::<u64>(-2.5 / 65536.0).to_i64(), -3);
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
