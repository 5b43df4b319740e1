//! Dealer material is consistent across the two parties, and each party's part alone is uniform.

use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::ring::Ring;
use crate::share::reconstruct_additive;
use crate::transport::Role;

fn open<R: Ring>(x: &[R], y: &[R]) -> Vec<R> {
    reconstruct_additive(&[x, y])
}

fn pair<R: Ring>(seed: u8) -> (TestDealer<R>, TestDealer<R>) {
    TestDealer::pair([seed; 32])
}

#[test]
fn beaver_triples_multiply() {
    let (mut p0, mut p1) = pair::<u64>(1);
    let t0 = p0.beaver(500).unwrap();
    let t1 = p1.beaver(500).unwrap();
    let (a, b, c) = (open(&t0.a, &t1.a), open(&t0.b, &t1.b), open(&t0.c, &t1.c));
    for i in 0..500 {
        assert_eq!(c[i], a[i].wrapping_mul(b[i]));
    }
}

#[test]
fn square_and_truncation_pairs_hold_their_relations() {
    let (mut p0, mut p1) = pair::<u64>(2);
    let s0 = p0.square(300).unwrap();
    let s1 = p1.square(300).unwrap();
    let (r, r2) = (open(&s0.r, &s1.r), open(&s0.r2, &s1.r2));
    assert!(r.iter().zip(&r2).all(|(r, r2)| r.wrapping_mul(*r) == *r2));

    let t0 = p0.trunc(300, 16).unwrap();
    let t1 = p1.trunc(300, 16).unwrap();
    let (r, hi, msb) = (open(&t0.r, &t1.r), open(&t0.r_hi, &t1.r_hi), open(&t0.r_msb, &t1.r_msb));
    for i in 0..300 {
        assert_eq!(hi[i], r[i] >> 16);
        assert_eq!(msb[i], r[i] >> 63);
    }
}

#[test]
fn matmul_triples_share_one_reusable_mask() {
    let (mut p0, mut p1) = pair::<u64>(3);
    let (m, k, n) = (5, 7, 9);
    let b0 = p0.matmul_mask(k, n).unwrap();
    let b1 = p1.matmul_mask(k, n).unwrap();
    assert_eq!((b0.id, b1.id), (0, 0));
    let b = open(&b0.b, &b1.b);
    for _ in 0..3 {
        let t0 = p0.matmul_triple(m, k, n, b0.id).unwrap();
        let t1 = p1.matmul_triple(m, k, n, b1.id).unwrap();
        let (a, c) = (open(&t0.a, &t1.a), open(&t0.c, &t1.c));
        let mut expect = vec![0u64; m * n];
        crate::gemm::gemm_naive(m, k, n, &a, &b, &mut expect);
        assert_eq!(c, expect);
    }
    // A second mask gets the next identity; a triple for an unknown mask is refused.
    assert_eq!(p0.matmul_mask(2, 2).unwrap().id, 1);
    assert_eq!(p0.matmul_triple(1, 3, 3, 1).unwrap_err(), Error::MaterialMismatch);
    assert_eq!(p0.matmul_triple(1, 2, 2, 9).unwrap_err(), Error::MaterialMismatch);
}

#[test]
fn works_in_z2_32() {
    let (mut p0, mut p1) = pair::<u32>(4);
    let t0 = p0.beaver(64).unwrap();
    let t1 = p1.beaver(64).unwrap();
    let (a, b, c) = (open(&t0.a, &t1.a), open(&t0.b, &t1.b), open(&t0.c, &t1.c));
    assert!((0..64).all(|i| c[i] == a[i].wrapping_mul(b[i])));
}

/// Each of the 64 bit positions of `values` is 1 with frequency 1/2, within 5 standard deviations.
fn assert_bits_uniform(values: &[u64], what: &str) {
    let n = values.len() as f64;
    let sigma = (n * 0.25).sqrt();
    for bit in 0..64 {
        let ones = values.iter().filter(|v| (*v >> bit) & 1 == 1).count() as f64;
        assert!((ones - n / 2.0).abs() < 5.0 * sigma, "{what}: bit {bit} set {ones} times out of {n}");
    }
}

#[test]
fn each_partys_part_alone_is_uniform() {
    // Correlated parts (c, r², r >> f, msb r) are the ones that could betray structure: at either
    // party alone they must look uniform. Their secrets do not (msb r is a bit; r >> 16 has 16
    // zero bits on top), which checks that the test has power.
    let (mut p0, mut p1) = pair::<u64>(5);
    let n = 20_000;
    let t0 = p0.beaver(n).unwrap();
    let t1 = p1.beaver(n).unwrap();
    let s0 = p0.square(n).unwrap();
    let s1 = p1.square(n).unwrap();
    let q0 = p0.trunc(n, 16).unwrap();
    let q1 = p1.trunc(n, 16).unwrap();
    for (part, name) in [
        (&t0.a, "P0 a"),
        (&t0.c, "P0 c"),
        (&t1.c, "P1 c"),
        (&s0.r2, "P0 r²"),
        (&s1.r2, "P1 r²"),
        (&q0.r_hi, "P0 r>>f"),
        (&q1.r_hi, "P1 r>>f"),
        (&q0.r_msb, "P0 msb"),
        (&q1.r_msb, "P1 msb"),
    ] {
        assert_bits_uniform(part, name);
    }
    let msb = open(&q0.r_msb, &q1.r_msb);
    assert!(msb.iter().all(|&b| b <= 1), "the secret msb is a bit");
    let hi = open(&q0.r_hi, &q1.r_hi);
    assert!(hi.iter().all(|&h| h >> 48 == 0), "the secret r >> 16 has 16 zero bits on top");
}

#[test]
fn request_headers_round_trip() {
    for r in [
        Request::Beaver { n: 5 },
        Request::Square { n: 3 },
        Request::Trunc { n: 9, frac_bits: 16 },
        Request::MatmulMask { k: 768, n: 3072 },
        Request::MatmulTriple { m: 128, k: 768, n: 3072, mask: 41 },
        Request::Below { n: 128, bounds: 289, times: None, square: false, width: 64 },
        Request::Below { n: 128, bounds: 289, times: Some(19), square: false, width: 64 },
        Request::Below { n: 3, bounds: 2, times: Some(0), square: false, width: 64 },
        Request::Below { n: 3, bounds: 2, times: Some(0), square: true, width: 64 },
        Request::Below { n: 3, bounds: 2, times: Some(0), square: true, width: 34 },
        Request::Below { n: 128, bounds: 43, times: Some(19), square: false, width: 40 },
        Request::Fused {
            rows: 128,
            len: 768,
            broadcast: Some(true),
            x_shift: 0,
            y_shift: 40,
            with_square: false,
            y_square: false,
            x_width: 64,
            y_width: 64,
        },
        Request::Fused {
            rows: 1,
            len: 9,
            broadcast: None,
            x_shift: 28,
            y_shift: 24,
            with_square: false,
            y_square: false,
            x_width: 64,
            y_width: 64,
        },
        Request::Fused {
            rows: 128,
            len: 768,
            broadcast: Some(false),
            x_shift: 24,
            y_shift: 0,
            with_square: true,
            y_square: false,
            x_width: 64,
            y_width: 64,
        },
        Request::Fused {
            rows: 2,
            len: 768,
            broadcast: Some(false),
            x_shift: 37,
            y_shift: 24,
            with_square: false,
            y_square: true,
            x_width: 64,
            y_width: 64,
        },
        Request::Fused {
            rows: 1,
            len: 768,
            broadcast: None,
            x_shift: 0,
            y_shift: 42,
            with_square: false,
            y_square: false,
            x_width: 3,
            y_width: 64,
        },
        Request::Fused {
            rows: 1,
            len: 9,
            broadcast: None,
            x_shift: 20,
            y_shift: 38,
            with_square: true,
            y_square: false,
            x_width: 43,
            y_width: 64,
        },
        Request::FusedSquare { n: 7, shift: 32, width: 64 },
        Request::FusedSquare { n: 1, shift: 0, width: 64 },
        Request::FusedSquare { n: 7, shift: 25, width: 52 },
    ] {
        assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS), Ok(r));
    }
}

