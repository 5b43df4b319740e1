//! Comparisons with public bounds (less-than-zero among them), ReLU, select and max, with
//! dealer-assisted digit tables.
//!
//! To learn [x < t] for |x - t| < 2^(m-2) (m the ring's k bits, or a narrower width), the
//! parties open c = x + 2^(m-2) + r mod 2^m for a dealer mask r; then x - t + 2^(m-2) = c - t - r
//! (mod 2^m) lies in [0, 2^(m-1)), and x < t exactly when its bit m-2 is 0:
//!
//!   [x < t] = 1 ⊕ (c - t)_(m-2) ⊕ r_(m-2) ⊕ [(c - t) mod 2^(m-2) < r mod 2^(m-2)].
//!
//! The last term compares a public value with the dealer's secret one. The dealer splits r into
//! digits and hands out XOR-shared truth tables of [v < digit] and [v == digit]; read at the
//! public digits of c - t they give every digit's comparison without a message. Levels of AND
//! gates combine them, and the last level and the conversion to arithmetic shares take one
//! round together (see [`Party::below`]): five rounds in Z_2^64 for a bound or a few (four at
//! a width of 34), against CrypTen's 8 for its adder-based A2B, and about 15 bytes per element
//! and party instead of about 200.

use alloc::vec::Vec;

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod leaves_avx512;

use super::{Party, masked_for_truncation, split_like, truncated_share, truncation_public, truncation_wrap};
use crate::error::Error;
pub(crate) use crate::preprocessing::deal::words_for_bits;
use crate::preprocessing::deal::{
    below_digit_bits, below_digit_width, below_digits, below_products, below_skip, below_square_len, below_table_bits,
    below_table_words, below_times_lens, below_width_check, below_wraps,
};
use crate::preprocessing::{Preprocessing, PreprocessingExt, Request};
use crate::ring::{self, Ring};
use crate::share::Shares;
use crate::transport::Transport;

/// A node of the comparison tree: XOR shares of [a < b] and [a == b] over a range of digits,
/// for every element, as packed bits.
struct Node<R: Ring> {
    lt: Shares<R>,
    eq: Shares<R>,
}

pub(crate) fn set_bit<R: Ring>(words: &mut [R], i: usize, bit: R) {
    let bits = R::BITS as usize;
    words[i / bits] = words[i / bits] ^ bit.shl((i % bits) as u32);
}

/// The lt and eq bits of one word of comparisons for digit `d` of `w` bits: comparison k reads
/// the tables at `bases[k]` (`table_words` words each, `table_bits` bits a digit) at the digit of
/// `lows[k]`. Where a digit's two tables fit one word (4-bit digits) both bits come from one read.
fn digit_leaves<R: Ring>(
    tables: &[R],
    lows: &[u64],
    bases: &[u64],
    (d, w, table_bits, table_words): (usize, u32, usize, usize),
) -> (R, R) {
    let (word_bits, digit_mask) = (R::BITS as usize, (1u64 << w) - 1);
    let same_word = table_bits <= word_bits;
    let (mut lt, mut eq) = (R::ZERO, R::ZERO);
    for (k, (&low, &base)) in lows.iter().zip(bases).enumerate() {
        let table = &tables[base as usize..base as usize + table_words];
        let at = d * table_bits + ((low >> (w * d as u32)) & digit_mask) as usize;
        let (lt_bit, eq_bit) = if same_word {
            let entry = table[at / word_bits].shr_logical((at % word_bits) as u32);
            (entry & R::ONE, entry.shr_logical(1 << w) & R::ONE)
        } else {
            (get_bit(table, at), get_bit(table, at + (1 << w)))
        };
        lt = lt ^ lt_bit.shl(k as u32);
        eq = eq ^ eq_bit.shl(k as u32);
    }
    (lt, eq)
}

