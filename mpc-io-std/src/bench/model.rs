//! `mpcformer bench`: a BERT-class encoder on random weights, P0, P1 and the dealer in threads.
//!
//! Phases, each timed and metered apart:
//! 1. **load**: P0's weights enter the computation (W - B opened, or F = W - B sent, once);
//! 2. **plan**: one inference with live dealer material records the offline plan (a deployment
//!    does this once per model and sequence length; not reported);
//! 3. **offline**: the dealer makes every piece of material of the plan (two round trips), and
//!    each party computes the products that need no input (A · F for every weight's triples);
//! 4. **online**: the inference proper, on P1's tokens, consuming the stored material.
//!
//! The plaintext time is the same model in `Plain<f32>` (matrixmultiply's sgemm), on one thread
//! like each party, in the same run.

use std::collections::BTreeMap;
use std::time::Instant;

use mpc_core::Error;
use mpc_core::preprocessing::DealerClient;
use mpc_core::protocol::Truncation;
use mpc_core::transport::{CommStats, Metered, Role, Transport};
use mpc_nn::{Plain, WeightMode};
use mpc_transformer::{
    BertConfig, Bucket, Encoder, Observer, Params, Phase, Preset, Reveal, Session, SessionBackend, SessionError,
    SessionObserver, SessionOptions, Unobserved,
};
use serde::Serialize;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::launcher::{LaunchError, LaunchOptions, PartyContext, run_threaded, run_threaded_over};
use crate::shaping::{NetworkProfile, Shaped};

/// What to benchmark.
#[derive(Clone, Debug)]
pub struct ModelBench {
    /// The configuration's name (`bert-base`, ...), for the report.
    pub config_name: String,
    /// The shape.
    pub config: BertConfig,
    /// Tokens.
    pub seq: usize,
    /// Layers to run (default: all).
    pub layers: Option<usize>,
    /// Approximations.
    pub preset: Preset,
    /// How P0's weights are held.
    pub weights: WeightMode,
    /// Truncation at the session precision.
    pub truncation: Truncation,
    /// Seed of the random weights and tokens.
    pub seed: u64,
    /// Also project the online time to this network and measure it through a shaping decorator.
    pub net: Option<NetworkProfile>,
}

/// Cost of one bucket of stages, over the online phase.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BucketCost {
    /// Seconds (P0's wall time inside the bucket).
    pub seconds: f64,
    /// Bytes both parties sent.
    pub bytes: u64,
    /// Rounds (the larger of the two parties' counts).
    pub rounds: u64,
}

/// The benchmark's JSON line.
#[derive(Clone, Debug, Serialize)]
pub struct ModelReport {
    /// Configuration name.
    pub config: String,
    /// Tokens.
    pub seq: usize,
    /// Layers run.
    pub layers: usize,
    /// Preset name.
    pub preset: String,
    /// `shared` or `owner`.
    pub weights: &'static str,
    /// `local` or `dealer`.
    pub truncation: &'static str,
    /// Online wall time (the slower party).
    pub online_s: f64,
    /// Online wall time of P0 and of P1.
    pub online_s_by_party: [f64; 2],
    /// Offline wall time (dealer material for one inference: made ahead, and made on demand
    /// within the online phase when it exceeds the budget).
    pub offline_s: f64,
    /// The part of `offline_s` made on demand within the online phase.
    pub on_demand_s: f64,
    /// Plaintext time of the same model, `Plain<f32>`, one thread.
    pub plaintext_s: f64,
    /// `online_s / plaintext_s`.
    pub online_ratio: f64,
    /// Bytes both parties sent each other online.
    pub online_bytes: u64,
    /// Bytes the dealer sent and P0 sent the dealer for one inference.
    pub offline_bytes: u64,
    /// The most material one party held at once, in bytes.
    pub peak_material_bytes: u64,
    /// Peak resident memory of this process (P0, P1, the dealer and the plaintext reference
    /// together, in threads), from the kernel's VmHWM.
    pub peak_rss_bytes: u64,
    /// Online rounds (the larger of the two parties' counts).
    pub rounds: u64,
    /// Largest |private - plaintext f64 with the same approximations| over the outputs.
    pub max_abs_err: f64,
    /// The private output, revealed (logits, or the sentence embedding).
    pub private: Vec<f64>,
    /// The same output in plaintext f64 with the same approximations.
    pub plaintext: Vec<f64>,
    /// Model load: seconds.
    pub load_s: f64,
    /// Model load: bytes both parties sent each other.
    pub load_bytes: u64,
    /// Online cost per bucket (`embed`, `linear`, `softmax`, `activation`, `norm`).
    pub buckets: BTreeMap<&'static str, BucketCost>,
    /// The network of `--net`, if any.
    pub net: Option<NetworkProfile>,
    /// Online time projected to that network: online_s + rounds × RTT + busier direction's bytes
    /// / bandwidth.
    pub projected_s: Option<f64>,
    /// Online time measured through the shaping decorator for that network.
    pub shaped_s: Option<f64>,
}

