//! How results are printed: one JSON line with `--json` (the fields other tools read), else a
//! short report for people.

use std::path::Path;

use mpc_core::transport::Role;
use mpc_io_std::run::PartyReport;
use mpc_io_std::tasks::accuracy::AccuracyRow;
use mpc_io_std::tasks::bench::ModelReport;
use mpc_io_std::tasks::demo;
use mpc_io_std::tasks::eval::EvalReport;
use mpc_io_std::tasks::gemm::GemmReport;
use mpc_io_std::tasks::infer::InferReport;
use mpc_io_std::tasks::soak::SoakReport;

/// Prints `value` as one JSON line.
pub fn json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).expect("reports serialise"));
}

fn mb(bytes: impl Into<f64>) -> f64 {
    bytes.into() / 1e6
}

pub fn demo(r: &ModelReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!(
        "private inference: {} ({} layers, {} tokens, {}, weights={})",
        r.config, r.layers, r.seq, r.preset, r.weights
    );
    println!("  P0 holds the model, P1 the tokens; the dealer supplies correlated randomness.");
    println!("  class probabilities, private:   {:.6?}", demo::probabilities(&r.private));
    println!("  class probabilities, plaintext: {:.6?}", demo::probabilities(&r.plaintext));
    println!("  logits max |private - plaintext| = {:.2e}", r.max_abs_err);
    println!(
        "  online  {:.3} s ({:.1}x the plaintext model's {:.3} s), {:.1} MB, {} rounds",
        r.online_s,
        r.online_ratio,
        r.plaintext_s,
        mb(r.online_bytes as f64),
        r.rounds
    );
    println!(
        "  offline {:.3} s, {:.1} MB (dealer material, input-free products)",
        r.offline_s,
        mb(r.offline_bytes as f64)
    );
    println!("  model load {:.3} s, {:.1} MB (once per model)", r.load_s, mb(r.load_bytes as f64));
}

pub fn infer(dir: &Path, r: &InferReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!("{} on {} tokens: {} setting, {}, weights={}", dir.display(), r.tokens, r.setting, r.preset, r.weights);
    let show = |v: &[f64]| -> String {
        if r.head == "classifier" {
            format!("probabilities {:.6?}", demo::probabilities(v))
        } else {
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            format!("sentence embedding ({} values, norm {norm:.4}) starts {:.5?}", v.len(), &v[..4.min(v.len())])
        }
    };
    if let Some(label) = &r.label {
        println!("  predicted class: {label}");
    }
    println!("  private:   {}", show(&r.private));
    println!("  plaintext: {}", show(&r.plaintext));
    println!("  max |private - plaintext| = {:.2e}, cosine {:.6}", r.max_abs_err, r.cosine);
    println!(
        "  online  {:.3} s, {:.1} MB, {} rounds (plaintext {:.3} s)",
        r.online_s,
        mb(r.online_bytes as f64),
        r.rounds,
        r.plaintext_s
    );
    println!("  offline {:.3} s, {:.1} MB", r.offline_s, mb(r.offline_bytes as f64));
}

pub fn eval(r: &EvalReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!("{} ({}, {} setting, weights={}) on {} test examples:", r.model, r.preset, r.setting, r.weights, r.n);
    println!("  accuracy               {:.4}", r.accuracy);
    println!("  plaintext accuracy     {:.4}", r.plain_accuracy);
    println!("  agreement with plain   {:.4}", r.agreement_with_plain);
    println!("  max |logit error|      {:.2e}", r.max_abs_logit_err);
    let predicted: Vec<String> = r.predicted.iter().map(|(name, n)| format!("{name} {n}")).collect();
    println!("  predicted              {}", predicted.join(", "));
    println!(
        "  per example: {:.3} s online, {:.1} MB; {:.1} s in all",
        r.online_s_per_example,
        mb(r.online_bytes_per_example),
        r.seconds
    );
}

pub fn soak(r: &SoakReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!("{} inferences of {} tokens over one TLS session each link: {:.1} s", r.inferences, r.tokens, r.seconds);
    println!(
        "  resident memory: {:.1} MB at start, {:.1} MB warm (10 %), {:.1} MB at the end",
        mb(r.rss_start_bytes as f64),
        mb(r.rss_warm_bytes as f64),
        mb(r.rss_end_bytes as f64)
    );
    println!(
        "  outputs: max deviation from the first {:.2e}, {} changed predictions",
        r.max_deviation, r.changed_predictions
    );
}

/// A party process's one JSON line (`peak_rss_bytes` is this process's, so this role's).
pub fn party(role: Role, report: &PartyReport) {
    json(&serde_json::json!({
        "role": format!("{role}"),
        "tokens": report.tokens,
        "output": report.output,
        "online_s": report.online.0,
        "offline_s": report.offline_seconds(),
        "online_bytes_sent": report.online.1.bytes_sent,
        "rounds": report.online.1.rounds,
        "peak_material_bytes": 8 * report.peak_material_elements,
        "peak_rss_bytes": mpc_io_std::peak_rss_bytes(),
    }));
}