/// The ring word of packed bits from bit `from` on: bit j of the result is bit from + j (zeros
/// past the last word).
pub(crate) fn bits_from<R: Ring>(words: &[R], from: usize) -> R {
    let bits = R::BITS as usize;
    let (at, offset) = (from / bits, (from % bits) as u32);
    let low = words[at].shr_logical(offset);
    match words.get(at + 1) {
        // The two parts do not overlap.
        Some(high) if offset > 0 => low ^ high.shl(R::BITS - offset),
        _ => low,
    }
}

pub(crate) fn get_bit<R: Ring>(words: &[R], i: usize) -> R {
    let bits = R::BITS as usize;
    words[i / bits].shr_logical((i % bits) as u32) & R::ONE
}

fn xor_assign<R: Ring>(acc: &mut [R], x: &[R]) {
    for (a, x) in acc.iter_mut().zip(x) {
        *a = *a ^ *x;
    }
}

impl<R: Ring, T: Transport, P: Preprocessing<R>> Party<R, T, P> {
    /// Opens XOR-shared words (packed bits) in one round.
    pub fn open_xor_many(&mut self, xs: &[&[R]]) -> Result<Vec<Vec<R>>, Error> {
        self.exchange_and_combine(xs, |a, b| a ^ b)
    }

    /// Bitwise ANDs of XOR-shared packed bits, all pairs in one round (AND triples).
    pub fn and_many(&mut self, pairs: &[(&[R], &[R])]) -> Result<Vec<Shares<R>>, Error> {
        if pairs.iter().any(|(x, y)| x.len() != y.len()) {
            return Err(Error::ShapeMismatch);
        }
        let total: usize = pairs.iter().map(|(x, _)| x.len()).sum();
        let t = self.material(|p| p.and_triples(total))?;
        let xs = pairs.iter().flat_map(|(x, _)| x.iter());
        let ys = pairs.iter().flat_map(|(_, y)| y.iter());
        let mut d = Shares::zeros(total);
        let mut e = Shares::zeros(total);
        for (i, (x, y)) in xs.zip(ys).enumerate() {
            d[i] = *x ^ t.a[i];
            e[i] = *y ^ t.b[i];
        }
        let opened = self.open_xor_many(&[&d, &e])?;
        let (d, e) = (&opened[0], &opened[1]);
        let p0 = self.is_p0();
        let z = (0..total).map(|i| {
            let z = t.c[i] ^ (d[i] & t.b[i]) ^ (e[i] & t.a[i]);
            if p0 { z ^ (d[i] & e[i]) } else { z }
        });
        Ok(split_like(z, pairs.iter().map(|(x, _)| x.len())))
    }

    /// Arithmetic shares of `[x < 0]` (0 or 1) for each element, valid for |x| < 2^(k-2): a
    /// comparison with the bound 0 ([`Party::below`]), five rounds.
    pub fn ltz(&mut self, x: &[R]) -> Result<Shares<R>, Error> {
        self.below(x, &[R::ZERO], R::BITS)
    }

    /// Arithmetic shares of `[x_i < t_j]` (0 or 1) for every value x_i and every public bound t_j,
    /// bound-major (entry `j · n + i`), valid for |x_i - t_j| < 2^(m-2) in the ring for the
    /// comparisons' `width` m ≤ k. Five rounds for fewer than 16 bounds, four from there; one
    /// fewer at a width of 34 or less (half the digits).
    ///
    /// One mask per value serves every bound: c = x + 2^(m-2) + r mod 2^m is opened once (round
    /// 1, m bits a value on the wire) and each bound reads its comparison off c - t with the
    /// dealer's digit tables
    /// ([`BelowMaterial`](crate::preprocessing::BelowMaterial)): 4-bit digits for a few bounds,
    /// 8-bit ones (half the digits, bigger tables) for many. Levels of AND gates (rounds 2-4,
    /// or 2-3) reduce the digits to a lower and an upper half; their combination and the
    /// conversion to arithmetic shares take one round together (the last): with the dealer's
    /// tables, r's bit m-2 XOR the borrow is L_hi + E_hi·B_lo for three bits that are opened
    /// masked by dealer bits, whose arithmetic shares make the sum and the product linear.
    ///
    /// A width below the ring's is for values known to lie near the bounds (activations at f
    /// fractional bits, |x - t| < 2^(m-2-f) in real units; products and squares also need
    /// |x| < 2^(m-2) in the ring): out of that range the results are wrong (the opening stays
    /// uniformly masked, so nothing leaks).
    pub fn below(&mut self, x: &[R], bounds: &[R], width: u32) -> Result<Shares<R>, Error> {
        let [bits, ..] = self.compare_with_bounds(x, bounds, None, false, width)?;
        Ok(bits)
    }

