//! Dealer material is consistent across the two parties, and each party's part alone is uniform.

use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::ring::Ring;
use crate::share::reconstruct_additive;

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
        Request::Square { n: 0 },
        Request::Trunc { n: 9, frac_bits: 16 },
        Request::MatmulMask { k: 768, n: 3072 },
        Request::MatmulTriple { m: 128, k: 768, n: 3072, mask: 41 },
    ] {
        assert_eq!(Request::decode::<u64>(&r.encode(), MAX_REQUEST_ELEMENTS), Ok(r));
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
fn staged_provider_learns_the_plan_then_serves_it_from_the_store() {
    let (p0, p0_twin) = (pair::<u64>(7).0, pair::<u64>(7).0);
    let mut staged = Staged::new(p0);
    staged.record();
    let live = staged.beaver(2).unwrap();
    let _ = staged.matmul_mask(2, 3).unwrap();
    let plan = staged.take_plan();
    assert_eq!(plan.requests(), [Request::Beaver { n: 2 }, Request::MatmulMask { k: 2, n: 3 }]);
    // Offline: the plan's material, made ahead; online: served in order, without the provider.
    staged.fill(&plan).unwrap();
    assert_eq!(staged.stored(), 2);
    let stored = staged.beaver(2).unwrap();
    assert_eq!(staged.matmul_mask(2, 3).unwrap().id, 1, "the second mask of the session");
    assert_eq!(staged.stored(), 0);
    // Filled material continues the provider's stream (masks first), unlike the live material.
    let mut twin = Staged::new(p0_twin);
    let _ = (twin.beaver(2).unwrap(), twin.matmul_mask(2, 3).unwrap(), twin.matmul_mask(2, 3).unwrap());
    assert_eq!(&twin.beaver(2).unwrap().c[..], &stored.c[..]);
    assert_ne!(&live.c[..], &stored.c[..]);
}

#[test]
fn a_filled_plan_renames_its_masks_for_the_online_run() {
    let (p0, p1) = pair::<u64>(10);
    let (mut s0, mut s1) = (Staged::new(p0), Staged::new(p1));
    for s in [&mut s0, &mut s1] {
        s.record();
        let mask = s.matmul_mask(2, 2).unwrap();
        let _ = s.matmul_triple(3, 2, 2, mask.id).unwrap();
    }
    let plan = s0.take_plan();
    assert_eq!(plan, s1.take_plan());
    s0.fill(&plan).unwrap();
    s1.fill(&plan).unwrap();
    // Online: the new mask (identity 1) and its triple, consistent across the parties.
    let (m0, m1) = (s0.matmul_mask(2, 2).unwrap(), s1.matmul_mask(2, 2).unwrap());
    assert_eq!((m0.id, m1.id), (1, 1));
    let (t0, t1) = (s0.matmul_triple(3, 2, 2, 1).unwrap(), s1.matmul_triple(3, 2, 2, 1).unwrap());
    let (a, b, c) = (open(&t0.a, &t1.a), open(&m0.b, &m1.b), open(&t0.c, &t1.c));
    let mut expect = vec![0u64; 6];
    crate::gemm::gemm_naive(3, 2, 2, &a, &b, &mut expect);
    assert_eq!(c, expect);
}

proptest! {
    #[test]
    fn decoding_never_panics(bytes: Vec<u8>) {
        let _ = Request::decode::<u64>(&bytes, MAX_REQUEST_ELEMENTS);
    }
}

#[test]
fn and_triples_and_comparison_tables_hold_their_relations() {
    fn check<R: Ring>() {
        let (mut p0, mut p1) = pair::<R>(8);
        let a0 = p0.and_triples(40).unwrap();
        let a1 = p1.and_triples(40).unwrap();
        for i in 0..40 {
            assert!((a0.c[i] ^ a1.c[i]) == (a0.a[i] ^ a1.a[i]) & (a0.b[i] ^ a1.b[i]));
        }
        let n = 70;
        let m0 = p0.ltz(n).unwrap();
        let m1 = p1.ltz(n).unwrap();
        let r = open(&m0.r, &m1.r);
        let bits = R::BITS as usize;
        let xor = |x: &[R], y: &[R]| x.iter().zip(y).map(|(&a, &b)| a ^ b).collect::<Vec<R>>();
        let tables = xor(&m0.tables, &m1.tables);
        let high = xor(&m0.r_high, &m1.r_high);
        let b2a_bits = xor(&m0.b2a_bits, &m1.b2a_bits);
        let b2a = open(&m0.b2a, &m1.b2a);
        let tw = deal::ltz_table_words::<R>();
        for i in 0..n {
            let low = r[i].to_u64() & ((1u64 << (R::BITS - 2)) - 1);
            for d in 0..deal::ltz_digits::<R>() {
                let digit = (low >> (4 * d)) & 0xF;
                let word = tables[i * tw + d * 32 / bits].to_u64() >> ((d * 32) % bits);
                for v in 0..16u64 {
                    assert_eq!((word >> v) & 1, u64::from(v < digit), "lt table, digit {d}, v {v}");
                    assert_eq!((word >> (16 + v)) & 1, u64::from(v == digit), "eq table, digit {d}, v {v}");
                }
            }
            let bit = |w: &[R]| (w[i / bits].to_u64() >> (i % bits)) & 1;
            assert_eq!(bit(&high), (r[i].to_u64() >> (R::BITS - 2)) & 1);
            assert_eq!(b2a[i].to_u64(), bit(&b2a_bits));
        }
    }
    check::<u64>();
    check::<u32>();
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
    use crate::share::Prg;
    use rand_core::SeedableRng;
    let mut state = deal::DealerState::<u64>::new(Prg::seed_from_u64(1), Prg::seed_from_u64(2));
    let (k, n) = (3, 2);
    state.deal(&Request::MatmulMask { k, n }).unwrap();
    state.deal(&Request::MatmulTriple { m: 2, k, n, mask: 0 }).unwrap();
    state.release_masks();
    // Mask 0 is gone: a triple for it is refused, not served with another mask.
    assert_eq!(state.deal(&Request::MatmulTriple { m: 2, k, n, mask: 0 }).err(), Some(Error::MaterialMismatch));
    // Identities keep counting: the next mask is 1, and it serves triples.
    state.deal(&Request::MatmulMask { k, n }).unwrap();
    assert!(state.deal(&Request::MatmulTriple { m: 2, k, n, mask: 1 }).is_ok());
    assert!(state.deal(&Request::MatmulTriple { m: 2, k, n, mask: 2 }).is_err());
}

/// One request of every kind (two masks, with triples for each).
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
        Request::Ltz { n: 3 },
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
            assert_eq!(Request::decode::<u64>(&header, 1 << 20).err(), Some(Error::TooLarge), "{rows} {len}");
        }
    }
    let mut artifact = b"MPCSTOR1@\0\0\0\0\x03\0\0\0\0\0\x01\x0a".to_vec();
    artifact.resize(0x5a, 0);
    artifact[0x2b] = 0x63;
    artifact[0x54] = 0x63;
    assert!(Store::<u64>::from_bytes(&artifact, 1 << 20).is_err());
}