/// The backend of a session over the launcher's metered links.
type Backend<'a, X, D> = SessionBackend<&'a mut Metered<X>, &'a mut DealerClient<Metered<D>>>;

/// Times and meters one party's session: each phase (load, offline, online) and, within the
/// online phase, each bucket of stages; shows P1's progress per layer on stderr if asked.
struct SessionMeter<'h> {
    open: Option<(Instant, CommStats)>,
    buckets: BTreeMap<Bucket, (f64, CommStats)>,
    phase_open: Option<(Instant, CommStats, CommStats)>,
    phases: BTreeMap<Phase, (f64, CommStats, CommStats)>,
    show_progress: bool,
    online_hook: Option<&'h (dyn Fn() + Sync)>,
}

fn peer_stats<X: Transport, D: Transport>(b: &Backend<'_, X, D>) -> CommStats {
    b.party().transport().inner().stats()
}

fn dealer_stats<X: Transport, D: Transport>(b: &Backend<'_, X, D>) -> CommStats {
    b.party().preprocessing().live().transport().stats()
}

impl<'h> SessionMeter<'h> {
    fn new(meters: Meters<'h>, role: Role) -> Self {
        SessionMeter {
            open: None,
            buckets: BTreeMap::new(),
            phase_open: None,
            phases: BTreeMap::new(),
            show_progress: meters.progress && role == Role::P1,
            online_hook: meters.online_hook,
        }
    }
}

impl<'a, X: Transport, D: Transport> Observer<Backend<'a, X, D>> for SessionMeter<'_> {
    fn enter(&mut self, b: &Backend<'a, X, D>, _bucket: Bucket) {
        self.open = Some((Instant::now(), peer_stats(b)));
    }
    fn leave(&mut self, b: &Backend<'a, X, D>, bucket: Bucket) {
        if let Some((start, stats)) = self.open.take() {
            let entry = self.buckets.entry(bucket).or_default();
            entry.0 += start.elapsed().as_secs_f64();
            entry.1 = entry.1.plus(&peer_stats(b).since(&stats));
        }
    }
    fn layer_done(&mut self, index: usize, total: usize) {
        if self.show_progress {
            let done = index + 1;
            let bar: String = (0..total).map(|i| if i < done { '#' } else { '.' }).collect();
            eprint!("\r  private inference [{bar}] layer {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    }
}

impl<'a, X: Transport, D: Transport> SessionObserver<Backend<'a, X, D>> for SessionMeter<'_> {
    fn phase_start(&mut self, b: &Backend<'a, X, D>, phase: Phase) {
        if let (Phase::Online, Some(hook)) = (phase, self.online_hook) {
            hook();
        }
        self.phase_open = Some((Instant::now(), peer_stats(b), dealer_stats(b)));
    }
    fn phase_end(&mut self, b: &Backend<'a, X, D>, phase: Phase) {
        if let Some((start, peer, dealer)) = self.phase_open.take() {
            let entry = (start.elapsed().as_secs_f64(), peer_stats(b).since(&peer), dealer_stats(b).since(&dealer));
            self.phases.insert(phase, entry);
        }
    }
}

/// One party's view of a private inference.
#[derive(Clone, Debug)]
pub struct PartyReport {
    /// The revealed output (P1's; P0's too only when revealed to both).
    pub output: Option<Vec<f64>>,
    /// Model load: seconds and traffic with the peer.
    pub load: (f64, CommStats),
    /// Offline phase: seconds and traffic with the dealer (material made ahead).
    pub offline: (f64, CommStats),
    /// Online phase: seconds (less the material made on demand) and traffic with the peer.
    pub online: (f64, CommStats),
    /// Material made on demand during the online phase: seconds and traffic with the dealer.
    pub on_demand: (f64, CommStats),
    /// Online cost per bucket: seconds and traffic with the peer.
    pub buckets: BTreeMap<Bucket, (f64, CommStats)>,
    /// The most ring elements of material held at once.
    pub peak_material_elements: u64,
    /// Tokens of the query.
    pub tokens: usize,
}

impl PartyReport {
    /// Seconds of dealer material for the inference: made ahead, and made on demand.
    pub fn offline_seconds(&self) -> f64 {
        self.offline.0 + self.on_demand.0
    }

    /// Bytes this party exchanged with the dealer for the inference, both ways.
    pub fn dealer_bytes(&self) -> u64 {
        [self.offline.1, self.on_demand.1].iter().map(|s| s.bytes_received + s.bytes_sent).sum()
    }
}

fn tokens(config: &BertConfig, seq: usize, seed: u64) -> Vec<u32> {
    (0..seq as u64).map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % config.vocab_size as u64) as u32).collect()
}