#[test]
fn zero_sized_requests_are_refused_by_every_provider() {
    let empty = [
        Request::Beaver { n: 0 },
        Request::Square { n: 0 },
        Request::Trunc { n: 0, frac_bits: 16 },
        Request::MatmulMask { k: 0, n: 4 },
        Request::MatmulTriple { m: 4, k: 0, n: 4, mask: 0 },
        Request::OwnedTriple { m: 4, k: 0, n: 4, mask: 0 },
        Request::OwnedMask { k: 4, n: 0 },
        Request::And { words: 0 },
        Request::Broadcast { rows: 0, len: 4, per_row: true },
        Request::Below { n: 0, bounds: 3, times: None, square: false, width: 64 },
        Request::Below { n: 3, bounds: 0, times: Some(4), square: false, width: 64 },
        Request::Fused {
            rows: 0,
            len: 3,
            broadcast: None,
            x_shift: 4,
            y_shift: 0,
            with_square: false,
            y_square: false,
            x_width: 64,
            y_width: 64,
        },
        Request::FusedSquare { n: 0, shift: 4, width: 64 },
    ];
    let zero_sized = Some(Error::Malformed("zero-sized request"));
    for r in empty {
        assert!(r.is_empty(), "{r:?}");
        assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS).err(), zero_sized, "{r:?}");
        let (mut p0, mut p1) = TestDealer::<u64>::pair([3; 32]);
        assert_eq!(p0.material(&r).err(), zero_sized, "{r:?}");
        assert_eq!(p1.material(&r).err(), zero_sized, "{r:?}");
    }
}

#[test]
fn hostile_request_headers_are_refused() {
    let mut h = Request::Beaver { n: 5 }.encode();
    h[0] = 99;
    assert_eq!(Request::decode::<u64>(&h, MAX_REQUEST_ELEMENTS), Err(Error::Malformed("request header")));
    assert_eq!(Request::decode::<u64>(&h[..39], MAX_REQUEST_ELEMENTS), Err(Error::Malformed("request header length")));
    let huge = Request::MatmulMask { k: 1 << 20, n: 1 << 20 }.encode();
    assert_eq!(Request::decode::<u64>(&huge, MAX_REQUEST_ELEMENTS), Err(Error::TooLarge));
    let overflow = Request::MatmulTriple { m: usize::MAX, k: 2, n: 1, mask: 0 }.encode();
    assert_eq!(Request::decode::<u64>(&overflow, MAX_REQUEST_ELEMENTS), Err(Error::TooLarge));
    let shift = Request::Trunc { n: 1, frac_bits: 63 }.encode();
    assert_eq!(Request::decode::<u64>(&shift, MAX_REQUEST_ELEMENTS), Err(Error::TooLarge));
    let mut junk = Request::Square { n: 1 }.encode();
    junk[20] = 1;
    assert_eq!(Request::decode::<u64>(&junk, MAX_REQUEST_ELEMENTS), Err(Error::Malformed("request header")));
    // A lookup whose route (m² · slots) or slots' masks (slots · k) overflow, or a table with junk.
    for lookup in [
        Request::OwnedLookup { m: usize::MAX, k: 2, n: 1, mask: 0 },
        Request::OwnedLookup { m: 1 << 20, k: 2, n: 1, mask: 0 },
        Request::OwnedLookup { m: 64, k: usize::MAX / 8, n: 1, mask: 0 },
    ] {
        assert_eq!(Request::decode::<u64>(&lookup.encode(), MAX_REQUEST_ELEMENTS), Err(Error::TooLarge), "{lookup:?}");
    }
    let mut table = Request::OwnedTable { k: 3, n: 2 }.encode();
    table[30] = 1;
    assert_eq!(Request::decode::<u64>(&table, MAX_REQUEST_ELEMENTS), Err(Error::Malformed("request header")));
}

#[test]
fn store_serves_in_order_and_refuses_other_programs() {
    let (mut p0, _) = pair::<u64>(6);
    let mut store = Store::new();
    store.fill(&mut p0, &[Request::Beaver { n: 3 }, Request::Square { n: 4 }]).unwrap();
    assert_eq!(store.len(), 2);
    assert_eq!(store.square(4).unwrap_err(), Error::MaterialMismatch);
    assert_eq!(store.beaver(3).unwrap().c.len(), 3);
    assert_eq!(store.square(4).unwrap().r.len(), 4);
    assert_eq!(store.beaver(1).unwrap_err(), Error::MaterialExhausted);
    assert!(store.is_empty());
}

#[test]
fn a_pipeline_plans_from_shapes_without_asking_its_provider() {
    let (p0, _) = pair::<u64>(7);
    let mut pipeline = Pipeline::new(p0, Role::P0);
    assert!(!pipeline.rehearsing());
    pipeline.start_planning();
    // Protocols skip their local products while this holds: the values are thrown away.
    assert!(pipeline.rehearsing());
    let rehearsed = pipeline.beaver(2).unwrap();
    let mask = pipeline.matmul_mask(2, 3).unwrap();
    let triple = pipeline.matmul_triple(4, 2, 3, mask.id).unwrap();
    let plan = pipeline.finish_planning();
    assert!(!pipeline.rehearsing());
    assert!(rehearsed.c.iter().chain(triple.a.iter()).all(|&x| x == 0), "a rehearsal gets zeros");
    assert_eq!(triple.a.len(), 8);
    assert_eq!(pipeline.live().next_mask_id(), 0, "the provider made nothing");
    assert_eq!(plan.requests()[..2], [Request::Beaver { n: 2 }, Request::MatmulMask { k: 2, n: 3 }]);
    assert_eq!(plan.elements::<u64>(), 3 * 2 + 6 + (8 + 12));
    // Offline then online: served from the store, each piece checked against its request.
    pipeline.run(alloc::sync::Arc::new(plan));
    pipeline.fill_ahead().unwrap();
    assert_eq!(pipeline.stats().chunks, 1);
    assert_eq!(pipeline.square(2).unwrap_err(), Error::MaterialMismatch, "another program is refused");
}

