//! The network setting: three processes on 127.0.0.1 over TCP + mutual TLS.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::processes::{BIN, Listening, arg, certs, spawn, temp_dir, text, wait_within};
use mpc_io_std::run::{PrivateJob, run_private};
use mpc_transformer::{BertConfig, Params, Preset};

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A small BERT checkpoint on disk: config.json, model.safetensors, vocab.txt.
fn write_checkpoint(dir: &Path) -> (BertConfig, Params) {
    let words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "private", "inference", "over", "the", "network", "works", "."];
    let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(2, 32, 4, words.len()) };
    let params = Params::random_with_std(&config, 3, 0.1);
    let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    mpc_io_std::checkpoint::write_checkpoint(dir, &config, &params, None, &words).unwrap();
    (config, params)
}

const TEXT: &str = "private inference over the network works.";

/// Runs the dealer, P0 and P1 as processes, each server on a port of its own
/// choosing; returns P0's and P1's outputs and the dealer's log (the dealer keeps serving
/// whatever the parties do, so it is stopped after them).
fn three_processes(dir: &Path, certs_p1: &Path, certs: &Path, seed: &str) -> (Output, Output, Vec<String>) {
    let common = |certs: &Path| {
        let c = arg(certs).to_string();
        vec![
            "--certs".to_string(),
            c,
            "--connect-timeout".into(),
            "5".into(),
            "--read-timeout".into(),
            "10".into(),
            "--insecure-seed".into(),
            seed.to_string(),
        ]
    };
    let with = |args: &[&str], certs: &Path| -> Vec<String> {
        args.iter().map(|a| a.to_string()).chain(common(certs)).collect()
    };
    let dealer = Listening::spawn(&refs(&with(&["dealer", "--listen", "127.0.0.1:0"], certs)));
    let model = arg(dir);
    let p0_args =
        with(&["party", "--role", "p0", "--dealer", &dealer.address, "--peer", "127.0.0.1:0", "--model", model], certs);
    let p0 = Listening::spawn(&refs(&p0_args));
    let p1_args = with(
        &[
            "party",
            "--role",
            "p1",
            "--dealer",
            &dealer.address,
            "--peer",
            &p0.address,
            "--model",
            model,
            "--text",
            TEXT,
        ],
        certs_p1,
    );
    let p1 = spawn(&refs(&p1_args));
    let (p1, _) = wait_within(p1, Duration::from_secs(120));
    let (status, lines, stderr) = p0.wait();
    let p0 = Output { status, stdout: lines.join("\n").into_bytes(), stderr: stderr.into_bytes() };
    dealer.signal("-TERM");
    let (_, log, _) = dealer.wait();
    (p0, p1, log)
}