    /// [`Party::below`] together with y = x >> `shift` and every comparison's bit times its
    /// value's y, `[bits, products, y]` (bits and products bound-major), in the same rounds
    /// and traffic: the comparisons' opening also truncates x (as [`Party::truncate`] does,
    /// within one unit), and the dealer's products of its bit masks with the truncation's make
    /// each bit · y linear after the last round. The products are not truncated.
    pub fn below_times(&mut self, x: &[R], bounds: &[R], shift: u32, width: u32) -> Result<[Shares<R>; 3], Error> {
        let [bits, products, y, _] = self.compare_with_bounds(x, bounds, Some(shift), false, width)?;
        Ok([bits, products, y])
    }

    /// [`Party::below`] together with y = x >> `shift`, the last bound's bits times their y (a
    /// saturating function's top asymptote, n products) and each y's square (exact ring
    /// products, not truncated), `[bits, products, squares, y]`, in the same rounds and traffic:
    /// the comparisons' opening c = x + 2^(m-2) + r makes y = p - (ρ >> s) + w·msb(ρ) as a dealer
    /// truncation reads it (p and w public, ρ = r mod 2^m), and the dealer's (ρ >> s)² and
    /// (ρ >> s)·msb(ρ) make y² linear. The comparisons are read at y's resolution: their digits
    /// skip the s low bits, which an opening narrower than the ring does not send either, so a
    /// bit may err for x within 2^(s+1) of a bound (none does without a shift). Needs
    /// 2(m - s) >= k where the opening wraps (a shift or a narrow width).
    pub fn below_times_square(
        &mut self,
        x: &[R],
        bounds: &[R],
        shift: u32,
        width: u32,
    ) -> Result<[Shares<R>; 4], Error> {
        let [bits, products, y, squares] = self.compare_with_bounds(x, bounds, Some(shift), true, width)?;
        Ok([bits, products, squares, y])
    }

