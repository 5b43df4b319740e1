//! # mpc-io-std
//!
//! The std side of mpcformer: what connects the `no_std` engine to threads, sockets, files and
//! people.
//!
//! - [`transport`]: in-memory channels, TCP + mutual TLS with certificates per role, and a
//!   latency and bandwidth decorator with the network projection;
//! - [`run`]: one party's metered session over any transport, and the three roles run together
//!   in threads ([`run::threads`]) or as TLS-connected parties ([`run::network`]);
//! - [`service`]: private inference as a service: a dealer for many sessions, the model owner's
//!   server and the data owner's client (`mpcformer dealer`, `serve`, `query`);
//! - [`checkpoint`]: Hugging Face checkpoints (config.json, safetensors, tokenizer);
//! - [`dataset`]: the sentiment corpus and its fixed-seed split;
//! - [`tasks`]: what the commands compute (`bench`, `demo`, `infer`, `eval`, `soak`, `accuracy`,
//!   the GEMM benchmark), each returning a report that serialises to the command's JSON line.
//!
//! ## Example
//!
//! A private inference with P0, P1 and the real dealer in threads:
//!
//! ```
//! use mpc_io_std::run::{PrivateJob, run_private};
//! use mpc_transformer::{BertConfig, Params, Preset};
//!
//! let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(1, 16, 2, 30) };
//! let params = Params::random(&config, 1);
//! let job = PrivateJob::new(&config, &params, &[2, 9, 4, 3], Preset::parse("quad+2quad").unwrap());
//! let run = run_private(job).unwrap();
//! assert_eq!(run.p0.output.output, None, "the model owner learns nothing of the answer");
//! assert_eq!(run.p1.output.output.unwrap().len(), 2, "the data owner gets the logits");
//! ```
// Unsafe code is denied everywhere but `baseline_gemm`, which calls the `gemm` crate's SIMD
// kernels through their raw-pointer interface (each call's bounds checked first).
#![deny(unsafe_code)]

pub mod baseline_gemm;
pub mod checkpoint;
pub mod dataset;
pub mod run;
pub mod service;
pub mod tasks;
pub mod transport;

pub use run::threads::{LaunchError, LaunchOptions, PartyContext, PartyOutcome, ThreadedRun, run_threaded};
pub use transport::channel::{ChannelError, ChannelTransport};

/// The largest |a - b| over two outputs; a NaN or a length mismatch is infinity, never dropped
/// (`f64::max` would ignore a NaN).
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, worse_error)
}

/// The larger of a worst error so far and a new one, a NaN counting as infinite (`f64::max`
/// would drop it): the fold step of every error maximum.
pub fn worse_error(worst: f64, error: f64) -> f64 {
    if error.is_nan() { f64::INFINITY } else { worst.max(error) }
}

/// A byte figure of this process's `/proc/self/status` (Linux), such as `VmRSS:`.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// This process's resident memory in bytes, if known.
pub fn resident_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// The CPU this process runs on, as a benchmark report names it: `/proc/cpuinfo`'s model name
/// with its family and model numbers (a virtual machine's model name can be as terse as "AMD
/// EPYC"), or the architecture where there is no such file.
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(key, _)| key.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    match (field("model name"), field("cpu family"), field("model")) {
        (Some(name), Some(family), Some(model)) => format!("{name} (family {family} model {model})"),
        (Some(name), ..) => name,
        _ => std::env::consts::ARCH.to_string(),
    }
}

/// This process's peak resident memory in bytes (the kernel's high-water mark), 0 if unknown.
pub fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM:").unwrap_or(0)
}

/// Nanoseconds since the first call: the monotonic clock sessions time their phases with.
pub fn clock_nanos() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

/// A cryptographic RNG keyed from the operating system's entropy.
pub fn os_rng() -> Result<mpc_core::share::Prg, getrandom::Error> {
    use rand_core::SeedableRng;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    let rng = mpc_core::share::Prg::from_seed(seed);
    zeroize_bytes(&mut seed);
    Ok(rng)
}

fn zeroize_bytes(b: &mut [u8]) {
    for x in b.iter_mut() {
        *x = 0;
    }
    std::hint::black_box(b);
}

/// A progress bar of `total` steps labelled `prefix` (elapsed time, bar, count, message), or a
/// hidden one when `show` is false: the one style of every long-running command.
pub fn progress_bar(show: bool, total: u64, prefix: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}