#[test]
fn a_pipeline_streams_in_chunks_renames_masks_and_checks_the_whole_plan_ran() {
    let (p0, p1) = pair::<u64>(10);
    let program = |s: &mut Pipeline<TestDealer<u64>, u64>| {
        let _ = s.beaver(5).unwrap();
        let mask = s.matmul_mask(2, 2).unwrap();
        let triple = s.matmul_triple(3, 2, 2, mask.id).unwrap();
        (mask, triple)
    };
    // A budget of nothing and chunks of one element: every request is made on demand.
    let (mut s0, mut s1) =
        (Pipeline::new(p0, Role::P0).with_budget(0, 1), Pipeline::new(p1, Role::P1).with_budget(0, 1));
    let mut plans = [&mut s0, &mut s1].map(|s| {
        s.start_planning();
        program(s);
        alloc::sync::Arc::new(s.finish_planning())
    });
    assert_eq!(plans[0], plans[1]);
    for (s, plan) in [&mut s0, &mut s1].into_iter().zip(plans.iter_mut()) {
        s.run(plan.clone());
        s.fill_ahead().unwrap();
    }
    let ((m0, t0), (m1, t1)) = (program(&mut s0), program(&mut s1));
    assert_eq!((m0.id, m1.id), (0, 0), "the provisional identity became the real one");
    let (a, b, c) = (open(&t0.a, &t1.a), open(&m0.b, &m1.b), open(&t0.c, &t1.c));
    let mut expect = vec![0u64; 6];
    crate::gemm::gemm_naive(3, 2, 2, &a, &b, &mut expect);
    assert_eq!(c, expect, "the triple made in another chunk fits its mask");
    assert_eq!(s0.stats().chunks_on_demand, 3);
    assert_eq!(s0.stats().peak_elements, 15, "one request's material at a time (the largest, 3 × 5)");
    s0.finish_run().unwrap();
    // A run that stops early is refused.
    s1.run(plans[1].clone());
    let _ = s1.beaver(5).unwrap();
    assert_eq!(s1.finish_run(), Err(Error::MaterialMismatch));
}

#[test]
fn queued_runs_are_made_ahead_in_order_and_each_program_gets_only_its_own() {
    let (p0, p1) = pair::<u64>(11);
    let program = |s: &mut Pipeline<TestDealer<u64>, u64>| {
        let mask = s.matmul_mask(2, 2)?;
        let triple = s.matmul_triple(3, 2, 2, mask.id)?;
        let _ = s.beaver(4)?;
        Ok::<_, Error>((mask, triple))
    };
    // A budget for both runs, in chunks of one request: everything is made ahead.
    let (mut s0, mut s1) =
        (Pipeline::new(p0, Role::P0).with_budget(100, 1), Pipeline::new(p1, Role::P1).with_budget(100, 1));
    let plan = {
        s0.start_planning();
        program(&mut s0).unwrap();
        alloc::sync::Arc::new(s0.finish_planning())
    };
    for s in [&mut s0, &mut s1] {
        s.queue_run(plan.clone());
        s.queue_run(plan.clone());
        s.fill_ahead().unwrap();
        assert_eq!(s.queued_runs(), 2);
    }
    let made_ahead = s0.stats().chunks;
    assert_eq!(made_ahead, 6, "both runs' three requests, one chunk each");
    let mut finished = Vec::new();
    for run in 0..2u64 {
        let ((m0, t0), (m1, t1)) = (program(&mut s0).unwrap(), program(&mut s1).unwrap());
        assert_eq!((m0.id, m1.id), (run, run), "each run has its own mask");
        let (a, b, c) = (open(&t0.a, &t1.a), open(&m0.b, &m1.b), open(&t0.c, &t1.c));
        let mut expect = vec![0u64; 6];
        crate::gemm::gemm_naive(3, 2, 2, &a, &b, &mut expect);
        assert_eq!(c, expect, "run {run}'s triple fits run {run}'s mask");
        // A program asking past its own run is refused, though the next run holds the same request.
        assert_eq!(s0.beaver(4).unwrap_err(), Error::MaterialExhausted);
        finished.push(s0.finish_run().unwrap());
        s1.finish_run().unwrap();
    }
    assert_eq!(finished[0].masks, 0..1);
    assert_eq!(finished[1].masks, 1..2);
    assert_eq!(s0.stats().chunks_on_demand, 0, "nothing was made on demand");
    assert_eq!(s0.queued_runs(), 0);
}

#[test]
fn abandoned_runs_name_the_masks_they_made_and_a_short_budget_makes_the_rest_on_demand() {
    let (p0, _) = pair::<u64>(12);
    let program = |s: &mut Pipeline<TestDealer<u64>, u64>| {
        let mask = s.matmul_mask(2, 2).unwrap();
        s.matmul_triple(1, 2, 2, mask.id).unwrap();
    };
    let mut s = Pipeline::new(p0, Role::P0).with_budget(3, 1);
    s.start_planning();
    program(&mut s);
    let plan = alloc::sync::Arc::new(s.finish_planning());
    // A model's mask first (0), made live.
    s.matmul_mask(4, 4).unwrap();
    for _ in 0..3 {
        s.queue_run(plan.clone());
    }
    s.fill_ahead().unwrap();
    // The budget (3 elements) holds the first run's mask (4) only, not its triple.
    assert_eq!(s.stats().chunks, 1);
    program(&mut s);
    assert_eq!(s.stats().chunks_on_demand, 1, "the rest of the program's run is made when needed");
    assert_eq!(s.finish_run().unwrap().masks, 1..2);
    s.fill_ahead().unwrap();
    assert_eq!(s.abandon_runs(), 2..3, "the second run made its mask, the third nothing yet");
    assert_eq!(s.queued_runs(), 0);
    assert_eq!(s.live().next_mask_id(), 3);
}

#[test]
fn a_released_range_of_masks_leaves_those_around_it() {
    use crate::share::Seed;
    let mut state = deal::DealerState::<u64>::new([Seed::from_bytes([1; 32]), Seed::from_bytes([2; 32])]);
    for _ in 0..4 {
        state.deal(&Request::MatmulMask { k: 2, n: 2 }).unwrap();
    }
    state.release_masks(1..3);
    assert_eq!(state.live_masks(), 2);
    assert_eq!(state.mask_elements(), 8);
    for (mask, live) in [(0, true), (1, false), (2, false), (3, true)] {
        assert_eq!(state.deal(&Request::MatmulTriple { m: 1, k: 2, n: 2, mask }).is_ok(), live, "mask {mask}");
    }
    // An empty or reversed range releases nothing.
    let (from, to) = (3, 0);
    state.release_masks(from..to);
    assert_eq!(state.live_masks(), 2);
}

proptest! {
    #[test]
    fn decoding_never_panics(bytes: Vec<u8>) {
        let _ = Request::decode::<u64>(&bytes, MAX_REQUEST_ELEMENTS);
    }
}

