//! `mpcformer demo`: a private matrix product end to end, over threads.
//!
//! P0 (the model owner) holds a weight matrix W (k×n); P1 (the data owner) holds activations
//! X (m×k). They compute X · W on secret shares, with the dealer's material made in an offline
//! phase, and reveal the product to P1 only. The report puts the private result beside the
//! plaintext one.

use std::time::Instant;

use mpc_core::preprocessing::{Request, Store};
use mpc_core::protocol::Truncation;
use mpc_core::transport::{CommStats, Role};
use mpc_core::{Error, FixedPoint, Party};
use rand_core::{Rng, SeedableRng};
use serde::Serialize;

use crate::launcher::{LaunchError, LaunchOptions, run_threaded};

/// The demo's settings.
#[derive(Clone, Copy, Debug)]
pub struct DemoConfig {
    /// Rows of X (tokens).
    pub m: usize,
    /// Columns of X, rows of W (hidden size).
    pub k: usize,
    /// Columns of W.
    pub n: usize,
    /// Truncation method.
    pub truncation: Truncation,
    /// Seed of the random data (not of the protocol's randomness, which comes from the OS).
    pub data_seed: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { m: 128, k: 768, n: 768, truncation: Truncation::Local, data_seed: 7 }
    }
}

/// What the demo measured.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// `m x k · k x n`.
    pub shape: String,
    /// The first few entries of the private product, as revealed to P1.
    pub private_head: Vec<f64>,
    /// The same entries computed in plaintext f64.
    pub plaintext_head: Vec<f64>,
    /// Largest |private - plaintext| over the whole product.
    pub max_abs_err: f64,
    /// Online wall time (after the offline phase and weight preparation).
    pub online_s: f64,
    /// Offline wall time (dealer material).
    pub offline_s: f64,
    /// Weight preparation (W - B opened once per loaded model).
    pub prepare_s: f64,
    /// Plaintext f64 time of the same product.
    pub plaintext_s: f64,
    /// Bytes P0 and P1 sent each other online.
    pub online_bytes: u64,
    /// Bytes the dealer sent (offline).
    pub offline_bytes: u64,
    /// Bytes of the weight preparation.
    pub prepare_bytes: u64,
    /// Online rounds (the larger of the two parties' counts).
    pub rounds: u64,
}

struct PartyTimes {
    result: Option<Vec<f64>>,
    offline_s: f64,
    prepare_s: f64,
    online_s: f64,
    prepare: CommStats,
    online: CommStats,
}

fn random_matrix(rng: &mut impl Rng, len: usize, scale: f64) -> Vec<f64> {
    (0..len).map(|_| ((rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0) * scale).collect()
}

/// Runs the demo.
pub fn run(cfg: DemoConfig) -> Result<DemoReport, LaunchError> {
    let DemoConfig { m, k, n, truncation, data_seed } = cfg;
    let mut data_rng = mpc_core::share::Prg::seed_from_u64(data_seed);
    let w = random_matrix(&mut data_rng, k * n, 0.1);
    let x = random_matrix(&mut data_rng, m * k, 1.0);

    let run = run_threaded(LaunchOptions::default(), |ctx| -> Result<PartyTimes, Error> {
        // Offline: every piece of dealer material the program will consume.
        let t = Instant::now();
        let mut store = Store::<u64>::new();
        store.fill(&mut ctx.dealer, &[Request::MatmulMask { k, n }])?;
        store.fill(&mut ctx.dealer, &[Request::MatmulTriple { m, k, n, mask: 0 }])?;
        if truncation == Truncation::Dealer {
            store
                .fill(&mut ctx.dealer, &[Request::Trunc { n: m * n, frac_bits: FixedPoint::default().frac_bits() }])?;
        }
        let offline_s = t.elapsed().as_secs_f64();

        let mut party = Party::setup(ctx.role, &mut ctx.peer, &mut store, &mut ctx.rng)?.with_truncation(truncation);
        // Model load: P0 shares W, and W - B is opened once.
        let t = Instant::now();
        let start = party.transport().stats();
        let w_share = party.input_fixed(Role::P0, (ctx.role == Role::P0).then_some(&w[..]), k * n)?;
        let prepared = party.prepare_matrix(&w_share, k, n)?;
        let prepare_s = t.elapsed().as_secs_f64();
        let prepared_at = party.transport().stats();

        // Online: P1 shares X; the product is revealed to P1.
        let t = Instant::now();
        let x_share = party.input_fixed(Role::P1, (ctx.role == Role::P1).then_some(&x[..]), m * k)?;
        let y = party.matmul_prepared(&x_share, m, &prepared)?;
        let revealed = party.reveal_to(Role::P1, &y)?;
        let online_s = t.elapsed().as_secs_f64();
        let done = party.transport().stats();
        let fixed = party.fixed_point();
        Ok(PartyTimes {
            result: revealed.map(|v| fixed.decode_vec(&v)),
            offline_s,
            prepare_s,
            online_s,
            prepare: prepared_at.since(&start),
            online: done.since(&prepared_at),
        })
    })?;

    let mut plain = vec![0f64; m * n];
    let t = Instant::now();
    crate::bench::gemm::dgemm(m, k, n, &x, &w, &mut plain);
    let plaintext_s = t.elapsed().as_secs_f64();

    let p0 = &run.p0.output;
    let p1 = &run.p1.output;
    let private = p1.result.as_ref().expect("P1 receives the product");
    let max_abs_err = private.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let head = 4.min(private.len());
    Ok(DemoReport {
        shape: format!("{m}x{k}·{k}x{n}"),
        private_head: private[..head].to_vec(),
        plaintext_head: plain[..head].to_vec(),
        max_abs_err,
        online_s: p0.online_s.max(p1.online_s),
        offline_s: p0.offline_s.max(p1.offline_s),
        prepare_s: p0.prepare_s.max(p1.prepare_s),
        plaintext_s,
        online_bytes: p0.online.bytes_sent + p1.online.bytes_sent,
        offline_bytes: run.p0.dealer.bytes_received + run.p1.dealer.bytes_received,
        prepare_bytes: p0.prepare.bytes_sent + p1.prepare.bytes_sent,
        rounds: p0.online.rounds.max(p1.online.rounds),
    })
}
