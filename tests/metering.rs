//! The exact messages, bytes and rounds of every primitive, per party.

mod common;

use common::threaded;
use mpc_core::protocol::Truncation;
use mpc_core::transport::{CommStats, Role};

/// Runs `step` after sharing `n` inputs from each party, and returns the traffic of the step
/// alone, as seen by P0 and by P1.
fn cost_of(
    n: usize,
    truncation: Truncation,
    step: impl Fn(&mut mpc_io_std::run::threads::ThreadedParty<'_>, &[u64], &[u64]) -> Result<(), mpc_core::Error> + Sync,
) -> [CommStats; 2] {
    let run = threaded(21, truncation, |party, role| {
        let values = vec![3u64 << 16; n];
        let x = party.input(Role::P0, (role == Role::P0).then_some(&values[..]), n)?;
        let y = party.input(Role::P1, (role == Role::P1).then_some(&values[..]), n)?;
        barrier(party)?;
        let before = party.transport().stats();
        step(party, &x, &y)?;
        Ok(party.transport().stats().since(&before))
    });
    [run.p0.output, run.p1.output]
}

/// An opening that ends any flight in progress (the session's seed, say), so that the next
/// step's rounds are counted from a clean start: a message that needs nothing received could
/// otherwise travel in the same flight as the one before it.
fn barrier(party: &mut mpc_io_std::run::threads::ThreadedParty<'_>) -> Result<(), mpc_core::Error> {
    party.open(&[0u64]).map(drop)
}

fn exchange(elements_each: u64) -> CommStats {
    CommStats {
        bytes_sent: 8 * elements_each,
        bytes_received: 8 * elements_each,
        messages_sent: 1,
        messages_received: 1,
        rounds: 1,
    }
}

#[test]
fn open_is_one_round_of_n_elements() {
    for stats in cost_of(100, Truncation::Local, |p, x, _| p.open(x).map(drop)) {
        assert_eq!(stats, exchange(100));
    }
}

#[test]
fn batched_openings_share_one_message() {
    for stats in cost_of(100, Truncation::Local, |p, x, y| p.open_many(&[x, y, x]).map(drop)) {
        assert_eq!(stats, exchange(300));
    }
}

#[test]
fn beaver_mul_is_one_round_of_2n_elements() {
    for stats in cost_of(100, Truncation::Local, |p, x, y| p.mul(x, y).map(drop)) {
        assert_eq!(stats, exchange(200));
    }
}

#[test]
fn independent_muls_share_one_round() {
    for stats in cost_of(100, Truncation::Local, |p, x, y| p.mul_many(&[(x, y), (y, y), (x, x)]).map(drop)) {
        assert_eq!(stats, exchange(600));
    }
}

#[test]
fn square_is_one_round_of_n_elements() {
    for stats in cost_of(100, Truncation::Local, |p, x, _| p.square(x).map(drop)) {
        assert_eq!(stats, exchange(100));
    }
}

#[test]
fn dealer_truncation_adds_one_round_of_n_elements() {
    // The Beaver product's 200 elements, then the truncation's opening: at the ring's width in
    // whole words (its low bits too).
    for stats in cost_of(100, Truncation::Dealer, |p, x, y| p.mul(x, y).map(drop)) {
        let mut two = exchange(300);
        two.messages_sent = 2;
        two.messages_received = 2;
        two.rounds = 2;
        assert_eq!(stats, two);
    }
}

#[test]
fn matmul_opens_both_masked_operands_in_one_round() {
    // x: 10x10 (the first 100 inputs) times y: 10x10.
    for stats in cost_of(100, Truncation::Local, |p, x, y| p.matmul(x, y, 10, 10, 10).map(drop)) {
        assert_eq!(stats, exchange(100 + 100));
    }
    // 4x25 · 25x4: mk + kn = 200 elements.
    for stats in cost_of(100, Truncation::Local, |p, x, y| p.matmul(x, y, 4, 25, 4).map(drop)) {
        assert_eq!(stats, exchange(200));
    }
}

#[test]
fn prepared_matmul_opens_only_the_activations() {
    // Preparing W (20x5) opens kn once; each product 5x20·20x5 then opens mk = 100 only.
    for stats in cost_of(100, Truncation::Local, |p, x, y| {
        let w = p.prepare_matrix(y, 20, 5)?;
        p.matmul_prepared(x, 5, &w)?;
        p.matmul_prepared(x, 5, &w).map(drop)
    }) {
        let mut three = exchange(100 + 100 + 100);
        three.messages_sent = 3;
        three.messages_received = 3;
        three.rounds = 3;
        assert_eq!(stats, three);
    }
}

#[test]
fn input_is_free_and_reveal_is_one_message() {
    let run = threaded(2, Truncation::Local, |party, role| {
        barrier(party)?;
        let start = party.transport().stats();
        let x = party.input(Role::P1, (role == Role::P1).then_some(&[1u64; 50][..]), 50)?;
        let after_input = party.transport().stats().since(&start);
        party.reveal_to(Role::P0, &x)?;
        Ok((after_input, party.transport().stats().since(&start)))
    });
    let (p0_input, p0_total) = run.p0.output;
    let (p1_input, p1_total) = run.p1.output;
    assert_eq!(p0_input, CommStats::default());
    assert_eq!(p1_input, CommStats::default());
    assert_eq!(p1_total, CommStats { bytes_sent: 400, messages_sent: 1, rounds: 1, ..CommStats::default() });
    assert_eq!(p0_total, CommStats { bytes_received: 400, messages_received: 1, rounds: 0, ..CommStats::default() });
}

#[test]
fn session_setup_is_one_seed_and_p1_never_talks_to_the_dealer() {
    let run = threaded(3, Truncation::Local, |party, role| {
        let x = party.input(Role::P0, (role == Role::P0).then_some(&[7u64; 64][..]), 64)?;
        party.mul(&x, &x)?;
        party.square(&x)?;
        Ok(())
    });
    // Setup: P0 sends P1 the 32-byte pairwise seed.
    assert_eq!(run.p1.peer.messages_received, 3);
    assert_eq!(run.p1.peer.bytes_received, 32 + 8 * 128 + 8 * 64);
    // P1's only dealer traffic is its seed; P0 receives the corrections (c for 64 triples, r²
    // for 64 pairs), after sending each request's header batch.
    assert_eq!(run.p1.dealer, CommStats { bytes_received: 32, messages_received: 1, ..CommStats::default() });
    assert_eq!(run.p0.dealer.bytes_received, 32 + 8 * 64 + 8 * 64);
    assert_eq!(run.p0.dealer.bytes_sent, 2 * (8 + 40) + 8, "two batches of one header, then the end");
    assert_eq!(run.dealer.requests, 2);
    assert_eq!(run.dealer.correction_elements, 128);
}

#[test]
fn owned_matmul_is_one_way() {
    // W (20x5) owned by P0: F = W - B goes once to P1 (100 elements); each product 5x20·20x5
    // is one message of mk = 100 elements from P1 to P0, and nothing back.
    let w: Vec<u64> = vec![1 << 16; 100];
    let run = threaded(23, Truncation::Local, |party, role| {
        let x = party.input(Role::P1, (role == Role::P1).then_some(&[2u64 << 16; 100][..]), 100)?;
        barrier(party)?;
        let start = party.transport().stats();
        let owned = party.prepare_owned((role == Role::P0).then_some(&w[..]), 20, 5)?;
        let prepared = party.transport().stats();
        party.matmul_owned(&x, 5, &owned)?;
        Ok((prepared.since(&start), party.transport().stats().since(&prepared)))
    });
    let (p0_prep, p0_mul) = run.p0.output;
    let (p1_prep, p1_mul) = run.p1.output;
    assert_eq!(p0_prep, CommStats { bytes_sent: 800, messages_sent: 1, rounds: 1, ..CommStats::default() });
    assert_eq!(p1_prep, CommStats { bytes_received: 800, messages_received: 1, ..CommStats::default() });
    assert_eq!(p1_mul, CommStats { bytes_sent: 800, messages_sent: 1, rounds: 1, ..CommStats::default() });
    assert_eq!(p0_mul, CommStats { bytes_received: 800, messages_received: 1, ..CommStats::default() });
}

#[test]
fn owned_matmul_carries_its_dealer_truncation_one_way_and_answers_with_bits() {
    // 5x20 · 20x5 with W owned by P0: P1 sends X1 - A (100 elements) and its masked share of
    // the product (25) in one message; P0 answers with the 25 most significant bits (one word).
    let w: Vec<u64> = vec![1 << 16; 100];
    let run = threaded(23, Truncation::Dealer, |party, role| {
        let x = party.input(Role::P1, (role == Role::P1).then_some(&[2u64 << 16; 100][..]), 100)?;
        let owned = party.prepare_owned((role == Role::P0).then_some(&w[..]), 20, 5)?;
        barrier(party)?;
        let before = party.transport().stats();
        party.matmul_owned(&x, 5, &owned)?;
        Ok(party.transport().stats().since(&before))
    });
    let one_way = |sent: u64, received: u64, rounds: u64| CommStats {
        bytes_sent: sent,
        bytes_received: received,
        messages_sent: u64::from(sent > 0),
        messages_received: u64::from(received > 0),
        rounds,
    };
    assert_eq!(run.p1.output, one_way(8 * 125, 8, 1));
    assert_eq!(run.p0.output, one_way(8, 8 * 125, 1));
}

#[test]
fn truncation_then_square_is_one_exchange() {
    for stats in cost_of(100, Truncation::Dealer, |p, x, _| {
        p.truncate_square_many(vec![mpc_core::share::Shares::from_vec(x.to_vec())], 16, 1 << 16, Truncation::Dealer)
            .map(drop)
    }) {
        assert_eq!(stats, exchange(100));
    }
}
