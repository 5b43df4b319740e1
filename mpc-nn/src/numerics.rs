//! Numerical functions written once over the [`Backend`] primitives, so that the simulated
//! fixed-point setting and the real protocol run the same algorithm.
//!
//! Where CrypTen's versions break on Transformer ranges, these do not:
//! - **exp** clips at -128, then evaluates (1 + t + t²/2)^128 with t = x/128 at f + 8 bits
//!   (CrypTen's (1 + x/256)^256 at f bits explodes below -512 and loses 1e-3 near 0);
//! - **reciprocal** starts from a per-half-binade guess read off one batch of comparisons against
//!   powers of √2 (a linear combination of the comparison bits, no extra round), then multiplies
//!   the factors (1 + e)(1 + e²)(1 + e⁴) at f + 8 bits; every caller scales its input by a public
//!   power of two first (CrypTen's start diverges above about 253);
//! - **inverse square root** is a line on each sixteenth of a binade of [2^-12, 2^11], picked by
//!   one batch of comparisons (no Newton step);
//! - **erf** and **GeLU** use polynomials in (x/B)² inside [-B, B] and their asymptotes outside
//!   (CrypTen's Taylor erf is useless beyond |x| ≈ 2 and it has no GeLU);
//! - **softmax**, **2Quad** and **2ReLU** normalise rows with the reciprocal above, scaled by a
//!   public power of two tied to the row length, so row sums up to 2^14 and beyond stay right.

use alloc::vec::Vec;

use crate::backend::{Backend, Fused, Product, Result, Spread, broadcast_values};

/// Extra fractional bits of the steps that need them (exp's squarings, Newton iterations).
pub const EXTRA_BITS: u32 = 8;

/// Saturation point of erf, 2√2 (so that (x/B)² is x²/8, a shift): 1 - erf(2√2) = 6.3e-5.
const ERF_BOUND: f64 = 2.0 * core::f64::consts::SQRT_2;
/// erf(x) = x · Σ c_i t^i with t = 2(x/B)² - 1 in [-1, 1] for |x| <= B, |error| < 1.9e-5 on
/// [-B, B] (minimax, Remez exchange).
const ERF_COEFFS: [f64; 9] = [
    0.4976633563236023,
    -0.2384402308111238,
    0.1581157016267438,
    -0.10502848631552157,
    0.0642961192371729,
    -0.03266056951229014,
    0.016194197769940574,
    -0.011288070953358315,
    0.004685706411999361,
];

/// Saturation point of GeLU: |GeLU(x) - relu(x)| < 1.3e-4 beyond 4.
const GELU_BOUND: f64 = 4.0;
/// GeLU(x) - x/2 = x·erf(x/√2)/2 = Σ c_i t^i with t = 2(x/4)² - 1 in [-1, 1], |error| < 3.5e-5 on
/// [-4, 4] (minimax, Remez exchange). In t the coefficients are small (in (x/4)² they reach 50
/// and cancel), so each keeps its precision beside the powers' bits.
const GELU_COEFFS: [f64; 9] = [
    1.4075855090398623,
    0.7327400659488099,
    -0.2265831949716176,
    0.1562675301977762,
    -0.11825300340158056,
    0.06731052894536224,
    -0.04170271103772007,
    0.04358403909560227,
    -0.021109942112610414,
];

/// Fractional bits of the polynomials' operands: t's powers come out at twice as many.
const POLY_BITS: u32 = 16;
/// Fractional bits of the polynomials' coefficients where they multiply t's powers: each kept
/// to 2^-19, and the sums at 2·POLY_BITS + 18 bits, small enough to open on a few bits more.
const COEFF_BITS: u32 = 18;

/// The width a value of magnitude below `bound` at `frac` bits opens on (|v| < 2^(m-2), with a
/// bit to spare), or the ring's where that is no narrower.
fn width_for(bound: f64, frac: u32) -> Option<u32> {
    let m = i64::from(frac) + libm::ceil(libm::log2(bound.max(1e-9))) as i64 + 3;
    u32::try_from(m.max(3)).ok().filter(|&m| m < 64)
}

/// Where the start of the Newton iterations is constant: on the intervals between the bounds
/// t_i = 2^(i / per_octave), i in `lowest..=highest`.
#[derive(Clone, Copy, Debug)]
struct Intervals {
    lowest: i32,
    highest: i32,
    per_octave: i32,
}

impl Intervals {
    fn bound(&self, i: i32) -> f64 {
        libm::exp2(i as f64 / self.per_octave as f64)
    }
    fn indices(&self) -> core::ops::RangeInclusive<i32> {
        self.lowest..=self.highest
    }
}

