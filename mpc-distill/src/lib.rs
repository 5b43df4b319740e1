//! # mpc-distill
//!
//! The other half of MPCFormer: Quad and 2Quad (or 2ReLU) are cheap under MPC but change the
//! model; knowledge distillation from the original model recovers its accuracy.
//!
//! - [`model`]: a BERT-family classifier in candle computing exactly what the MPC encoder computes
//!   for a preset, returning logits, hidden states and attention scores;
//! - [`train`]: the objectives (labels, MPCFormer's stage 1 and stage 2), AdamW, the schedules
//!   and a resumable training loop with progress;
//! - this module: the pipelines ([`finetune_teacher`], [`distil`], [`train_on_labels`]) and
//!   [`export`], which writes a checkpoint `mpcformer infer` and `mpcformer eval` load with the
//!   matching preset.
//!
//! Everything runs on the CPU; `mpcformer distill` is the command line over it.
//!
//! ## Example
//!
//! Distil a quad+2quad student from a fine-tuned teacher (stage 1 on hidden states and attention
//! scores, stage 2 on the teacher's logits):
//!
//! ```no_run
//! use std::path::Path;
//!
//! use mpc_distill::{Options, StageSettings, distil};
//! use mpc_io_std::dataset::load_sentiment;
//! use mpc_transformer::Preset;
//!
//! let data = load_sentiment(Path::new("corpus"))?;
//! let quad = Preset::parse("quad+2quad").unwrap();
//! let (stage1, stage2) = (StageSettings { epochs: 1, lr: 1e-4 }, StageSettings { epochs: 1, lr: 5e-5 });
//! let out = Path::new("runs/quad+2quad");
//! let report = distil(Path::new("runs/teacher"), quad, &data, out, stage1, stage2, &Options::default())?;
//! println!("{report:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod model;
pub mod train;

use std::fmt;
use std::path::{Path, PathBuf};

use mpc_io_std::checkpoint::{Checkpoint, LoadError, PRESET_FIELD};
use mpc_io_std::dataset::{Example, LABELS, Splits};
pub use mpc_transformer::Params;
use mpc_transformer::{Activation, BertConfig, Preset};
use serde::Serialize;

use model::Classifier;
use train::{Encoded, Objective, Run, Schedule, Stage, StageReport};

/// Why training failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    Candle(candle_core::Error),
    /// The base checkpoint could not be loaded.
    Load(LoadError),
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Shapes or names that do not fit together.
    Shape(String),
    /// A JSON file could not be read or written.
    Json(String),
    /// A resume record does not belong to this run.
    Resume(String),
    /// A stage stopped at its step budget ([`train::Run::max_steps`]); running it again continues.
    Paused {
        /// The stage.
        stage: String,
        /// Steps taken.
        step: usize,
        /// Steps of the stage.
        total: usize,
    },
    /// The loss became infinite or NaN.
    Diverged {
        /// The stage.
        stage: String,
        /// The step.
        step: usize,
    },
}

impl Error {
    fn io(path: &Path, error: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), error }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Candle(e) => write!(f, "tensor operation: {e}"),
            Error::Load(e) => write!(f, "{e}"),
            Error::Io { path, error } => write!(f, "{}: {error}", path.display()),
            Error::Shape(e) => write!(f, "{e}"),
            Error::Json(e) => write!(f, "{e}"),
            Error::Resume(e) => write!(f, "{e}"),
            Error::Paused { stage, step, total } => {
                write!(f, "stage `{stage}` paused at step {step} of {total}; run the same command again to continue")
            }
            Error::Diverged { stage, step } => write!(f, "stage `{stage}` diverged at step {step} (loss not finite)"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Candle(e) => Some(e),
            Error::Load(e) => Some(e),
            Error::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        Error::Load(e)
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings shared by every pipeline.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Tokens per text at most (longer texts are truncated), as in MPCFormer's GLUE runs.
    pub max_len: usize,
    /// Examples per step.
    pub batch: usize,
    /// Use only the first N training examples.
    pub train_limit: Option<usize>,
    /// Use only the first N dev examples for the per-epoch evaluation.
    pub dev_limit: Option<usize>,
    /// Layers of the trained model (default: all of the base model's).
    pub layers: Option<usize>,
    /// Keep the word embeddings fixed (most of the parameters; few of them see any gradient).
    pub freeze_word_embeddings: bool,
    /// Show progress.
    pub progress: bool,
    /// Save a resume point every this many steps.
    pub save_every: usize,
    /// Seed of the head's initial weights and of the shuffles.
    pub seed: u64,
    /// Steps to take in this call at most (then [`Error::Paused`]; calling again continues).
    pub max_steps: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_len: 128,
            batch: 32,
            train_limit: None,
            dev_limit: None,
            layers: None,
            freeze_word_embeddings: true,
            progress: true,
            save_every: 200,
            seed: 17,
            max_steps: None,
        }
    }
}

/// The epochs and base learning rate of a stage.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StageSettings {
    /// Passes over the training set.
    pub epochs: usize,
    /// Base learning rate.
    pub lr: f64,
}