#[test]
fn and_triples_and_comparison_material_hold_their_relations() {
    fn check<R: Ring>() {
        let (mut p0, mut p1) = pair::<R>(8);
        let a0 = p0.and_triples(40).unwrap();
        let a1 = p1.and_triples(40).unwrap();
        for i in 0..40 {
            assert!((a0.c[i] ^ a1.c[i]) == (a0.a[i] ^ a1.a[i]) & (a0.b[i] ^ a1.b[i]));
        }
        // Comparison material at the ring's width and narrow ones, with 4- and 8-bit digits, and
        // squares of shifted values (whose digits skip the shift's bits).
        let widths = [R::BITS, R::BITS / 2 + 2, R::BITS - 4];
        for (width, bounds, times, square) in [
            (widths[0], 2, None, false),
            (widths[1], 3, Some(0), true),
            (widths[1], 20, Some(5), false),
            (widths[0], 2, Some(6), true),
            (widths[2], 2, Some(R::BITS / 2 - 8), true),
            // At the ring's width without a shift there is no wrap: r itself is the factor.
            (widths[0], 3, Some(0), false),
            (widths[0], 2, Some(0), true),
        ] {
            let skip = deal::below_skip(times, square);
            let n = 70;
            let request = Request::Below { n, bounds, times, square, width };
            let (Material::Below(m0), Material::Below(m1)) =
                (p0.material(&request).unwrap(), p1.material(&request).unwrap())
            else {
                panic!("comparison material");
            };
            // ρ = r mod 2^width: what meets the opening.
            let rho: Vec<u64> = open(&m0.r, &m1.r).iter().map(|v| v.to_u64() & (u64::MAX >> (64 - width))).collect();
            let xor = |x: &[R], y: &[R]| x.iter().zip(y).map(|(&a, &b)| (a ^ b).to_u64()).collect::<Vec<u64>>();
            let tables = xor(&m0.tables, &m1.tables);
            let (w, digits) = (deal::below_digit_bits(bounds), deal::below_digits(bounds, width - skip));
            let (table_bits, tw) = (deal::below_table_bits(bounds), deal::below_table_words::<R>(bounds, width - skip));
            let bits = R::BITS as usize;
            let table_bit = |i: usize, at: usize| (tables[i * tw + at / bits] >> (at % bits)) & 1;
            for (i, &r) in rho.iter().enumerate() {
                let flip = (r >> (width - 2)) & 1 == 1;
                let low = (r & ((1u64 << (width - 2)) - 1)) >> skip;
                for d in 0..digits {
                    let digit = (low >> (w as usize * d)) & ((1 << w) - 1);
                    for v in 0..1u64 << w {
                        let upper = flip && d >= digits / 2;
                        let lt = if upper { v > digit } else { v < digit } ^ (flip && d == digits / 2 - 1);
                        let at = d * table_bits + v as usize;
                        assert_eq!(table_bit(i, at), u64::from(lt), "width {width}, lt table, digit {d}, v {v}");
                        assert_eq!(table_bit(i, at + (1 << w)), u64::from(v == digit), "eq table, digit {d}, v {v}");
                    }
                }
            }
            // The bit masks' arithmetic shares, and the products' parts for the comparisons
            // that have them (all, or the last bound's with a square).
            let m = n * bounds;
            let u = |k: usize, q: usize| {
                let bit = |words: &[u64]| (words[q / bits] >> (q % bits)) & 1;
                let (u1, u2, u3) = (xor(&m0.u[0], &m1.u[0]), xor(&m0.u[1], &m1.u[1]), xor(&m0.u[2], &m1.u[2]));
                [bit(&u1), bit(&u2), bit(&u3), bit(&u2) & bit(&u3)][k]
            };
            let arith: Vec<Vec<R>> = (0..4).map(|k| open(&m0.arith[k], &m1.arith[k])).collect();
            for q in (0..m).step_by(7) {
                for (k, a) in arith.iter().enumerate() {
                    assert_eq!(a[q].to_u64(), u(k, q), "U_{k} of comparison {q}");
                }
            }
            let Some(shift) = times else { continue };
            let mask = |v: u64| if R::BITS == 64 { v } else { v & 0xFFFF_FFFF };
            let (trunc, cross) = (open(&m0.value_trunc, &m1.value_trunc), open(&m0.cross, &m1.cross));
            let msb = |i: usize| (rho[i] >> (width - 1)) & 1;
            let wraps = deal::below_wraps::<R>(times, width);
            assert_eq!(trunc.len(), if wraps { 2 * n } else { 0 }, "a narrow or shifted comparison carries its wrap");
            for i in (0..n).filter(|_| wraps) {
                assert_eq!(trunc[i].to_u64(), rho[i] >> shift);
                assert_eq!(trunc[n + i].to_u64(), msb(i));
            }
            let with_products = if square { n } else { m };
            let parts = if wraps { 2 } else { 1 };
            assert_eq!(cross.len(), 4 * parts * with_products);
            for (p, q) in (m - with_products..m).enumerate().step_by(5) {
                for k in 0..4 {
                    let at = |part: usize| cross[(parts * k + part) * with_products + p].to_u64();
                    if wraps {
                        assert_eq!(at(0), u(k, q) * msb(q % n), "U_{k}·msb, comparison {q}");
                    }
                    assert_eq!(at(parts - 1), mask(u(k, q) * (rho[q % n] >> shift)), "U_{k}·hi, comparison {q}");
                }
            }
            if square {
                // Of y = x >> s: hi² and hi·msb for hi = ρ >> s (the latter with a wrap only).
                let squares = open(&m0.square, &m1.square);
                assert_eq!(squares.len(), if wraps { 2 * n } else { n });
                for i in 0..n {
                    let hi = rho[i] >> shift;
                    assert_eq!(squares[i].to_u64(), mask(hi.wrapping_mul(hi)));
                    if wraps {
                        assert_eq!(squares[n + i].to_u64(), mask(hi * msb(i)));
                    }
                }
            }
        }
    }
    check::<u64>();
    check::<u32>();
}

#[test]
fn table_lookup_material_holds_its_relations() {
    use crate::protocol::lookup::{TableBins, bin_products};
    use crate::protocol::{LOOKUP_SLOTS, lookup_bins};
    let (mut p0, mut p1) = pair::<u64>(21);
    let (k, n, m) = (200, 3, 40);
    let (Material::OwnedTable(b, key), Material::OwnedTable(b1, key1)) =
        (p0.material(&Request::OwnedTable { k, n }).unwrap(), p1.material(&Request::OwnedTable { k, n }).unwrap())
    else {
        panic!("table material");
    };
    // B and its key are P0's alone.
    assert_eq!((b.b.len(), key.len(), b1.b.len(), key1.len()), (k * n, 1, 0, 0));
    let request = Request::OwnedLookup { m, k, n, mask: b.id };
    let (Material::OwnedLookup(l0), Material::OwnedLookup(l1)) =
        (p0.material(&request).unwrap(), p1.material(&request).unwrap())
    else {
        panic!("lookup material");
    };
    let (bins, slots) = (lookup_bins(m), lookup_bins(m) * LOOKUP_SLOTS);
    assert_eq!((l0.a.len(), l0.route.len(), l0.r0.len()), (0, 0, slots * n), "P0 holds R0 only");
    assert_eq!((l1.a.len(), l1.route.len(), l1.r0.len()), (LOOKUP_SLOTS * k, m * slots, 0), "P1 its masks only");
    // C = a · B per slot, over B's rows in the table's order; A' · R0.
    let order = TableBins::new(key[0], k);
    let mut c = vec![0u64; slots * n];
    let mut sorted = b.b.clone();
    order.sort_in_place(&mut sorted, n);
    bin_products(&sorted, n, (&order, bins), &l1.a, &mut c).unwrap();
    assert_eq!(open(&l0.c, &l1.c), c);
    let mut c_route = vec![0u64; m * n];
    crate::gemm::gemm_acc(m, slots, n, &l1.route, &l0.r0, &mut c_route);
    assert_eq!(open(&l0.c_route, &l1.c_route), c_route);
    // A lookup needs a table's mask of its shape: an owned mask, another shape or no mask is refused.
    let owned = p0.owned_mask(k, n).unwrap().id;
    for bad in [Request::OwnedLookup { m, k, n, mask: owned }, Request::OwnedLookup { m, k: k + 1, n, mask: b.id }] {
        assert_eq!(p0.material(&bad).err(), Some(Error::MaterialMismatch), "{bad:?}");
    }
}