/// The reciprocal starts per half-binade on [2^-12, 2^9] (43 comparisons, in one batch: it runs
/// on one value per row, so they cost little beside a Newton step's four rounds) ...
const RECIPROCAL_START: Intervals = Intervals { lowest: -24, highest: 18, per_octave: 2 };
/// ... within 0.172 of the answer (relative): three factors (1 + e)(1 + e²)(1 + e⁴) bring it to
/// e⁸ < 1e-6.
const RECIPROCAL_FACTORS: usize = 3;
/// The inverse square root is a line on each sixteenth of a binade of [2^-12, 2^11] (368
/// comparisons in one batch: it runs on one value per token; relative error below 1e-4), and
/// constant outside. The range reaches down to 2^-12 because a LayerNorm's variance can be that
/// small (an embedding sum of N(0, 0.02²) tables gives 2^-9).
const INV_SQRT_PIECES: Intervals = Intervals { lowest: -192, highest: 176, per_octave: 16 };
/// Fractional bits of the inverse square root's result ([`inv_sqrt_wide`]): 1/√x ≤ 2^6 on the
/// range (and the first line's intercept below 2^6.6), so the result stays below 2^59 in the
/// ring.
pub const INV_SQRT_BITS: u32 = 52;
/// Fractional bits of x where the pieces' slopes multiply it: 12 significant bits at x = 2^-12,
/// while the smallest slope (2^-17.5, at 2^11) keeps 10.5 at `INV_SQRT_BITS - 24` bits (14 at
/// 2^8, a large variance).
const INV_SQRT_INPUT_BITS: u32 = 24;

/// What a saturating function is above its core interval.
#[derive(Clone, Copy, Debug)]
enum Asymptote {
    /// A constant.
    Const(f64),
    /// The identity, x.
    Identity,
}

/// Σ c_i t^i for t = 2(x/B)² - 1, in [-1, 1] for |x| <= B where B² = 2^`e`, given x² at 2f bits
/// (untruncated), and the bits of the result; three rounds:
///
///   p = (c0 + c1 t + c2 t² + c3 t³) + t⁴·(c4 + c5 t + c6 t² + c7 t³ + c8 t⁴).
///
/// t is x² read at 2f + e - 1 bits, less 1 (local). Then t² (round 1, t opened on 3 bits more
/// than its own); t³ and t⁴ from one opening of t and t² (round 2, both narrow); t⁴ (narrow)
/// times the upper part (round 3, the part on as many bits as its size needs). Each opening cuts
/// its operands to [`POLY_BITS`], the powers coming out at twice that; the coefficients are
/// small (|t| <= 1), so the sums, at [`COEFF_BITS`] more, keep them to 2^-19. Beyond B, t > 1
/// and the result is meaningless (the callers keep it only inside).
fn even_polynomial<B: Backend + ?Sized>(
    b: &mut B,
    square: &[B::Elem],
    e: u32,
    coeffs: &[f64; 9],
) -> Result<(B::Vector, u32)> {
    let shape = mpc_core::Error::ShapeMismatch;
    let f = b.frac_bits();
    let t_bits = 2 * f + e - 1;
    // 2(x/B)² = x²/2^(e-1): the ring value of x² read at e - 1 more bits.
    let t = b.add_scalar(&b.extend(square, e - 1, 1 - e as i32), -1.0, t_bits);
    let (p_bits, powers) = (POLY_BITS, 2 * POLY_BITS);
    if t_bits < p_bits {
        return Err(shape);
    }
    let (low_c, up_c) = coeffs.split_at(4);
    let magnitude = |c: &[f64]| c.iter().map(|v| libm::fabs(*v)).sum::<f64>();
    let (c_bits, sum_bits) = (COEFF_BITS, powers + COEFF_BITS);
    // Sums far below 2^61 in the ring, with room for a caller's addend (GeLU's x/2).
    if width_for(magnitude(low_c).max(magnitude(up_c)) + 4.0, sum_bits).is_none() {
        return Err(shape);
    }
    // |t| <= 1 where the value is kept: its square opens on t_bits + 3 bits.
    let square = Fused { width: width_for(1.0, t_bits), ..Fused::square(&t, t_bits - p_bits) };
    let t2 = b.mul_shifted(&[square])?.pop().ok_or(shape)?;
    // t opens on t_bits + 3 bits again, t² in [0, 1] on `powers` + 3.
    let item = Fused {
        y_square: true,
        width: width_for(1.0, t_bits),
        y_width: width_for(1.0, powers),
        ..Fused::elementwise(&t, t_bits - p_bits, &t2, powers - p_bits)
    };
    let [t3, t4]: [B::Vector; 2] = b.mul_shifted(&[item])?.try_into().map_err(|_| shape)?;
    // c0 + c1 t + c2 t² + c3 t³ (and the same from c4) at sum_bits: t at t_bits, the rest at
    // `powers`.
    // Each sum's terms: its coefficients from the second on, against t, t², t³ (and t⁴).
    let powers_at = [(&t[..], sum_bits - t_bits), (&t2[..], c_bits), (&t3[..], c_bits), (&t4[..], c_bits)];
    let terms = |c: &[f64]| -> Vec<(&[B::Elem], f64, u32)> {
        powers_at.iter().zip(&c[1..]).map(|(&(a, frac), &ck)| (a, ck, frac)).collect()
    };
    let low = b.affine(&terms(low_c), low_c[0], sum_bits);
    let upper = b.affine(&terms(up_c), up_c[0], sum_bits);
    // t⁴ in [0, 1] opens on `powers` + 3 bits, the upper part on as many as its size needs.
    let item = Fused {
        width: width_for(1.0, powers),
        y_width: width_for(magnitude(up_c), sum_bits),
        ..Fused::elementwise(&t4, powers - p_bits, &upper, sum_bits - p_bits)
    };
    let top = b.mul_shifted(&[item])?.pop().ok_or(shape)?;
    Ok((b.affine(&[(&low, 1.0, 0), (&top, 1.0, sum_bits - powers)], 0.0, sum_bits), sum_bits))
}