/// What a pipeline did, also written to `distill.json` in the output directory.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `teacher`, `distilled` or `labels-only`.
    pub kind: &'static str,
    /// The trained model's preset.
    pub preset: String,
    /// Layers.
    pub layers: usize,
    /// Training examples used.
    pub train_examples: usize,
    /// Each stage.
    pub stages: Vec<StageReport>,
    /// Accuracy on the whole test split, in plaintext (candle, f32).
    pub test_accuracy: f64,
    /// The output directory.
    pub out: PathBuf,
}

fn encode(checkpoint: &Checkpoint, examples: &[Example], limit: Option<usize>, max_len: usize) -> Result<Encoded> {
    let pad = checkpoint.config.pad_token_id as u32;
    let take = limit.unwrap_or(usize::MAX);
    let mut items = Vec::with_capacity(examples.len().min(take));
    for e in examples.iter().take(take) {
        let mut tokens = checkpoint.tokenize(&e.text)?;
        if tokens.len() > max_len {
            // Keep the final [SEP]: the truncation a tokenizer with this limit would make.
            let last = tokens[tokens.len() - 1];
            tokens.truncate(max_len);
            tokens[max_len - 1] = last;
        }
        items.push((tokens, e.label));
    }
    Ok(Encoded { items, pad })
}

fn run_settings(out: &Path, opts: &Options) -> Run {
    Run {
        resume_dir: out.join("resume"),
        save_every: opts.save_every,
        progress: opts.progress,
        log_every: 50,
        seed: opts.seed,
        max_steps: opts.max_steps,
    }
}

fn depth(config: &BertConfig, opts: &Options) -> BertConfig {
    let mut c = config.clone();
    if let Some(layers) = opts.layers {
        c.num_hidden_layers = layers.clamp(1, config.num_hidden_layers);
    }
    c
}

/// The data a pipeline trains and checks on.
struct Sets {
    train: Encoded,
    dev: Encoded,
    test: Encoded,
}

fn sets(checkpoint: &Checkpoint, data: &Splits, opts: &Options) -> Result<Sets> {
    Ok(Sets {
        train: encode(checkpoint, &data.train, opts.train_limit, opts.max_len)?,
        dev: encode(checkpoint, &data.dev, opts.dev_limit, opts.max_len)?,
        test: encode(checkpoint, &data.test, None, opts.max_len)?,
    })
}

fn finish(
    kind: &'static str,
    model: &Classifier,
    base: &Path,
    out: &Path,
    stages: Vec<StageReport>,
    data: &Sets,
) -> Result<Report> {
    let report = Report {
        kind,
        preset: model.preset().name(),
        layers: model.config().num_hidden_layers,
        train_examples: data.train.items.len(),
        stages,
        test_accuracy: data.test.accuracy(model, 64)?,
        out: out.to_path_buf(),
    };
    export(model, base, out)?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Json(e.to_string()))?;
    let path = out.join("distill.json");
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    Ok(report)
}

/// Training on the gold labels: warm-up 10 % then linear decay, the best dev epoch kept.
fn labels_stage(name: &str, stage: StageSettings, opts: &Options) -> Stage {
    Stage {
        name: name.into(),
        objective: Objective::Labels,
        epochs: stage.epochs,
        lr: stage.lr,
        schedule: Schedule::WarmupLinear(0.1),
        batch: opts.batch,
        keep_best: true,
    }
}

/// Fine-tunes a teacher: the base checkpoint (e.g. MiniLM) with its pooler and a new 2-label
/// classifier, on the gold labels (AdamW, warm-up 10 % then linear decay; the best dev epoch is
/// kept). Writes the teacher to `out`.
pub fn finetune_teacher(
    base: &Path,
    data: &Splits,
    out: &Path,
    stage: StageSettings,
    opts: &Options,
) -> Result<Report> {
    let checkpoint = mpc_io_std::checkpoint::load(base)?;
    let config = depth(&checkpoint.config, opts);
    let preset = checkpoint.preset.unwrap_or(Preset::ALL[0]);
    let mut model = Classifier::new(&config, preset, &checkpoint.params, LABELS.len(), opts.seed)?;
    if opts.freeze_word_embeddings {
        model.freeze(["embeddings.word_embeddings.weight"]);
    }
    let data = sets(&checkpoint, data, opts)?;
    let teacher = labels_stage("teacher", stage, opts);
    let report = train::train(&model, None, &data.train, &data.dev, &teacher, &run_settings(out, opts))?;
    finish("teacher", &model, base, out, vec![report], &data)
}

/// A teacher (frozen, with its own preset) and a student with `preset`, initialised from the
/// teacher's weights (its first layers when it has fewer).
fn teacher_and_student(
    teacher_dir: &Path,
    preset: Preset,
    data: &Splits,
    opts: &Options,
) -> Result<(Classifier, Classifier, Sets)> {
    let checkpoint = mpc_io_std::checkpoint::load(teacher_dir)?;
    let labels = checkpoint.config.num_labels.unwrap_or(LABELS.len());
    let teacher_preset = checkpoint.preset.unwrap_or(Preset::ALL[0]);
    let mut teacher = Classifier::new(&checkpoint.config, teacher_preset, &checkpoint.params, labels, opts.seed)?;
    let names: Vec<String> = teacher.vars().keys().cloned().collect();
    teacher.freeze(names.iter().map(String::as_str));
    let mut student = Classifier::new(&depth(&checkpoint.config, opts), preset, &checkpoint.params, labels, opts.seed)?;
    if opts.freeze_word_embeddings {
        student.freeze(["embeddings.word_embeddings.weight"]);
    }
    let sets = sets(&checkpoint, data, opts)?;
    Ok((teacher, student, sets))
}