/// One answered query of `mpcformer query`: the label and class probabilities of a classifier,
/// or the embedding's size and first values; with `as_json`, one line with at least
/// `text_index`, `tokens`, `output`, `label` (classifiers), `online_s` and `online_bytes`.
pub fn query(
    checkpoint: &mpc_io_std::checkpoint::Checkpoint,
    index: usize,
    text: &str,
    r: &PartyReport,
    as_json: bool,
) {
    let output = r.output.clone().unwrap_or_default();
    let classifier = checkpoint.config.num_labels.is_some();
    let label = classifier.then(|| checkpoint.label_name(mpc_io_std::tasks::eval::argmax(&output)));
    let online_bytes = r.online.1.bytes_sent + r.online.1.bytes_received;
    if as_json {
        let probabilities = classifier.then(|| demo::probabilities(&output));
        return json(&serde_json::json!({
            "text_index": index, "tokens": r.tokens, "output": output, "label": label,
            "probabilities": probabilities, "online_s": r.online.0, "online_bytes": online_bytes,
            "rounds": r.online.1.rounds, "offline_s": r.offline_seconds(), "ahead_s": r.ahead_s,
        }));
    }
    println!("[{index}] {text}");
    match label {
        Some(label) => {
            let named: Vec<String> = demo::probabilities(&output)
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{} {p:.4}", checkpoint.label_name(i)))
                .collect();
            println!("  {label}  ({})", named.join(", "));
        }
        None => {
            let norm = output.iter().map(|v| v * v).sum::<f64>().sqrt();
            let head: Vec<String> = output.iter().take(4).map(|v| format!("{v:.4}")).collect();
            println!("  embedding of {} values, norm {norm:.4}: [{}, ...]", output.len(), head.join(", "));
        }
    }
    println!("  {} tokens, online {:.3} s, {:.1} MB", r.tokens, r.online.0, online_bytes as f64 / 1e6);
}

pub fn accuracy_header() {
    println!(
        "{:<11} {:<32} {:>11} {:>11} {:>7} {:>10}",
        "function", "domain", "max abs err", "max rel err", "rounds", "bytes/elem"
    );
}

pub fn accuracy(r: &AccuracyRow, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!(
        "{:<11} {:<32} {:>11.2e} {:>11.2e} {:>7} {:>10.1}",
        r.function, r.domain, r.max_abs_err, r.max_rel_err, r.rounds, r.bytes_per_element
    );
}

pub fn gemm_header() {
    println!(
        "{:<20} {:>10} {:>10} {:>7}  {:<8} {:>14} {:>8} {:>10} {:>10} {:>15}",
        "shape",
        "u64 Gmac/s",
        "f64 Gmac/s",
        "ratio",
        "kernel",
        "u64, threads",
        "speedup",
        "packed B",
        "narrow B",
        "narrow, threads"
    );
}

pub fn gemm(r: &GemmReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!(
        "{:<20} {:>10.2} {:>10.2} {:>7.2}  {:<8} {:>9.2} ({:>2}) {:>7.2}x {:>10.2} {:>10.2} {:>15.2}",
        r.shape,
        r.u64_gmacs,
        r.f64_gmacs,
        r.ratio,
        r.kernel,
        r.u64_gmacs_threads,
        r.threads,
        r.thread_speedup,
        r.u64_packed_gmacs,
        r.u64_narrow_gmacs,
        r.u64_narrow_gmacs_threads
    );
}

pub fn bench(r: &ModelReport, as_json: bool) {
    if as_json {
        return json(r);
    }
    println!(
        "{} seq {} layers {} {} weights={} truncation={}",
        r.config, r.seq, r.layers, r.preset, r.weights, r.truncation
    );
    println!(
        "  online  {:.3} s ({:.1}x plaintext {:.3} s), {:.1} MB, {} rounds",
        r.online_s,
        r.online_ratio,
        r.plaintext_s,
        mb(r.online_bytes as f64),
        r.rounds
    );
    println!("  offline {:.3} s, {:.1} MB", r.offline_s, mb(r.offline_bytes as f64));
    if let (Some(online), Some(offline)) = (r.later_online_s, r.later_offline_s) {
        println!(
            "  {} later queries on the session: online {:.3} s, offline {:.3} s (medians)",
            r.later_queries.len(),
            online,
            offline
        );
    }
    println!("  plan    {:.3} s (once per length and model)", r.plan_s);
    println!("  load    {:.3} s, {:.1} MB (once per model)", r.load_s, mb(r.load_bytes as f64));
    println!("  max |private - plaintext| = {:.2e}", r.max_abs_err);
    if let (Some(net), Some(projected), Some(shaped)) = (r.net, r.projected_s, r.shaped_s) {
        println!(
            "  on {} ({:.0} Mbps, {} ms RTT): projected {:.3} s, shaped {:.3} s",
            net.name,
            net.bandwidth_bps / 1e6,
            net.rtt_s * 1e3,
            projected,
            shaped
        );
    }
    for (name, c) in &r.buckets {
        println!("  {:<10} {:>8.3} s {:>10.1} MB {:>6} rounds", name, c.seconds, mb(c.bytes as f64), c.rounds);
    }
}