/// `inside` (at `frac` ≥ f bits, of magnitude below `size` there) on [-bound, bound], a
/// constant below and `above` beyond, at f bits, given the comparisons of x with -bound and bound
/// and the upper one's bits times x ([`Backend::below_times_square`]): one product, which also
/// truncates `inside`, its bit opened on 3 bits and `inside` on as many as `size` needs.
fn saturate<B: Backend + ?Sized>(
    b: &mut B,
    x: &[B::Elem],
    (bits, upper_x): (&[B::Elem], &[B::Elem]),
    (inside, frac, size): (&[B::Elem], u32, f64),
    below: f64,
    above: Asymptote,
) -> Result<B::Vector> {
    let shape = mpc_core::Error::ShapeMismatch;
    let f = b.frac_bits();
    let n = x.len();
    if bits.len() != 2 * n || upper_x.len() != n {
        return Err(shape);
    }
    // lower = [x < -B], upper = [x < B]: inside = upper - lower, above = 1 - upper.
    let (lower, upper) = bits.split_at(n);
    let in_range = b.sub(upper, lower);
    // Only the kept value is brought to f bits, by the product's own opening: the asymptotes
    // are there already, and a large x at `frac` bits would not fit the ring (out of range the
    // product is of 0).
    // The bit is opened on 3 bits (|in_range| <= 1 < 2^(3-2)), the value, below `size` where it
    // is kept, on as many as that needs.
    let item = Fused {
        width: width_for(1.0, 0),
        y_width: width_for(size, frac),
        ..Fused::elementwise(&in_range, 0, inside, frac - f)
    };
    let kept = b.mul_shifted(&[item])?.pop().ok_or(shape)?;
    let below = b.mul_scalar(lower, below, f);
    let above = match above {
        Asymptote::Identity => b.sub(x, upper_x),
        Asymptote::Const(c) => b.mul_scalar(&b.add_scalar(&b.mul_int(upper, -1), 1.0, 0), c, f),
    };
    Ok(b.add(&b.add(&kept, &below), &above))
}

/// ReLU(x) = x - `[x < 0]`·x, the product read off the comparison with 0
/// ([`Backend::below_times`]), its values within `spread` of 0.
pub fn relu<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem], spread: Spread) -> Result<B::Vector> {
    let [_, dropped, _] = b.below_times(x, b.frac_bits(), &[0.0], 0, spread)?;
    Ok(b.sub(x, &dropped))
}

/// e^x, valid for x ≤ 0: clipped at -128, then (1 + t + t²/2)^128 with t = x/128 at f + 8 bits.
///
/// t² and every square are left untruncated (at twice f + 8 bits); each squaring's opening cuts
/// its operand back to f + 8 bits ([`Backend::mul_shifted`]): one round per squaring, and one
/// truncation at the end.
pub fn exp<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem]) -> Result<B::Vector> {
    let f = b.frac_bits();
    let (y, y_bits) = exp_wide(b, x, f + EXTRA_BITS, Spread::Full)?;
    b.reduce(&y, y_bits - f)
}

