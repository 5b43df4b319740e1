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
    // A length the model has no positions for is refused up front, saying the bound.
    for seq in ["513", "0"] {
        let out = run(&["bench", "--config", "minilm", "--seq", seq]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("1 to 512 tokens"), "{}", stderr(&out));
    }
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

/// Runs a command that prints JSON lines; returns them.
fn json_lines(args: &[&str]) -> Vec<serde_json::Value> {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {e}: {l}")))
        .collect()
}

#[test]
fn bench_prints_its_fields() {
    let lines = json_lines(&["bench", "--config", "minilm", "--layers", "1", "--seq", "8", "--json"]);
    let r = &lines[0];
    for field in ["online_s", "offline_s", "on_demand_s", "load_s", "plaintext_s", "online_ratio"] {
        assert!(r[field].as_f64().is_some_and(|v| v >= 0.0), "{field}: {r}");
    }
    for field in ["online_bytes", "offline_bytes", "rounds", "peak_material_bytes", "peak_rss_bytes"] {
        assert!(r[field].as_u64().is_some_and(|v| v > 0), "{field}: {r}");
    }
    // The baseline is the faster plaintext of the maintained f32 GEMMs, each timed.
    let by_gemm = r["plaintext_by_gemm_s"].as_object().expect("plaintext_by_gemm_s");
    assert_eq!(by_gemm.len(), 2, "{r}");
    let fastest = by_gemm.iter().min_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap())).unwrap();
    assert_eq!(r["plaintext_gemm"].as_str(), Some(fastest.0.as_str()), "{r}");
    assert_eq!(fastest.1.as_f64(), r["plaintext_s"].as_f64(), "{r}");
    // Every ratio names the machine it was measured on, and the kernel the products ran on.
    assert_eq!(r["cpu"].as_str(), Some(mpc_io_std::cpu_model().as_str()), "{r}");
    assert!(r["cpu"].as_str().is_some_and(|cpu| !cpu.trim().is_empty()), "{r}");
    assert_eq!(r["u64_kernel"].as_str(), Some(mpc_core::gemm::kernel_name()), "{r}");
    // The plaintext time is the median of the forwards timed: one of them, as many below as above.
    let runs: Vec<f64> =
        r["plaintext_runs_s"].as_array().expect("plaintext_runs_s").iter().filter_map(|v| v.as_f64()).collect();
    let plaintext = r["plaintext_s"].as_f64().unwrap();
    assert_eq!(runs.len(), 3, "{r}");
    assert!(runs.contains(&plaintext), "{r}");
    let (below, above) =
        (runs.iter().filter(|&&t| t < plaintext).count(), runs.iter().filter(|&&t| t > plaintext).count());
    assert!(below <= 1 && above <= 1, "{r}");
    // The benchmark's one query is the first of its length: the session planned it.
    assert!(r["plan_s"].as_f64().is_some_and(|v| v > 0.0), "plan_s: {r}");
    assert_eq!((r["config"].as_str(), r["seq"].as_u64(), r["layers"].as_u64()), (Some("minilm"), Some(8), Some(1)));
    assert_eq!(
        (r["preset"].as_str(), r["weights"].as_str(), r["truncation"].as_str()),
        (Some("quad+2quad"), Some("owner"), Some("dealer"))
    );
    assert!(r["max_abs_err"].as_f64().unwrap() <= 1e-2, "{r}");
    let buckets = r["buckets"].as_object().expect("buckets");
    for bucket in ["embed", "linear", "softmax", "activation", "norm"] {
        assert!(buckets[bucket]["bytes"].as_u64().is_some(), "{bucket}");
    }
    // One query: no later ones.
    assert_eq!(r["queries"].as_u64(), Some(1), "{r}");
    assert_eq!(r["later_queries"].as_array().map(Vec::len), Some(0), "{r}");
    assert!(r["later_online_s"].is_null() && r["later_offline_s"].is_null(), "{r}");
}

