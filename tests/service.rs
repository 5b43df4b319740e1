//! The service over real processes: `mpcformer dealer`, `serve` and `query` on loopback over TLS.
//! Many clients at once agree with plaintext; a client past `--max-sessions` is told busy; a
//! client killed mid-query, or the dealer killed, fails only its own sessions and the server
//! serves again; SIGTERM stops the server cleanly.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::processes::{Listening, arg, certs, spawn, temp_dir, text, wait_within};
use mpc_transformer::{BertConfig, Params, Preset};

const WORDS: [&str; 12] =
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "private", "inference", "as", "a", "service", "works", "well", "."];

/// Timeouts short enough that a dead peer is noticed within seconds.
const TIMEOUTS: [&str; 4] = ["--connect-timeout", "5", "--read-timeout", "5"];

/// A small classifier checkpoint with label names.
fn model(name: &str) -> (PathBuf, BertConfig, Params) {
    let dir = temp_dir(name);
    let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(2, 64, 4, WORDS.len()) };
    let params = Params::random_with_std(&config, 7, 0.1);
    let words: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
    mpc_io_std::checkpoint::write_checkpoint(&dir, &config, &params, None, &words).unwrap();
    (dir, config, params)
}

/// `n` texts of a few dozen tokens each, different from each other.
fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| WORDS[4..].iter().cycle().skip(i).take(20 + 3 * i).copied().collect::<Vec<_>>().join(" ")).collect()
}

fn write_texts(dir: &Path, name: &str, texts: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, texts.join("\n")).unwrap();
    path
}

/// A dealer on a port of its own choosing (or `at`).
fn dealer(certs: &Path, at: &str) -> Listening {
    Listening::spawn(&[&["dealer", "--listen", at, "--certs", arg(certs)][..], &TIMEOUTS].concat())
}

/// A server of `model` with at most `max` sessions, making each session's next two queries'
/// material while it is idle (`--pool 2`, as the clients do).
fn server(model: &Path, certs: &Path, dealer: &str, max: usize) -> Listening {
    let max = max.to_string();
    Listening::spawn(
        &[
            &["serve", "--model", arg(model), "--listen", "127.0.0.1:0", "--dealer", dealer, "--max-sessions", &max][..],
            &["--certs", arg(certs), "--preset", "quad+2quad", "--pool", "2"],
            &TIMEOUTS,
        ]
        .concat(),
    )
}

/// A client asking the queries in `file`, one JSON line each.
fn client(model: &Path, certs: &Path, server: &Listening, dealer: &str, file: &Path) -> std::process::Child {
    spawn(
        &[
            &["query", "--server", &server.address, "--dealer", dealer, "--model", arg(model), "--file", arg(file)][..],
            &["--certs", arg(certs), "--preset", "quad+2quad", "--json", "--pool", "2"],
            &TIMEOUTS,
        ]
        .concat(),
    )
}

