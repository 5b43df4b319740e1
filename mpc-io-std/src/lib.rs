//! # mpc-io-std
//!
//! The std side of mpcformer: what connects the `no_std` engine to threads, sockets, files and
//! people.
//!
//! - [`channel`]: an in-memory [`Transport`](mpc_core::Transport) over std channels;
//! - [`tcp`]: TCP + mutual TLS between processes, with certificates per role;
//! - [`network`]: the dealer and the parties as processes over [`tcp`];
//! - [`soak`]: many inferences over one set of TLS connections, behind `mpcformer soak`;
//! - [`shaping`]: a latency and bandwidth decorator, and the network projection;
//! - [`launcher`]: runs P0, P1 and the dealer in threads and returns outputs and metering;
//! - [`accuracy`]: the table of numerical functions behind `mpcformer accuracy`;
//! - [`bench`](mod@bench): the benchmarks behind `mpcformer bench`;
//! - [`demo`]: the private inference behind `mpcformer demo`;
//! - [`model`]: Hugging Face checkpoints (config.json, safetensors, tokenizer);
//! - [`dataset`]: the sentiment corpus and its fixed-seed split;
//! - [`infer`]: a checkpoint on a text in any setting, behind `mpcformer infer`;
//! - [`eval`]: a classifier's accuracy on the test split in any setting, behind `mpcformer eval`.
#![forbid(unsafe_code)]

pub mod accuracy;
pub mod bench;
pub mod channel;
pub mod dataset;
pub mod demo;
pub mod eval;
pub mod infer;
pub mod launcher;
pub mod model;
pub mod network;
pub mod shaping;
pub mod soak;
pub mod tcp;

pub use channel::{ChannelError, ChannelTransport};
pub use launcher::{LaunchError, LaunchOptions, PartyContext, PartyOutcome, ThreadedRun, run_threaded};

/// The largest |a - b| over two outputs; a NaN or a length mismatch is infinity, never dropped
/// (`f64::max` would ignore a NaN).
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, |m, e| if e.is_nan() { f64::INFINITY } else { m.max(e) })
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