/// A session error as the launcher reports it.
pub fn to_error(e: SessionError) -> Error {
    match e {
        SessionError::Protocol(e) => e,
        SessionError::Model(mpc_transformer::ModelError::Token(_)) | SessionError::TooLong { .. } => {
            Error::ShapeMismatch
        }
        SessionError::Mismatch { .. } => Error::Malformed("the parties' public parameters differ"),
        _ => Error::Malformed("model"),
    }
}

/// What a private inference runs: the model (at P0), the tokens (at P1) and the settings.
#[derive(Clone, Copy)]
pub struct PrivateJob<'a> {
    /// The public shape.
    pub config: &'a BertConfig,
    /// P0's parameters.
    pub params: &'a Params,
    /// P1's token ids.
    pub tokens: &'a [u32],
    /// Approximations.
    pub preset: Preset,
    /// How P0's weights are held.
    pub weights: WeightMode,
    /// Truncation at the session precision.
    pub truncation: Truncation,
    /// Who learns the output.
    pub reveal: Reveal,
    /// Material held ahead and made per batch, in ring elements.
    pub material: (usize, usize),
    /// Layers to run (default: all).
    pub layers: Option<usize>,
    /// Show P1's progress per layer on stderr.
    pub progress: bool,
    /// Reproducible randomness (insecure: tests only).
    pub seed: Option<u64>,
    /// Called by each party right before its online phase (to switch network shaping on, say).
    pub online_hook: Option<&'a (dyn Fn() + Sync)>,
}

impl<'a> PrivateJob<'a> {
    /// A job with the defaults: owner weights, dealer truncation, output to P1 only, every
    /// layer, no progress, OS randomness, no hook.
    pub fn new(config: &'a BertConfig, params: &'a Params, tokens: &'a [u32], preset: Preset) -> Self {
        Self {
            config,
            params,
            tokens,
            preset,
            weights: WeightMode::Owner,
            truncation: Truncation::default(),
            reveal: Reveal::DataOwner,
            material: (mpc_core::preprocessing::DEFAULT_BUDGET, mpc_core::preprocessing::DEFAULT_CHUNK),
            layers: None,
            progress: false,
            seed: None,
            online_hook: None,
        }
    }

    /// The meters' behaviour this job asks for.
    pub fn meters(&self) -> Meters<'a> {
        Meters { progress: self.progress, online_hook: self.online_hook }
    }

    /// The session options of this job.
    pub fn options(&self) -> SessionOptions {
        SessionOptions::default()
            .weights(self.weights)
            .truncation(self.truncation)
            .reveal(self.reveal)
            .material(self.material.0, self.material.1)
            .clock(crate::clock_nanos)
    }
}

/// One party's side of a private inference over any transport, through a [`Session`]: connect,
/// load, one inference, close.
pub fn private_party<T: Transport, D: Transport>(
    ctx: &mut PartyContext<T, D>,
    job: &PrivateJob<'_>,
) -> Result<PartyReport, Error> {
    private_queries(ctx, job, &[job.tokens], |_, _| {})
}

/// Private inferences over one [`Session`]: the model is loaded once, each length planned once.
/// P1 asks `queries` in order, then ends the session; P0 (which ignores `queries`) answers until
/// then. `observe` sees this party's report after each query. Returns the last.
pub fn private_queries<T: Transport, D: Transport>(
    ctx: &mut PartyContext<T, D>,
    job: &PrivateJob<'_>,
    queries: &[&[u32]],
    observe: impl FnMut(usize, &PartyReport),
) -> Result<PartyReport, Error> {
    let mut session = PartySession::open(ctx, job)?;
    let last = session.answer(queries, job.meters(), observe)?;
    session.close()?;
    Ok(last)
}

/// What a party's meters do besides measuring: show P1's progress, call a hook at the online
/// phase's start.
#[derive(Clone, Copy, Default)]
pub struct Meters<'h> {
    /// Show P1's progress per layer on stderr.
    pub progress: bool,
    /// Called by each party right before its online phase.
    pub online_hook: Option<&'h (dyn Fn() + Sync)>,
}

impl std::fmt::Debug for Meters<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meters").field("progress", &self.progress).finish_non_exhaustive()
    }
}