/// What plaintext computes for `text`.
fn plaintext(model: &Path, text: &str) -> Vec<f64> {
    let checkpoint = mpc_io_std::checkpoint::load(model).unwrap();
    let tokens = checkpoint.tokenize(text).unwrap();
    let mut plain = mpc_nn::Plain::<f64>::new();
    let preset = Preset::parse("quad+2quad").unwrap();
    let encoder =
        mpc_transformer::Encoder::load(&mut plain, &checkpoint.config, preset, Some(&checkpoint.params), None).unwrap();
    let mask = vec![1.0; tokens.len()];
    encoder.forward(&mut plain, Some(&tokens), &mask, &mut mpc_transformer::Unobserved).unwrap()
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[test]
fn concurrent_clients_over_one_server_agree_with_plaintext() {
    let (model, _, _) = model("svc-model-1");
    let certs = certs("svc-certs-1");
    let dealer = dealer(&certs, "127.0.0.1:0");
    let server = server(&model, &certs, &dealer.address, 3);
    let all = texts(5);
    // The second client asks one text twice: its repeat is served from the material the server's
    // pool made while the session was idle.
    let asked = [all[..3].to_vec(), vec![all[3].clone(), all[3].clone(), all[4].clone()]];
    let files = [write_texts(&model, "a.txt", &asked[0]), write_texts(&model, "b.txt", &asked[1])];
    let clients: Vec<_> = files.iter().map(|f| client(&model, &certs, &server, &dealer.address, f)).collect();
    for (c, client) in clients.into_iter().enumerate() {
        let (out, ended) = wait_within(client, Duration::from_secs(120));
        assert!(ended && out.status.success(), "client {c}: {}", text(&out));
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 3, "{}", text(&out));
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line["text_index"], i);
            let got: Vec<f64> = serde_json::from_value(line["output"].clone()).unwrap();
            let want = plaintext(&model, &asked[c][i]);
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-2, "query {i} of client {c}: {got:?} vs {want:?}");
            assert!(line["label"].as_str().unwrap().starts_with("LABEL_"), "{line}");
            assert!(line["online_s"].as_f64().unwrap() > 0.0 && line["online_bytes"].as_u64().unwrap() > 0);
            assert!(line["tokens"].as_u64().unwrap() > 20);
        }
    }
    let count = std::cell::Cell::new(0);
    let log = server.lines_until(Duration::from_secs(30), |l| {
        count.set(count.get() + usize::from(l["event"] == "query"));
        count.get() == 6
    });
    assert_eq!(count.get(), 6, "one log line per query: {log:?}");
    let ahead = log.iter().filter(|l| l["event"] == "query" && l["ahead_s"].as_f64().unwrap() > 0.0).count();
    assert_eq!(ahead, 1, "only the repeated length finds material made ahead: {log:?}");
}

/// Waits until `server` logs an admitted session.
fn wait_admitted(server: &Listening) {
    let seen = server.lines_until(Duration::from_secs(30), |l| l["event"] == "admitted");
    assert!(seen.last().is_some_and(|l| l["event"] == "admitted"), "{seen:?}");
}

#[test]
fn a_client_past_max_sessions_is_told_busy_at_once() {
    let (model, _, _) = model("svc-model-2");
    let certs = certs("svc-certs-2");
    let dealer = dealer(&certs, "127.0.0.1:0");
    let server = server(&model, &certs, &dealer.address, 1);
    // The first client holds the only session with many queries.
    let many = write_texts(&model, "many.txt", &texts(40));
    let first = client(&model, &certs, &server, &dealer.address, &many);
    wait_admitted(&server);
    let one = write_texts(&model, "one.txt", &texts(1));
    let started = std::time::Instant::now();
    let (second, ended) = wait_within(client(&model, &certs, &server, &dealer.address, &one), Duration::from_secs(30));
    assert!(ended && !second.status.success(), "{}", text(&second));
    assert!(text(&second).contains("busy"), "{}", text(&second));
    assert!(started.elapsed() < Duration::from_secs(5), "busy is said at once: {:?}", started.elapsed());
    let (first, ended) = wait_within(first, Duration::from_secs(300));
    assert!(ended && first.status.success(), "{}", text(&first));
    assert_eq!(json_lines(&first.stdout).len(), 40);
    // The slot is free again once the server has ended the session (after making the material
    // of its pool, which the client that left will not use).
    let ended = server.lines_until(Duration::from_secs(60), |l| l["event"] == "session");
    assert!(ended.last().is_some_and(|l| l["event"] == "session"), "{ended:?}");
    let (third, _) = wait_within(client(&model, &certs, &server, &dealer.address, &one), Duration::from_secs(60));
    assert!(third.status.success(), "{}", text(&third));
}