/// [`exp`] left at 2·`last` bits, untruncated: the last squaring's opening cuts its operand to
/// `last` bits (f + 8 for [`exp`]), where a caller that truncates the result in its own next
/// opening wants the values small in the ring. The clip's comparison assumes x + 128 within
/// `spread` of 0.
fn exp_wide<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem], last: u32, spread: Spread) -> Result<(B::Vector, u32)> {
    let f = b.frac_bits();
    let high = f + EXTRA_BITS;
    // max(x, -128) = relu(x + 128) - 128.
    let lifted = b.add_scalar(x, 128.0, f);
    let kept = relu(b, &lifted, spread)?;
    // t = (kept - 128) / 128 at `high` bits: an exact scaling, 1/128 at EXTRA_BITS >= 7 bits.
    let t = b.affine(&[(&kept, 1.0 / 128.0, EXTRA_BITS)], -1.0, high);
    // t²/2 at 2·high + 1 bits (the halving is a reading at one more bit), beside t and 1; t
    // is in [-1, 0]: its square opens on high + 3 bits.
    let wide = 2 * high + 1;
    let square = Fused { width: width_for(1.0, high), ..Fused::square(&t, 0) };
    let half_t2 = b.mul_shifted(&[square])?.pop().ok_or(mpc_core::Error::ShapeMismatch)?;
    let mut y = b.affine(&[(&t, 1.0, wide - high), (&half_t2, 1.0, 0)], 1.0, wide);
    let mut y_bits = wide;
    const SQUARINGS: usize = 7;
    for squaring in 1..=SQUARINGS {
        let operand = if squaring == SQUARINGS { last.min(high) } else { high };
        let shift = y_bits - operand;
        // y is in (0, 1] (x <= 0): its square opens on y_bits + 3 bits.
        let square = Fused { width: width_for(1.0, y_bits), ..Fused::square(&y, shift) };
        y = b.mul_shifted(&[square])?.pop().ok_or(mpc_core::Error::ShapeMismatch)?;
        y_bits = 2 * operand;
    }
    Ok((y, y_bits))
}

/// 1/y at 2(f + 8) bits for y = x·2^`pow2` in [2^-12, 2^9], x at `frac` bits: piecewise start
/// r, then with e = 1 - y·r, the product r·(1 + e)(1 + e²)(1 + e⁴)··· = (1 - e^(2^k))/y.
///
/// The same error as k Newton steps (e ← e²) in k levels of products instead of 2k: each level
/// multiplies the running product by the next factor while squaring the power of e, both
/// operands truncated by the level's own opening. The start and x·r come out of the
/// comparisons' rounds ([`Backend::below_times`], x truncated by `shift` bits there), and the
/// scale 2^`pow2` rides on the comparisons' bounds and on reading x·r at more bits. Under MPC:
/// four rounds, then one per level.
fn reciprocal_high<B: Backend + ?Sized>(
    b: &mut B,
    x: &[B::Elem],
    frac: u32,
    pow2: i32,
    shift: u32,
) -> Result<B::Vector> {
    let high = b.frac_bits() + EXTRA_BITS;
    let n = x.len();
    // On [lo, hi), the guess 2/(lo + hi) gives |1 - y·guess| ≤ (√2 - 1)/(√2 + 1) < 0.172 on
    // half-binades; below the first bound g(lowest), above the last g(top).
    let pieces = RECIPROCAL_START;
    let g = |i: i32| 2.0 / (pieces.bound(i - 1) + pieces.bound(i));
    let guesses: Vec<f64> = pieces.indices().chain([pieces.highest + 1]).map(g).collect();
    // y < t exactly when x < t·2^-pow2.
    let bounds: Vec<f64> = pieces.indices().map(|i| libm::ldexp(pieces.bound(i), -pow2)).collect();
    let [below, below_x, x_shifted] = b.below_times(x, frac, &bounds, shift, Spread::Full)?;
    let r0 = by_piece(b, &below, n, &guesses, high, None);
    // x·r0 at frac - shift + high bits; y·r0 = x·r0·2^pow2, the same ring value read at
    // `unscale` more bits.
    let xr = by_piece(b, &below_x, n, &guesses, high, Some(&x_shifted));
    let unscale = u32::try_from(-pow2).map_err(|_| mpc_core::Error::ShapeMismatch)?;
    let mut p_bits = frac - shift + high + unscale;
    let mut power = b.add_scalar(&b.mul_int(&b.extend(&xr, unscale, pow2), -1), 1.0, p_bits);
    let (mut r, mut r_bits) = (r0, high);
    for level in 0..RECIPROCAL_FACTORS {
        let (rs, ps) = (r_bits - high, p_bits - high);
        let mut items = alloc::vec![Fused::elementwise(&r, rs, &power, ps)];
        if level + 1 < RECIPROCAL_FACTORS {
            items.push(Fused::square(&power, ps));
        }
        let mut products = b.mul_shifted(&items)?.into_iter();
        let r_power = products.next().ok_or(mpc_core::Error::ShapeMismatch)?;
        let next_power = products.next();
        r = b.add(&b.extend(&r, 2 * high - r_bits, 0), &r_power);
        r_bits = 2 * high;
        if let Some(p) = next_power {
            (power, p_bits) = (p, 2 * high);
        }
    }
    Ok(r)
}