#[test]
fn three_processes_over_tls_compute_what_threads_compute() {
    let dir = temp_dir("net-model");
    let (config, params) = write_checkpoint(&dir);
    let certs = certs("net-certs");
    let (p0, p1, dealer_log) = three_processes(&dir, &certs, &certs, "9");
    for (who, out) in [("p0", &p0), ("p1", &p1)] {
        assert!(out.status.success(), "{who} failed: {}", text(out));
    }
    assert!(dealer_log.iter().any(|l| l.contains(r#""event":"session""#) && !l.contains("error")), "{dealer_log:?}");
    let line: serde_json::Value = serde_json::from_slice(&p1.stdout).unwrap();
    let network: Vec<f64> = serde_json::from_value(line["output"].clone()).unwrap();

    // The same job over threads, from the same seed: the very same shares, the very same output.
    let checkpoint = mpc_io_std::checkpoint::load(&dir).unwrap();
    let tokens = checkpoint.tokenize(TEXT).unwrap();
    let run = run_private(PrivateJob {
        seed: Some(9),
        ..PrivateJob::new(&config, &params, &tokens, Preset::parse("gelu+softmax").unwrap())
    })
    .unwrap();
    assert_eq!(Some(&network), run.p1.output.output.as_ref());
    assert_eq!(network.len(), 2, "two logits");
}

#[test]
fn a_party_with_another_cas_certificate_is_refused() {
    let dir = temp_dir("net-model-2");
    write_checkpoint(&dir);
    let (good, rogue) = (certs("net-good"), certs("net-rogue"));
    let (p0, p1, _) = three_processes(&dir, &rogue, &good, "1");
    assert!(!p1.status.success(), "the rogue P1 must fail");
    assert!(text(&p1).contains("TLS handshake") || text(&p1).contains("not authenticated"), "{}", text(&p1));
    assert!(!p0.status.success(), "P0 stops with an error");
}

#[test]
fn when_a_party_never_comes_the_others_stop_with_an_error() {
    let dir = temp_dir("net-model-3");
    write_checkpoint(&dir);
    let certs = certs("net-certs-3");
    let c = arg(&certs);
    let timeouts = ["--certs", c, "--connect-timeout", "2", "--read-timeout", "2"];
    let started = std::time::Instant::now();
    let dealer = Listening::spawn(&[&["dealer", "--listen", "127.0.0.1:0"][..], &timeouts].concat());
    let model = arg(&dir);
    let p0 = Listening::spawn(
        &[
            &["party", "--role", "p0", "--dealer", &dealer.address, "--peer", "127.0.0.1:0", "--model", model][..],
            &timeouts,
        ]
        .concat(),
    );
    let (status, lines, stderr) = p0.wait();
    assert!(!status.success(), "{lines:?}");
    assert!(stderr.contains("timed out") || stderr.contains("no peer"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "no hang");
}

#[test]
fn a_party_claiming_another_role_is_refused() {
    let dir = temp_dir("net-model-4");
    write_checkpoint(&dir);
    let good = certs("net-certs-4");
    // P1 presents P0's certificate and key (valid, from the right CA, but naming p0).
    let impostor = temp_dir("net-impostor");
    std::fs::copy(good.join("ca.pem"), impostor.join("ca.pem")).unwrap();
    std::fs::copy(good.join("p0.pem"), impostor.join("p1.pem")).unwrap();
    std::fs::copy(good.join("p0.key"), impostor.join("p1.key")).unwrap();
    let (p0, p1, _) = three_processes(&dir, &impostor, &good, "2");
    assert!(!p1.status.success() && !p0.status.success());
    let all = format!("{}{}", text(&p0), text(&p1));
    assert!(all.contains("no certificate for an expected role"), "{all}");
}

#[test]
fn an_expired_certificate_is_refused() {
    let dir = temp_dir("net-model-5");
    write_checkpoint(&dir);
    let certs = temp_dir("net-certs-expired");
    let expired = mpc_io_std::transport::tcp::Validity { not_before: (2000, 1, 1), not_after: (2001, 1, 1) };
    mpc_io_std::transport::tcp::make_certs_with(&certs, |role| {
        if role == mpc_core::transport::PartyId::P1 { expired } else { mpc_io_std::transport::tcp::Validity::default() }
    })
    .unwrap();
    let (p0, p1, _) = three_processes(&dir, &certs, &certs, "3");
    assert!(!p1.status.success() && !p0.status.success());
    let all = format!("{}{}", text(&p0), text(&p1));
    assert!(all.contains("Expired") || all.contains("expired"), "{all}");
}

#[test]
fn many_inferences_over_one_set_of_connections_agree() {
    let (config, params, tokens) = mpc_io_std::tasks::soak::small_model();
    let r = mpc_io_std::tasks::soak::run(&config, &params, Preset::ALL[1], &tokens, 25).unwrap();
    assert_eq!(r.inferences, 25);
    assert_eq!(r.changed_predictions, 0, "{r:?}");
    // Resident memory is flat once warm: later inferences add less than 16 MiB (each one moves
    // about a megabyte of material, released after it). Measured in a process of its own (the
    // `soak` command): this test binary's other tests allocate beside this one.
    let out = std::process::Command::new(BIN).args(["soak", "--inferences", "25", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let soak: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    let (warm, end) = (soak["rss_warm_bytes"].as_u64().unwrap_or(0), soak["rss_end_bytes"].as_u64().unwrap_or(0));
    assert!(warm > 0 && end > 0, "resident memory unmeasured: {soak}");
    assert!(end.saturating_sub(warm) < 16 << 20, "grew after warming up: {soak}");
    assert!(r.max_deviation < 1e-3, "only the last fixed-point bits move: {r:?}");
    // And they are what plaintext computes.
    let mut plain = mpc_nn::Plain::<f64>::new();
    let model = mpc_transformer::Encoder::load(&mut plain, &config, Preset::ALL[1], Some(&params), None).unwrap();
    let mask = vec![1.0; tokens.len()];
    let expected = model.forward(&mut plain, Some(&tokens), &mask, &mut mpc_transformer::Unobserved).unwrap();
    for (a, b) in r.first_output.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-2, "{:?} vs {expected:?}", r.first_output);
    }
}