#[test]
fn owned_masks_stay_with_p0_and_triples_with_p1() {
    let (mut p0, mut p1) = pair::<u64>(9);
    let (m, k, n) = (3, 4, 5);
    let b0 = p0.owned_mask(k, n).unwrap();
    let b1 = p1.owned_mask(k, n).unwrap();
    assert_eq!((b0.b.len(), b1.b.len()), (k * n, 0), "B is P0's alone");
    let t0 = p0.owned_triple(m, k, n, b0.id).unwrap();
    let t1 = p1.owned_triple(m, k, n, b1.id).unwrap();
    assert_eq!((t0.a.len(), t1.a.len()), (0, m * k), "A is P1's alone");
    let c = open(&t0.c, &t1.c);
    let mut expect = vec![0u64; m * n];
    crate::gemm::gemm_naive(m, k, n, &t1.a, &b0.b, &mut expect);
    assert_eq!(c, expect);
    // A shared mask's triple cannot be asked for under an owned mask's identity.
    assert_eq!(p0.matmul_triple(m, k, n, b0.id).unwrap_err(), Error::MaterialMismatch);
}

#[test]
fn released_masks_are_forgotten_and_later_ones_still_work() {
    use crate::share::Seed;
    let mut state = deal::DealerState::<u64>::new([Seed::from_bytes([1; 32]), Seed::from_bytes([2; 32])]);
    let (k, n) = (3, 2);
    // A model's mask (0), then an inference's (1).
    state.deal(&Request::MatmulMask { k, n }).unwrap();
    state.deal(&Request::MatmulMask { k, n }).unwrap();
    state.deal(&Request::MatmulTriple { m: 2, k, n, mask: 1 }).unwrap();
    state.release_masks(1..u64::MAX);
    assert_eq!(state.live_masks(), 1, "the model's mask stays");
    // Mask 1 is gone: a triple for it is refused, not served with another mask.
    assert_eq!(state.deal(&Request::MatmulTriple { m: 2, k, n, mask: 1 }).err(), Some(Error::MaterialMismatch));
    assert!(state.deal(&Request::MatmulTriple { m: 2, k, n, mask: 0 }).is_ok());
    // Identities keep counting: the next mask is 2, and it serves triples.
    state.deal(&Request::MatmulMask { k, n }).unwrap();
    assert!(state.deal(&Request::MatmulTriple { m: 2, k, n, mask: 2 }).is_ok());
    state.release_masks(0..u64::MAX);
    assert_eq!(state.live_masks(), 0);
    assert!(state.deal(&Request::MatmulTriple { m: 2, k, n, mask: 0 }).is_err());
}

/// One request of every kind (two masks, with triples for each).
/// A fused product of a 2 × 3 matrix x with y (broadcast as asked), shifted and squared as
/// asked.
fn fused_2x3(broadcast: Option<bool>, x_shift: u32, y_shift: u32, with_square: bool, y_square: bool) -> Request {
    Request::Fused { rows: 2, len: 3, broadcast, x_shift, y_shift, with_square, y_square, x_width: 64, y_width: 64 }
}

/// `request` (a fused product) with x and y opened on the widths given (the ring's for `None`).
fn narrow(request: Request, x: Option<u32>, y: Option<u32>) -> Request {
    match request {
        Request::Fused { rows, len, broadcast, x_shift, y_shift, with_square, y_square, x_width, y_width } => {
            let (x_width, y_width) = (x.unwrap_or(x_width), y.unwrap_or(y_width));
            Request::Fused { rows, len, broadcast, x_shift, y_shift, with_square, y_square, x_width, y_width }
        }
        other => other,
    }
}

fn every_request() -> Vec<Request> {
    vec![
        Request::Beaver { n: 5 },
        Request::Square { n: 3 },
        Request::Trunc { n: 4, frac_bits: 12 },
        Request::MatmulMask { k: 3, n: 2 },
        Request::MatmulTriple { m: 2, k: 3, n: 2, mask: 0 },
        Request::OwnedMask { k: 2, n: 4 },
        Request::OwnedTriple { m: 3, k: 2, n: 4, mask: 1 },
        Request::Broadcast { rows: 2, len: 3, per_row: true },
        Request::And { words: 2 },
        Request::Below { n: 3, bounds: 5, times: None, square: false, width: 64 },
        Request::Below { n: 3, bounds: 5, times: Some(7), square: false, width: 64 },
        Request::Below { n: 3, bounds: 5, times: Some(0), square: true, width: 64 },
        Request::Below { n: 3, bounds: 5, times: Some(0), square: true, width: 34 },
        Request::Below { n: 3, bounds: 5, times: Some(16), square: true, width: 50 },
        Request::Below { n: 3, bounds: 2, times: Some(5), square: true, width: 64 },
        Request::Below { n: 3, bounds: 5, times: Some(0), square: false, width: 34 },
        Request::Below { n: 3, bounds: 17, times: Some(9), square: false, width: 40 },
        Request::Below { n: 3, bounds: 5, times: None, square: false, width: 10 },
        fused_2x3(Some(true), 0, 9, false, false),
        fused_2x3(None, 7, 9, false, false),
        fused_2x3(Some(false), 3, 0, false, false),
        fused_2x3(None, 0, 0, false, false),
        fused_2x3(Some(false), 5, 0, true, false),
        Request::Fused {
            rows: 2,
            len: 3,
            broadcast: None,
            x_shift: 0,
            y_shift: 4,
            with_square: true,
            y_square: false,
            x_width: 64,
            y_width: 64,
        },
        fused_2x3(Some(true), 7, 9, true, false),
        fused_2x3(Some(false), 7, 9, false, true),
        fused_2x3(None, 0, 0, false, true),
        narrow(fused_2x3(None, 0, 30, false, false), Some(3), None),
        narrow(fused_2x3(Some(true), 20, 30, true, false), Some(40), None),
        narrow(fused_2x3(Some(false), 0, 0, false, true), Some(12), None),
        narrow(fused_2x3(None, 20, 30, false, true), None, Some(45)),
        narrow(fused_2x3(Some(true), 0, 3, true, false), Some(10), Some(7)),
        Request::FusedSquare { n: 5, shift: 0, width: 64 },
        Request::FusedSquare { n: 5, shift: 20, width: 64 },
        Request::FusedSquare { n: 5, shift: 12, width: 39 },
        Request::FusedSquare { n: 5, shift: 0, width: 20 },
        Request::FusedSquare { n: 5, shift: 40, width: 60 },
        // A table (mask 2) and a lookup in it.
        Request::OwnedTable { k: 7, n: 3 },
        Request::OwnedLookup { m: 4, k: 7, n: 3, mask: 2 },
    ]
}