/// The public value of each value's piece, at `frac` bits: `values[j]` on the j-th of the
/// pieces that the bounds behind `below` ([`Backend::below`], bound-major) cut the line into
/// (T bounds, T + 1 pieces). With c_i = [x < t_i], the sum v_T + Σ_i c_i·(v_i - v_(i+1))
/// telescopes to v_j on piece j: a local step. Each value is first rounded to the grid of
/// `frac` bits (where a double holds it exactly), so that the differences telescope exactly.
///
/// With `unit` = y, `below` holds the products c_i·y ([`Backend::below_times`]) and the sum is
/// v_j·y (at `frac` more bits than y).
fn by_piece<B: Backend + ?Sized>(
    b: &B,
    below: &[B::Elem],
    n: usize,
    values: &[f64],
    frac: u32,
    unit: Option<&[B::Elem]>,
) -> B::Vector {
    let grid = |v: f64| {
        let scaled = libm::ldexp(v, frac as i32);
        if libm::fabs(scaled) < (1u64 << 52) as f64 { libm::ldexp(libm::round(scaled), -(frac as i32)) } else { v }
    };
    let v: Vec<f64> = values.iter().map(|&v| grid(v)).collect();
    let top = alloc::vec![v.last().copied().unwrap_or(0.0); n];
    let mut acc = match unit {
        None => b.public(&top, frac),
        Some(y) => b.mul_scalar(y, v.last().copied().unwrap_or(0.0), frac),
    };
    for (i, bits) in below.chunks_exact(n.max(1)).enumerate() {
        let step = v[i] - v[i + 1];
        if step != 0.0 {
            acc = b.add(&acc, &b.mul_scalar(bits, step, frac));
        }
    }
    acc
}

/// The line a + s·x closest to a convex `g` on [lo, hi] in the largest error: the chord, lowered
/// by half its largest gap above `g`, which is where g' equals the chord's slope
/// (`tangent_at(slope)`).
fn line_on(g: impl Fn(f64) -> f64, tangent_at: impl Fn(f64) -> f64, lo: f64, hi: f64) -> (f64, f64) {
    let slope = (g(hi) - g(lo)) / (hi - lo);
    let chord_at_lo = g(lo);
    let t = tangent_at(slope);
    let gap = chord_at_lo + slope * (t - lo) - g(t);
    (chord_at_lo - slope * lo - gap / 2.0, slope)
}

/// 1/x for x in [2^-12, 2^9] (see [`Backend::reciprocal`]).
pub fn reciprocal<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem]) -> Result<B::Vector> {
    let r = reciprocal_high(b, x, b.frac_bits(), 0, 0)?;
    let f = b.frac_bits();
    b.reduce(&r, 2 * (f + EXTRA_BITS) - f)
}

/// 1/√x for x at `frac` bits in [2^-12, 2^11], at [`INV_SQRT_BITS`] bits (see
/// [`Backend::inv_sqrt_wide`]): on each sixteenth of a binade a line a_j + s_j·x, both picked
/// by one batch of comparisons ([`Backend::below`]); s_j·x is one product whose operand x is
/// truncated by the product's own opening ([`Backend::mul_shifted`]). Constant outside the
/// range (its value at the nearer end). Four rounds, no Newton step.
pub fn inv_sqrt_wide<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem], frac: u32) -> Result<B::Vector> {
    let n = x.len();
    let pieces = INV_SQRT_PIECES;
    let bounds: Vec<f64> = pieces.indices().map(|i| pieces.bound(i)).collect();
    let input = frac.min(INV_SQRT_INPUT_BITS);
    let [below, below_x, x_shifted] = b.below_times(x, frac, &bounds, frac - input, Spread::Full)?;
    let g = |v: f64| 1.0 / libm::sqrt(v);
    // g'(t) = -t^(-3/2)/2 = s at t = (-2s)^(-2/3).
    let tangent_at = |s: f64| libm::pow(-2.0 * s, -2.0 / 3.0);
    let (lowest, highest) = (bounds[0], bounds[bounds.len() - 1]);
    let mut lines = alloc::vec![(g(lowest), 0.0)];
    lines.extend(bounds.windows(2).map(|w| line_on(g, tangent_at, w[0], w[1])));
    lines.push((g(highest), 0.0));
    let intercepts: Vec<f64> = lines.iter().map(|l| l.0).collect();
    let slopes: Vec<f64> = lines.iter().map(|l| l.1).collect();
    let a = by_piece(b, &below, n, &intercepts, INV_SQRT_BITS, None);
    let sx = by_piece(b, &below_x, n, &slopes, INV_SQRT_BITS - input, Some(&x_shifted));
    Ok(b.add(&a, &sx))
}

