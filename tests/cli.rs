//! The command line as other tools meet it: exit codes, messages that list the valid values,
//! and the JSON fields of a private inference on a checkpoint the CLI wrote itself.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mpcformer");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run mpcformer")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_choices_fail_and_list_the_valid_ones() {
    let out = run(&["accuracy", "--only", "nosuch"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nosuch") && stderr(&out).contains("reciprocal"), "{}", stderr(&out));
    let out = run(&["bench", "--preset", "cubic+3quad"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("quad+2quad"), "{}", stderr(&out));
    let out = run(&["checkpoint", "--config", "gpt-2", "--out", "/nonexistent"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bert-base") && stderr(&out).contains("minilm"), "{}", stderr(&out));
}

#[test]
fn a_written_checkpoint_runs_privately_and_names_its_class() {
    let dir = std::env::temp_dir().join(format!("mpcformer-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model = dir.to_str().unwrap();
    let out = run(&["checkpoint", "--config", "minilm", "--labels", "3", "--preset", "quad+2quad", "--out", model]);
    assert!(out.status.success(), "{}", stderr(&out));
    for file in ["config.json", "model.safetensors", "vocab.txt"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    let out = run(&["infer", "--model", model, "--text", "w5 w6 w7 w8", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(line["preset"], "quad+2quad", "the checkpoint's preset");
    assert_eq!(line["tokens"], 6, "[CLS], four words, [SEP]");
    assert_eq!(line["private"].as_array().map(Vec::len), Some(3));
    let label = line["label"].as_str().expect("a class name");
    assert!(["LABEL_0", "LABEL_1", "LABEL_2"].contains(&label), "{label}");
    assert!(line["max_abs_err"].as_f64().unwrap() <= 1e-2, "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}