#[test]
fn stored_material_reads_back_as_it_was_written_at_both_parties() {
    let (mut p0, mut p1) = pair::<u64>(12);
    for dealer in [&mut p0, &mut p1] {
        let mut store = Store::<u64>::new();
        store.fill(dealer, &every_request()).unwrap();
        let bytes = store.to_bytes();
        let read = Store::<u64>::from_bytes(&bytes, 1 << 20).unwrap();
        assert_eq!(read.len(), every_request().len());
        assert_eq!(*read.to_bytes(), *bytes, "the format is canonical");
        // Every prefix is refused, as is one byte more; nothing panics.
        for cut in 0..bytes.len() {
            assert!(Store::<u64>::from_bytes(&bytes[..cut], 1 << 20).is_err(), "prefix of {cut} bytes");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(Store::<u64>::from_bytes(&longer, 1 << 20).is_err());
        assert!(Store::<u32>::from_bytes(&bytes, 1 << 20).is_err(), "another ring");
        assert!(Store::<u64>::from_bytes(&bytes, 2).is_err(), "requests above the limit");
    }
    // A store read back serves the program it was made for.
    let mut store = Store::<u64>::new();
    store.fill(&mut p0, &[Request::Beaver { n: 2 }]).unwrap();
    let mut read = Store::<u64>::from_bytes(&store.to_bytes(), 1 << 20).unwrap();
    assert_eq!(read.beaver(2).unwrap().c.len(), 2);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_store_reader(bytes: Vec<u8>, tweak in 0usize..4096, value: u8) {
        let _ = Store::<u64>::from_bytes(&bytes, 1 << 12);
        // Valid material with one byte changed: refused or read, never a panic.
        let (mut p0, _) = pair::<u64>(13);
        let mut store = Store::<u64>::new();
        store.fill(&mut p0, &every_request()).unwrap();
        let mut valid = store.to_bytes().to_vec();
        let at = tweak % valid.len();
        valid[at] = value;
        if let Ok(read) = Store::<u64>::from_bytes(&valid, 1 << 12) {
            prop_assert_eq!(read.to_bytes().to_vec(), valid);
        }
    }
}

/// Found by the `stored_material` fuzz target: a truncation request whose shift overflowed the
/// check `frac_bits + 2 < BITS` (a panic in debug builds; in release, a dealer accepting a shift
/// by 2^32 − 1 bits).
#[test]
fn regression_truncation_by_a_huge_shift_is_refused() {
    let mut header = [0u8; 40];
    header[..8].copy_from_slice(&3u64.to_le_bytes());
    header[8..16].copy_from_slice(&1u64.to_le_bytes());
    for frac_bits in [u32::MAX, u32::MAX - 1, 64, 62] {
        header[16..24].copy_from_slice(&u64::from(frac_bits).to_le_bytes());
        assert_eq!(Request::decode::<u64>(&header, 1 << 10).err(), Some(Error::TooLarge), "{frac_bits}");
    }
    header[16..24].copy_from_slice(&61u64.to_le_bytes());
    assert!(Request::decode::<u64>(&header, 1 << 10).is_ok());
    let artifact = b"MPCSTOR1@\0\0\0R\xcaZ\xb0ZZZZ\x03\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\xff\xff\xff\xff";
    let mut stored = artifact.to_vec();
    stored.resize(80, 0);
    assert!(Store::<u64>::from_bytes(&stored, 1 << 10).is_err());
}

/// Found by the `stored_material` fuzz target in CI: a broadcast request for an empty matrix
/// (0 rows) with a vector of 2^56 entries passed the size check, which bounded only rows × len;
/// the dealer would have tried to allocate the vector.
#[test]
fn regression_an_empty_broadcast_with_a_huge_vector_is_refused() {
    for (rows, len) in [(0usize, 1usize << 56), (1 << 56, 0)] {
        for per_row in [false, true] {
            let header = Request::Broadcast { rows, len, per_row }.encode();
            let refused = Request::decode::<u64>(&header, 1 << 20).err();
            assert_eq!(refused, Some(Error::Malformed("zero-sized request")), "{rows} {len}");
        }
    }
    let mut artifact = b"MPCSTOR1@\0\0\0\0\x03\0\0\0\0\0\x01\x0a".to_vec();
    artifact.resize(0x5a, 0);
    artifact[0x2b] = 0x63;
    artifact[0x54] = 0x63;
    assert!(Store::<u64>::from_bytes(&artifact, 1 << 20).is_err());
}

/// A P0 that sends the dealer other headers than the program's (reordered, reshaped) receives
/// corrections computed from PRF values that P1 never uses: nothing P0 sees equals any word of
/// P1's real material, and the material no longer correlates (the inference would be garbage).
#[test]
fn material_is_bound_to_the_request_p1_expects() {
    use crate::share::Seed;
    use crate::transport::Role;
    use deal::{DealerState, RequestKeys};
    let seeds = || [Seed::from_bytes([7; 32]), Seed::from_bytes([8; 32])];
    let (m, k, n) = (4, 6, 5);
    let honest = [Request::OwnedMask { k, n }, Request::OwnedTriple { m, k, n, mask: 0 }, Request::Beaver { n: 16 }];
    // P1 derives its parts for the requests it expects.
    let [_, s1] = seeds();
    let mut keys1 = RequestKeys::new(s1);
    let p1: Vec<deal::Parts<u64>> =
        honest.iter().map(|r| deal::draw(Role::P1, r, &mut keys1.prg(r), &mut Default::default())).collect();
    let p1_words: alloc::collections::BTreeSet<u64> =
        p1.iter().flat_map(|p| p.random.iter().chain(p.correlated.iter())).flat_map(|s| s.iter().copied()).collect();

    // The honest P0's view matches P1's material: C = A · B.
    let mut dealer = DealerState::<u64>::new(seeds());
    let b = dealer.deal(&honest[0]).unwrap().random[0].clone();
    let c0 = dealer.deal(&honest[1]).unwrap().correlated[0].clone();
    let mut expect = vec![0u64; m * n];
    crate::gemm::gemm_naive(m, k, n, &p1[1].random[0], &b, &mut expect);
    assert_eq!(open(&c0, &p1[1].correlated[0]), expect, "honest headers: the triple correlates");

    // A hostile P0 swaps the last two requests, then asks for a zero-k triple.
    let mut dealer = DealerState::<u64>::new(seeds());
    let mut seen: Vec<u64> = Vec::new();
    for r in [honest[0], honest[2], honest[1]] {
        let parts = dealer.deal(&r).unwrap();
        seen.extend(parts.random.iter().chain(parts.correlated.iter()).flat_map(|s| s.iter().copied()));
    }
    assert!(seen.iter().all(|w| !p1_words.contains(w)), "no word of P1's material reaches P0");
    let zero_k = Request::OwnedTriple { m, k: 0, n, mask: 0 };
    assert_eq!(zero_k.validate::<u64>(MAX_REQUEST_ELEMENTS), Err(Error::Malformed("zero-sized request")));
    // Under the hostile order, P0's triple share no longer fits P1's: C ≠ A · B.
    let mut dealer = DealerState::<u64>::new(seeds());
    dealer.deal(&honest[0]).unwrap();
    dealer.deal(&honest[2]).unwrap();
    let c0 = dealer.deal(&honest[1]).unwrap().correlated[0].clone();
    assert_ne!(open(&c0, &p1[1].correlated[0]), expect, "reordered headers: the triple is garbage");
}

#[test]
fn requests_with_shifts_beyond_the_ring_are_refused() {
    // (u32::MAX, ...) was a fuzzer's find: the bound check itself overflowed.
    for (x_shift, y_shift) in [(62, 0), (0, 63), (40, 30), (u32::MAX, 0x8eff_ffff), (1, u32::MAX)] {
        let r = Request::Fused {
            rows: 2,
            len: 2,
            broadcast: None,
            x_shift,
            y_shift,
            with_square: false,
            y_square: false,
            x_width: 64,
            y_width: 64,
        };
        assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS), Err(Error::TooLarge), "{r:?}");
    }
    // A square's msb·msb term vanishes only for 2s <= k.
    for shift in [33, 62, u32::MAX] {
        let r = Request::FusedSquare { n: 2, shift, width: 64 };
        assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS), Err(Error::TooLarge), "{r:?}");
        let r = Request::Fused {
            rows: 2,
            len: 2,
            broadcast: None,
            x_shift: shift,
            y_shift: 0,
            with_square: true,
            y_square: false,
            x_width: 64,
            y_width: 64,
        };
        assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS), Err(Error::TooLarge), "{r:?}");
    }
    let square = Request::Fused {
        rows: 2,
        len: 2,
        broadcast: Some(false),
        x_shift: 32,
        y_shift: 0,
        with_square: true,
        y_square: false,
        x_width: 64,
        y_width: 64,
    };
    assert_eq!(Request::decode::<u64>(&square.encode(), MAX_REQUEST_ELEMENTS), Ok(square));
    // A narrow square: its width at most the ring's and above its shift's offset; its msb·msb
    // term is read off the dealer's msb, so its shift may pass half the ring; a width-less header
    // (stored before widths) means the full ring.
    for (shift, width, refused) in [
        (0, 65, Err(Error::Malformed("square width"))),
        (0, 2, Err(Error::Malformed("square width"))),
        (37, 39, Err(Error::TooLarge)),
        (40, 60, Ok(())),
    ] {
        let r = Request::FusedSquare { n: 2, shift, width };
        assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS).map(|_| ()), refused, "{r:?}");
    }
    // A narrow x likewise: its width at most the ring's and above its shift's offset; its
    // msb·msb terms read off the dealer's msb, so its shifts may add up past the ring; a
    // width-less header means the full ring.
    let fused = |x_shift, y_shift, x_width| Request::Fused {
        rows: 2,
        len: 2,
        broadcast: None,
        x_shift,
        y_shift,
        with_square: true,
        y_square: false,
        x_width,
        y_width: 64,
    };
    for (x_shift, y_shift, width, refused) in [
        (0, 0, 65, Err(Error::Malformed("fused operand width"))),
        (0, 4, 2, Err(Error::Malformed("fused operand width"))),
        (37, 4, 39, Err(Error::TooLarge)),
        (40, 30, 60, Ok(())),
        (0, 60, 3, Ok(())),
    ] {
        let r = fused(x_shift, y_shift, width);
        assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS).map(|_| ()), refused, "{r:?}");
    }
    let mut header = fused(3, 4, 64).encode();
    (header[25], header[26]) = (0, 0);
    let full = narrow(fused(3, 4, 32), None, Some(32));
    assert_eq!(Request::decode::<u32>(&header, MAX_REQUEST_ELEMENTS), Ok(full));
    // y's width likewise (its own byte of the mode word).
    let y_narrow = |y_shift, y_width| Request::Fused {
        rows: 2,
        len: 2,
        broadcast: Some(true),
        x_shift: 30,
        y_shift,
        with_square: false,
        y_square: true,
        x_width: 64,
        y_width,
    };
    for (y_shift, width, refused) in [
        (0, 65, Err(Error::Malformed("fused operand width"))),
        (0, 2, Err(Error::Malformed("fused operand width"))),
        (37, 39, Err(Error::TooLarge)),
        (40, 60, Ok(())),
    ] {
        let r = y_narrow(y_shift, width);
        assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS).map(|_| ()), refused, "{r:?}");
    }
    let r = y_narrow(40, 60);
    assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS), Ok(r));
    let mut header = Request::FusedSquare { n: 2, shift: 3, width: 64 }.encode();
    header[24] = 0;
    let full = Request::FusedSquare { n: 2, shift: 3, width: 32 };
    assert_eq!(Request::decode::<u32>(&header, MAX_REQUEST_ELEMENTS), Ok(full));
    // y's square likewise, and one operand squared at most.
    let y_square = Request::Fused {
        rows: 2,
        len: 2,
        broadcast: Some(false),
        x_shift: 0,
        y_shift: 33,
        with_square: false,
        y_square: true,
        x_width: 64,
        y_width: 64,
    };
    assert_eq!(Request::decode::<u64>(&y_square.encode(), MAX_REQUEST_ELEMENTS), Err(Error::TooLarge));
    let y_square = Request::Fused {
        rows: 2,
        len: 2,
        broadcast: Some(false),
        x_shift: 0,
        y_shift: 32,
        with_square: false,
        y_square: true,
        x_width: 64,
        y_width: 64,
    };
    assert_eq!(Request::decode::<u64>(&y_square.encode(), MAX_REQUEST_ELEMENTS), Ok(y_square));
    let both = Request::Fused {
        rows: 2,
        len: 2,
        broadcast: None,
        x_shift: 1,
        y_shift: 1,
        with_square: true,
        y_square: true,
        x_width: 64,
        y_width: 64,
    };
    assert!(matches!(Request::decode::<u64>(&both.encode(), MAX_REQUEST_ELEMENTS), Err(Error::Malformed(_))));
    for times in [62, u32::MAX - 1] {
        let below = Request::Below { n: 2, bounds: 2, times: Some(times), square: false, width: 64 };
        assert_eq!(Request::decode::<u64>(&below.encode(), MAX_REQUEST_ELEMENTS), Err(Error::TooLarge));
    }
    // A comparison's square needs its products, a shifted one 2(m - s) >= k, and its flag is
    // one bit.
    for (times, width) in [(None, 64), (Some(10), 40)] {
        let below = Request::Below { n: 2, bounds: 2, times, square: true, width };
        assert!(matches!(Request::decode::<u64>(&below.encode(), MAX_REQUEST_ELEMENTS), Err(Error::Malformed(_))));
    }
    for (times, width) in [(Some(3), 64), (Some(16), 50)] {
        let below = Request::Below { n: 2, bounds: 2, times, square: true, width };
        assert_eq!(Request::decode::<u64>(&below.encode(), MAX_REQUEST_ELEMENTS), Ok(below));
    }
    let mut header = Request::Below { n: 2, bounds: 2, times: Some(0), square: true, width: 64 }.encode();
    header[32] = 2;
    assert_eq!(Request::decode::<u64>(&header, MAX_REQUEST_ELEMENTS), Err(Error::Malformed("request header")));
    // A comparison's width: at most the ring's, at least two digits (7 bits for 4-bit digits,
    // 11 for 8-bit ones), at least half the ring's with a narrow square, and above a shift's
    // offset; a header without one (stored before widths) means the full ring.
    let refused = [(2, None, false, 65), (2, None, false, 6), (20, None, false, 10), (2, Some(0), true, 31)];
    for (bounds, times, square, width) in refused {
        let below = Request::Below { n: 2, bounds, times, square, width };
        let decoded = Request::decode::<u64>(&below.encode(), MAX_REQUEST_ELEMENTS);
        assert_eq!(decoded, Err(Error::Malformed("comparison width")), "{below:?}");
    }
    for (bounds, times, square, width) in [(2, None, false, 7), (20, None, false, 11), (2, Some(0), true, 32)] {
        let below = Request::Below { n: 2, bounds, times, square, width };
        assert_eq!(Request::decode::<u64>(&below.encode(), MAX_REQUEST_ELEMENTS), Ok(below));
    }
    let below = Request::Below { n: 2, bounds: 2, times: Some(32), square: false, width: 34 };
    assert_eq!(Request::decode::<u64>(&below.encode(), MAX_REQUEST_ELEMENTS), Err(Error::TooLarge));
    let mut header = Request::Below { n: 2, bounds: 2, times: None, square: false, width: 64 }.encode();
    header[33] = 0;
    let full = Request::Below { n: 2, bounds: 2, times: None, square: false, width: 32 };
    assert_eq!(Request::decode::<u32>(&header, MAX_REQUEST_ELEMENTS), Ok(full));
    let mut header = Request::Fused {
        rows: 2,
        len: 2,
        broadcast: None,
        x_shift: 1,
        y_shift: 1,
        with_square: false,
        y_square: false,
        x_width: 64,
        y_width: 64,
    }
    .encode();
    for mode in [3, 7, 16] {
        header[24] = mode; // no such broadcast mode, or an unknown flag
        assert_eq!(Request::decode::<u64>(&header, MAX_REQUEST_ELEMENTS), Err(Error::Malformed("request header")));
    }
}