    /// The comparisons, `[bits, products, y, squares]`: the products and y empty when `times`
    /// is `None`, the squares (of y) empty unless `square` (which needs `times`).
    fn compare_with_bounds(
        &mut self,
        x: &[R],
        bounds: &[R],
        times: Option<u32>,
        square: bool,
        width: u32,
    ) -> Result<[Shares<R>; 4], Error> {
        let (n, t) = (x.len(), bounds.len());
        let m = n * t;
        let request = Request::Below { n, bounds: t, times, square, width };
        // The dealer's checks of the width (before any shift by it).
        below_width_check::<R>(t, times, square, width)?;
        // A square's comparisons are read at its truncation's resolution.
        let (skip, digit_width) = (below_skip(times, square), below_digit_width(times, square, width));
        let mut mat = self.material(|p| p.below(request))?;
        let wraps = below_wraps::<R>(times, width);
        // The comparisons with products are the last `with_products` (bound-major).
        let with_products_len = below_products(n, t, square);
        let first_product = m.checked_sub(with_products_len).ok_or(Error::ShapeMismatch)?;
        let (value_len, cross_len) = below_times_lens::<R>(n, with_products_len, times, width);
        if (mat.n, mat.bounds, mat.times, mat.width) != (n, t, times, width)
            || mat.tables.len() != n * below_table_words::<R>(t, digit_width)
            || mat.value_trunc.len() != value_len
            || mat.cross.len() != cross_len
            || mat.square.len() != below_square_len::<R>(n, square, times, width)
        {
            return Err(Error::MaterialMismatch);
        }
        // Without a wrap, y is c - r itself: r is kept beside its use in the opening.
        let exact_mask = (times.is_some() && !wraps).then(|| mat.r.clone());
        // Round 1: open c = x + 2^(m-2) + r mod 2^m.
        let p0 = self.is_p0();
        let masked = masked_for_truncation(x.iter(), core::mem::take(&mut mat.r), p0, width);
        // The digits and y read c >> skip only: its low bits stay home ([`Segment`]).
        let c = self.open_low_bits(masked, width, skip)?;

        // Leaves: per digit, the XOR-shared bits [c' digit < r digit] and [c' digit == r digit]
        // of every comparison (c' = c - t mod 2^m), read from the value's tables (lt and eq of
        // digit d at 2d and 2d + 1, then c'_(m-2)).
        let digits = below_digits(t, digit_width);
        let words = words_for_bits::<R>(m);
        let table_words = below_table_words::<R>(t, digit_width);
        let (w, table_bits) = (below_digit_bits(t), below_table_bits(t));
        let low_mask = (1u64 << (width - 2)) - 1;
        let word_bits = R::BITS as usize;
        let mut leaves: Vec<Shares<R>> = (0..2 * digits + 1).map(|_| Shares::zeros(words)).collect();
        // Tables of 64-bit words are read on vectors where the CPU has them ([`leaves_avx512`]).
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        let vector_tables = bytemuck::try_cast_slice::<R, u64>(&mat.tables)
            .ok()
            .filter(|_| word_bits == 64)
            .and_then(leaves_avx512::VectorTables::new);
        // A word of comparisons at a time: their digits' offsets first, then each digit's bits
        // gathered in registers.
        let (mut lows, mut bases) = (Vec::with_capacity(word_bits), Vec::with_capacity(word_bits));
        let (mut i, mut j) = (0, 0);
        for (word, q0) in (0..m).step_by(word_bits).enumerate() {
            lows.clear();
            bases.clear();
            let mut high = R::ZERO;
            for k in 0..word_bits.min(m - q0) {
                let shifted = c[i].wrapping_sub(&bounds[j]);
                high = high ^ (shifted.shr_logical(width - 2) & R::ONE).shl(k as u32);
                lows.push((shifted.to_u64() & low_mask) >> skip);
                bases.push((i * table_words) as u64);
                (i, j) = if i + 1 == n { (0, j + 1) } else { (i + 1, j) };
            }
            leaves[2 * digits][word] = high;
            for d in 0..digits {
                #[cfg(all(feature = "std", target_arch = "x86_64"))]
                if let Some(tables) = vector_tables {
                    let digit = leaves_avx512::Digit::new(d, w, table_bits);
                    let (lt, eq) = tables.digit_leaves(&lows, &bases, digit).ok_or(Error::MaterialMismatch)?;
                    leaves[2 * d][word] = R::from_u64(lt);
                    leaves[2 * d + 1][word] = R::from_u64(eq);
                    continue;
                }
                let (lt, eq) = digit_leaves(&mat.tables, &lows, &bases, (d, w, table_bits, table_words));
                leaves[2 * d][word] = lt;
                leaves[2 * d + 1][word] = eq;
            }
        }
        let high_bits = leaves.pop().ok_or(Error::MaterialMismatch)?;
        let mut nodes: Vec<Node<R>> = Vec::with_capacity(digits);
        let mut leaves = leaves.into_iter();
        while let (Some(lt), Some(eq)) = (leaves.next(), leaves.next()) {
            nodes.push(Node { lt, eq });
        }
        // Rounds 2 to the last but one: pairs of neighbouring nodes merge until two remain; the
        // lowest node's eq is never needed.
        while nodes.len() > 2 {
            nodes = self.merge_nodes(nodes, |pair| pair > 0)?;
        }
        let (hi, lo) = (nodes.pop().ok_or(Error::MaterialMismatch)?, nodes.pop().ok_or(Error::MaterialMismatch)?);

        // Last round: open d = (L_hi, E_hi, B_lo) ⊕ u; each bit is then d + (1 - 2d)·u in the ring,
        // and r_(k-2) ⊕ borrow = L_hi + E_hi·B_lo; the comparison is that XOR 1 ⊕ c'_(k-2).
        let masked: Vec<Shares<R>> = [&hi.lt, &hi.eq, &lo.lt]
            .iter()
            .zip(&mat.u)
            .map(|(bits, u)| {
                let mut v = Shares::from_vec(bits.to_vec());
                xor_assign(&mut v, u);
                v
            })
            .collect();
        let opened = self.open_xor_many(&[&masked[0], &masked[1], &masked[2]])?;
        // Each bit is β0 + Σ_k β_k·U_k with public β (U = u1, u2, u3, u2·u3): the comparison is
        // π ⊕ (b1 + b2·b3) = π + σ·(b1 + b2·b3) with σ = 1 - 2π and b_j = d_j + (1 - 2d_j)·u_j.
        // A function, not a closure: it is inlined into the loop below (a closure's call returned
        // its 40 bytes through the stack, and reading them back stalled on store forwarding).
        #[inline(always)]
        fn coefficients<R: Ring>([d1, d2, d3, high]: [u64; 4], j: u32) -> (R, [R; 4]) {
            let one = R::ONE;
            let bit = |word: u64| R::from_u64((word >> j) & 1);
            let signed = |d: R| one.wrapping_sub(&one.wrapping_add(&one).wrapping_mul(&d));
            let (d1, d2, d3) = (bit(d1), bit(d2), bit(d3));
            let (s1, s2, s3) = (signed(d1), signed(d2), signed(d3));
            let pi = one ^ bit(high);
            let sigma = signed(pi);
            let kappa0 = d1.wrapping_add(&d2.wrapping_mul(&d3));
            let kappa = [s1, d3.wrapping_mul(&s2), d2.wrapping_mul(&s3), s2.wrapping_mul(&s3)];
            (pi.wrapping_add(&sigma.wrapping_mul(&kappa0)), kappa.map(|k| sigma.wrapping_mul(&k)))
        }
        let us = [&mat.arith[0][..], &mat.arith[1][..], &mat.arith[2][..], &mat.arith[3][..]];
        let mut bits = Shares::zeros(m);
        let mut products = times.map(|_| Shares::zeros(with_products_len));
        // The shifted value y = p + w·msb(ρ) - (ρ >> s) per value (ρ = r mod 2^m), p and w
        // public (as a dealer truncation reads them off c), and this party's share of y.
        // Without a wrap (no shift at full width) w = 0, ρ >> 0 is r, and the dealer sends only
        // the U_k·r parts.
        let (rho, msb): (&[R], &[R]) = match &exact_mask {
            Some(r) => (r, &[]),
            None => mat.value_trunc.split_at(if times.is_some() { n } else { 0 }),
        };
        let c_msb = |i: usize| c[i].shr_logical(width - 1);
        let shifted: Option<(Vec<R>, Vec<R>, Shares<R>)> = times.map(|s| {
            let public: Vec<R> = c.iter().map(|&ci| truncation_public(ci, s, width)).collect();
            let (wrap, y): (Vec<R>, Vec<R>) = if wraps {
                let wrap = (0..n).map(|i| truncation_wrap(c_msb(i), s, width)).collect();
                (wrap, (0..n).map(|i| truncated_share(p0, (s, width), c[i], c_msb(i), rho[i], msb[i])).collect())
            } else {
                (Vec::new(), (0..n).map(|i| truncated_share(p0, (0, width), c[i], R::ZERO, rho[i], R::ZERO)).collect())
            };
            (public, wrap, Shares::from_vec(y))
        });
        let parts_per_u = if wraps { 2 } else { 1 };
        // Comparison q = bound · n + value. A block of up to 64 comparisons of one bound at a
        // time: their opened bits read as one word each, the values counted from the block's
        // first (no division or wrap per comparison).
        let window = |words: &[R], q: usize| bits_from(words, q).to_u64();
        let block = word_bits;
        for bound in 0..t {
            for i0 in (0..n).step_by(block) {
                let (q0, len) = (bound * n + i0, (n - i0).min(block));
                let words =
                    [window(&opened[0], q0), window(&opened[1], q0), window(&opened[2], q0), window(&high_bits, q0)];
                let with_products = match (products.as_mut(), shifted.as_ref()) {
                    (Some(products), Some(shifted)) if q0 >= first_product => Some((products, shifted)),
                    _ => None,
                };
                match with_products {
                    None => {
                        for (j, out) in bits[q0..q0 + len].iter_mut().enumerate() {
                            let (beta0, beta) = coefficients::<R>(words, j as u32);
                            let q = q0 + j;
                            let share =
                                (0..4).fold(R::ZERO, |acc, k| acc.wrapping_add(&beta[k].wrapping_mul(&us[k][q])));
                            *out = if p0 { share.wrapping_add(&beta0) } else { share };
                        }
                    }
                    Some((products, (public, wrap, y))) => {
                        // bit·y = β0·y + Σ_k β_k·(p·U_k + w·(U_k msb) - (U_k hi)), the msb term
                        // absent without a wrap.
                        let p0_at = q0 - first_product;
                        let cross = |k: usize, part: usize, p: usize| {
                            mat.cross[(parts_per_u * k + part) * with_products_len + p]
                        };
                        for j in 0..len {
                            let (beta0, beta) = coefficients::<R>(words, j as u32);
                            let (q, i, p) = (q0 + j, i0 + j, p0_at + j);
                            let share =
                                (0..4).fold(R::ZERO, |acc, k| acc.wrapping_add(&beta[k].wrapping_mul(&us[k][q])));
                            bits[q] = if p0 { share.wrapping_add(&beta0) } else { share };
                            let mut acc = beta0.wrapping_mul(&y[i]);
                            for (k, b) in beta.iter().enumerate() {
                                let mut term =
                                    public[i].wrapping_mul(&us[k][q]).wrapping_sub(&cross(k, parts_per_u - 1, p));
                                if wraps {
                                    term = term.wrapping_add(&wrap[i].wrapping_mul(&cross(k, 0, p)));
                                }
                                acc = acc.wrapping_add(&b.wrapping_mul(&term));
                            }
                            products[p] = acc;
                        }
                    }
                }
            }
        }
        let squares = match (&shifted, square) {
            // y = p - hi + w·msb(ρ) for y's public part p (c' = c - 2^(m-2) without a shift),
            // hi = ρ >> s and the wrap factor w (zero at full width without a shift), so y² =
            // p² - 2p·hi + hi² + 2w·(p·msb(ρ) - hi·msb(ρ)), the w² term vanishing in the ring.
            (Some((public, wrap, _)), true) => {
                let (rho_sq, rho_msb) = mat.square.split_at(n);
                Shares::from_vec(
                    (0..n)
                        .map(|i| {
                            let mut share = rho_sq[i].wrapping_sub(&public[i].wrapping_mul(&rho[i]).shl(1));
                            if wraps {
                                let by_msb = public[i].wrapping_mul(&msb[i]).wrapping_sub(&rho_msb[i]);
                                share = share.wrapping_add(&wrap[i].wrapping_mul(&by_msb).shl(1));
                            }
                            if p0 { share.wrapping_add(&public[i].wrapping_mul(&public[i])) } else { share }
                        })
                        .collect(),
                )
            }
            (None, true) => return Err(Error::MaterialMismatch),
            (_, false) => Shares::zeros(0),
        };
        let (products, y) = products.zip(shifted).map_or((Shares::zeros(0), Shares::zeros(0)), |(p, (_, _, y))| (p, y));
        self.recycle(mat.into_shares());
        Ok([bits, products, y, squares])
    }

