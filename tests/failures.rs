//! Failures end in typed errors, fast: no hang, no partial result.

use std::time::{Duration, Instant};

use mpc_core::preprocessing::{Request, Store};
use mpc_core::transport::{ErrorKind, PartyId, Role};
use mpc_core::{Error, Party};
use mpc_io_std::run::threads::{LaunchError, LaunchOptions, run_threaded};

#[test]
fn a_failing_party_ends_the_run_with_its_error() {
    let started = Instant::now();
    let result = run_threaded(LaunchOptions::seeded(1), |ctx| {
        let role = ctx.role;
        let mut party = ctx.party()?;
        let x = party.input(Role::P0, (role == Role::P0).then_some(&[1u64; 4][..]), 4)?;
        if role == Role::P1 {
            // P1 asks for a product of mismatched operands: a local error, before any message.
            party.mul(&x, &x[..3])?;
        }
        party.open(&x)?;
        party.open(&x)?;
        Ok(())
    });
    match result {
        Err(LaunchError::Failed { party, error }) => {
            assert_eq!(party, PartyId::P1);
            assert_eq!(error, Error::ShapeMismatch);
        }
        other => panic!("expected P1's failure, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "the others noticed the failure fast");
}

#[test]
fn a_silent_peer_times_out() {
    let mut options = LaunchOptions::seeded(2);
    options.timeout = Duration::from_millis(200);
    let result = run_threaded(options, |ctx| {
        let role = ctx.role;
        let mut party = ctx.party()?;
        if role == Role::P0 {
            // P0 waits for an opening P1 never starts; P1 sleeps past the timeout first.
            party.open(&[1u64])?;
        } else {
            std::thread::sleep(Duration::from_millis(600));
        }
        Ok(())
    });
    match result {
        Err(LaunchError::Failed { error, .. }) => {
            assert_eq!(error, Error::Transport(ErrorKind::TimedOut))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn a_store_filled_for_another_program_is_refused() {
    let result = run_threaded(LaunchOptions::seeded(3), |ctx| {
        let mut store = Store::<u64>::new();
        store.fill(&mut ctx.dealer, &[Request::Square { n: 8 }])?;
        let mut party = Party::setup(ctx.role, &mut ctx.peer, &mut store, &mut ctx.rng)?;
        let x = party.input(Role::P0, (ctx.role == Role::P0).then_some(&[1u64; 8][..]), 8)?;
        party.mul(&x, &x).map(drop)
    });
    match result {
        Err(LaunchError::Failed { error, .. }) => assert_eq!(error, Error::MaterialMismatch),
        other => panic!("expected a material mismatch, got {other:?}"),
    }
}

#[test]
fn material_made_offline_is_consumed_online() {
    let run = run_threaded(LaunchOptions::seeded(4), |ctx| {
        let mut store = Store::<u64>::new();
        // Each product, then its (default, dealer) truncation.
        let trunc = Request::Trunc { n: 3, frac_bits: 16 };
        store.fill(&mut ctx.dealer, &[Request::Beaver { n: 3 }, trunc, Request::Square { n: 3 }, trunc])?;
        let offline = ctx.dealer.transport().stats();
        let mut party = Party::setup(ctx.role, &mut ctx.peer, &mut store, &mut ctx.rng)?;
        let x = party.input_fixed(Role::P0, (ctx.role == Role::P0).then_some(&[1.5, -2.0, 0.25][..]), 3)?;
        let y = party.mul(&x, &x)?;
        let z = party.square(&x)?;
        let out = (party.open_fixed(&y)?, party.open_fixed(&z)?);
        // Online, nobody touched the dealer.
        assert_eq!(ctx.dealer.transport().stats(), offline);
        assert!(store.is_empty());
        Ok(out)
    })
    .expect("run");
    assert_eq!(run.p0.output.0, vec![2.25, 4.0, 0.0625]);
    assert_eq!(run.p0.output.1, vec![2.25, 4.0, 0.0625]);
}
