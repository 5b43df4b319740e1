//! Comparisons over threads with the real dealer: exact results, on edges and random values,
//! in the stated number of rounds.

mod common;

use common::{FP, reals, threaded, truncations};
use mpc_core::Ring;
use mpc_core::protocol::Truncation;
use mpc_core::transport::Role;
use proptest::prelude::*;

fn edge_values() -> Vec<u64> {
    let lim = 1i64 << 62;
    [0, 1, -1, 2, -2, 65536, -65536, lim - 1, -(lim - 1), lim / 2, -lim / 2, 15, 16, -16, 0xFFFF_FFFF, -0xFFFF_FFFF]
        .iter()
        .map(|&v| u64::from_i64(v))
        .collect()
}

/// Values and bounds for comparisons at `width` bits: the edges that fit (|v| < 2^(m-3), so
/// every difference stays below 2^(m-2)), then `n` and `t` random ones spread over that range.
fn within_width(seed: u64, width: u32, n: usize, t: usize) -> (Vec<u64>, Vec<u64>) {
    let lim = 1i64 << (width - 3);
    let fit = |v: &u64| v.to_i64().checked_abs().is_some_and(|a| a < lim);
    let spread = |seed: u64, n: usize| -> Vec<u64> {
        reals(seed, n, 1.0).iter().map(|r| u64::from_i64((r * (lim - 1) as f64) as i64)).collect()
    };
    let mut values: Vec<u64> = edge_values().into_iter().filter(fit).collect();
    values.extend(spread(seed, n));
    let mut bounds = spread(seed ^ 5, t);
    // Ties with values, and the range's edges.
    bounds.extend([values[0], values[3], values[values.len() - 1], u64::from_i64(lim - 1), u64::from_i64(1 - lim)]);
    (values, bounds)
}

/// A comparison width for the proptests: the ring's, the narrow one activations take, or any
/// from `least` up.
fn widths(least: u32) -> impl Strategy<Value = u32> {
    prop_oneof![Just(64u32), Just(34u32), least..64]
}