/// 1/√x for x in [2^-12, 2^11] at f bits (see [`Backend::inv_sqrt`]).
pub fn inv_sqrt<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem]) -> Result<B::Vector> {
    let f = b.frac_bits();
    let (r, bits) = b.inv_sqrt_wide(x, f)?;
    b.reduce(&r, bits - f)
}

/// erf for |x| < 2^16 ([`Spread::ACTIVATIONS`]): the comparisons with ±3 first, whose opening
/// also gives x² for the polynomial inside.
pub fn erf<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem]) -> Result<B::Vector> {
    let f = b.frac_bits();
    let high = f + EXTRA_BITS;
    let [bits, times_x, square, _] = b.below_times_square(x, f, &[-ERF_BOUND, ERF_BOUND], 0, Spread::ACTIVATIONS)?;
    let (q, q_bits) = even_polynomial(b, &square, 3, &ERF_COEFFS)?;
    // Where the value is kept, |x| <= B and q = erf(x)/x in (0.35, 1.2): both open narrow.
    let item = Fused {
        width: width_for(ERF_BOUND, f),
        y_width: width_for(1.2, q_bits),
        ..Fused::elementwise(x, 0, &q, q_bits - high)
    };
    let inside = b.mul_shifted(&[item])?.pop().ok_or(mpc_core::Error::ShapeMismatch)?;
    let compared = (&bits[..], &times_x[..]);
    saturate(b, x, compared, (&inside, f + high, 1.0), -1.0, Asymptote::Const(1.0))
}

/// GeLU(x) = x·Φ(x) for |x| < 2^16 ([`Spread::ACTIVATIONS`]): x/2 + an even polynomial inside
/// [-4, 4], relu outside; the comparisons with ±4 first, whose opening also gives x² for the
/// polynomial.
pub fn gelu<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem]) -> Result<B::Vector> {
    gelu_at(b, x, b.frac_bits())
}

/// [`gelu`] of a product z at 2f bits ([`Backend::gelu_of_product`]): the comparisons' opening
/// truncates it to f bits too, their digits reading it at f bits.
pub fn gelu_of_product<B: Backend + ?Sized>(b: &mut B, z: &[B::Elem]) -> Result<B::Vector> {
    gelu_at(b, z, 2 * b.frac_bits())
}

/// GeLU of x at `frac` >= f bits, the result at f bits.
fn gelu_at<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem], frac: u32) -> Result<B::Vector> {
    let f = b.frac_bits();
    let bounds = [-GELU_BOUND, GELU_BOUND];
    let shift = frac.checked_sub(f).ok_or(mpc_core::Error::ShapeMismatch)?;
    let [bits, times_y, square, y] = b.below_times_square(x, frac, &bounds, shift, Spread::ACTIVATIONS)?;
    let (h, h_bits) = even_polynomial(b, &square, 4, &GELU_COEFFS)?;
    // y/2 at the polynomial's bits: a shift.
    let half = b.extend(&y, h_bits - f, -1);
    let inside = b.add(&half, &h);
    let compared = (&bits[..], &times_y[..]);
    // Inside [-4, 4] GeLU is in [-0.17, 4].
    saturate(b, &y, compared, (&inside, h_bits, 4.0), 0.0, Asymptote::Identity)
}

