//! `mpcformer demo`: a private inference end to end, over threads.
//!
//! P0 (the model owner) holds a MiniLM-shaped classifier (6 layers, hidden 384, 12 heads; random
//! weights until real checkpoints load), P1 (the data owner) holds 32 token ids. They run the
//! encoder on secret shares with the dealer's material made in an offline phase; the logits are
//! revealed and printed beside the plaintext model's.

use mpc_transformer::BertConfig;

use crate::run::threads::LaunchError;
use crate::tasks::bench::{self, ModelBench, ModelReport};
use crate::tasks::infer::ModelChoice;

/// The demo's settings.
pub fn settings(choice: ModelChoice) -> ModelBench {
    ModelBench {
        config_name: String::from("minilm (random weights, 2 labels)"),
        config: BertConfig { num_labels: Some(2), ..BertConfig::minilm_l6() },
        seq: 32,
        layers: None,
        preset: choice.preset,
        weights: choice.weights,
        truncation: choice.truncation,
        seed: 7,
        net: None,
        queries: 1,
    }
}

/// Runs the demo.
pub fn run(choice: ModelChoice) -> Result<ModelReport, LaunchError> {
    bench::run(&settings(choice))
}

/// Class probabilities from logits.
pub fn probabilities(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}
