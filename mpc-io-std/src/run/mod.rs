//! Running private inferences: one party's metered [`Session`] over
//! any transport ([`PartySession`]), and the three roles together in threads ([`threads`]) or
//! as TLS-connected parties ([`network`]).

use mpc_core::Error;
use mpc_core::preprocessing::DealerClient;
use mpc_core::protocol::Truncation;
use mpc_core::transport::{CommStats, Metered, Role, Transport};
use mpc_nn::WeightMode;
use mpc_transformer::{BertConfig, Params, Phase, Preset, Reveal, Session, SessionError, SessionOptions};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod metering;
pub mod network;
pub mod threads;

use crate::transport::shaping::{NetworkProfile, Shaped};
pub use metering::PartyReport;
use metering::SessionMeter;
use threads::{LaunchError, LaunchOptions, PartyContext, ThreadedRun, run_threaded, run_threaded_over};

/// A session error as the launcher reports it.
pub fn to_error(e: SessionError) -> Error {
    match e {
        SessionError::Protocol(e) => e,
        SessionError::Model(mpc_transformer::ModelError::Token(_)) => Error::ShapeMismatch,
        // Longer than the model's positions or the session's bound.
        SessionError::TooLong { .. } => Error::TooLarge,
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
    /// Called by each party as each of its phases starts (`true`) and ends (`false`): to switch
    /// network shaping on for the online phase, or a profiler on for one phase.
    pub phase_hook: Option<&'a (dyn Fn(Phase, bool) + Sync)>,
    /// Queries whose material is made while the session is idle (both parties must agree).
    pub pool: usize,
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
            phase_hook: None,
            pool: 0,
        }
    }

    /// The meters' behaviour this job asks for.
    pub fn meters(&self) -> Meters<'a> {
        Meters { progress: self.progress, phase_hook: self.phase_hook }
    }

    /// The session options of this job.
    pub fn options(&self) -> SessionOptions {
        SessionOptions::default()
            .weights(self.weights)
            .truncation(self.truncation)
            .reveal(self.reveal)
            .material(self.material.0, self.material.1)
            .pool(self.pool)
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

/// What a party's meters do besides measuring: show P1's progress, call a hook as each phase
/// starts and ends.
#[derive(Clone, Copy, Default)]
pub struct Meters<'h> {
    /// Show P1's progress per layer on stderr.
    pub progress: bool,
    /// Called by each party as each of its phases starts (`true`) and ends (`false`).
    pub phase_hook: Option<&'h (dyn Fn(Phase, bool) + Sync)>,
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
        let mut loading = SessionMeter::new(job.meters(), role);
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
                // The session's online time already leaves out the material made on demand.
                online: (inference.online_nanos as f64 * 1e-9, online_stats),
                on_demand: (on_demand_s, online.2),
                ahead_s: inference.ahead_nanos as f64 * 1e-9,
                plan_s: inference.plan_nanos as f64 * 1e-9,
                buckets: meter.buckets,
                peak_material_elements: inference.material.peak_elements,
                tokens: inference.tokens,
            };
            observe(index, &report);
            last = Some(report);
            // The answer is out: make the next queries' material while the peer is away (a
            // no-op without a pool). P0 does it after every query (it cannot know which is
            // last); P1 after every query but its last, which keeps its material requests in
            // step with P0's for every query that comes, and lets a client go at once.
            if role == Role::P0 || index + 1 < queries.len() {
                self.session.prepare_next().map_err(to_error)?;
            }
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
) -> Result<ThreadedRun<PartyReport>, LaunchError> {
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

/// Runs P0, P1 and the dealer in threads, P1 asking `queries` over one session (see
/// [`private_queries`]); each party's output is its report of every query, in order.
pub fn run_private_each(
    job: &PrivateJob<'_>,
    queries: &[&[u32]],
) -> Result<ThreadedRun<Vec<PartyReport>>, LaunchError> {
    run_threaded(launch_options(job), |ctx| {
        let mut reports = Vec::with_capacity(queries.len());
        private_queries(ctx, job, queries, |_, r| reports.push(r.clone()))?;
        Ok(reports)
    })
}

/// Runs P0, P1 and the dealer in threads (see [`private_party`]).
pub fn run_private(job: PrivateJob<'_>) -> Result<ThreadedRun<PartyReport>, LaunchError> {
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
) -> Result<ThreadedRun<PartyReport>, LaunchError> {
    let on = Arc::new(AtomicBool::new(false));
    let switch_on = |phase: Phase, start: bool| {
        if phase == Phase::Online && start {
            on.store(true, Ordering::Relaxed);
        }
    };
    let job = PrivateJob { phase_hook: Some(&switch_on), ..job };
    run_threaded_over(launch_options(&job), |t| Shaped::new(t, profile, on.clone()), |ctx| private_party(ctx, &job))
}