/// The logistic sigmoid: σ(|x|) = 1/(1 + e^-|x|) (exp and reciprocal above), mirrored for x < 0.
pub fn sigmoid<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem]) -> Result<B::Vector> {
    let f = b.frac_bits();
    let [negative, flip, _] = b.below_times(x, f, &[0.0], 0, Spread::Full)?;
    // -|x| = x - 2·(x if negative) ... negated: -|x| = 2·flip - x.
    let minus_abs = b.sub(&b.mul_int(&flip, 2), x);
    let e = exp(b, &minus_abs)?;
    let denominator = b.add_scalar(&e, 1.0, f);
    let s = reciprocal(b, &denominator)?;
    // σ(x) = s, or 1 - s for x < 0: s + [x < 0]·(1 - 2s).
    let mirror = b.add_scalar(&b.mul_int(&s, -2), 1.0, f);
    let correction = b.mul_bits(&[(&negative, &mirror)])?.pop().expect("one product");
    Ok(b.add(&s, &correction))
}

/// tanh(x) = 2σ(2x) - 1.
pub fn tanh<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem]) -> Result<B::Vector> {
    let f = b.frac_bits();
    let s = sigmoid(b, &b.mul_int(x, 2))?;
    Ok(b.add_scalar(&b.mul_int(&s, 2), -1.0, f))
}

/// Quad(x) = 0.125x² + 0.25x + 0.5 = (x + 1)²/8 + 0.375: one square, one truncation.
pub fn quad<B: Backend + ?Sized>(b: &mut B, x: &[B::Elem]) -> Result<B::Vector> {
    let f = b.frac_bits();
    let shifted = b.add_scalar(x, QUAD_SHIFT, f);
    let eighth_square = b.square(&shifted, Product::at(f).scaled(-3))?;
    Ok(b.add_scalar(&eighth_square, 0.375, f))
}

/// Quad of a product `z` at double precision ([`Backend::linear_wide`]): its truncation and the
/// square share one opening ([`Backend::square_truncated`]).
pub fn quad_of_product<B: Backend + ?Sized>(b: &mut B, z: &[B::Elem]) -> Result<B::Vector> {
    let f = b.frac_bits();
    let eighth_square = b.square_truncated(z, QUAD_SHIFT, Product::at(f).scaled(-3))?;
    Ok(b.add_scalar(&eighth_square, 0.375, f))
}

/// Quad's square is of x + 1.
const QUAD_SHIFT: f64 = 1.0;

/// 2Quad's square is of x + 5.
const TWO_QUAD_SHIFT: f64 = 5.0;

/// Applies a public 0/1 mask: masked entries become exactly 0 (a local step on shares too).
fn apply_mask<B: Backend + ?Sized>(b: &B, x: B::Vector, mask: Option<&[f64]>) -> Result<B::Vector> {
    match mask {
        None => Ok(x),
        Some(m) if m.len() != x.len() || m.iter().any(|&v| v != 0.0 && v != 1.0) => Err(mpc_core::Error::ShapeMismatch),
        Some(m) => {
            Ok(b.wrap(x.iter().zip(m).map(|(&v, &keep)| if keep == 1.0 { v } else { B::Elem::default() }).collect()))
        }
    }
}

/// Divides each row of `values` (`rows × len`, at `frac` ≥ f bits, non-negative; at most 1 if
/// `at_most_one`, then opened on `frac` + 3 bits) by its sum, where the sums lie in
/// [2^(k-12), 2^(k+9)] for the public `k`; the result is at f bits.
fn normalise_rows<B: Backend + ?Sized>(
    b: &mut B,
    (values, frac, at_most_one): (&[B::Elem], u32, bool),
    rows: usize,
    len: usize,
    k: i32,
) -> Result<B::Vector> {
    let f = b.frac_bits();
    let high = f + EXTRA_BITS;
    let sums = b.sum_rows(values, rows, len);
    // 1/(sum / 2^k) at 2(f + 8) bits; the scale rides on the reciprocal's first product (sum·r,
    // about 2^k at f + f + 8 bits in the ring: below 2^57 for rows up to 2^12 long), whose sums
    // are cut to f bits by the comparisons' opening.
    let r = reciprocal_high(b, &sums, frac, -k, frac - f)?;
    // value (cut to f bits) · r (cut to f + 8 bits), both by the product's opening, / 2^k, then
    // to f bits: the ring product stays below 2^(k + 2f + 8), far from overflow for any
    // realistic row length.
    let item = Fused {
        x: values,
        x_shift: frac - f,
        y: &r,
        y_shift: high,
        rows,
        len,
        broadcast: Some(true),
        with_square: false,
        y_square: false,
        width: width_for(1.0, frac).filter(|_| at_most_one),
        y_width: None,
    };
    let p = b.mul_shifted(&[item])?.pop().ok_or(mpc_core::Error::ShapeMismatch)?;
    let unscale = u32::try_from(k).map_err(|_| mpc_core::Error::ShapeMismatch)?;
    b.reduce(&b.extend(&p, unscale, -k), high + unscale)
}

