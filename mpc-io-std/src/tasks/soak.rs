//! `mpcformer soak`: many private inferences back to back over one set of TCP + TLS connections,
//! checking that the results stay the same and the memory stays flat.

use std::time::Instant;

use mpc_transformer::{BertConfig, Params, Preset};
use serde::Serialize;

use crate::resident_bytes;
use crate::run::PrivateJob;
use crate::run::network::{NetError, run_loopback_queries};
use crate::tasks::eval::argmax;
use crate::transport::tcp::TcpOptions;

/// The `soak --json` line.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    /// Inferences run.
    pub inferences: usize,
    /// Tokens per inference.
    pub tokens: usize,
    /// Seconds for all of them.
    pub seconds: f64,
    /// Resident memory before the first inference, in bytes.
    pub rss_start_bytes: u64,
    /// Resident memory after the first 10 % (the working set, warmed up).
    pub rss_warm_bytes: u64,
    /// Resident memory after the last inference.
    pub rss_end_bytes: u64,
    /// The first inference's output.
    pub first_output: Vec<f64>,
    /// Largest |output − first output| over all inferences (fresh randomness each time moves the
    /// last fixed-point bits only).
    pub max_deviation: f64,
    /// Inferences whose predicted label differs from the first's.
    pub changed_predictions: usize,
    /// Online bytes both parties sent, per inference.
    pub online_bytes_per_inference: u64,
}

/// Runs `inferences` inferences of the model `config`/`params` on `tokens` over loopback TCP +
/// TLS, one connection per pair of parties for all of them.
pub fn run(
    config: &BertConfig,
    params: &Params,
    preset: Preset,
    tokens: &[u32],
    inferences: usize,
) -> Result<SoakReport, NetError> {
    let job = PrivateJob::new(config, params, tokens, preset);
    let rss_start = resident_bytes().unwrap_or(0);
    let warm_at = (inferences / 10).max(1);
    let (mut first, mut rss_warm, mut max_deviation, mut changed, mut bytes) = (Vec::new(), 0, 0f64, 0, 0);
    let started = Instant::now();
    let queries = vec![tokens; inferences.max(1)];
    run_loopback_queries(&job, TcpOptions::default(), &queries, |i, report| {
        let out = report.output.as_deref().unwrap_or_default();
        if i == 0 {
            first = out.to_vec();
            bytes = report.online.1.bytes_sent + report.online.1.bytes_received;
        }
        max_deviation = max_deviation.max(crate::max_abs_diff(out, &first));
        changed += usize::from(out.is_empty() || argmax(out) != argmax(&first));
        if i + 1 == warm_at {
            rss_warm = resident_bytes().unwrap_or(0);
        }
    })?;
    Ok(SoakReport {
        inferences,
        tokens: tokens.len(),
        seconds: started.elapsed().as_secs_f64(),
        rss_start_bytes: rss_start,
        rss_warm_bytes: rss_warm,
        rss_end_bytes: resident_bytes().unwrap_or(0),
        first_output: first,
        max_deviation,
        changed_predictions: changed,
        online_bytes_per_inference: bytes,
    })
}

/// The default soak model: a 2-layer BERT classifier (hidden 64, 4 heads, vocabulary 1000) with
/// random weights, and 16 tokens.
pub fn small_model() -> (BertConfig, Params, Vec<u32>) {
    let mut config = BertConfig::tiny(2, 64, 4, 1000);
    config.num_labels = Some(2);
    let params = Params::random_with_std(&config, 11, 0.1);
    let tokens = (0..16u32).map(|i| (i * 37 + 5) % 1000).collect();
    (config, params, tokens)
}