/// One party's metered [`Session`] with the model loaded: [`PartySession::open`] connects and
/// loads (the job's parameters are not needed after it: P0 may drop them),
/// [`PartySession::answer`] runs queries, [`PartySession::close`] ends it.
pub struct PartySession<'c, T: Transport, D: Transport> {
    session: Session<&'c mut Metered<T>, &'c mut DealerClient<Metered<D>>>,
    load: (f64, CommStats),
}

impl<T: Transport, D: Transport> std::fmt::Debug for PartySession<'_, T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartySession").field("session", &self.session).finish_non_exhaustive()
    }
}

impl<'c, T: Transport, D: Transport> PartySession<'c, T, D> {
    /// Connects over `ctx` and loads `job`'s model (its weights at P0).
    pub fn open(ctx: &'c mut PartyContext<T, D>, job: &PrivateJob<'_>) -> Result<Self, Error> {
        let role = ctx.role;
        let mut session =
            Session::connect(role, &mut ctx.peer, &mut ctx.dealer, &mut ctx.rng, job.options()).map_err(to_error)?;
        let mut loading = SessionMeter::new(Meters::default(), role);
        let params = (role == Role::P0).then_some(job.params);
        session.load_observed(job.config, job.preset, params, job.layers, &mut loading).map_err(to_error)?;
        let load = loading.phases.get(&Phase::Load).copied().unwrap_or_default();
        Ok(Self { session, load: (load.0, load.1) })
    }

    /// Runs the session's queries: P1 asks `queries` in order; P0 answers until P1 ends the
    /// session ([`PartySession::close`] at P1). `observe` sees this party's report after each.
    /// Returns the last.
    pub fn answer(
        &mut self,
        queries: &[&[u32]],
        meters: Meters<'_>,
        mut observe: impl FnMut(usize, &PartyReport),
    ) -> Result<PartyReport, Error> {
        let role = self.session.role();
        let mut last = None;
        for index in 0.. {
            let tokens = match role {
                Role::P0 => None,
                Role::P1 if index < queries.len() => Some(queries[index]),
                Role::P1 => break,
            };
            let mut meter = SessionMeter::new(meters, role);
            let inference = match self.session.infer(tokens, &mut meter) {
                Ok(inference) => inference,
                Err(SessionError::Ended) => break,
                Err(e) => return Err(to_error(e)),
            };
            let phase = |p: Phase| meter.phases.get(&p).copied().unwrap_or_default();
            let (offline, online) = (phase(Phase::Offline), phase(Phase::Online));
            let on_demand_s = inference.material.on_demand_nanos as f64 * 1e-9;
            // The meetings after on-demand refills are no step of the protocol.
            let mut online_stats = online.1;
            online_stats.rounds = online_stats.rounds.saturating_sub(inference.material.chunks_on_demand);
            let report = PartyReport {
                output: inference.output,
                load: self.load,
                offline: (offline.0, offline.2),
                online: ((online.0 - on_demand_s).max(0.0), online_stats),
                on_demand: (on_demand_s, online.2),
                buckets: meter.buckets,
                peak_material_elements: inference.material.peak_elements,
                tokens: inference.tokens,
            };
            observe(index, &report);
            last = Some(report);
        }
        last.ok_or(Error::Malformed("the session ended before any query"))
    }

    /// Ends the session (at P1, tells P0 there are no more queries).
    pub fn close(self) -> Result<(), Error> {
        self.session.close().map(drop).map_err(to_error)
    }
}

/// Runs P0, P1 and the dealer in threads, P1 asking `queries` over one session (see
/// [`private_queries`]); `observe` sees P1's report after each query.
pub fn run_private_queries(
    job: &PrivateJob<'_>,
    queries: &[&[u32]],
    observe: impl FnMut(usize, &PartyReport) + Send,
) -> Result<crate::launcher::ThreadedRun<PartyReport>, LaunchError> {
    let observe = std::sync::Mutex::new(observe);
    run_threaded(launch_options(job), |ctx| {
        let role = ctx.role;
        let see = |i: usize, r: &PartyReport| {
            if role == Role::P1 {
                (observe.lock().expect("observer"))(i, r)
            }
        };
        private_queries(ctx, job, queries, see)
    })
}

/// Runs P0, P1 and the dealer in threads (see [`private_party`]).
pub fn run_private(job: PrivateJob<'_>) -> Result<crate::launcher::ThreadedRun<PartyReport>, LaunchError> {
    run_threaded(launch_options(&job), |ctx| private_party(ctx, &job))
}

