//! `mpcformer infer`: a checkpoint on a text, in the setting of your choice, beside plaintext.

use std::time::Instant;

use mpc_core::protocol::Truncation;
use mpc_core::transport::Role;
use mpc_nn::{Backend, Fixed, Plain, WeightMode};
use mpc_transformer::{Encoder, Head, Preset, Unobserved};
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::run::{PrivateJob, run_private};

/// Where the computation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    /// Plaintext f64.
    Plain,
    /// The protocol's fixed-point arithmetic in the clear, with predicted traffic.
    Simulated,
    /// P0, P1 and the dealer as threads over channels.
    Threaded,
    /// P0, P1 and the dealer over TCP + mutual TLS on loopback (threads of this process).
    Tcp,
}

impl Setting {
    /// The setting's name: `plain`, `simulated`, `threaded`.
    pub const fn name(self) -> &'static str {
        match self {
            Setting::Plain => "plain",
            Setting::Simulated => "simulated",
            Setting::Threaded => "threaded",
            Setting::Tcp => "tcp",
        }
    }
}

/// How a private inference computes: its approximations, how P0's weights are held, and the
/// truncation at the session precision (both parties must choose alike; the session's
/// handshake checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelChoice {
    /// Approximations.
    pub preset: Preset,
    /// How P0's weights are held.
    pub weights: WeightMode,
    /// Truncation at the session precision.
    pub truncation: Truncation,
}

impl ModelChoice {
    /// `preset` with the defaults: owner weights, dealer truncation.
    pub fn new(preset: Preset) -> Self {
        Self { preset, weights: WeightMode::Owner, truncation: Truncation::default() }
    }

    /// The same, with `weights`.
    pub fn with_weights(self, weights: WeightMode) -> Self {
        Self { weights, ..self }
    }
}

/// The `infer --json` line.
#[derive(Clone, Debug, Serialize)]
pub struct InferReport {
    /// `plain`, `simulated` or `threaded`.
    pub setting: &'static str,
    /// Preset name.
    pub preset: String,
    /// `shared` or `owner`.
    pub weights: &'static str,
    /// `classifier` (logits) or `mean-pool` (sentence embedding).
    pub head: &'static str,
    /// Tokens of the text.
    pub tokens: usize,
    /// A classifier's predicted class: its name (config.json's `id2label`), else its index.
    pub label: Option<String>,
    /// The output computed in the setting (logits, or the sentence embedding).
    pub private: Vec<f64>,
    /// The same output from the plaintext f64 model with the same approximations.
    pub plaintext: Vec<f64>,
    /// Largest |private - plaintext|.
    pub max_abs_err: f64,
    /// Cosine similarity of the two outputs.
    pub cosine: f64,
    /// Online seconds.
    pub online_s: f64,
    /// Offline seconds.
    pub offline_s: f64,
    /// Plaintext seconds (f64 forward pass).
    pub plaintext_s: f64,
    /// Bytes both parties sent each other online (predicted in the simulated setting).
    pub online_bytes: u64,
    /// Bytes exchanged with the dealer offline (threaded setting).
    pub offline_bytes: u64,
    /// Online rounds (predicted in the simulated setting).
    pub rounds: u64,
}

/// Why an inference failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InferError {
    /// The text could not be tokenized.
    Load(crate::checkpoint::LoadError),
    /// The model could not run.
    Model(mpc_transformer::ModelError),
    /// The parties failed.
    Launch(crate::run::threads::LaunchError),
    /// The networked parties failed.
    Network(crate::run::network::NetError),
    /// The parties finished, but the data owner (P1) received no output.
    NoOutput,
}

impl std::fmt::Display for InferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InferError::Load(e) => write!(f, "{e}"),
            InferError::Model(e) => write!(f, "{e}"),
            InferError::Launch(e) => write!(f, "{e}"),
            InferError::Network(e) => write!(f, "{e}"),
            InferError::NoOutput => f.write_str("the data owner (P1) received no output"),
        }
    }
}

impl std::error::Error for InferError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InferError::Load(e) => Some(e),
            InferError::Model(e) => Some(e),
            InferError::Launch(e) => Some(e),
            InferError::Network(e) => Some(e),
            InferError::NoOutput => None,
        }
    }
}