#[test]
fn a_client_killed_mid_query_fails_only_its_session() {
    let (model, _, _) = model("svc-model-3");
    let certs = certs("svc-certs-3");
    let dealer = dealer(&certs, "127.0.0.1:0");
    let server = server(&model, &certs, &dealer.address, 2);
    let many = write_texts(&model, "many.txt", &texts(40));
    let mut doomed = client(&model, &certs, &server, &dealer.address, &many);
    // Killed right after its first answer: inside its second query.
    let first_answer = server.lines_until(Duration::from_secs(60), |l| l["event"] == "query");
    assert!(first_answer.last().is_some_and(|l| l["event"] == "query"), "{first_answer:?}");
    doomed.kill().unwrap();
    let _ = doomed.wait();
    let ended = server.lines_until(Duration::from_secs(30), |l| l["event"] == "session");
    let end = ended.last().expect("the session's end is logged");
    assert_eq!(end["event"], "session", "{ended:?}");
    assert!(end["error"].is_string(), "the killed client's session ends in an error: {end}");
    // The server goes on serving.
    let one = write_texts(&model, "one.txt", &texts(2));
    let (next, _) = wait_within(client(&model, &certs, &server, &dealer.address, &one), Duration::from_secs(60));
    assert!(next.status.success(), "{}", text(&next));
    assert_eq!(json_lines(&next.stdout).len(), 2);
}

#[test]
fn a_killed_dealer_fails_its_sessions_and_a_new_dealer_serves_again() {
    let (model, _, _) = model("svc-model-4");
    let certs = certs("svc-certs-4");
    let first_dealer = dealer(&certs, "127.0.0.1:0");
    let address = first_dealer.address.clone();
    let server = server(&model, &certs, &address, 2);
    let many = write_texts(&model, "many.txt", &texts(40));
    let client_during = client(&model, &certs, &server, &address, &many);
    let first_answer = server.lines_until(Duration::from_secs(60), |l| l["event"] == "query");
    assert!(first_answer.last().is_some_and(|l| l["event"] == "query"), "{first_answer:?}");
    first_dealer.signal("-KILL");
    let _ = first_dealer.wait();
    // The session in progress ends in errors at both parties, within the timeouts.
    let (out, ended) = wait_within(client_during, Duration::from_secs(30));
    assert!(ended && !out.status.success(), "{}", text(&out));
    let session_end = server.lines_until(Duration::from_secs(30), |l| l["event"] == "session");
    assert!(session_end.last().is_some_and(|l| l["error"].is_string()), "{session_end:?}");
    // A new dealer on the same address: the same server serves again.
    let _second_dealer = dealer(&certs, &address);
    let one = write_texts(&model, "one.txt", &texts(2));
    let (next, _) = wait_within(client(&model, &certs, &server, &address, &one), Duration::from_secs(60));
    assert!(next.status.success(), "{}", text(&next));
    assert_eq!(json_lines(&next.stdout).len(), 2);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let (model, _, _) = model("svc-model-5");
    let certs = certs("svc-certs-5");
    let dealer = dealer(&certs, "127.0.0.1:0");
    let server = server(&model, &certs, &dealer.address, 2);
    let few = write_texts(&model, "few.txt", &texts(3));
    let busy_client = client(&model, &certs, &server, &dealer.address, &few);
    wait_admitted(&server);
    server.signal("-TERM");
    let started = std::time::Instant::now();
    let (status, rest, stderr) = server.wait();
    assert!(status.success(), "{stderr}");
    assert!(rest.iter().any(|l| l.contains(r#""event":"stopped""#)), "{rest:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "stopped after {:?}", started.elapsed());
    // The client ends too (answered, or told the session is gone), never hangs.
    let (_, ended) = wait_within(busy_client, Duration::from_secs(30));
    assert!(ended, "the client hung after the server stopped");
    dealer.signal("-TERM");
    let (status, _, stderr) = dealer.wait();
    assert!(status.success(), "the dealer stops cleanly on SIGTERM: {stderr}");
}
