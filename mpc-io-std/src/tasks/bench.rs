//! `mpcformer bench`: a BERT-class encoder on random weights, P0, P1 and the dealer in threads,
//! through one [`Session`](mpc_transformer::Session) per party.
//!
//! Phases, each timed and metered apart: **load** (P0's weights enter the computation once),
//! **offline** (the dealer's material made ahead, up to the budget, and the input-free products),
//! **online** (the inference proper, less the material made on demand within it, which is
//! reported as `on_demand_s`). The plaintext time is the same model in `Plain<f32>`, on one
//! thread like each party, in the same run, with the faster of the maintained f32 GEMMs on this
//! CPU ([`crate::baseline_gemm`]): the median of [`PLAINTEXT_RUNS`] forwards.

use std::collections::BTreeMap;
use std::time::Instant;

use mpc_core::Error;
use mpc_core::protocol::Truncation;
use mpc_core::transport::{CommStats, PartyId};
use mpc_nn::{Plain, WeightMode};
use mpc_transformer::{BertConfig, Bucket, Encoder, Params, Phase, Preset, Unobserved};
use serde::Serialize;

use crate::run::threads::LaunchError;
use crate::run::{PartyReport, PrivateJob, run_private_each, run_private_shaped};
use crate::transport::shaping::NetworkProfile;

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
    /// Queries of the same tokens on the one session (at least one). The report's figures are the
    /// first query's; each later one, which finds the model loaded, its length planned and the
    /// memory of the queries before it, is reported in `later_queries`.
    pub queries: usize,
}

/// What one query cost: the report's own figures for the first, [`ModelReport::later_queries`]
/// for the others.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct QueryCost {
    /// Online wall time (the slower party).
    pub online_s: f64,
    /// Offline wall time (made ahead and on demand, as `offline_s`).
    pub offline_s: f64,
    /// The part of `offline_s` made on demand within the online phase.
    pub on_demand_s: f64,
    /// Planning its length (0: the session kept the first query's plan).
    pub plan_s: f64,
    /// Largest |private - plaintext f64| over the outputs.
    pub max_abs_err: f64,
}

impl QueryCost {
    /// The query both parties reported as `p0` and `p1`, its output against `reference`.
    fn of(p0: &PartyReport, p1: &PartyReport, reference: &[f64]) -> Self {
        QueryCost {
            online_s: p0.online.0.max(p1.online.0),
            offline_s: p0.offline_seconds().max(p1.offline_seconds()),
            on_demand_s: p0.on_demand.0.max(p1.on_demand.0),
            plan_s: p0.plan_s.max(p1.plan_s),
            // A missing output has another length: the worst error, like a NaN.
            max_abs_err: crate::max_abs_diff(p1.output.as_deref().unwrap_or_default(), reference),
        }
    }
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
    /// Planning this length before the offline phase (a rehearsal of the forward pass on
    /// zeros that learns the material's plan): once per length and loaded model, cached for
    /// the queries after; not in `offline_s`.
    pub plan_s: f64,
    /// Plaintext time of the same model, `Plain<f32>`, one thread, with the faster GEMM
    /// (`plaintext_gemm`): the median of [`PLAINTEXT_RUNS`] forwards (`plaintext_runs_s`), so
    /// that one slow or fast forward does not move every ratio.
    pub plaintext_s: f64,
    /// Each plaintext forward's time, in the order run.
    pub plaintext_runs_s: Vec<f64>,
    /// The f32 GEMM of the plaintext baseline: the faster on this CPU, in this run, of the
    /// maintained ones ([`crate::baseline_gemm::CANDIDATES`]: `matrixmultiply`, `gemm`).
    pub plaintext_gemm: &'static str,
    /// The plaintext time with each GEMM (the median of its forwards): `plaintext_s` is the
    /// smaller.
    pub plaintext_by_gemm_s: BTreeMap<&'static str, f64>,
    /// The CPU the run measured ([`crate::cpu_model`]): every ratio is this machine's.
    pub cpu: String,
    /// The u64 GEMM kernel the parties' products ran on (`amx-int8`, `avx512`, `avx2` or
    /// `portable`), picked at run time for this CPU.
    pub u64_kernel: &'static str,
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
    /// Queries run on the session (`--queries`); every other figure is the first one's.
    pub queries: usize,
    /// Each query after the first, in order: a running service's queries.
    pub later_queries: Vec<QueryCost>,
    /// The median of `later_queries`' online times (none with one query).
    pub later_online_s: Option<f64>,
    /// The median of `later_queries`' offline times (none with one query).
    pub later_offline_s: Option<f64>,
}

