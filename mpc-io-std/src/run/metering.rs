//! Meters of one party's session: time and traffic per phase (load, offline, online) and per
//! bucket of stages, and the report a party gives of one query.

use std::collections::BTreeMap;
use std::time::Instant;

use mpc_core::preprocessing::{DealerClient, PipelineStats};
use mpc_core::transport::{CommStats, Metered, Transport};
use mpc_transformer::{Bucket, Observer, Phase, SessionBackend, SessionObserver};

use super::Meters;
use mpc_core::transport::Role;

/// The backend of a session over the launcher's metered links.
type Backend<'a, X, D> = SessionBackend<&'a mut Metered<X>, &'a mut DealerClient<Metered<D>>>;

/// Times and meters one party's session: each phase (load, offline, online) and, within the
/// online phase, each bucket of stages; shows P1's progress per layer on stderr if asked.
pub(super) struct SessionMeter<'h> {
    open: Option<(Instant, CommStats, PipelineStats)>,
    pub(super) buckets: BTreeMap<Bucket, (f64, CommStats)>,
    phase_open: Option<(Instant, CommStats, CommStats)>,
    pub(super) phases: BTreeMap<Phase, (f64, CommStats, CommStats)>,
    show_progress: bool,
    phase_hook: Option<&'h (dyn Fn(Phase, bool) + Sync)>,
}

fn peer_stats<X: Transport, D: Transport>(b: &Backend<'_, X, D>) -> CommStats {
    b.party().transport().inner().stats()
}

fn material_stats<X: Transport, D: Transport>(b: &Backend<'_, X, D>) -> PipelineStats {
    b.party().preprocessing().stats()
}

fn dealer_stats<X: Transport, D: Transport>(b: &Backend<'_, X, D>) -> CommStats {
    b.party().preprocessing().live().transport().stats()
}

impl<'h> SessionMeter<'h> {
    pub(super) fn new(meters: Meters<'h>, role: Role) -> Self {
        SessionMeter {
            open: None,
            buckets: BTreeMap::new(),
            phase_open: None,
            phases: BTreeMap::new(),
            show_progress: meters.progress && role == Role::P1,
            phase_hook: meters.phase_hook,
        }
    }
}

impl<'a, X: Transport, D: Transport> Observer<Backend<'a, X, D>> for SessionMeter<'_> {
    fn enter(&mut self, b: &Backend<'a, X, D>, _bucket: Bucket) {
        self.open = Some((Instant::now(), peer_stats(b), material_stats(b)));
    }
    fn leave(&mut self, b: &Backend<'a, X, D>, bucket: Bucket) {
        if let Some((start, stats, material)) = self.open.take() {
            // Material made on demand inside the bucket, and the meetings after it, are offline
            // work: neither its time nor its rounds count as the bucket's.
            let refills = material_stats(b).since(&material);
            let mut traffic = peer_stats(b).since(&stats);
            traffic.rounds = traffic.rounds.saturating_sub(refills.chunks_on_demand);
            let entry = self.buckets.entry(bucket).or_default();
            entry.0 += (start.elapsed().as_secs_f64() - refills.on_demand_nanos as f64 * 1e-9).max(0.0);
            entry.1 = entry.1.plus(&traffic);
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
        if let Some(hook) = self.phase_hook {
            hook(phase, true);
        }
        self.phase_open = Some((Instant::now(), peer_stats(b), dealer_stats(b)));
    }
    fn phase_end(&mut self, b: &Backend<'a, X, D>, phase: Phase) {
        if let Some((start, peer, dealer)) = self.phase_open.take() {
            let entry = (start.elapsed().as_secs_f64(), peer_stats(b).since(&peer), dealer_stats(b).since(&dealer));
            self.phases.insert(phase, entry);
        }
        if let Some(hook) = self.phase_hook {
            hook(phase, false);
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
    /// Seconds of material made while the session was idle, before the query came (with
    /// [`SessionOptions::pool`](mpc_transformer::SessionOptions::pool)); not in `offline`.
    pub ahead_s: f64,
    /// Seconds of planning this length (the first query of a length; 0 when the plan was
    /// cached); not in `offline`.
    pub plan_s: f64,
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
