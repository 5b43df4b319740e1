//! The two-party protocols over threads with the real dealer: results within 1 ulp of the exact
//! fixed-point result, for negatives and values at the edge of the valid range.

mod common;

use common::{FP, product_numerator, reals, threaded, truncations, within_one_unit};
use mpc_core::protocol::Truncation;
use mpc_core::transport::Role;
use proptest::prelude::*;

/// Shares `x` from P0 and `y` from P1, multiplies them elementwise, opens the product.
fn private_mul(seed: u64, x: &[f64], y: &[f64], truncation: Truncation) -> Vec<u64> {
    let n = x.len();
    let run = threaded(seed, truncation, |party, role| {
        let xs = party.input_fixed(Role::P0, (role == Role::P0).then_some(x), n)?;
        let ys = party.input_fixed(Role::P1, (role == Role::P1).then_some(y), n)?;
        let z = party.mul(&xs, &ys)?;
        party.open(&z)
    });
    assert_eq!(run.p0.output, run.p1.output, "both parties open the same value");
    run.p0.output
}

/// Each product within one unit of the exact one's floor ([`within_one_unit`]).
fn assert_products_within_one_ulp(x: &[f64], y: &[f64], got: &[u64]) {
    for i in 0..x.len() {
        let exact = product_numerator(FP.encode(x[i]), FP.encode(y[i]));
        assert!(within_one_unit(got[i], exact, 16), "{} * {}: got {} for {exact} / 2^16", x[i], y[i], got[i] as i64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn mul_is_within_one_ulp(seed: u64, len in 1usize..200) {
        // Local truncation fails with probability ~|xy|/2^31 per element: keep |xy| <= 2^4 here
        // (the runs are seeded, so a failure would reproduce, not flake).
        let x = reals(seed, len, 4.0);
        let y = reals(seed ^ 1, len, 4.0);
        let got = private_mul(seed, &x, &y, Truncation::Local);
        assert_products_within_one_ulp(&x, &y, &got);
    }

    #[test]
    fn dealer_truncation_is_within_one_ulp_up_to_the_range_edge(seed: u64, len in 1usize..200) {
        // |x·y| < 2^30, the edge of dealer truncation's range at 16 fractional bits.
        let x = reals(seed, len, 32_000.0);
        let y = reals(seed ^ 2, len, 32_000.0);
        let got = private_mul(seed, &x, &y, Truncation::Dealer);
        assert_products_within_one_ulp(&x, &y, &got);
    }
}

#[test]
fn extreme_values_multiply() {
    let x = [0.0, -0.0, 1.0 / 65536.0, -1.0 / 65536.0, 32767.99, -32767.99, 32767.99, 1.0, -1.0, 0.5];
    let y = [5.0, -5.0, 1.0 / 65536.0, 1.0 / 65536.0, 32767.99, 32767.99, -32767.99, -1.0, -1.0, 0.5];
    let got = private_mul(1, &x, &y, Truncation::Dealer);
    assert_products_within_one_ulp(&x, &y, &got);
}

#[test]
fn dealer_truncation_never_fails_where_local_truncation_does() {
    // Products near 2^28 sit at 2^60 in the ring: local truncation fails with probability ~1/8
    // per element, the dealer method never.
    let n = 2000;
    let x = reals(11, n, 16_384.0);
    let y = vec![16_384.0; n];
    let bad = |got: &[u64]| {
        (0..n).filter(|&i| !within_one_unit(got[i], product_numerator(FP.encode(x[i]), FP.encode(y[i])), 16)).count()
    };
    let local = bad(&private_mul(5, &x, &y, Truncation::Local));
    let dealer = bad(&private_mul(5, &x, &y, Truncation::Dealer));
    assert!(local > 50, "local truncation should fail often at this magnitude, failed {local} times");
    assert_eq!(dealer, 0);
}

#[test]
fn square_is_within_one_ulp() {
    let x = reals(3, 500, 100.0);
    for truncation in [Truncation::Local, Truncation::Dealer] {
        let run = threaded(3, truncation, |party, role| {
            let xs = party.input_fixed(Role::P1, (role == Role::P1).then_some(&x[..]), x.len())?;
            let z = party.square(&xs)?;
            party.open(&z)
        });
        assert_products_within_one_ulp(&x, &x, &run.p0.output);
    }
}

/// The exact product of the encoded matrices at 2f bits, before its truncation.
fn exact_matmul(x: &[f64], w: &[f64], m: usize, k: usize, n: usize) -> Vec<i128> {
    let xe: Vec<u64> = FP.encode_vec(x);
    let we: Vec<u64> = FP.encode_vec(w);
    let mut out = vec![0i128; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| product_numerator(xe[i * k + p], we[p * n + j])).sum();
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn matmul_both_ways_is_within_one_ulp(seed: u64, m in 1usize..9, k in 1usize..40, n in 1usize..30) {
        let x = reals(seed, m * k, 3.0);
        let w = reals(seed ^ 7, k * n, 1.0);
        let expect = exact_matmul(&x, &w, m, k, n);
        let run = threaded(seed, Truncation::Dealer, |party, role| {
            let xs = party.input_fixed(Role::P1, (role == Role::P1).then_some(&x[..]), m * k)?;
            let ws = party.input_fixed(Role::P0, (role == Role::P0).then_some(&w[..]), k * n)?;
            // Two secret matrices, and the same W prepared once for two products.
            let direct = party.matmul(&xs, &ws, m, k, n)?;
            let prepared = party.prepare_matrix(&ws, k, n)?;
            let first = party.matmul_prepared(&xs, m, &prepared)?;
            let second = party.matmul_prepared(&xs, m, &prepared)?;
            Ok([party.open(&direct)?, party.open(&first)?, party.open(&second)?])
        });
        for got in &run.p0.output {
            for (g, e) in got.iter().zip(&expect) {
                prop_assert!(within_one_unit(*g, *e, 16), "got {} for {} / 2^16", *g as i64, e);
            }
        }
    }
}

#[test]
fn reveal_to_one_party_only() {
    let run = threaded(9, Truncation::Local, |party, role| {
        let x = party.input_fixed(Role::P0, (role == Role::P0).then_some(&[2.5, -1.0][..]), 2)?;
        party.reveal_to(Role::P1, &x)
    });
    assert_eq!(run.p0.output, None);
    assert_eq!(FP.decode_vec(&run.p1.output.unwrap()), vec![2.5, -1.0]);
}

#[test]
fn public_operations_are_local() {
    let run = threaded(4, Truncation::Local, |party, role| {
        let mut x = party.input_fixed(Role::P1, (role == Role::P1).then_some(&[1.5, -2.0][..]), 2)?;
        party.add_public(&mut x, &FP.encode_vec(&[1.0, 1.0]))?;
        let y = party.mul_public_scalar(&x, -0.5)?;
        let before = party.transport().stats();
        let z = party.open_fixed(&y)?;
        assert_eq!(party.transport().stats().since(&before).messages_sent, 1);
        Ok((z, before.messages_sent))
    });
    let (z, messages_before_open) = &run.p1.output;
    assert_eq!(z, &vec![-1.25, 0.5]);
    // P1 sent nothing before the opening: inputs and public operations need no message.
    assert_eq!(*messages_before_open, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn owned_matmul_is_within_one_ulp(seed: u64, m in 1usize..9, k in 1usize..40, n in 1usize..30) {
        let x = reals(seed, m * k, 3.0);
        let w = reals(seed ^ 3, k * n, 1.0);
        let expect = exact_matmul(&x, &w, m, k, n);
        let w_enc: Vec<u64> = FP.encode_vec(&w);
        let run = threaded(seed, Truncation::Dealer, |party, role| {
            let xs = party.input_fixed(Role::P1, (role == Role::P1).then_some(&x[..]), m * k)?;
            let owned = party.prepare_owned((role == Role::P0).then_some(&w_enc[..]), k, n)?;
            let first = party.matmul_owned(&xs, m, &owned)?;
            let second = party.matmul_owned(&xs, m, &owned)?;
            Ok([party.open(&first)?, party.open(&second)?])
        });
        for got in &run.p0.output {
            for (g, e) in got.iter().zip(&expect) {
                prop_assert!(within_one_unit(*g, *e, 16), "got {} for {} / 2^16", *g as i64, e);
            }
        }
    }
}

/// An owned matrix of odd shape, many of the dealer client's keystream blocks long, given as a
/// `Vec` (F made in its buffer as B is drawn) or borrowed (copied first): products exact to a
/// unit either way.
#[test]
fn owned_matmul_is_exact_with_weights_owned_or_borrowed() {
    let (m, k, n) = (2, 300, 113);
    let x = reals(7, m * k, 1.0);
    let w = reals(8, k * n, 1.0);
    let expect = exact_matmul(&x, &w, m, k, n);
    let w_enc: Vec<u64> = FP.encode_vec(&w);
    let run = threaded(7, Truncation::Dealer, |party, role| {
        let xs = party.input_fixed(Role::P1, (role == Role::P1).then_some(&x[..]), m * k)?;
        let owned = party.prepare_owned((role == Role::P0).then(|| w_enc.clone()), k, n)?;
        let borrowed = party.prepare_owned((role == Role::P0).then_some(&w_enc[..]), k, n)?;
        Ok([party.matmul_owned(&xs, m, &owned)?, party.matmul_owned(&xs, m, &borrowed)?].map(|z| party.open(&z)))
    });
    for got in run.p0.output {
        for (g, e) in got.unwrap().iter().zip(&expect) {
            assert!(within_one_unit(*g, *e, 16), "got {} for {} / 2^16", *g as i64, e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A lookup of P0's table at P1's secret indices gives exactly the table's rows (repeated
    /// indices, the first and last rows), a matrix's by a one-hot product, a table's
    /// (`prepare_owned_table`) by bins from 32 rows (empty bins among them: the table is
    /// smaller than the bins), and is refused when an index is out of the table, the count is
    /// wrong, or P0 brings indices.
    #[test]
    fn owned_lookup_gives_the_rows_exactly(
        seed: u64,
        vocab in 1usize..50,
        width in 1usize..20,
        count in prop_oneof![1usize..12, 30usize..70],
        table_kind: bool,
    ) {
        let table: Vec<u64> = FP.encode_vec(&reals(seed, vocab * width, 4.0));
        let indices: Vec<usize> = (0..count).map(|r| match r {
            0 => 0,
            1 => vocab - 1,
            _ => (seed as usize).wrapping_add(r * 7919) % vocab,
        }).collect();
        let run = threaded(seed, Truncation::Dealer, |party, role| {
            let theirs = (role == Role::P0).then_some(&table[..]);
            let owned = match table_kind {
                true => party.prepare_owned_table(theirs, vocab, width)?,
                false => party.prepare_owned(theirs, vocab, width)?,
            };
            let mine = (role == Role::P1).then_some(&indices[..]);
            let rows = party.lookup_owned(mine, count, &owned)?;
            // Each refusal comes before any message or material: the other party is not asked.
            let outside: Vec<usize> = indices.iter().map(|_| vocab).collect();
            let refused = match role {
                Role::P1 => vec![
                    party.lookup_owned(Some(&outside), count, &owned),
                    party.lookup_owned(Some(&indices), count + 1, &owned),
                    party.lookup_owned(None, count, &owned),
                ],
                _ => vec![party.lookup_owned(Some(&indices), count, &owned)],
            };
            Ok((party.open(&rows)?, refused.into_iter().map(|r| r.err()).collect::<Vec<_>>()))
        });
        let expect: Vec<u64> = indices.iter().flat_map(|&i| table[i * width..(i + 1) * width].iter().copied()).collect();
        prop_assert_eq!(&run.p0.output.0, &expect);
        prop_assert_eq!(&run.p1.output.0, &expect);
        for refusal in run.p0.output.1.iter().chain(&run.p1.output.1) {
            prop_assert_eq!(refusal, &Some(mpc_core::Error::ShapeMismatch));
        }
    }
}

/// A table of thousands of rows looked up by bins at counts that fill one to several slots of
/// some bins, with repeats: exactly its rows, in P1's order; each party sends its one message
/// (P1 its slots' masked one-hots and route, P0 its share of the slots' rows).
#[test]
fn batched_lookups_of_a_large_table_give_the_rows_exactly() {
    use mpc_core::protocol::{LOOKUP_SLOTS, lookup_bins};
    let (vocab, width) = (5000, 6);
    let table: Vec<u64> = FP.encode_vec(&reals(3, vocab * width, 4.0));
    for count in [32usize, 100, 257] {
        let indices: Vec<usize> = (0..count).map(|r| (r * r * 7919 + 13) % vocab).collect();
        let run = threaded(count as u64, Truncation::Dealer, |party, role| {
            let owned = party.prepare_owned_table((role == Role::P0).then_some(&table[..]), vocab, width)?;
            let before = party.transport().stats();
            let rows = party.lookup_owned((role == Role::P1).then_some(&indices[..]), count, &owned)?;
            let cost = party.transport().stats().since(&before);
            Ok((party.open(&rows)?, cost.bytes_sent, cost.messages_sent))
        });
        let expect: Vec<u64> =
            indices.iter().flat_map(|&i| table[i * width..(i + 1) * width].iter().copied()).collect();
        assert_eq!(run.p0.output.0, expect, "{count} rows");
        assert_eq!(run.p1.output.0, expect, "{count} rows");
        let slots = lookup_bins(count) * LOOKUP_SLOTS;
        assert_eq!((run.p1.output.1, run.p1.output.2), (8 * (LOOKUP_SLOTS * vocab + count * slots) as u64, 1));
        assert_eq!((run.p0.output.1, run.p0.output.2), (8 * (slots * width) as u64, 1));
    }
}

/// More distinct indices in one bin than it has slots (found through the table's public key):
/// P1 refuses before sending anything, and P0 sees the session end.
#[test]
fn a_bin_beyond_its_slots_is_refused_before_anything_is_sent() {
    let (vocab, width, count) = (3000, 2, 32);
    let table: Vec<u64> = FP.encode_vec(&reals(5, vocab * width, 1.0));
    let run = mpc_io_std::run_threaded(mpc_io_std::LaunchOptions::seeded(5), |ctx| {
        let role = ctx.role;
        let mut party = ctx.party()?;
        let owned = party.prepare_owned_table((role == Role::P0).then_some(&table[..]), vocab, width)?;
        // 17 rows of one bin (about 94 of the 3000 rows fall in each of the 32), again and again.
        let bin = |row: usize| owned.lookup_bin(row, count).expect("a table's bin");
        let crowded: Vec<usize> = (0..vocab).filter(|&r| bin(r) == bin(0)).take(17).collect();
        assert_eq!(crowded.len(), 17);
        let indices: Vec<usize> = (0..count).map(|i| crowded[i % 17]).collect();
        Ok(party.lookup_owned((role == Role::P1).then_some(&indices[..]), count, &owned).err())
    })
    .expect("both parties return");
    assert_eq!(run.p1.output, Some(mpc_core::Error::TooLarge));
    assert!(matches!(run.p0.output, Some(mpc_core::Error::Transport(_))), "{:?}", run.p0.output);
}

/// The ring values (t + offset)² for the two truncations t of `z` by 16 bits that are within
/// 1 ulp of it (floor and floor + 1).
fn squares_of_truncations(z: i64, offset: u64) -> [u64; 2] {
    let t = (z >> 16) as u64;
    [t.wrapping_add(offset), t.wrapping_add(1).wrapping_add(offset)].map(|v| v.wrapping_mul(v))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// A truncation followed by a square of the shifted result, fused into one opening: exactly
    /// the square of a within-1-ulp truncation, for products up to 2^61 in the ring (the dealer
    /// method's range edge) and for both methods; several sharings batched into one opening each
    /// come back whole, at their own length.
    #[test]
    fn truncate_then_square_is_the_square_of_the_truncation(seed: u64, len in 1usize..300, scale in 8u32..62) {
        let bound = (1u64 << scale) as f64;
        let z: Vec<i64> = reals(seed, len, 1.0).iter().map(|r| (r * bound) as i64).collect();
        let offset = FP.encode(if seed % 2 == 0 { 5.0 } else { -1.0 });
        for truncation in [Truncation::Dealer, Truncation::Local] {
            let ring: Vec<u64> = z.iter().map(|&v| v as u64).collect();
            // Batched as three sharings (of seeded lengths, some empty): the results come back
            // cut the same way.
            let cuts = [(seed as usize) % (len + 1), (seed as usize / 7) % (len + 1)];
            let (a, b) = (cuts[0].min(cuts[1]), cuts[0].max(cuts[1]));
            let run = threaded(seed, truncation, |party, role| {
                let zs = party.input(Role::P0, (role == Role::P0).then_some(&ring[..]), len)?;
                let parts: Vec<_> = [&zs[..a], &zs[a..b], &zs[b..]]
                    .iter()
                    .map(|p| mpc_core::share::Shares::from_vec(p.to_vec()))
                    .collect();
                let squares = party.truncate_square_many(parts.clone(), 16, offset, truncation)?;
                let truncated = party.truncate_many_by(parts, 16, truncation)?;
                let lens = |v: &[mpc_core::share::Shares<u64>]| v.iter().map(|s| s.len()).collect::<Vec<_>>();
                assert_eq!(lens(&squares), [a, b - a, len - b]);
                assert_eq!(lens(&truncated), [a, b - a, len - b]);
                let flat = |v: Vec<mpc_core::share::Shares<u64>>| v.iter().flat_map(|s| s.to_vec()).collect::<Vec<_>>();
                Ok((party.open(&flat(squares))?, party.open(&flat(truncated))?))
            });
            // Local truncation wraps with probability |z| / 2^63: only small products are held to it.
            if truncation == Truncation::Local && scale > 40 {
                continue;
            }
            let (squares, truncated) = &run.p0.output;
            for ((got, t), &z) in squares.iter().zip(truncated).zip(&z) {
                prop_assert!(squares_of_truncations(z, offset).contains(got), "z = {z}: got square {got}");
                let floor = (z >> 16) as u64;
                prop_assert!(*t == floor || *t == floor.wrapping_add(1), "z = {z}: got {t}");
            }
        }
    }
}

#[test]
fn fused_truncation_of_owner_weight_products_never_fails_where_local_truncation_does() {
    // Products near 2^27 sit at 2^59 in the ring: local truncation fails for about 1 in 16
    // elements; the owner-weight product's fused dealer truncation for none.
    let (m, k, n) = (40, 1, 50);
    let x = reals(13, m * k, 8_192.0);
    let w = vec![16_384.0; k * n];
    let expect = exact_matmul(&x, &w, m, k, n);
    let w_enc: Vec<u64> = FP.encode_vec(&w);
    let bad = |truncation| {
        let run = threaded(13, truncation, |party, role| {
            let xs = party.input_fixed(Role::P1, (role == Role::P1).then_some(&x[..]), m * k)?;
            let owned = party.prepare_owned((role == Role::P0).then_some(&w_enc[..]), k, n)?;
            let z = party.matmul_owned(&xs, m, &owned)?;
            party.open(&z)
        });
        run.p0.output.iter().zip(&expect).filter(|(g, e)| !within_one_unit(**g, **e, 16)).count()
    };
    let local = bad(Truncation::Local);
    assert!(local > 20, "local truncation should fail often at this magnitude, failed {local} times");
    assert_eq!(bad(Truncation::Dealer), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Products of operands truncated first, each opening serving the truncation and the
    /// product: exactly a product of truncations (within 1.5 units), for every combination of
    /// truncated and untruncated operands, elementwise and broadcast, up to 2^61 in the ring,
    /// x opened at the ring's width or packed on a narrower one (bits included), with every
    /// party's bytes those of the openings (a narrow truncated operand's shifted-out bits
    /// unsent).
    #[test]
    fn fused_products_are_products_of_the_truncations(
        seed: u64,
        rows in 1usize..6,
        len in 1usize..40,
        mode in 0usize..3,
        x_shift in prop_oneof![Just(0u32), 1u32..40],
        y_shift in prop_oneof![Just(0u32), 1u32..24],
        scale in prop_oneof![Just(0u32), 8u32..62],
        squared in 0usize..3,
        narrow in prop_oneof![Just(None), (0u32..20).prop_map(Some)],
        y_narrow in prop_oneof![Just(None), (0u32..20).prop_map(Some)],
    ) {
        use mpc_core::protocol::FusedOperands;
        let broadcast = [None, Some(true), Some(false)][mode];
        let ny = match broadcast { None => rows * len, Some(true) => rows, Some(false) => len };
        // Keep the product of the shifted operands below 2^62.
        let x_bits = scale.min(61);
        let y_bits = (62 - (x_bits - x_shift.min(x_bits))).min(61).saturating_sub(2) + y_shift.min(20);
        let ring = |s: u64, n: usize, bits: u32| -> Vec<i64> {
            reals(s, n, 1.0).iter().map(|r| (r * (1u64 << bits.min(61)) as f64) as i64).collect()
        };
        // Bits (scale 0) are 0 or 1; a narrow x opens on `x_bits + 2 + extra` bits (|x| <
        // 2^(m-2)), one more with a shift (|x| < 2^(m-2) - 2^s: the opening's unsent low bits),
        // above its shift.
        let x: Vec<i64> = if scale == 0 {
            (0..rows * len).map(|i| ((seed >> (i % 64)) & 1) as i64).collect()
        } else {
            ring(seed, rows * len, x_bits)
        };
        let margin = |shift: u32| 2 + u32::from(shift > 0);
        let width = narrow.map(|extra| (x_bits.max(1) + margin(x_shift) + extra).clamp(x_shift + 3, 64));
        let y_width = y_narrow.map(|extra| (y_bits.min(61) + margin(y_shift) + extra).clamp(y_shift + 3, 64));
        let y = ring(seed ^ 7, ny, y_bits.min(61));
        let (xr, yr): (Vec<u64>, Vec<u64>) = (x.iter().map(|&v| v as u64).collect(), y.iter().map(|&v| v as u64).collect());
        let run = threaded(seed, Truncation::Dealer, |party, role| {
            let xs = party.input(Role::P0, (role == Role::P0).then_some(&xr[..]), xr.len())?;
            let ys = party.input(Role::P1, (role == Role::P1).then_some(&yr[..]), yr.len())?;
            party.open(&[0])?; // end the inputs' flight
            let before = party.transport().stats();
            // x's (or y's) square from the same opening, where its msb·msb term vanishes
            // (2s <= k) or is read off the dealer's msb (a narrow operand).
            let with_square = squared == 1 && (x_shift <= 32 || width.is_some_and(|m| m < 64));
            let y_square = squared == 2 && (y_shift <= 32 || y_width.is_some_and(|m| m < 64));
            let item = FusedOperands { x: &xs, x_shift, y: &ys, y_shift, rows, len, broadcast, with_square, y_square, width, y_width };
            let z = party.mul_fused(&[item])?;
            let cost = party.transport().stats().since(&before);
            assert_eq!(z.len(), item.outputs());
            let squares = if with_square || y_square { party.open(&z[1])? } else { Vec::new() };
            Ok((party.open(&z[0])?, squares, cost))
        });
        let (products, squares, cost) = &run.p0.output;
        prop_assert_eq!((products, squares), (&run.p1.output.0, &run.p1.output.1));
        prop_assert_eq!(cost.rounds, 1);
        // A narrow opening leaves its shifted-out bits home; one at the ring's width goes whole.
        let packed = |n: usize, width: Option<u32>, shift: u32| match width.filter(|&m| m < 64) {
            Some(m) => (n * (m - shift) as usize).div_ceil(64),
            None => n,
        };
        prop_assert_eq!(cost.bytes_sent, 8 * (packed(rows * len, width, x_shift) + packed(ny, y_width, y_shift)) as u64);
        let (x_squares, y_squares) = if squared == 2 { (&[][..], &squares[..]) } else { (&squares[..], &[][..]) };
        prop_assert_eq!(y_squares.len(), if squared == 2 { ny } else { 0 });
        for (i, got) in products.iter().enumerate() {
            let j = match broadcast { None => i, Some(true) => i / len, Some(false) => i % len };
            // A square is of the truncation the product used: the same opening and mask.
            let triples: Vec<(u64, Option<u64>, Option<u64>)> = truncations(x[i], x_shift)
                .iter()
                .flat_map(|&a| {
                    let x_square = (!x_squares.is_empty()).then(|| a.wrapping_mul(a) as u64);
                    truncations(y[j], y_shift).into_iter().map(move |b| {
                        (a.wrapping_mul(b) as u64, x_square, (squared == 2).then(|| b.wrapping_mul(b) as u64))
                    })
                })
                .collect();
            let found = (*got, x_squares.get(i).copied(), y_squares.get(j).copied());
            prop_assert!(triples.contains(&found), "x = {}, y = {}: got {:?}", x[i], y[j], found);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Squares whose one opening serves the truncation and both factors: exactly the square of
    /// a truncation (within 1.5 units; the same one for both factors), truncated or not, with
    /// every party's bytes those of one opening of x (a narrow one's shifted-out bits unsent);
    /// beside a product in the same round.
    #[test]
    fn fused_squares_are_squares_of_the_truncation(
        seed: u64,
        n in 1usize..60,
        shift in prop_oneof![Just(0u32), 1u32..33],
        scale in 4u32..62,
        narrow in prop_oneof![Just(None), (0u32..30).prop_map(Some)],
    ) {
        use mpc_core::protocol::FusedOperands;
        // Keep the square of the shifted operand below 2^61.
        let bits = scale.min(30 + shift);
        // A narrow square opens on `bits + 2 + extra` bits (|x| < 2^(m-2)), one more with a
        // shift (|x| < 2^(m-2) - 2^s), above its shift.
        let width = narrow.map(|extra| (bits + 2 + u32::from(shift > 0) + extra).clamp(shift + 3, 64));
        let x: Vec<i64> = reals(seed, n, 1.0).iter().map(|r| (r * (1u64 << bits) as f64) as i64).collect();
        let xr: Vec<u64> = x.iter().map(|&v| v as u64).collect();
        let run = threaded(seed, Truncation::Dealer, |party, role| {
            let xs = party.input(Role::P0, (role == Role::P0).then_some(&xr[..]), n)?;
            party.open(&[0])?; // end the input's flight
            let before = party.transport().stats();
            let square = FusedOperands { width, ..FusedOperands::square(&xs, shift) };
            let items = [square, FusedOperands::elementwise(&xs, shift, &xs, shift.checked_sub(1).unwrap_or(1))];
            assert!(items[0].is_square() && !items[1].is_square());
            let z = party.mul_fused(&items)?;
            let cost = party.transport().stats().since(&before);
            Ok((party.open(&z[0])?, cost))
        });
        let (got, cost) = &run.p0.output;
        prop_assert_eq!(got, &run.p1.output.0);
        prop_assert_eq!(cost.rounds, 1);
        // The square's opening packed on its width less its shift (whole at the ring's width),
        // the product's two openings whole.
        let square_words = match width.filter(|&m| m < 64) {
            Some(m) => (n * (m - shift) as usize).div_ceil(64),
            None => n,
        };
        prop_assert_eq!(cost.bytes_sent, 8 * (square_words + 2 * n) as u64);
        for (i, got) in got.iter().enumerate() {
            let squares: Vec<u64> = truncations(x[i], shift).iter().map(|&t| t.wrapping_mul(t) as u64).collect();
            prop_assert!(squares.contains(got), "x = {} (width {width:?}): got {}", x[i], *got as i64);
        }
    }
}

#[test]
fn fused_products_take_one_round_and_refuse_bad_shapes() {
    use mpc_core::protocol::FusedOperands;
    let x: Vec<u64> = (0..12).map(|v| (v as u64) << 20).collect();
    let run = threaded(3, Truncation::Dealer, |party, _| {
        let xs = party.input(Role::P0, Some(&x[..]).filter(|_| party.role() == Role::P0), x.len())?;
        party.open(&[0])?; // end the input's flight
        let s = party.transport().stats();
        let items = [
            FusedOperands {
                x: &xs,
                x_shift: 10,
                y: &xs[..3],
                y_shift: 4,
                rows: 3,
                len: 4,
                broadcast: Some(true),
                with_square: true,
                y_square: false,
                width: None,
                y_width: None,
            },
            FusedOperands::elementwise(&xs, 0, &xs[..], 12),
        ];
        let outputs = party.mul_fused(&items)?.len();
        let cost = party.transport().stats().since(&s);
        let bad = FusedOperands { y: &xs[..2], ..items[0] };
        let refused = party.mul_fused(&[bad]).err();
        let square_twice = FusedOperands { with_square: true, ..FusedOperands::square(&xs, 3) };
        let squared_twice = party.mul_fused(&[square_twice]).err();
        let too_far = FusedOperands { x_shift: 40, y_shift: 30, ..items[1] };
        let square_too_far = FusedOperands { x_shift: 33, y_shift: 0, ..items[0] };
        let errors =
            [refused, squared_twice, party.mul_fused(&[too_far]).err(), party.mul_fused(&[square_too_far]).err()];
        Ok((cost, outputs, errors))
    });
    let (cost, outputs, errors) = run.p0.output;
    assert_eq!(cost.rounds, 1);
    // The square rides on x's opening: no element of its own.
    assert_eq!(cost.bytes_sent, 8 * (12 + 3 + 12 + 12));
    assert_eq!(outputs, 3);
    let [shape, squared_twice, too_far, square_too_far] = errors;
    assert_eq!(shape, Some(mpc_core::Error::ShapeMismatch));
    assert_eq!(squared_twice, Some(mpc_core::Error::ShapeMismatch));
    assert_eq!(too_far, Some(mpc_core::Error::TooLarge));
    assert_eq!(square_too_far, Some(mpc_core::Error::TooLarge));
}