/// The cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let d = norm(a) * norm(b);
    if d == 0.0 { 0.0 } else { dot / d }
}

/// Runs `checkpoint` on `text` in `setting`.
pub fn run(
    checkpoint: &Checkpoint,
    text: &str,
    setting: Setting,
    choice: ModelChoice,
    progress: bool,
) -> Result<InferReport, InferError> {
    let tokens = checkpoint.tokenize(text).map_err(InferError::Load)?;
    Runner::new(checkpoint, setting, choice)?.run(&tokens, progress)
}

/// A checkpoint loaded once for many inferences in one setting: the plaintext reference model,
/// and the simulated one when the setting is simulated (the threaded and TCP settings load the
/// model in each party, per inference, as two separate machines would).
pub struct Runner<'a> {
    checkpoint: &'a Checkpoint,
    setting: Setting,
    choice: ModelChoice,
    plain: (Plain<f64>, Encoder<Plain<f64>>),
    fixed: Option<(Fixed, Encoder<Fixed>)>,
}

impl std::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("setting", &self.setting).field("choice", &self.choice).finish_non_exhaustive()
    }
}

impl<'a> Runner<'a> {
    /// Loads `checkpoint` for `setting` as `choice` says.
    pub fn new(checkpoint: &'a Checkpoint, setting: Setting, choice: ModelChoice) -> Result<Self, InferError> {
        let (config, preset, weights) = (&checkpoint.config, choice.preset, choice.weights);
        let mut plain = Plain::<f64>::new();
        let model =
            Encoder::load(&mut plain, config, preset, Some(&checkpoint.params), None).map_err(InferError::Model)?;
        let fixed = match setting {
            Setting::Simulated => {
                let mut fixed = Fixed::default().with_weight_mode(weights);
                let model = Encoder::load(&mut fixed, config, preset, Some(&checkpoint.params), None)
                    .map_err(InferError::Model)?;
                Some((fixed, model))
            }
            _ => None,
        };
        Ok(Self { checkpoint, setting, choice, plain: (plain, model), fixed })
    }

    /// One inference on `tokens` (the data owner's token ids).
    pub fn run(&mut self, tokens: &[u32], progress: bool) -> Result<InferReport, InferError> {
        let (plaintext, plaintext_s) = self.plaintext(tokens)?;
        let mask = vec![1.0; tokens.len()];
        let (private, costs) = match (self.setting, &mut self.fixed) {
            (Setting::Plain, _) => (plaintext.clone(), Costs { online_s: plaintext_s, ..Costs::default() }),
            (Setting::Simulated, Some((fixed, model))) => {
                fixed.reset_ledger();
                let t = Instant::now();
                let out = model.forward(fixed, Some(tokens), &mask, &mut Unobserved).map_err(InferError::Model)?;
                let online_s = t.elapsed().as_secs_f64();
                let ledger = *fixed.ledger();
                let online_bytes = ledger.stats(Role::P0).bytes_sent + ledger.stats(Role::P1).bytes_sent;
                let out = fixed.reveal(&out).map_err(|e| InferError::Model(e.into()))?;
                (out, Costs { online_s, online_bytes, rounds: ledger.rounds(), ..Costs::default() })
            }
            (setting, _) => {
                let job = PrivateJob { progress, ..self.job(tokens) };
                let [p0, p1] = if setting == Setting::Tcp {
                    crate::run::network::run_loopback(&job, crate::transport::tcp::TcpOptions::default())
                        .map_err(InferError::Network)?
                } else {
                    let run = run_private(job).map_err(InferError::Launch)?;
                    [run.p0.output, run.p1.output]
                };
                let costs = Costs {
                    online_s: p0.online.0.max(p1.online.0),
                    offline_s: p0.offline_seconds().max(p1.offline_seconds()),
                    online_bytes: p0.online.1.bytes_sent + p1.online.1.bytes_sent,
                    offline_bytes: p0.dealer_bytes() + p1.dealer_bytes(),
                    rounds: p0.online.1.rounds.max(p1.online.1.rounds),
                };
                (p1.output.ok_or(InferError::NoOutput)?, costs)
            }
        };
        Ok(self.report(tokens.len(), private, plaintext, plaintext_s, costs))
    }