#[test]
fn a_dealer_that_packs_masks_as_it_draws_them_corrects_as_one_that_keeps_them_whole() {
    use crate::share::Seed;
    use deal::DealerState;
    let seeds = || [Seed::from_bytes([21; 32]), Seed::from_bytes([22; 32])];
    let (mut whole, mut drawn) = (DealerState::<u64>::new(seeds()), DealerState::<u64>::new(seeds()));
    // Masks of more than one band of rows (256) and of a ragged last tile, owned and shared,
    // each followed by a triple whose correction reads the mask.
    let requests = [
        Request::OwnedMask { k: 300, n: 40 },
        Request::OwnedTriple { m: 5, k: 300, n: 40, mask: 0 },
        Request::MatmulMask { k: 7, n: 33 },
        Request::MatmulTriple { m: 3, k: 7, n: 33, mask: 1 },
        Request::Beaver { n: 9 },
        Request::MatmulTriple { m: 2, k: 7, n: 33, mask: 1 },
        Request::OwnedTriple { m: 1, k: 300, n: 40, mask: 0 },
    ];
    let mut corrected = 0;
    for request in &requests {
        let expect = whole.deal(request).unwrap().correlated;
        let got = drawn.corrections(request).unwrap();
        assert_eq!(got.len(), expect.len(), "{request:?}");
        for (g, e) in got.iter().zip(&expect) {
            assert_eq!(&g[..], &e[..], "{request:?}");
            corrected += g.len();
        }
    }
    assert!(corrected > 0);
    assert_eq!(drawn.mask_elements(), whole.mask_elements());
    // The owned triple under a shared mask's identity is refused as before.
    let wrong = Request::OwnedTriple { m: 1, k: 7, n: 33, mask: 1 };
    assert_eq!(drawn.corrections(&wrong).unwrap_err(), Error::MaterialMismatch);
    // The limit on the masks held holds for drawn masks too.
    drawn.limit_masks(drawn.mask_elements() + 10);
    assert_eq!(drawn.corrections(&Request::OwnedMask { k: 4, n: 4 }).unwrap_err(), Error::TooLarge);
}