fn launch_options(job: &PrivateJob<'_>) -> LaunchOptions {
    match job.seed {
        Some(seed) => LaunchOptions::seeded(seed),
        None => LaunchOptions::default(),
    }
}

/// [`run_private`] with the parties' link shaped to `profile` during the online phase.
pub fn run_private_shaped(
    job: PrivateJob<'_>,
    profile: NetworkProfile,
) -> Result<crate::launcher::ThreadedRun<PartyReport>, LaunchError> {
    let on = Arc::new(AtomicBool::new(false));
    let switch_on = || on.store(true, Ordering::Relaxed);
    let job = PrivateJob { online_hook: Some(&switch_on), ..job };
    run_threaded_over(launch_options(&job), |t| Shaped::new(t, profile, on.clone()), |ctx| private_party(ctx, &job))
}

/// Runs the benchmark.
pub fn run(bench: &ModelBench) -> Result<ModelReport, LaunchError> {
    let config = &bench.config;
    let params = Params::random(config, bench.seed);
    let toks = tokens(config, bench.seq, bench.seed);
    let mask = vec![1.0; bench.seq];
    let job = PrivateJob {
        weights: bench.weights,
        truncation: bench.truncation,
        layers: bench.layers,
        ..PrivateJob::new(config, &params, &toks, bench.preset)
    };
    let run = run_private(job)?;

    // Plaintext: the same model in f32 (timed), and in f64 (the accuracy reference).
    let mut fast = Plain::<f32>::new();
    let model = Encoder::load(&mut fast, config, bench.preset, Some(&params), bench.layers).expect("plain load");
    let t = Instant::now();
    let _ = model.forward(&mut fast, Some(&toks), &mask, &mut Unobserved).expect("plain forward");
    let plaintext_s = t.elapsed().as_secs_f64();
    let mut exact = Plain::<f64>::new();
    let model = Encoder::load(&mut exact, config, bench.preset, Some(&params), bench.layers).expect("plain load");
    let reference = model.forward(&mut exact, Some(&toks), &mask, &mut Unobserved).expect("plain forward");

    let (p0, p1) = (&run.p0.output, &run.p1.output);
    let private = p1.output.clone().unwrap_or_default();
    // A missing output has another length: the worst error, like a NaN.
    let max_abs_err = crate::max_abs_diff(&private, &reference);
    let both = |a: &CommStats, b: &CommStats| a.bytes_sent + b.bytes_sent;
    let buckets = Bucket::ALL
        .iter()
        .map(|bucket| {
            let (s0, c0) = p0.buckets.get(bucket).copied().unwrap_or_default();
            let (_, c1) = p1.buckets.get(bucket).copied().unwrap_or_default();
            (bucket.name(), BucketCost { seconds: s0, bytes: both(&c0, &c1), rounds: c0.rounds.max(c1.rounds) })
        })
        .collect();
    let online_s = p0.online.0.max(p1.online.0);
    let rounds = p0.online.1.rounds.max(p1.online.1.rounds);
    let (projected_s, shaped_s) = match bench.net {
        None => (None, None),
        Some(profile) => {
            let busiest = p0.online.1.bytes_sent.max(p1.online.1.bytes_sent);
            let shaped = run_private_shaped(job, profile)?;
            let shaped_s = shaped.p0.output.online.0.max(shaped.p1.output.online.0);
            (Some(profile.project(online_s, rounds, busiest)), Some(shaped_s))
        }
    };
    Ok(ModelReport {
        config: bench.config_name.clone(),
        seq: bench.seq,
        layers: bench.layers.unwrap_or(config.num_hidden_layers).min(config.num_hidden_layers),
        preset: bench.preset.name().to_string(),
        weights: bench.weights.name(),
        truncation: match bench.truncation {
            Truncation::Local => "local",
            Truncation::Dealer => "dealer",
        },
        online_s,
        online_s_by_party: [p0.online.0, p1.online.0],
        offline_s: p0.offline_seconds().max(p1.offline_seconds()),
        on_demand_s: p0.on_demand.0.max(p1.on_demand.0),
        plaintext_s,
        online_ratio: online_s / plaintext_s,
        online_bytes: both(&p0.online.1, &p1.online.1),
        offline_bytes: p0.dealer_bytes() + p1.dealer_bytes(),
        peak_material_bytes: 8 * p0.peak_material_elements.max(p1.peak_material_elements),
        peak_rss_bytes: crate::peak_rss_bytes(),
        rounds,
        max_abs_err,
        private,
        plaintext: reference.clone(),
        load_s: p0.load.0.max(p1.load.0),
        load_bytes: both(&p0.load.1, &p1.load.1),
        buckets,
        net: bench.net,
        projected_s,
        shaped_s,
    })
}