    /// Inferences on every token sequence of `queries`, in order; `each` sees each report as it
    /// comes. In the threaded and TCP settings all of them run over one session (the model
    /// loaded once, each length planned once), and the costs are P1's meters: online bytes both
    /// ways, P1's offline time and dealer bytes.
    pub fn run_many(
        &mut self,
        queries: &[Vec<u32>],
        mut each: impl FnMut(usize, &InferReport) + Send,
    ) -> Result<Vec<InferReport>, InferError> {
        if !matches!(self.setting, Setting::Threaded | Setting::Tcp) {
            let mut reports = Vec::with_capacity(queries.len());
            for (i, tokens) in queries.iter().enumerate() {
                let report = self.run(tokens, false)?;
                each(i, &report);
                reports.push(report);
            }
            return Ok(reports);
        }
        let references = queries.iter().map(|q| self.plaintext(q)).collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u32]> = queries.iter().map(|q| q.as_slice()).collect();
        let Some(first) = refs.first() else { return Ok(Vec::new()) };
        let job = self.job(first);
        let mut reports = Vec::with_capacity(queries.len());
        let mut failure = None;
        let observe = |i: usize, p1: &crate::run::PartyReport| {
            let (Some(private), Some((plaintext, plaintext_s))) = (p1.output.clone(), references.get(i).cloned())
            else {
                failure.get_or_insert(InferError::NoOutput);
                return;
            };
            let costs = Costs {
                online_s: p1.online.0,
                offline_s: p1.offline_seconds(),
                online_bytes: p1.online.1.bytes_sent + p1.online.1.bytes_received,
                offline_bytes: p1.dealer_bytes(),
                rounds: p1.online.1.rounds,
            };
            let report = self.report(p1.tokens, private, plaintext, plaintext_s, costs);
            each(i, &report);
            reports.push(report);
        };
        if self.setting == Setting::Tcp {
            crate::run::network::run_loopback_queries(
                &job,
                crate::transport::tcp::TcpOptions::default(),
                &refs,
                observe,
            )
            .map_err(InferError::Network)?;
        } else {
            crate::run::run_private_queries(&job, &refs, observe).map_err(InferError::Launch)?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }

    /// The job of a private run of this runner's model on `tokens`.
    fn job<'t>(&'t self, tokens: &'t [u32]) -> PrivateJob<'t> {
        PrivateJob {
            weights: self.choice.weights,
            truncation: self.choice.truncation,
            ..PrivateJob::new(&self.checkpoint.config, &self.checkpoint.params, tokens, self.choice.preset)
        }
    }

    /// The plaintext f64 output on `tokens`, and its seconds.
    fn plaintext(&mut self, tokens: &[u32]) -> Result<(Vec<f64>, f64), InferError> {
        let mask = vec![1.0; tokens.len()];
        let (plain, model) = &mut self.plain;
        let t = Instant::now();
        let out = model.forward(plain, Some(tokens), &mask, &mut Unobserved).map_err(InferError::Model)?;
        Ok((out, t.elapsed().as_secs_f64()))
    }

    fn report(&self, tokens: usize, private: Vec<f64>, plaintext: Vec<f64>, plaintext_s: f64, c: Costs) -> InferReport {
        InferReport {
            setting: self.setting.name(),
            preset: self.choice.preset.name(),
            weights: self.choice.weights.name(),
            head: match self.plain.1.head() {
                Head::Classifier { .. } => "classifier",
                Head::MeanPool => "mean-pool",
            },
            tokens,
            label: match self.plain.1.head() {
                Head::Classifier { .. } => Some(self.checkpoint.label_name(crate::tasks::eval::argmax(&private))),
                Head::MeanPool => None,
            },
            cosine: cosine(&private, &plaintext),
            max_abs_err: crate::max_abs_diff(&private, &plaintext),
            private,
            plaintext,
            online_s: c.online_s,
            offline_s: c.offline_s,
            plaintext_s,
            online_bytes: c.online_bytes,
            offline_bytes: c.offline_bytes,
            rounds: c.rounds,
        }
    }
}

/// What one inference cost, as a report states it.
#[derive(Clone, Copy, Debug, Default)]
struct Costs {
    online_s: f64,
    offline_s: f64,
    online_bytes: u64,
    offline_bytes: u64,
    rounds: u64,
}
