//! `mpcformer eval`: a classifier's accuracy on the test split, computed in a setting (plaintext,
//! simulated or the real protocol), and its agreement with the plaintext predictions.

use std::time::Instant;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::dataset::Example;
use crate::tasks::infer::{InferError, ModelChoice, Runner, Setting};

/// The `eval --json` line.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The checkpoint directory.
    pub model: String,
    /// Preset name.
    pub preset: String,
    /// `plain`, `simulated`, `threaded` or `tcp`.
    pub setting: &'static str,
    /// `shared` or `owner` (how P0's weights are held).
    pub weights: &'static str,
    /// Examples evaluated.
    pub n: usize,
    /// Accuracy of the predictions made in the setting.
    pub accuracy: f64,
    /// Fraction of examples whose prediction equals the plaintext model's (1 in the plain
    /// setting).
    pub agreement_with_plain: f64,
    /// Accuracy of the plaintext f64 model with the same approximations on the same examples.
    pub plain_accuracy: f64,
    /// Largest |logit in the setting − plaintext logit| over all examples.
    pub max_abs_logit_err: f64,
    /// Index (in the evaluated examples) of the example with that largest error.
    pub worst_example: usize,
    /// Indices of the examples whose prediction differs from the plaintext one.
    pub disagreements: Vec<usize>,
    /// How many examples were predicted as each class in the setting, by class name
    /// (config.json's `id2label`, else the class index).
    pub predicted: std::collections::BTreeMap<String, usize>,
    /// Mean online seconds per example (plaintext seconds in the plain setting).
    pub online_s_per_example: f64,
    /// Mean online bytes per example (both parties; predicted in the simulated setting).
    pub online_bytes_per_example: f64,
    /// Wall-clock seconds of the whole evaluation.
    pub seconds: f64,
}

/// The index of the largest value; ties (and NaN) resolve to the first, deterministically.
pub fn argmax(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Evaluates `checkpoint` (named `name` in the report) on `examples` in `setting`.
pub fn evaluate(
    checkpoint: &Checkpoint,
    name: &str,
    examples: &[Example],
    setting: Setting,
    choice: ModelChoice,
    progress: bool,
) -> Result<EvalReport, InferError> {
    let started = Instant::now();
    let (preset, weights) = (choice.preset, choice.weights);
    let mut runner = Runner::new(checkpoint, setting, choice)?;
    let bar = crate::progress_bar(progress, examples.len() as u64, "eval");
    let (mut correct, mut plain_correct, mut agree) = (0usize, 0usize, 0usize);
    let (mut max_err, mut online_s, mut online_bytes) = (0f64, 0f64, 0f64);
    let (mut worst_example, mut disagreements) = (0, Vec::new());
    let mut predicted = std::collections::BTreeMap::new();
    let queries = examples
        .iter()
        .map(|e| checkpoint.tokenize(&e.text).map_err(InferError::Load))
        .collect::<Result<Vec<_>, _>>()?;
    runner.run_many(&queries, |i, r| {
        let (private, plain) = (argmax(&r.private), argmax(&r.plaintext));
        let label = examples[i].label;
        *predicted.entry(checkpoint.label_name(private)).or_insert(0) += 1;
        correct += usize::from(private == label);
        plain_correct += usize::from(plain == label);
        agree += usize::from(private == plain);
        if private != plain {
            disagreements.push(i);
        }
        if r.max_abs_err > max_err || r.max_abs_err.is_nan() {
            (max_err, worst_example) = (r.max_abs_err, i);
        }
        online_s += r.online_s;
        online_bytes += r.online_bytes as f64;
        bar.set_message(format!(
            "accuracy {:.4} · agreement {:.4}",
            correct as f64 / (i + 1) as f64,
            agree as f64 / (i + 1) as f64
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let n = examples.len().max(1) as f64;
    Ok(EvalReport {
        model: name.to_string(),
        preset: preset.name(),
        setting: setting.name(),
        weights: weights.name(),
        n: examples.len(),
        accuracy: correct as f64 / n,
        agreement_with_plain: agree as f64 / n,
        plain_accuracy: plain_correct as f64 / n,
        max_abs_logit_err: max_err,
        worst_example,
        disagreements,
        predicted,
        online_s_per_example: online_s / n,
        online_bytes_per_example: online_bytes / n,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[0.1, 0.3, 0.3]), 1);
        assert_eq!(argmax(&[f64::NAN, 1.0]), 0);
        assert_eq!(argmax(&[2.0, -1.0]), 0);
    }
}