    /// One level of a comparison tree: each pair of neighbouring nodes (low, high) becomes
    /// lt = lt_hi ⊕ (eq_hi ∧ lt_lo) and, where `needs_eq(pair index)`, eq = eq_hi ∧ eq_lo, with all
    /// AND gates in one round; an odd top node moves up unchanged.
    fn merge_nodes(&mut self, nodes: Vec<Node<R>>, needs_eq: impl Fn(usize) -> bool) -> Result<Vec<Node<R>>, Error> {
        let mut pairs: Vec<(&[R], &[R])> = Vec::new();
        for (p, pair) in nodes.chunks_exact(2).enumerate() {
            let (lo, hi) = (&pair[0], &pair[1]);
            pairs.push((&hi.eq[..], &lo.lt[..]));
            if needs_eq(p) {
                pairs.push((&hi.eq[..], &lo.eq[..]));
            }
        }
        let mut products = self.and_many(&pairs)?.into_iter();
        let mut next = Vec::with_capacity(nodes.len().div_ceil(2));
        let mut old = nodes.into_iter();
        let mut p = 0;
        while let Some(lo) = old.next() {
            let Some(hi) = old.next() else {
                next.push(lo);
                break;
            };
            let mut lt = hi.lt;
            xor_assign(&mut lt, &products.next().ok_or(Error::MaterialMismatch)?);
            let eq = if needs_eq(p) { products.next().ok_or(Error::MaterialMismatch)? } else { Shares::zeros(0) };
            next.push(Node { lt, eq });
            p += 1;
        }
        Ok(next)
    }