fn private<O: Send>(
    values: &[u64],
    op: impl Fn(&mut mpc_io_std::run::threads::ThreadedParty<'_>, &[u64]) -> Result<O, mpc_core::Error> + Sync,
) -> O {
    let run = threaded(17, Truncation::Local, |party, role| {
        let x = party.input(Role::P1, (role == Role::P1).then_some(values), values.len())?;
        op(party, &x)
    });
    run.p0.output
}

#[test]
fn ltz_is_exact_on_edges() {
    let values = edge_values();
    let got = private(&values, |p, x| {
        let b = p.ltz(x)?;
        p.open(&b)
    });
    for (v, g) in values.iter().zip(&got) {
        assert_eq!(*g, u64::from(v.to_i64() < 0), "ltz({})", v.to_i64());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn ltz_relu_and_select_are_exact(seed: u64, len in 1usize..300) {
        let values: Vec<u64> = FP.encode_vec(&reals(seed, len, 1000.0));
        let (bits, relu, sel) = private(&values, |p, x| {
            let b = p.ltz(x)?;
            let r = p.relu(x)?;
            let zeros = vec![0u64; x.len()];
            // select(x < 0, 0, x) is ReLU again, through the select protocol.
            let s = p.select(&b, &zeros, x)?;
            Ok((p.open(&b)?, p.open(&r)?, p.open(&s)?))
        });
        for i in 0..len {
            let v = values[i].to_i64();
            prop_assert_eq!(bits[i], u64::from(v < 0));
            prop_assert_eq!(relu[i].to_i64(), v.max(0));
            prop_assert_eq!(sel[i].to_i64(), v.max(0));
        }
    }

    #[test]
    fn max_of_rows_is_exact(seed: u64, rows in 1usize..5, len in 1usize..40, width in widths(34)) {
        let values: Vec<u64> = FP.encode_vec(&reals(seed, rows * len, 50.0));
        let got = private(&values, |p, x| {
            let m = p.max_rows(x, rows, len, width)?;
            p.open(&m)
        });
        for r in 0..rows {
            let expect = values[r * len..(r + 1) * len].iter().map(|v| v.to_i64()).max().unwrap();
            prop_assert_eq!(got[r].to_i64(), expect);
        }
    }
}

#[test]
fn comparison_relu_and_a_max_step_cost_five_rounds() {
    let values = FP.encode_vec::<u64>(&reals(3, 1000, 10.0));
    let costs = private(&values, |p, x| {
        p.open(&[0])?; // end the setup's flight
        let mut costs = Vec::new();
        let s = p.transport().stats();
        p.ltz(x)?;
        costs.push(p.transport().stats().since(&s));
        let s = p.transport().stats();
        p.relu(x)?;
        costs.push(p.transport().stats().since(&s));
        let s = p.transport().stats();
        p.max_rows(x, 1, 1000, 64)?;
        costs.push(p.transport().stats().since(&s));
        let s = p.transport().stats();
        p.max_rows(x, 1, 1000, 34)?;
        costs.push(p.transport().stats().since(&s));
        Ok([costs[0], costs[1], costs[2], costs[3]])
    });
    let [ltz, relu, max, narrow_max] = costs;
    assert_eq!(ltz.rounds, 5, "the opening, three AND levels, the last level with the conversion");
    assert_eq!(relu.rounds, 5, "the opening, three AND levels, the last level with the products");
    assert_eq!(max.rounds, 5 * 10, "ceil(log2 1000) = 10 levels");
    assert_eq!(narrow_max.rounds, 4 * 10, "8 digits at 34 bits: one AND level fewer");
    assert!(narrow_max.bytes_sent * 2 < max.bytes_sent + max.bytes_sent / 10, "{narrow_max:?} against {max:?}");
    // Per element and party: the 8-byte opening, 25 AND gates (2 bits each) and 3 bits.
    let per_element = ltz.bytes_sent as f64 / 1000.0;
    assert!(per_element < 15.0, "ltz sends {per_element} bytes per element");
    // ReLU: the 8-byte opening, 25 AND gates and 3 bits; the product with x costs nothing more.
    let relu_per_element = relu.bytes_sent as f64 / 1000.0;
    assert!(relu_per_element < 15.0, "relu sends {relu_per_element} bytes per element");
    println!("ltz: {per_element} bytes per element and party; relu: {relu_per_element}");
}

/// Shares `values` from P0 in Z_2^32 (two threads, the test dealer), runs `op` and opens its
/// result; both parties must open the same.
fn private_u32(
    values: &[u32],
    op: impl Fn(
        &mut mpc_core::Party<u32, mpc_io_std::ChannelTransport, mpc_core::preprocessing::TestDealer<u32>>,
        &[u32],
    ) -> Vec<u32>
    + Send
    + Copy
    + 'static,
) -> Vec<u32> {
    use mpc_core::preprocessing::TestDealer;
    use mpc_core::share::Seed;
    use mpc_core::transport::PartyId;
    use mpc_io_std::ChannelTransport;

    let (t0, t1) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
    let (d0, d1) = TestDealer::<u32>::pair([5; 32]);
    let run = |role: Role, t: ChannelTransport, d: TestDealer<u32>| {
        let values = values.to_vec();
        std::thread::spawn(move || {
            let mut party = mpc_core::Party::with_seed(role, t, d, &Seed::from_bytes([6; 32]));
            let x = party.input(Role::P0, (role == Role::P0).then_some(&values[..]), values.len()).unwrap();
            let b = op(&mut party, &x);
            party.open(&b).unwrap()
        })
    };
    let h0 = run(Role::P0, t0, d0);
    let h1 = run(Role::P1, t1, d1);
    let got = h0.join().unwrap();
    assert_eq!(got, h1.join().unwrap());
    got
}

#[test]
fn ltz_works_in_z2_32() {
    let values: Vec<u32> =
        [0i64, 1, -1, 1 << 29, -(1 << 29), 12345, -12345].iter().map(|&v| u32::from_i64(v)).collect();
    let got = private_u32(&values, |party, x| party.ltz(x).unwrap().into_vec());
    for (v, g) in values.iter().zip(&got) {
        assert_eq!(*g, u32::from(v.to_i64() < 0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Every value against every bound, ties and the range's edges included, from one mask per
    /// value, at the full width and narrower ones (values within range of the width).
    #[test]
    fn below_compares_every_value_with_every_bound(seed: u64, n in 1usize..60, t in 1usize..40, width in widths(12)) {
        let (values, bounds) = within_width(seed, width, n, t);
        let (tv, bv) = (values.clone(), bounds.clone());
        let got = private(&values, move |p, x| {
            let b = p.below(x, &bv, width)?;
            p.open(&b)
        });
        prop_assert_eq!(got.len(), tv.len() * bounds.len());
        for (j, bound) in bounds.iter().enumerate() {
            for (i, v) in tv.iter().enumerate() {
                prop_assert_eq!(got[j * tv.len() + i], u64::from(v.to_i64() < bound.to_i64()), "{} < {}", v.to_i64(), bound.to_i64());
            }
        }
    }
}

/// The rounds of `below` on `n` values and `bounds`, and the bytes a party sends per comparison
/// beyond the values' 8-byte opening.
/// The rounds of `below` on `n` values and `bounds` at `width` bits, and the bytes a party sends
/// per comparison beyond the values' opening (`width` bits each, packed).
fn below_cost(n: usize, bounds: &[f64], width: u32) -> (u64, f64) {
    let values = FP.encode_vec::<u64>(&reals(4, n, 10.0));
    let bounds = FP.encode_vec::<u64>(bounds);
    let cost = private(&values, |p, x| {
        p.open(&[0])?;
        let s = p.transport().stats();
        p.below(x, &bounds, width)?;
        Ok(p.transport().stats().since(&s))
    });
    let opening = (n * width as usize).div_ceil(64) * 8;
    (cost.rounds, (cost.bytes_sent as f64 - opening as f64) / (n * bounds.len()) as f64)
}

#[test]
fn below_many_bounds_costs_four_rounds_and_little_traffic() {
    let bounds: Vec<f64> = (0..100).map(|i| i as f64 / 10.0 - 5.0).collect();
    let (rounds, per_comparison) = below_cost(200, &bounds, 64);
    assert_eq!(rounds, 4);
    // Per comparison and party: 10 AND gates (2 bits each) and 3 bits.
    assert!(per_comparison < 3.1, "below sends {per_comparison} bytes per comparison");
    // At 34 bits: 4 digits, one AND level of 3 gates.
    let (rounds, per_comparison) = below_cost(200, &bounds, 34);
    assert_eq!(rounds, 3);
    assert!(per_comparison < 1.3, "below sends {per_comparison} bytes per comparison at 34 bits");
}

#[test]
fn below_a_few_bounds_costs_five_rounds_on_small_tables() {
    // 2048 comparisons: the packed bits fill whole words.
    let (rounds, per_comparison) = below_cost(1024, &[-4.0, 4.0], 64);
    assert_eq!(rounds, 5);
    // Per comparison and party: 25 AND gates (2 bits each) and 3 bits.
    assert!(per_comparison < 6.7, "below sends {per_comparison} bytes per comparison");
    // At 34 bits: 8 digits, two AND levels of 7 and 3 gates, and 3 bits.
    let (rounds, per_comparison) = below_cost(1024, &[-4.0, 4.0], 34);
    assert_eq!(rounds, 4);
    assert!(per_comparison < 2.9, "below sends {per_comparison} bytes per comparison at 34 bits");
}

#[test]
fn below_works_in_z2_32() {
    let values: Vec<u32> =
        [0i64, 1, -1, 1 << 28, -(1 << 28), 12345, -12345].iter().map(|&v| u32::from_i64(v)).collect();
    const BOUNDS: [i64; 5] = [0, 2, -2, 12345, -(1 << 28)];
    let bounds: Vec<u32> = BOUNDS.iter().map(|&v| u32::from_i64(v)).collect();
    let got = private_u32(&values, |party, x| {
        let bounds: Vec<u32> = BOUNDS.iter().map(|&v| u32::from_i64(v)).collect();
        party.below(x, &bounds, 32).unwrap().into_vec()
    });
    for (j, t) in bounds.iter().enumerate() {
        for (i, v) in values.iter().enumerate() {
            assert_eq!(
                got[j * values.len() + i],
                u32::from(v.to_i64() < t.to_i64()),
                "{} < {}",
                v.to_i64(),
                t.to_i64()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// The squares read off the comparisons' opening are the exact ring squares (wrapping) of
    /// the values, or of their within-one-unit truncations with a shift, on edges and random
    /// values, beside the bits and the last bound's products with those, at the full width and
    /// narrower ones (2(m - s) at least the ring's, values within range). With a shift the
    /// comparisons are read at the truncation's resolution: a bit may differ from the exact one
    /// only for a value within 2^(s+1) of its bound (the skipped bits, and the opening's carry).
    #[test]
    fn below_times_square_squares_each_value_exactly(
        seed: u64,
        n in 1usize..40,
        t in 1usize..20,
        (width, shift) in widths(32).prop_flat_map(|w| (Just(w), prop_oneof![Just(0u32), 0..=w - 32])),
    ) {
        let (values, bounds) = within_width(seed, width, n, t);
        let (tv, bv) = (values.clone(), bounds.clone());
        let [bits, products, squares, y] = private(&values, move |p, x| {
            let [b, prod, sq, y] = p.below_times_square(x, &bv, shift, width)?;
            Ok([p.open(&b)?, p.open(&prod)?, p.open(&sq)?, p.open(&y)?])
        });
        let n = tv.len();
        for ((v, got), y) in tv.iter().zip(&squares).zip(&y) {
            prop_assert!(truncations(v.to_i64(), shift).contains(&y.to_i64()), "{} >> {shift}: {}", v.to_i64(), y.to_i64());
            prop_assert_eq!(*got, y.wrapping_mul(*y));
        }
        // Every comparison's bit; the products are the last bound's.
        prop_assert_eq!(products.len(), n);
        let last = bounds.len() - 1;
        for (j, bound) in bounds.iter().enumerate() {
            for (i, v) in tv.iter().enumerate() {
                let (bit, got) = (u64::from(v.to_i64() < bound.to_i64()), bits[j * n + i]);
                let near = (v.to_i64() as i128 - bound.to_i64() as i128).abs() < 2i128 << shift;
                prop_assert!(got == bit || (near && got <= 1), "{} < {}: {got}", v.to_i64(), bound.to_i64());
                if j == last {
                    prop_assert_eq!(products[i], got.wrapping_mul(y[i]));
                }
            }
        }
    }

    /// The comparisons' products with their values shifted right, read off the same rounds: each
    /// is the bit times a within-one-unit truncation of its value, and that truncation is the
    /// third output; at the full width and narrower ones.
    #[test]
    fn below_times_multiplies_each_bit_by_its_truncated_value(
        seed: u64,
        n in 1usize..40,
        t in 1usize..20,
        (width, shift) in widths(12).prop_flat_map(|w| (Just(w), prop_oneof![Just(0u32), 1..w - 2])),
    ) {
        let (values, bounds) = within_width(seed, width, n, t);
        let (tv, bv) = (values.clone(), bounds.clone());
        let [bits, products, y] = private(&values, move |p, x| {
            let [b, prod, y] = p.below_times(x, &bv, shift, width)?;
            Ok([p.open(&b)?, p.open(&prod)?, p.open(&y)?])
        });
        let n = tv.len();
        for (i, v) in tv.iter().enumerate() {
            let got = y[i].to_i64();
            prop_assert!(truncations(v.to_i64(), shift).contains(&got), "{} >> {shift}: {got}", v.to_i64());
        }
        for (j, bound) in bounds.iter().enumerate() {
            for i in 0..n {
                let q = j * n + i;
                let bit = u64::from(tv[i].to_i64() < bound.to_i64());
                prop_assert_eq!(bits[q], bit);
                prop_assert_eq!(products[q], bit.wrapping_mul(y[i]));
            }
        }
    }
}

/// Narrow comparisons refuse what their width cannot hold, before any message: a width above
/// the ring's or below two digits, a square narrower than half the ring (above its shift), a
/// shift past the truncation's offset.
#[test]
fn below_refuses_widths_it_cannot_take() {
    let values = FP.encode_vec::<u64>(&reals(8, 10, 10.0));
    let errors = private(&values, |p, x| {
        let bounds = [0u64];
        Ok([
            p.below(x, &bounds, 65).err(),
            p.below(x, &bounds, 6).err(),
            p.below_times_square(x, &bounds, 0, 31).err(),
            p.below_times_square(x, &bounds, 10, 40).err(),
            p.below_times(x, &bounds, 32, 34).err(),
        ])
    });
    let width = Some(mpc_core::Error::Malformed("comparison width"));
    assert_eq!(errors, [width, width, width, width, Some(mpc_core::Error::TooLarge)]);
}