#[test]
fn regression_a_stored_header_that_does_not_write_back_as_it_was_is_refused() {
    // A fuzzer's find: a fused product whose mode word has no widths (read as the ring's) was
    // accepted and wrote back with them, so the stored format was not canonical.
    let stored: [u8; 117] = [
        77, 80, 67, 83, 84, 79, 82, 49, 64, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0,
        0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
        0, 0, 0, 0, 0, 0, 122, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 245, 77,
    ];
    assert_eq!(
        Store::<u64>::from_bytes(&stored, 1 << 14).map(|_| ()),
        Err(Error::Malformed("stored header not canonical"))
    );
}

/// Material drawn over used buffers (any contents, any larger size) is the material drawn into
/// fresh ones, for both parties and every kind of part; what the pool had no room for is drawn
/// fresh.
#[test]
fn material_drawn_over_used_buffers_is_the_same() {
    use crate::share::{Seed, Shares};
    use deal::RequestKeys;
    let requests = [
        Request::Beaver { n: 20_000 },
        Request::Below { n: 3_000, bounds: 2, times: Some(12), square: true, width: 40 },
        Request::Trunc { n: 9_000, frac_bits: 16 },
        Request::Beaver { n: 17 },
    ];
    for role in [Role::P0, Role::P1] {
        let (mut fresh_keys, mut used_keys) =
            (RequestKeys::new(Seed::from_bytes([3; 32])), RequestKeys::new(Seed::from_bytes([3; 32])));
        let mut pool = recycle::Recycled::new(usize::MAX);
        for (i, len) in [9_000usize, 20_000, 40_001, 70_000, 8_192, 100_000].into_iter().enumerate() {
            pool.put(Shares::from_vec(vec![0xDEAD_BEEF_u64.rotate_left(i as u32); len]));
        }
        for r in &requests {
            let fresh: deal::Parts<u64> = deal::draw(role, r, &mut fresh_keys.prg(r), &mut Default::default());
            let over: deal::Parts<u64> = deal::draw(role, r, &mut used_keys.prg(r), &mut pool);
            let words = |p: &deal::Parts<u64>| -> Vec<Vec<u64>> {
                p.random.iter().chain(p.correlated.iter()).map(|s| s.to_vec()).collect()
            };
            assert_eq!(words(&fresh), words(&over), "{role:?} {r:?}");
        }
    }
}