    /// ReLU(x) = x - `[x < 0]`·x: one comparison whose bit times x comes out of its own rounds
    /// ([`Party::below_times`]): five rounds; exact (the factor is a bit).
    pub fn relu(&mut self, x: &[R]) -> Result<Shares<R>, Error> {
        let [_, dropped, _] = self.below_times(x, &[R::ZERO], 0, R::BITS)?;
        Ok(Shares::from_vec(x.to_vec()).sub(&dropped))
    }

    /// `cond ? a : b` elementwise, for arithmetic shares of bits `cond`: b + cond · (a - b).
    /// One round; exact.
    pub fn select(&mut self, cond: &[R], a: &[R], b: &[R]) -> Result<Shares<R>, Error> {
        if a.len() != b.len() {
            return Err(Error::ShapeMismatch);
        }
        let diff = Shares::from_vec(a.to_vec()).sub(b);
        let chosen = self.mul_many_ring(&[(cond, &diff)])?.pop().expect("one product");
        Ok(chosen.add(b))
    }

    /// The maximum of each row of `x` (`rows × len`, row-major): a tournament of ⌈log2 len⌉
    /// levels. The winner of a pair (a, b) is a - `[a < b]`·(a - b): one comparison of the
    /// difference, whose bit times the difference comes out of its own rounds
    /// ([`Party::below_times`]), five rounds a level (four at a width of 34 or less). Valid
    /// for |a - b| < 2^(m-2) in the ring for the comparisons' `width` m ≤ k.
    pub fn max_rows(&mut self, x: &[R], rows: usize, len: usize, width: u32) -> Result<Shares<R>, Error> {
        if x.len() != rows * len || (len == 0 && rows > 0) {
            return Err(Error::ShapeMismatch);
        }
        let mut cur: Vec<R> = x.to_vec();
        let mut cols = len;
        while cols > 1 {
            let half = cols / 2;
            let mut left = Vec::with_capacity(rows * half);
            let mut right = Vec::with_capacity(rows * half);
            for row in cur.chunks_exact(cols) {
                for j in 0..half {
                    left.push(row[2 * j]);
                    right.push(row[2 * j + 1]);
                }
            }
            let mut diff = left.clone();
            ring::sub_assign(&mut diff, &right);
            let [_, dropped, _] = self.below_times(&diff, &[R::ZERO], 0, width)?;
            let mut winners = left;
            ring::sub_assign(&mut winners, &dropped);
            let new_cols = cols.div_ceil(2);
            let mut next = Vec::with_capacity(rows * new_cols);
            for (r, row) in cur.chunks_exact(cols).enumerate() {
                next.extend_from_slice(&winners[r * half..(r + 1) * half]);
                if cols % 2 == 1 {
                    next.push(row[cols - 1]);
                }
            }
            cur = next;
            cols = new_cols;
        }
        Ok(Shares::from_vec(cur))
    }
}
