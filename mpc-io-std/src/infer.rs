//! `mpcformer infer`: a checkpoint on a text, in the setting of your choice, beside plaintext.

use std::time::Instant;

use mpc_core::transport::Role;
use mpc_nn::{Backend, Fixed, Plain, WeightMode};
use mpc_transformer::{Encoder, Head, Preset, Unobserved};
use serde::Serialize;

use crate::bench::model::{PrivateJob, run_private};
use crate::model::Checkpoint;

/// Where the computation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
pub enum InferError {
    /// The text could not be tokenized.
    Load(crate::model::LoadError),
    /// The model could not run.
    Model(mpc_transformer::ModelError),
    /// The parties failed.
    Launch(crate::launcher::LaunchError),
    /// The networked parties failed.
    Network(crate::network::NetError),
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

impl std::error::Error for InferError {}

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
    preset: Preset,
    weights: WeightMode,
    progress: bool,
) -> Result<InferReport, InferError> {
    let tokens = checkpoint.tokenize(text).map_err(InferError::Load)?;
    Runner::new(checkpoint, setting, preset, weights)?.run(&tokens, progress)
}

/// A checkpoint loaded once for many inferences in one setting: the plaintext reference model,
/// and the simulated one when the setting is simulated (the threaded and TCP settings load the
/// model in each party, per inference, as two separate machines would).
pub struct Runner<'a> {
    checkpoint: &'a Checkpoint,
    setting: Setting,
    preset: Preset,
    weights: WeightMode,
    plain: (Plain<f64>, Encoder<Plain<f64>>),
    fixed: Option<(Fixed, Encoder<Fixed>)>,
}

impl std::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("setting", &self.setting).field("preset", &self.preset).finish_non_exhaustive()
    }
}

impl<'a> Runner<'a> {
    /// Loads `checkpoint` for `setting` with `preset` and `weights`.
    pub fn new(
        checkpoint: &'a Checkpoint,
        setting: Setting,
        preset: Preset,
        weights: WeightMode,
    ) -> Result<Self, InferError> {
        let config = &checkpoint.config;
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
        Ok(Self { checkpoint, setting, preset, weights, plain: (plain, model), fixed })
    }

    /// One inference on `tokens` (the data owner's token ids).
    pub fn run(&mut self, tokens: &[u32], progress: bool) -> Result<InferReport, InferError> {
        let mask = vec![1.0; tokens.len()];
        let (config, preset, weights) = (&self.checkpoint.config, self.preset, self.weights);
        let (plain, model) = &mut self.plain;
        let t = Instant::now();
        let plaintext = model.forward(plain, Some(tokens), &mask, &mut Unobserved).map_err(InferError::Model)?;
        let plaintext_s = t.elapsed().as_secs_f64();
        let head = model.head();

        let (private, online_s, offline_s, online_bytes, offline_bytes, rounds) = match (self.setting, &mut self.fixed)
        {
            (Setting::Plain, _) => (plaintext.clone(), plaintext_s, 0.0, 0, 0, 0),
            (Setting::Simulated, Some((fixed, model))) => {
                fixed.reset_ledger();
                let t = Instant::now();
                let out = model.forward(fixed, Some(tokens), &mask, &mut Unobserved).map_err(InferError::Model)?;
                let seconds = t.elapsed().as_secs_f64();
                let ledger = *fixed.ledger();
                let bytes = ledger.stats(Role::P0).bytes_sent + ledger.stats(Role::P1).bytes_sent;
                let out = fixed.reveal(&out).map_err(|e| InferError::Model(e.into()))?;
                (out, seconds, 0.0, bytes, 0, ledger.rounds())
            }
            (setting, _) => {
                let job = PrivateJob {
                    weights,
                    progress,
                    ..PrivateJob::new(config, &self.checkpoint.params, tokens, preset)
                };
                let [p0, p1] = if setting == Setting::Tcp {
                    crate::network::run_loopback(&job, crate::tcp::TcpOptions::default())
                        .map_err(InferError::Network)?
                } else {
                    let run = run_private(job).map_err(InferError::Launch)?;
                    [run.p0.output, run.p1.output]
                };
                let (p0, p1) = (&p0, &p1);
                (
                    p1.output.clone().ok_or(InferError::NoOutput)?,
                    p0.online.0.max(p1.online.0),
                    p0.offline_seconds().max(p1.offline_seconds()),
                    p0.online.1.bytes_sent + p1.online.1.bytes_sent,
                    p0.dealer_bytes() + p1.dealer_bytes(),
                    p0.online.1.rounds.max(p1.online.1.rounds),
                )
            }
        };
        let max_abs_err = crate::max_abs_diff(&private, &plaintext);
        Ok(InferReport {
            setting: self.setting.name(),
            preset: preset.name(),
            weights: weights.name(),
            head: match head {
                Head::Classifier { .. } => "classifier",
                Head::MeanPool => "mean-pool",
            },
            tokens: tokens.len(),
            cosine: cosine(&private, &plaintext),
            private,
            plaintext,
            max_abs_err,
            online_s,
            offline_s,
            plaintext_s,
            online_bytes,
            offline_bytes,
            rounds,
        })
    }
}