/// ⌈log2 n⌉ for n ≥ 1.
fn ceil_log2(n: usize) -> i32 {
    (usize::BITS - n.saturating_sub(1).leading_zeros()) as i32
}

fn check_rows<B: Backend + ?Sized>(x: &[B::Elem], rows: usize, len: usize) -> Result<()> {
    if x.len() != rows * len || len == 0 {
        return Err(mpc_core::Error::ShapeMismatch);
    }
    Ok(())
}

/// Softmax of each row: subtract the row maximum, exp, mask, divide by the row sum (in [1, len]
/// when the maximum is unmasked), scaled by 2^⌈log2(len)/2⌉ into the reciprocal's range. The
/// maximum's and the clip's comparisons take each row's scores within 2^16 of each other
/// ([`Spread::ACTIVATIONS`]).
pub fn softmax<B: Backend + ?Sized>(
    b: &mut B,
    x: &[B::Elem],
    rows: usize,
    len: usize,
    mask: Option<&[f64]>,
) -> Result<B::Vector> {
    check_rows::<B>(x, rows, len)?;
    let max = b.max_rows(x, rows, len, Spread::ACTIVATIONS)?;
    let shifted = b.sub(x, &b.wrap(broadcast_values(&max, rows, len, true)));
    // e at 2(f + 4) bits: its row sums stay far inside the ring (2^(2f + 9 + log2 len)), and the
    // normalising product's opening truncates it (no round of its own).
    let f = b.frac_bits();
    let (e, e_bits) = exp_wide(b, &shifted, f + 4, Spread::ACTIVATIONS)?;
    let e = apply_mask(b, e, mask)?;
    normalise_rows(b, (&e, e_bits, true), rows, len, (ceil_log2(len) + 1) / 2)
}

/// 2Quad of each row: m·(x + 5)² / Σ m·(x + 5)², the sum scaled by about 25·len (its value for
/// scores near 0).
pub fn two_quad<B: Backend + ?Sized>(
    b: &mut B,
    x: &[B::Elem],
    rows: usize,
    len: usize,
    mask: Option<&[f64]>,
) -> Result<B::Vector> {
    check_rows::<B>(x, rows, len)?;
    let f = b.frac_bits();
    let shifted = b.add_scalar(x, TWO_QUAD_SHIFT, f);
    let q = b.square(&shifted, wide_square(f))?;
    normalise_two_quad(b, q, rows, len, mask)
}

/// 2Quad of each row of scores given as products at double precision
/// ([`Backend::matmul_many_wide`]): their truncation and the square share one opening.
pub fn two_quad_of_product<B: Backend + ?Sized>(
    b: &mut B,
    z: &[B::Elem],
    rows: usize,
    len: usize,
    mask: Option<&[f64]>,
) -> Result<B::Vector> {
    check_rows::<B>(z, rows, len)?;
    let f = b.frac_bits();
    let q = b.square_truncated(z, TWO_QUAD_SHIFT, wide_square(f))?;
    normalise_two_quad(b, q, rows, len, mask)
}

/// 2Quad's squares of values at `f` bits stay at 2f bits (not truncated): the row sums'
/// comparisons read them as they are, and the products that need them at f bits cut them in
/// their own openings.
const fn wide_square(f: u32) -> Product {
    Product { a: f, b: f, out: 2 * f, pow2: 0 }
}

/// 2Quad after its squares: mask, then divide by the row sums.
fn normalise_two_quad<B: Backend + ?Sized>(
    b: &mut B,
    q: B::Vector,
    rows: usize,
    len: usize,
    mask: Option<&[f64]>,
) -> Result<B::Vector> {
    let q = apply_mask(b, q, mask)?;
    let f = b.frac_bits();
    normalise_rows(b, (&q, 2 * f, false), rows, len, ceil_log2(len) + 5)
}

/// 2ReLU of each row: m·relu(x) / Σ m·relu(x), the sum scaled by about len; the scores within
/// 2^16 of 0 ([`Spread::ACTIVATIONS`]).
pub fn two_relu<B: Backend + ?Sized>(
    b: &mut B,
    x: &[B::Elem],
    rows: usize,
    len: usize,
    mask: Option<&[f64]>,
) -> Result<B::Vector> {
    check_rows::<B>(x, rows, len)?;
    let r = relu(b, x, Spread::ACTIVATIONS)?;
    let r = apply_mask(b, r, mask)?;
    let f = b.frac_bits();
    normalise_rows(b, (&r, f, false), rows, len, ceil_log2(len))
}
