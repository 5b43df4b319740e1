//! The `mpcformer` command line.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mpc_core::protocol::Truncation;
use mpc_io_std::accuracy;
use mpc_io_std::bench::gemm;
use mpc_io_std::bench::model::{self, ModelBench};
use mpc_io_std::{demo, infer};
use mpc_nn::WeightMode;
use mpc_transformer::{BertConfig, Preset};

/// Private Transformer inference with secure multi-party computation.
#[derive(Parser, Debug)]
#[command(name = "mpcformer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A private inference end to end over threads: a MiniLM-shaped classifier (random weights)
    /// at P0, 32 tokens at P1; the result beside the plaintext one, time and bytes.
    Demo {
        /// Approximations.
        #[arg(long, default_value = "gelu+softmax")]
        preset: String,
        /// How P0's weights are held.
        #[arg(long, value_enum, default_value_t = WeightsArg::Owner)]
        weights: WeightsArg,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// A Hugging Face checkpoint on a text: the private result beside the plaintext one.
    Infer {
        /// The checkpoint directory (config.json, model.safetensors, tokenizer.json or vocab.txt);
        /// `scripts/fetch-assets.sh minilm` prints MiniLM's.
        #[arg(long)]
        model: std::path::PathBuf,
        /// The data owner's text.
        #[arg(long)]
        text: String,
        /// Where the computation runs.
        #[arg(long, value_enum, default_value_t = SettingArg::Threaded)]
        setting: SettingArg,
        /// Approximations.
        #[arg(long, default_value = "gelu+softmax")]
        preset: String,
        /// How P0's weights are held.
        #[arg(long, value_enum, default_value_t = WeightsArg::Owner)]
        weights: WeightsArg,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// Every numerical function and comparison computed by the real protocol over threads,
    /// against f64: errors, rounds and bytes.
    Accuracy {
        /// Print one JSON line per function.
        #[arg(long)]
        json: bool,
        /// Truncation of products at the session precision.
        #[arg(long, value_enum, default_value_t = TruncationArg::Dealer)]
        truncation: TruncationArg,
        /// Only these functions (default: all).
        #[arg(long)]
        only: Vec<String>,
    },
    /// Benchmarks that print numbers: by default a BERT-class encoder on random weights with
    /// P0, P1 and the dealer in threads; `bench gemm` for the GEMM kernels.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        what: Option<BenchCommand>,
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// The wrapping u64 GEMM against an f64 GEMM on BERT-base's linear shapes (one thread each).
    Gemm {
        /// Print one JSON line per shape.
        #[arg(long)]
        json: bool,
        /// Seconds of timing per shape and kernel.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
    },
}

/// The model benchmark's settings.
#[derive(clap::Args, Debug)]
struct ModelArgs {
    /// `bert-base`, `bert-large` or `minilm`.
    #[arg(long, default_value = "bert-base")]
    config: String,
    /// Tokens.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Approximations: gelu+softmax, quad+2quad, quad+2relu, gelu+2quad, quad+softmax.
    #[arg(long, default_value = "quad+2quad")]
    preset: String,
    /// How P0's weights are held.
    #[arg(long, value_enum, default_value_t = WeightsArg::Owner)]
    weights: WeightsArg,
    /// Layers to run (default: all of the configuration's).
    #[arg(long)]
    layers: Option<usize>,
    /// Truncation after products at the session precision.
    #[arg(long, value_enum, default_value_t = TruncationArg::Local)]
    truncation: TruncationArg,
    /// Print one JSON line.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SettingArg {
    /// Plaintext f64.
    Plain,
    /// Fixed-point arithmetic in the clear, with predicted traffic.
    Simulated,
    /// P0, P1 and the dealer as threads.
    Threaded,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum WeightsArg {
    /// Secret-shared weights (CrypTen's and MPCFormer's setting).
    Shared,
    /// Weights known to P0 (the real deployment).
    Owner,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TruncationArg {
    /// Each party shifts its share (no communication).
    Local,
    /// Dealer truncation pairs (one round; never fails).
    Dealer,
}

impl From<WeightsArg> for WeightMode {
    fn from(w: WeightsArg) -> Self {
        match w {
            WeightsArg::Shared => WeightMode::Shared,
            WeightsArg::Owner => WeightMode::Owner,
        }
    }
}

impl From<TruncationArg> for Truncation {
    fn from(t: TruncationArg) -> Self {
        match t {
            TruncationArg::Local => Truncation::Local,
            TruncationArg::Dealer => Truncation::Dealer,
        }
    }
}

fn infer(
    dir: &std::path::Path,
    text: &str,
    setting: SettingArg,
    preset: &str,
    weights: WeightsArg,
    json: bool,
) -> ExitCode {
    let Some(preset) = Preset::parse(preset) else {
        eprintln!("mpcformer infer: unknown preset `{preset}`");
        return ExitCode::FAILURE;
    };
    let checkpoint = match mpc_io_std::model::load(dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpcformer infer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let setting = match setting {
        SettingArg::Plain => infer::Setting::Plain,
        SettingArg::Simulated => infer::Setting::Simulated,
        SettingArg::Threaded => infer::Setting::Threaded,
    };
    let progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    match infer::run(&checkpoint, text, setting, preset, weights.into(), progress) {
        Ok(r) if json => {
            println!("{}", serde_json::to_string(&r).expect("serialisable"));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "{} on {} tokens: {} setting, {}, weights={}",
                dir.display(),
                r.tokens,
                r.setting,
                r.preset,
                r.weights
            );
            let show = |v: &[f64]| -> String {
                if r.head == "classifier" {
                    format!("probabilities {:.6?}", demo::probabilities(v))
                } else {
                    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                    format!(
                        "sentence embedding ({} values, norm {norm:.4}) starts {:.5?}",
                        v.len(),
                        &v[..4.min(v.len())]
                    )
                }
            };
            println!("  private:   {}", show(&r.private));
            println!("  plaintext: {}", show(&r.plaintext));
            println!("  max |private - plaintext| = {:.2e}, cosine {:.6}", r.max_abs_err, r.cosine);
            println!(
                "  online  {:.3} s, {:.1} MB, {} rounds (plaintext {:.3} s)",
                r.online_s,
                r.online_bytes as f64 / 1e6,
                r.rounds,
                r.plaintext_s
            );
            println!("  offline {:.3} s, {:.1} MB", r.offline_s, r.offline_bytes as f64 / 1e6);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mpcformer infer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench_model(args: ModelArgs) -> ExitCode {
    let Some(config) = BertConfig::named(&args.config) else {
        eprintln!("mpcformer bench: unknown configuration `{}` (bert-base, bert-large, minilm)", args.config);
        return ExitCode::FAILURE;
    };
    let Some(preset) = Preset::parse(&args.preset) else {
        eprintln!("mpcformer bench: unknown preset `{}`", args.preset);
        return ExitCode::FAILURE;
    };
    let bench = ModelBench {
        config_name: args.config.clone(),
        config,
        seq: args.seq,
        layers: args.layers,
        preset,
        weights: args.weights.into(),
        truncation: args.truncation.into(),
        seed: 1,
    };
    match model::run(&bench) {
        Ok(r) if args.json => {
            println!("{}", serde_json::to_string(&r).expect("serialisable"));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "{} seq {} layers {} {} weights={} truncation={}",
                r.config, r.seq, r.layers, r.preset, r.weights, r.truncation
            );
            println!(
                "  online  {:.3} s ({:.1}x plaintext {:.3} s), {:.1} MB, {} rounds",
                r.online_s,
                r.online_ratio,
                r.plaintext_s,
                r.online_bytes as f64 / 1e6,
                r.rounds
            );
            println!("  offline {:.3} s, {:.1} MB", r.offline_s, r.offline_bytes as f64 / 1e6);
            println!("  load    {:.3} s, {:.1} MB (once per model)", r.load_s, r.load_bytes as f64 / 1e6);
            println!("  max |private - plaintext| = {:.2e}", r.max_abs_err);
            for (name, c) in &r.buckets {
                println!(
                    "  {:<10} {:>8.3} s {:>10.1} MB {:>6} rounds",
                    name,
                    c.seconds,
                    c.bytes as f64 / 1e6,
                    c.rounds
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mpcformer bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench { what: None, model } => bench_model(model),
        Command::Bench { what: Some(BenchCommand::Gemm { json, seconds }), .. } => {
            if !json {
                println!("{:<20} {:>10} {:>10} {:>7}  kernel", "shape", "u64 Gmac/s", "f64 Gmac/s", "ratio");
            }
            for (m, k, n) in gemm::BERT_BASE_SHAPES {
                let r = gemm::measure(m, k, n, seconds);
                if json {
                    println!("{}", serde_json::to_string(&r).expect("serialisable"));
                } else {
                    println!(
                        "{:<20} {:>10.2} {:>10.2} {:>7.2}  {}",
                        r.shape, r.u64_gmacs, r.f64_gmacs, r.ratio, r.kernel
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Command::Accuracy { json, truncation, only } => {
            if !json {
                println!(
                    "{:<11} {:<32} {:>11} {:>11} {:>7} {:>10}",
                    "function", "domain", "max abs err", "max rel err", "rounds", "bytes/elem"
                );
            }
            for spec in accuracy::SPECS.iter().filter(|s| only.is_empty() || only.iter().any(|o| o == s.function)) {
                match accuracy::measure(spec, truncation.into(), None) {
                    Ok(r) if json => println!("{}", serde_json::to_string(&r).expect("serialisable")),
                    Ok(r) => println!(
                        "{:<11} {:<32} {:>11.2e} {:>11.2e} {:>7} {:>10.1}",
                        r.function, r.domain, r.max_abs_err, r.max_rel_err, r.rounds, r.bytes_per_element
                    ),
                    Err(e) => {
                        eprintln!("mpcformer accuracy: {}: {e}", spec.function);
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Infer { model, text, setting, preset, weights, json } => {
            infer(&model, &text, setting, &preset, weights, json)
        }
        Command::Demo { preset, weights, json } => {
            let Some(preset) = Preset::parse(&preset) else {
                eprintln!("mpcformer demo: unknown preset `{preset}`");
                return ExitCode::FAILURE;
            };
            match demo::run(preset, weights.into()) {
                Ok(r) if json => {
                    println!("{}", serde_json::to_string(&r).expect("serialisable"));
                    ExitCode::SUCCESS
                }
                Ok(r) => {
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
                        r.online_bytes as f64 / 1e6,
                        r.rounds
                    );
                    println!(
                        "  offline {:.3} s, {:.1} MB (dealer material, input-free products)",
                        r.offline_s,
                        r.offline_bytes as f64 / 1e6
                    );
                    println!("  model load {:.3} s, {:.1} MB (once per model)", r.load_s, r.load_bytes as f64 / 1e6);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mpcformer demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
