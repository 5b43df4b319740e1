//! What each command runs: it reads the arguments, calls the library's task, and hands the
//! result to [`crate::render`]. Failures come back as errors; `main` prints them and exits 1.

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use mpc_core::transport::Role;
use mpc_io_std::run::network::Peer;
use mpc_io_std::run::{Meters, PartySession, PrivateJob};
use mpc_io_std::service::client::{QueryOptions, ServiceAddresses};
use mpc_io_std::service::dealer::DealerServiceOptions;
use mpc_io_std::service::server::{ServeOptions, ServedModel};
use mpc_io_std::tasks::bench::{self, ModelBench};
use mpc_io_std::tasks::gemm;
use mpc_io_std::tasks::infer::{self, ModelChoice};
use mpc_io_std::tasks::{accuracy, demo};
use mpc_transformer::{BertConfig, Preset};

use crate::args::{self, BenchArgs, BenchCommand, Command, NetArgs, RoleArg, SettingArg};
use crate::{plot, render};

/// A command's failure, printed as `mpcformer <command>: <error>`.
pub type Failure = Box<dyn Error>;

/// Runs `command`: its exit code, or its failure.
pub fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Demo { choice, json } => {
            let report = demo::run(model_choice(&choice, None)?)?;
            render::demo(&report, json);
        }
        Command::Infer { model, text, setting, choice, json } => infer(&model, &text, setting, &choice, json)?,
        Command::Eval { model, setting, limit, data, choice, json, plot, from } => {
            let mut bars = Vec::new();
            if let Some(saved) = from {
                let text = std::fs::read_to_string(&saved).map_err(|e| format!("{}: {e}", saved.display()))?;
                for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                    let value: serde_json::Value =
                        serde_json::from_str(line).map_err(|e| format!("{} line {}: {e}", saved.display(), i + 1))?;
                    bars.push(
                        plot::EvalBar::from_json(&value)
                            .ok_or_else(|| format!("{} line {}: not an `eval --json` line", saved.display(), i + 1))?,
                    );
                }
            }
            for dir in &model {
                for &setting in &setting {
                    bars.push(plot::EvalBar::from(&eval(dir, setting, limit, data.as_deref(), &choice, json)?));
                }
            }
            if let Some(path) = plot {
                plot::eval(&path, &bars)?;
            }
        }
        #[cfg(feature = "distill")]
        Command::Distill { what } => return Ok(crate::distill::run(what)),
        Command::Soak { inferences, model, text, json } => {
            return soak(inferences, model.as_deref().zip(text.as_deref()), json);
        }
        Command::Checkpoint { config, labels, preset, seed, out } => {
            let shape = BertConfig { num_labels: labels, ..config.config() };
            mpc_io_std::checkpoint::write_random_checkpoint(&out, &shape, preset.map(Preset::from), seed, 0.02)?;
            println!("{}", out.display());
        }
        Command::Certs { out } => {
            mpc_io_std::transport::tcp::make_certs(&out)?;
            println!("{}", out.display());
        }
        Command::Dealer { listen, max_sessions, sessions, net } => dealer(listen, max_sessions, sessions, &net)?,
        Command::Serve { model, listen, dealer, max_sessions, pool, choice, net } => {
            serve(&model, listen, dealer, max_sessions, pool, &choice, &net)?
        }
        Command::Query { server, dealer, model, text, file, json, pool, choice, net } => {
            let texts = match (text, file) {
                (Some(t), _) => vec![t],
                (None, Some(f)) => {
                    let all = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                    all.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
                }
                (None, None) => return Err("--text or --file".into()),
            };
            query(ServiceAddresses { server, dealer }, &model, &texts, json, pool, &choice, &net)?
        }
        Command::Party { role, dealer, peer, model, text, choice, net } => {
            net.check_seed(&[dealer, peer])?;
            let endpoints = mpc_io_std::run::network::Endpoints { dealer, peer };
            party(role, endpoints, &model, text.as_deref(), &choice, &net)?
        }
        Command::Accuracy { json, truncation, only, plot } => {
            let unknown: Vec<&String> =
                only.iter().filter(|o| !accuracy::SPECS.iter().any(|s| s.function == o.as_str())).collect();
            if !unknown.is_empty() {
                let valid: Vec<&str> = accuracy::SPECS.iter().map(|s| s.function).collect();
                return Err(format!("unknown function {unknown:?}; the functions are {}", valid.join(", ")).into());
            }
            if !json {
                render::accuracy_header();
            }
            let mut rows = Vec::new();
            for spec in accuracy::SPECS.iter().filter(|s| only.is_empty() || only.iter().any(|o| o == s.function)) {
                let row =
                    accuracy::measure(spec, truncation.into(), None).map_err(|e| format!("{}: {e}", spec.function))?;
                render::accuracy(&row, json);
                rows.push(row);
            }
            if let Some(path) = plot {
                plot::accuracy(&path, &rows)?;
            }
        }
        Command::Bench { what: None, model } => bench_model(model)?,
        Command::Bench { what: Some(BenchCommand::Gemm { json, seconds }), .. } => {
            if !json {
                render::gemm_header();
            }
            for (m, k, n) in gemm::BERT_BASE_SHAPES {
                render::gemm(&gemm::measure(m, k, n, seconds, mpc_core::gemm::threads()), json);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The library's choices from the arguments (one per preset and weight mode asked), the preset
/// defaulting to `default`.
fn model_choices(choice: &args::ModelChoice, default: Option<Preset>) -> Vec<ModelChoice> {
    let mut choices = Vec::new();
    for preset in choice.presets_or(default) {
        for &weights in &choice.weights {
            choices.push(ModelChoice { preset, weights: weights.into(), truncation: choice.truncation.into() });
        }
    }
    choices
}

/// The one choice of a command that runs one model: more than one preset or weight mode is
/// an error (only `bench` compares).
fn model_choice(choice: &args::ModelChoice, default: Option<Preset>) -> Result<ModelChoice, Failure> {
    match model_choices(choice, default).as_slice() {
        [one] => Ok(*one),
        _ => Err("one --preset and one --weights here (bench takes several)".into()),
    }
}

fn infer(dir: &Path, text: &str, setting: SettingArg, choice: &args::ModelChoice, json: bool) -> Result<(), Failure> {
    let checkpoint = mpc_io_std::checkpoint::load(dir)?;
    let choice = model_choice(choice, checkpoint.preset)?;
    let progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = infer::run(&checkpoint, text, setting.into(), choice, progress)?;
    render::infer(dir, &report, json);
    Ok(())
}

fn eval(
    dir: &Path,
    setting: SettingArg,
    limit: Option<usize>,
    data: Option<&Path>,
    choice: &args::ModelChoice,
    json: bool,
) -> Result<mpc_io_std::tasks::eval::EvalReport, Failure> {
    let checkpoint = mpc_io_std::checkpoint::load(dir)?;
    if checkpoint.config.num_labels.is_none() {
        return Err(format!("{}: the checkpoint has no classifier (classifier.weight)", dir.display()).into());
    }
    let choice = model_choice(choice, checkpoint.preset)?;
    let corpus = data.map_or_else(mpc_io_std::dataset::default_corpus_dir, Path::to_path_buf);
    let splits = mpc_io_std::dataset::load_sentiment(&corpus)?;
    let test = &splits.test[..limit.unwrap_or(usize::MAX).min(splits.test.len())];
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let name = dir.display().to_string();
    let report = mpc_io_std::tasks::eval::evaluate(&checkpoint, &name, test, setting.into(), choice, progress)?;
    render::eval(&report, json);
    Ok(report)
}

/// A failed soak (a prediction changed) exits 1 with or without `--json`.
fn soak(inferences: usize, model: Option<(&Path, &str)>, json: bool) -> Result<ExitCode, Failure> {
    let (config, params, tokens, preset) = match model {
        Some((dir, text)) => {
            let checkpoint = mpc_io_std::checkpoint::load(dir)?;
            let tokens = checkpoint.tokenize(text)?;
            let preset = checkpoint.preset.unwrap_or(Preset::ALL[0]);
            (checkpoint.config, checkpoint.params, tokens, preset)
        }
        None => {
            let (config, params, tokens) = mpc_io_std::tasks::soak::small_model();
            (config, params, tokens, Preset::ALL[0])
        }
    };
    let report = mpc_io_std::tasks::soak::run(&config, &params, preset, &tokens, inferences)?;
    render::soak(&report, json);
    Ok(if report.changed_predictions > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn party(
    role: RoleArg,
    endpoints: mpc_io_std::run::network::Endpoints,
    dir: &Path,
    text: Option<&str>,
    choice: &args::ModelChoice,
    net: &NetArgs,
) -> Result<(), Failure> {
    let role = Role::from(role);
    let mut checkpoint = match role {
        Role::P0 => mpc_io_std::checkpoint::load(dir)?,
        Role::P1 => mpc_io_std::checkpoint::load_public(dir)?,
    };
    // The preset is public (both parties run the same approximations): config.json names it.
    let choice = model_choice(choice, checkpoint.preset)?;
    // The text is P1's; P0 learns only its length (public, as the sequence length).
    let tokens = match (role, text) {
        (Role::P1, Some(t)) => checkpoint.tokenize(t)?,
        (Role::P1, None) => return Err("P1 needs --text".into()),
        (Role::P0, _) => Vec::new(),
    };
    // P0 binds first and says where (a port of 0 takes a free one): P1 may connect from then on.
    let peer = match role {
        Role::P0 => {
            let listener = mpc_io_std::transport::tcp::listen(endpoints.peer)?;
            stdout_log()(serde_json::json!({"event": "listening", "address": listener.local_addr()?.to_string()}));
            Peer::Listen(listener)
        }
        Role::P1 => Peer::Connect(endpoints.peer),
    };
    let mut ctx = mpc_io_std::run::network::connect_party_with(
        role,
        endpoints.dealer,
        peer,
        &net.certs,
        net.insecure_seed,
        net.options(),
    )?;
    let params = std::mem::take(&mut checkpoint.params);
    let job = PrivateJob {
        weights: choice.weights,
        truncation: choice.truncation,
        seed: net.insecure_seed,
        ..PrivateJob::new(&checkpoint.config, &params, &tokens, choice.preset)
    };
    let mut session = PartySession::open(&mut ctx, &job)?;
    // Loaded: the session holds the weights as it computes with them; the f32 copy can go.
    drop(params);
    let report = session.answer(&[&tokens], Meters::default(), |_, _| {})?;
    session.close()?;
    if role == Role::P0 {
        ctx.dealer.finish()?;
    }
    render::party(role, &report);
    Ok(())
}

/// A flag that SIGINT and SIGTERM set: a server stops accepting and finishes its work.
fn stop_on_signals() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}

/// JSON log lines on stdout, one per event, flushed as they come.
fn stdout_log() -> mpc_io_std::service::Log {
    Arc::new(|line| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })
}

fn dealer(listen: SocketAddr, max_sessions: usize, sessions: Option<u64>, net: &NetArgs) -> Result<(), Failure> {
    net.check_seed(&[listen])?;
    let stop = stop_on_signals()?;
    let mut options = DealerServiceOptions::default();
    options.max_sessions = max_sessions;
    options.tcp = net.options();
    options.insecure_seed = net.insecure_seed.map(mpc_io_std::run::threads::seed_bytes);
    options.sessions = sessions;
    let listener = mpc_io_std::transport::tcp::listen(listen)?;
    let stats = mpc_io_std::service::dealer::serve_dealer(listener, &net.certs, options, &stop, stdout_log())?;
    render::json(&serde_json::json!({"event": "stopped", "sessions": stats.sessions, "failed": stats.failed,
        "refused": stats.refused}));
    if stats.failed > 0 && sessions.is_some() {
        return Err(format!("{} of {} sessions failed", stats.failed, stats.sessions).into());
    }
    Ok(())
}

fn serve(
    dir: &Path,
    listen: SocketAddr,
    dealer: SocketAddr,
    max_sessions: usize,
    pool: usize,
    choice: &args::ModelChoice,
    net: &NetArgs,
) -> Result<(), Failure> {
    if net.insecure_seed.is_some() {
        return Err("--insecure-seed is not for a server".into());
    }
    let checkpoint = mpc_io_std::checkpoint::load(dir)?;
    let choice = model_choice(choice, checkpoint.preset)?;
    let model = Arc::new(ServedModel {
        config: checkpoint.config,
        params: checkpoint.params,
        preset: choice.preset,
        weights: choice.weights,
        truncation: choice.truncation,
    });
    let stop = stop_on_signals()?;
    let mut options = ServeOptions::default();
    options.max_sessions = max_sessions;
    options.tcp = net.options();
    options.pool = pool;
    let listener = mpc_io_std::transport::tcp::listen(listen)?;
    let log = stdout_log();
    log(serde_json::json!({"event": "listening", "address": listener.local_addr()?.to_string(),
        "preset": choice.preset.name(), "weights": choice.weights.name(), "max_sessions": max_sessions, "pool": pool}));
    let stats = mpc_io_std::service::server::serve(listener, dealer, &net.certs, model, options, stop, log)?;
    render::json(&serde_json::json!({"event": "stopped", "sessions": stats.sessions, "failed": stats.failed,
        "queries": stats.queries, "busy": stats.busy, "refused": stats.refused}));
    Ok(())
}

fn query(
    at: ServiceAddresses,
    dir: &Path,
    texts: &[String],
    json: bool,
    pool: usize,
    choice: &args::ModelChoice,
    net: &NetArgs,
) -> Result<(), Failure> {
    if net.insecure_seed.is_some() {
        return Err("--insecure-seed is not for a client".into());
    }
    let checkpoint = mpc_io_std::checkpoint::load_public(dir)?;
    let choice = model_choice(choice, checkpoint.preset)?;
    let tokens = texts.iter().map(|t| checkpoint.tokenize(t)).collect::<Result<Vec<_>, _>>()?;
    let queries: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
    let mut options = QueryOptions::default();
    options.weights = choice.weights;
    options.truncation = choice.truncation;
    options.tcp = net.options();
    options.pool = pool;
    mpc_io_std::service::client::query_session(
        at,
        &net.certs,
        &checkpoint.config,
        choice.preset,
        options,
        &queries,
        |i, r| render::query(&checkpoint, i, &texts[i], r, json),
    )?;
    Ok(())
}

/// One run per preset and weight mode asked, each printed as it ends; then the plot, if asked.
fn bench_model(args: BenchArgs) -> Result<(), Failure> {
    let config = args.config.config();
    let max = config.max_tokens();
    if !(1..=max).contains(&args.seq) {
        return Err(format!("--seq {}: {} takes 1 to {max} tokens", args.seq, args.config.name()).into());
    }
    let mut reports = Vec::new();
    for choice in model_choices(&args.choice, Preset::parse("quad+2quad")) {
        let bench = ModelBench {
            config_name: args.config.name().to_string(),
            config: config.clone(),
            seq: args.seq,
            layers: args.layers,
            preset: choice.preset,
            weights: choice.weights,
            truncation: choice.truncation,
            seed: 1,
            net: args.net.map(Into::into),
            queries: args.queries as usize,
        };
        let report = bench::run(&bench)?;
        render::bench(&report, args.json);
        reports.push(report);
    }
    if let Some(path) = &args.plot {
        plot::bench(path, &reports)?;
    }
    Ok(())
}