fn tokens(config: &BertConfig, seq: usize, seed: u64) -> Vec<u32> {
    (0..seq as u64).map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % config.vocab_size as u64) as u32).collect()
}

/// Plaintext forwards each model benchmark times (odd: their median is one of them). One
/// forward's time swung 0.46-0.55 s between runs on the 2-core Intel Xeon guest, moving every
/// ratio by as much.
pub const PLAINTEXT_RUNS: usize = 3;

/// The plaintext model with one of the candidate GEMMs, and its forwards' times.
struct Baseline {
    name: &'static str,
    backend: Plain<f32>,
    model: Encoder<Plain<f32>>,
    runs: Vec<f64>,
}

/// The median of `times` (the upper one of an even count); 0 for none.
fn median(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// The environment variable naming a `perf` control FIFO (see [`run`]).
pub const PERF_CONTROL_VAR: &str = "MPCFORMER_PERF_CONTROL";

/// The phase profiled under [`PERF_CONTROL_VAR`]: `load`, `offline` or `online` (the default).
pub const PERF_PHASE_VAR: &str = "MPCFORMER_PERF_PHASE";

/// Runs the benchmark. With [`PERF_CONTROL_VAR`] naming the FIFO of `perf record -D -1
/// --control fifo:PATH`, only one phase is profiled ([`PERF_PHASE_VAR`], the online phase by
/// default, its on-demand material included): `enable` is written to the FIFO as the first
/// party starts it, `disable` as the first party ends it.
pub fn run(bench: &ModelBench) -> Result<ModelReport, LaunchError> {
    let config = &bench.config;
    let params = Params::random(config, bench.seed);
    let toks = tokens(config, bench.seq, bench.seed);
    let mask = vec![1.0; bench.seq];
    let control = std::env::var_os(PERF_CONTROL_VAR);
    let profiled = match std::env::var(PERF_PHASE_VAR).as_deref() {
        Ok("load") => Phase::Load,
        Ok("offline") => Phase::Offline,
        _ => Phase::Online,
    };
    let perf = |phase: Phase, start: bool| {
        if phase == profiled
            && let Some(path) = &control
            && let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(path)
        {
            use std::io::Write;
            let _ = fifo.write_all(if start { b"enable\n" } else { b"disable\n" });
        }
    };
    let job = PrivateJob {
        phase_hook: control.as_ref().map(|_| &perf as &(dyn Fn(Phase, bool) + Sync)),
        weights: bench.weights,
        truncation: bench.truncation,
        layers: bench.layers,
        ..PrivateJob::new(config, &params, &toks, bench.preset)
    };
    let queries = vec![&toks[..]; bench.queries.max(1)];
    let run = run_private_each(&job, &queries)?;

    // Plaintext: the same model in f32 (timed, with each GEMM: the faster is the baseline), and
    // in f64 (the accuracy reference). The GEMMs' forwards alternate, so that neither gets the
    // machine's better minutes.
    let mut baselines: Vec<Baseline> = crate::baseline_gemm::CANDIDATES
        .iter()
        .map(|&(name, gemm)| {
            let mut backend = Plain::<f32>::with_gemm(gemm);
            let model =
                Encoder::load(&mut backend, config, bench.preset, Some(&params), bench.layers).expect("plain load");
            Baseline { name, backend, model, runs: Vec::with_capacity(PLAINTEXT_RUNS) }
        })
        .collect();
    for _ in 0..PLAINTEXT_RUNS {
        for b in &mut baselines {
            let t = Instant::now();
            let _ = b.model.forward(&mut b.backend, Some(&toks), &mask, &mut Unobserved).expect("plain forward");
            b.runs.push(t.elapsed().as_secs_f64());
        }
    }
    let plaintext_by_gemm_s: BTreeMap<&'static str, f64> =
        baselines.iter().map(|b| (b.name, median(&b.runs))).collect();
    let Baseline { name: plaintext_gemm, runs: plaintext_runs_s, .. } = baselines
        .into_iter()
        .min_by(|x, y| plaintext_by_gemm_s[x.name].total_cmp(&plaintext_by_gemm_s[y.name]))
        .expect("a candidate GEMM");
    let plaintext_s = plaintext_by_gemm_s[plaintext_gemm];
    let mut exact = Plain::<f64>::new();
    let model = Encoder::load(&mut exact, config, bench.preset, Some(&params), bench.layers).expect("plain load");
    let reference = model.forward(&mut exact, Some(&toks), &mask, &mut Unobserved).expect("plain forward");

    // Every query's figures, from both parties' reports of it: the first is the report's own.
    let each: Vec<(&PartyReport, &PartyReport)> = run.p0.output.iter().zip(&run.p1.output).collect();
    let no_query = || LaunchError::Failed { party: PartyId::P1, error: Error::Malformed("no query was answered") };
    let &(p0, p1) = each.first().ok_or_else(no_query)?;
    let private = p1.output.clone().unwrap_or_default();
    let first = QueryCost::of(p0, p1, &reference);
    let later_queries: Vec<QueryCost> = each[1..].iter().map(|&(p0, p1)| QueryCost::of(p0, p1, &reference)).collect();
    let later = |figure: fn(&QueryCost) -> f64| {
        (!later_queries.is_empty()).then(|| median(&later_queries.iter().map(figure).collect::<Vec<_>>()))
    };
    let both = |a: &CommStats, b: &CommStats| a.bytes_sent + b.bytes_sent;
    let buckets = Bucket::ALL
        .iter()
        .map(|bucket| {
            let (s0, c0) = p0.buckets.get(bucket).copied().unwrap_or_default();
            let (_, c1) = p1.buckets.get(bucket).copied().unwrap_or_default();
            (bucket.name(), BucketCost { seconds: s0, bytes: both(&c0, &c1), rounds: c0.rounds.max(c1.rounds) })
        })
        .collect();
    let online_s = first.online_s;
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
        truncation: bench.truncation.name(),
        online_s,
        online_s_by_party: [p0.online.0, p1.online.0],
        offline_s: first.offline_s,
        on_demand_s: first.on_demand_s,
        plan_s: first.plan_s,
        plaintext_s,
        plaintext_runs_s,
        plaintext_gemm,
        plaintext_by_gemm_s,
        cpu: crate::cpu_model(),
        u64_kernel: mpc_core::gemm::kernel_name(),
        online_ratio: online_s / plaintext_s,
        online_bytes: both(&p0.online.1, &p1.online.1),
        offline_bytes: p0.dealer_bytes() + p1.dealer_bytes(),
        peak_material_bytes: 8 * p0.peak_material_elements.max(p1.peak_material_elements),
        peak_rss_bytes: crate::peak_rss_bytes(),
        rounds,
        max_abs_err: first.max_abs_err,
        private,
        plaintext: reference.clone(),
        load_s: p0.load.0.max(p1.load.0),
        load_bytes: both(&p0.load.1, &p1.load.1),
        buckets,
        net: bench.net,
        projected_s,
        shaped_s,
        queries: each.len(),
        later_online_s: later(|q| q.online_s),
        later_offline_s: later(|q| q.offline_s),
        later_queries,
    })
}