/// Distils a student MPCFormer's way: initialised from the teacher with `preset` swapped in;
/// stage 1 matches the embedding output, every hidden state and every layer's attention scores
/// (MSE, constant rate); stage 2 matches the teacher's logits (soft cross-entropy, T = 1,
/// warm-up then linear decay, best dev epoch kept). Writes the student to `out`.
pub fn distil(
    teacher_dir: &Path,
    preset: Preset,
    data: &Splits,
    out: &Path,
    stage1: StageSettings,
    stage2: StageSettings,
    opts: &Options,
) -> Result<Report> {
    let (teacher, student, sets) = teacher_and_student(teacher_dir, preset, data, opts)?;
    let run = run_settings(out, opts);
    let mut reports = Vec::new();
    let stages = [
        Stage {
            name: "stage1".into(),
            objective: Objective::Intermediate,
            epochs: stage1.epochs,
            lr: stage1.lr,
            schedule: Schedule::Constant,
            batch: opts.batch,
            keep_best: false,
        },
        Stage {
            name: "stage2".into(),
            objective: Objective::Prediction,
            epochs: stage2.epochs,
            lr: stage2.lr,
            schedule: Schedule::WarmupLinear(0.1),
            batch: opts.batch,
            keep_best: true,
        },
    ];
    for stage in stages.iter().filter(|s| s.epochs > 0) {
        reports.push(train::train(&student, Some(&teacher), &sets.train, &sets.dev, stage, &run)?);
    }
    finish("distilled", &student, teacher_dir, out, reports, &sets)
}

/// MPCFormer's ablation: the same student (teacher's weights, `preset` swapped in) trained on
/// the gold labels only, without distillation.
pub fn train_on_labels(
    teacher_dir: &Path,
    preset: Preset,
    data: &Splits,
    out: &Path,
    stage: StageSettings,
    opts: &Options,
) -> Result<Report> {
    let (_, student, sets) = teacher_and_student(teacher_dir, preset, data, opts)?;
    let labels = labels_stage("labels", stage, opts);
    let report = train::train(&student, None, &sets.train, &sets.dev, &labels, &run_settings(out, opts))?;
    finish("labels-only", &student, teacher_dir, out, vec![report], &sets)
}

/// Files of a tokenizer copied next to an exported model.
const TOKENIZER_FILES: [&str; 4] = ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

/// Writes `model` as a Hugging Face-style checkpoint in `out`: `config.json` (the base's, with
/// the depth, `num_labels`, the labels, the activation and [`PRESET_FIELD`] naming the preset),
/// `model.safetensors` (F32, BERT names without prefix) and the base's tokenizer files.
pub fn export(model: &Classifier, base: &Path, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let config_path = base.join("config.json");
    let bytes = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let mut config: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::Json(format!("{}: {e}", config_path.display())))?;
    let object = config.as_object_mut().ok_or_else(|| Error::Json("config.json is not an object".into()))?;
    let preset = model.preset();
    let labels = model.config().num_labels.unwrap_or(LABELS.len());
    let names: Vec<String> =
        (0..labels).map(|i| LABELS.get(i).map_or_else(|| format!("LABEL_{i}"), |s| s.to_string())).collect();
    object.insert("num_hidden_layers".into(), model.config().num_hidden_layers.into());
    object.insert("num_labels".into(), labels.into());
    object.insert("architectures".into(), serde_json::json!(["BertForSequenceClassification"]));
    object.insert(
        "id2label".into(),
        names.iter().enumerate().map(|(i, n)| (i.to_string(), serde_json::Value::from(n.clone()))).collect(),
    );
    object.insert(
        "label2id".into(),
        names.iter().enumerate().map(|(i, n)| (n.clone(), serde_json::Value::from(i))).collect(),
    );
    let activation = match preset.activation {
        Activation::Gelu => "gelu",
        Activation::Quad => "quad",
        Activation::Relu => "relu",
    };
    object.insert("hidden_act".into(), activation.into());
    object.insert(PRESET_FIELD.into(), preset.name().into());
    let path = out.join("config.json");
    let json = serde_json::to_vec_pretty(&config).map_err(|e| Error::Json(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    let tensors: std::collections::HashMap<String, candle_core::Tensor> =
        model.vars().iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    candle_core::safetensors::save(&tensors, out.join("model.safetensors"))?;
    for file in TOKENIZER_FILES {
        let from = base.join(file);
        if from.exists() && base != out {
            std::fs::copy(&from, out.join(file)).map_err(|e| Error::io(&from, e))?;
        }
    }
    Ok(())
}