/// `--queries N` runs N queries on one session: the report's figures are the first's, and each
/// later query (its own masks, the same answer) is reported with its medians.
#[test]
fn bench_reports_each_later_query_on_the_session() {
    let lines = json_lines(&["bench", "--config", "minilm", "--layers", "1", "--seq", "8", "--queries", "3", "--json"]);
    let r = &lines[0];
    assert_eq!(r["queries"].as_u64(), Some(3), "{r}");
    let later = r["later_queries"].as_array().expect("later_queries");
    assert_eq!(later.len(), 2, "{r}");
    let figure = |q: &serde_json::Value, field: &str| q[field].as_f64().unwrap_or_else(|| panic!("{field}: {r}"));
    for q in later {
        assert!(figure(q, "online_s") > 0.0 && figure(q, "offline_s") >= figure(q, "on_demand_s"), "{r}");
        assert!(figure(q, "max_abs_err") <= 1e-2, "{r}");
    }
    // The medians are later queries' own figures (the upper of two).
    let upper = |field: &str| later.iter().map(|q| figure(q, field)).fold(f64::MIN, f64::max);
    assert_eq!(r["later_online_s"].as_f64(), Some(upper("online_s")), "{r}");
    assert_eq!(r["later_offline_s"].as_f64(), Some(upper("offline_s")), "{r}");
    // The first query planned the length; the later ones found it planned.
    assert!(r["plan_s"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    assert!(later.iter().all(|q| figure(q, "plan_s") == 0.0), "{r}");
    // No query at all is refused by the argument parser.
    let out = run(&["bench", "--queries", "0"]);
    assert!(!out.status.success(), "{}", stderr(&out));
}

#[test]
fn accuracy_prints_one_line_per_function_asked() {
    let lines = json_lines(&["accuracy", "--only", "quad", "--only", "ltz", "--json"]);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["function"], "quad");
    assert!(lines[0]["max_abs_err"].as_f64().unwrap() <= 1e-4, "{}", lines[0]);
    assert_eq!(lines[1]["function"], "ltz");
    assert_eq!(lines[1]["max_abs_err"].as_f64(), Some(0.0), "comparisons are exact");
    assert!(lines[1]["rounds"].as_u64().is_some_and(|r| r > 0));
}

#[test]
fn soak_prints_its_fields_and_keeps_its_predictions() {
    let lines = json_lines(&["soak", "--inferences", "3", "--json"]);
    let r = &lines[0];
    assert_eq!(r["inferences"], 3);
    assert_eq!(r["changed_predictions"], 0);
    assert!(r["max_deviation"].as_f64().unwrap() < 1e-3, "{r}");
    assert!(r["rss_end_bytes"].as_u64().is_some_and(|b| b > 0), "{r}");
}

#[test]
fn demo_prints_a_private_answer_beside_plaintext() {
    let lines = json_lines(&["demo", "--json"]);
    let r = &lines[0];
    assert_eq!(r["private"].as_array().map(Vec::len), Some(2), "two logits");
    assert!(r["max_abs_err"].as_f64().unwrap() <= 1e-2, "{r}");
    assert_eq!(r["truncation"], "dealer", "the demo runs the default truncation");
    assert!(r["online_bytes"].as_u64().is_some_and(|b| b > 0));
}

/// Reads an SVG the CLI drew; checks it is one and names what it shows.
fn svg(path: &std::path::Path, must_name: &[&str]) {
    let text = std::fs::read_to_string(path).expect("the SVG file");
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "not an SVG document");
    for name in must_name {
        assert!(text.contains(name), "the picture does not name {name}");
    }
}

#[test]
fn the_plots_are_drawn() {
    let dir = std::env::temp_dir().join(format!("mpcformer-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let bench = file("bench.svg");
    let args = ["bench", "--config", "minilm", "--layers", "1", "--seq", "8", "--json", "--plot", &bench];
    let lines = json_lines(&[&args[..], &["--preset", "quad+2quad", "--preset", "quad+2relu"]].concat());
    assert_eq!(lines.len(), 2, "one run per preset");
    svg(dir.join("bench.svg").as_path(), &["quad+2quad owner", "quad+2relu owner", "linear", "softmax"]);
    let accuracy = file("accuracy.svg");
    json_lines(&["accuracy", "--only", "exp", "--only", "2quad", "--json", "--plot", &accuracy]);
    svg(dir.join("accuracy.svg").as_path(), &["exp on", "2quad on"]);
    let saved = concat!(env!("CARGO_MANIFEST_DIR"), "/results/distillation-eval.jsonl");
    let eval = file("eval.svg");
    let out = run(&["eval", "--from", saved, "--plot", &eval]);
    assert!(out.status.success(), "{}", stderr(&out));
    svg(dir.join("eval.svg").as_path(), &["quad+2quad, threaded", "agreement with plaintext"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_gemm_reports_each_shape_on_one_thread_and_on_the_threads_asked() {
    let lines = json_lines(&["bench", "gemm", "--json", "--seconds", "0.02", "--threads", "2"]);
    assert_eq!(lines.len(), 3, "BERT-base's three shapes: {lines:?}");
    for line in &lines {
        assert_eq!(line["threads"], 2, "{line}");
        let fields =
            ["u64_gmacs", "f64_gmacs", "u64_gmacs_threads", "thread_speedup", "u64_packed_gmacs", "u64_narrow_gmacs"];
        for field in fields {
            assert!(line[field].as_f64().is_some_and(|v| v > 0.0), "{field}: {line}");
        }
        assert!(["amx-int8", "avx512", "avx2", "portable"].contains(&line["kernel"].as_str().unwrap()), "{line}");
        assert_eq!(line["cpu"].as_str(), Some(mpc_io_std::cpu_model().as_str()), "{line}");
    }
}

/// `MPCFORMER_GEMM_KERNEL` caps the kernel at a narrower one the CPU runs; the products stay
/// right (the bench checks nothing, but every kernel's answers are checked in mpc-core's tests).
#[test]
fn the_gemm_kernel_can_be_capped_by_the_environment() {
    let out = Command::new(BIN)
        .args(["bench", "gemm", "--json", "--seconds", "0.01"])
        .env("MPCFORMER_GEMM_KERNEL", "portable")
        .output()
        .expect("run mpcformer");
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().expect("a line")).expect("json");
    assert_eq!(first["kernel"], "portable", "{first}");
}

#[test]
fn insecure_seeds_never_leave_loopback() {
    let out = run(&["dealer", "--listen", "0.0.0.0:0", "--certs", "/nonexistent", "--insecure-seed", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("loopback"), "{}", stderr(&out));
}
