//! Training stages: objectives, the optimiser, the schedule, and a resumable loop.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{D, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::{Batch, Classifier, Outputs};
use crate::{Error, Result};

/// What a stage minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Objective {
    /// Cross-entropy against the gold labels (teacher fine-tuning, the no-distillation ablation).
    Labels,
    /// MPCFormer stage 1: MSE on the embedding output, every hidden state and every layer's
    /// attention scores, against the teacher's (padding excluded).
    Intermediate,
    /// MPCFormer stage 2: soft cross-entropy against the teacher's logits (T = 1).
    Prediction,
}

/// How the learning rate evolves over a stage.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// The same rate throughout (MPCFormer's stage 1).
    Constant,
    /// Linear warm-up over this fraction of the steps, then linear decay to 0.
    WarmupLinear(f64),
}

impl Schedule {
    /// The multiplier of the base rate at `step` of `total`.
    pub fn factor(self, step: usize, total: usize) -> f64 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::WarmupLinear(warmup) => {
                let progress = step as f64 / total.max(1) as f64;
                if progress < warmup { progress / warmup } else { ((1.0 - progress) / (1.0 - warmup)).max(0.0) }
            }
        }
    }
}

/// One training stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stage {
    /// Name (also the name of its resume files).
    pub name: String,
    /// What it minimises.
    pub objective: Objective,
    /// Passes over the training set.
    pub epochs: usize,
    /// Base learning rate.
    pub lr: f64,
    /// The schedule.
    pub schedule: Schedule,
    /// Examples per step.
    pub batch: usize,
    /// Keep the weights of the epoch with the best dev accuracy (label-bearing objectives).
    pub keep_best: bool,
}

/// AdamW (decoupled weight decay, bias-corrected), without decay on biases and LayerNorm, with
/// the gradients clipped to a global norm first.
#[derive(Debug)]
pub struct AdamW {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Largest global gradient norm.
    pub max_grad_norm: f64,
    step: usize,
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

impl Default for AdamW {
    /// BERT's: β = (0.9, 0.999), ε = 1e-6, decay 0.01, clip at 1.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-6,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            step: 0,
            moments: BTreeMap::new(),
        }
    }
}

impl AdamW {
    /// One update of `model`'s trainable tensors at rate `lr`; returns the gradient norm.
    pub fn step(&mut self, model: &Classifier, grads: &GradStore, lr: f64) -> Result<f64> {
        self.step += 1;
        let trainable: Vec<_> =
            model.trainable().filter_map(|(n, v)| Some((n, v, grads.get(v.as_tensor())?))).collect();
        let mut norm2 = 0.0;
        for (_, _, g) in &trainable {
            norm2 += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        let norm = norm2.sqrt();
        let clip = if norm > self.max_grad_norm { self.max_grad_norm / norm } else { 1.0 };
        let t = self.step as i32;
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        for (name, var, g) in trainable {
            let g = (g * clip)?;
            let (m, v) = match self.moments.remove(name) {
                Some(moments) => moments,
                None => (g.zeros_like()?, g.zeros_like()?),
            };
            let m = ((m * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            let v = ((v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + self.eps)?)?;
            let theta = var.as_tensor();
            let decays = !(name.ends_with(".bias") || name.contains("LayerNorm"));
            let update = if decays { (update + (theta * self.weight_decay)?)? } else { update };
            var.set(&(theta - (update * lr)?)?)?;
            self.moments.insert(name.clone(), (m, v));
        }
        Ok(norm)
    }

    fn save_into(&self, tensors: &mut HashMap<String, Tensor>) {
        for (name, (m, v)) in &self.moments {
            tensors.insert(format!("adam.m.{name}"), m.clone());
            tensors.insert(format!("adam.v.{name}"), v.clone());
        }
    }

    fn restore(&mut self, tensors: &HashMap<String, Tensor>, step: usize) {
        self.step = step;
        self.moments.clear();
        for (key, m) in tensors {
            if let Some(name) = key.strip_prefix("adam.m.")
                && let Some(v) = tensors.get(&format!("adam.v.{name}"))
            {
                self.moments.insert(name.to_string(), (m.clone(), v.clone()));
            }
        }
    }
}

/// Mean of (a − b)² over the entries `mask` (broadcast to their shape) keeps, `count` of them.
fn masked_mse(a: &Tensor, b: &Tensor, mask: &Tensor, count: f64) -> Result<Tensor> {
    Ok(((a - b)?.sqr()?.broadcast_mul(mask)?.sum_all()? / count.max(1.0))?)
}

/// MPCFormer's stage-1 loss: Σ hidden-state MSE + Σ attention-score MSE, student layer i matched
/// with teacher layer (i + 1)·k − 1 for attention and hidden state j with teacher's j·k
/// (k = teacher depth / student depth). Padding is excluded: padded tokens' rows and padded keys.
pub fn intermediate_loss(student: &Outputs, teacher: &Outputs, mask: &Tensor) -> Result<Tensor> {
    let (n, len) = mask.dims2()?;
    let layers = student.scores.len();
    let k = teacher.scores.len() / layers.max(1);
    if layers == 0 || k == 0 || teacher.scores.len() != k * layers {
        return Err(Error::Shape(format!(
            "a {layers}-layer student cannot match a {}-layer teacher",
            teacher.scores.len()
        )));
    }
    let tokens = mask.sum_all()?.to_scalar::<f32>()? as f64;
    let hidden_size = student.hidden[0].dim(1)? as f64;
    let token_mask = mask.reshape((n * len, 1))?;
    let pair_mask = mask.reshape((n, 1, len, 1))?.broadcast_mul(&mask.reshape((n, 1, 1, len))?)?;
    let heads = student.scores[0].dim(1)? as f64;
    let pairs: f64 = mask.sum(1)?.to_vec1::<f32>()?.iter().map(|&l| (l as f64) * (l as f64)).sum();
    let mut loss = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu)?;
    for (j, s) in student.hidden.iter().enumerate() {
        loss = (loss + masked_mse(s, &teacher.hidden[j * k], &token_mask, tokens * hidden_size)?)?;
    }
    for (i, s) in student.scores.iter().enumerate() {
        loss = (loss + masked_mse(s, &teacher.scores[(i + 1) * k - 1], &pair_mask, pairs * heads)?)?;
    }
    Ok(loss)
}

/// MPCFormer's stage-2 loss: −Σ softmax(teacher) · log_softmax(student), averaged over the batch.
pub fn prediction_loss(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    let target = candle_nn::ops::softmax(teacher, D::Minus1)?;
    let log_p = candle_nn::ops::log_softmax(student, D::Minus1)?;
    Ok((target * log_p)?.sum(D::Minus1)?.mean_all()?.neg()?)
}

/// Examples as token ids with their labels.
#[derive(Clone, Debug, Default)]
pub struct Encoded {
    /// (tokens, label) per example.
    pub items: Vec<(Vec<u32>, usize)>,
    /// The padding token.
    pub pad: u32,
}

impl Encoded {
    /// Batch `indices` of this set.
    pub fn batch(&self, indices: &[usize]) -> Result<Batch> {
        let texts: Vec<(&[u32], usize)> = indices.iter().map(|&i| (&self.items[i].0[..], self.items[i].1)).collect();
        Batch::new(&texts, self.pad)
    }

    /// One epoch's batches, reproducibly from `seed`: shuffled, then grouped by length within
    /// windows of 50 batches (less padding: about half the work on tweets), in shuffled order.
    pub fn epoch_batches(&self, batch: usize, seed: u64) -> Vec<Vec<usize>> {
        let batch = batch.max(1);
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        mpc_io_std::dataset::shuffle(&mut order, seed);
        let mut batches = Vec::with_capacity(order.len().div_ceil(batch));
        for window in order.chunks_mut(batch * 50) {
            window.sort_by_key(|&i| self.items[i].0.len());
            batches.extend(window.chunks(batch).map(<[usize]>::to_vec));
        }
        mpc_io_std::dataset::shuffle(&mut batches, seed.rotate_left(17));
        batches
    }

    /// Accuracy of `model` on this set, in batches of `batch`.
    pub fn accuracy(&self, model: &Classifier, batch: usize) -> Result<f64> {
        if self.items.is_empty() {
            return Ok(0.0);
        }
        let mut correct = 0usize;
        // Texts of similar length together: less padding.
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_by_key(|&i| self.items[i].0.len());
        for chunk in order.chunks(batch.max(1)) {
            let predicted = model.predict(&self.batch(chunk)?)?;
            correct += chunk.iter().zip(predicted).filter(|&(&i, p)| self.items[i].1 == p as usize).count();
        }
        Ok(correct as f64 / self.items.len() as f64)
    }
}

/// What a stage did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StageReport {
    /// The stage.
    pub name: String,
    /// Steps taken (in total, across resumptions).
    pub steps: usize,
    /// Mean loss over the first 10 % of the steps.
    pub first_loss: f64,
    /// Mean loss over the last 10 % of the steps.
    pub last_loss: f64,
    /// Dev accuracy after each epoch.
    pub dev_accuracy: Vec<f64>,
    /// Training examples per second (over every run of the stage, dev evaluations included).
    pub examples_per_s: f64,
    /// Seconds of training (over every run of the stage).
    pub seconds: f64,
}

/// The resume record of a stage, beside `<name>.safetensors` (weights and optimiser moments).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Resume {
    /// Steps of the stage and examples per step: a record of another configuration is refused.
    total: usize,
    batch: usize,
    step: usize,
    losses: Vec<f64>,
    dev_accuracy: Vec<f64>,
    best_dev: Option<f64>,
    /// Training examples seen and seconds spent, over every run of the stage.
    examples: usize,
    seconds: f64,
}

/// How a stage reports and saves its progress.
#[derive(Clone, Debug)]
pub struct Run {
    /// Where the resume files go (created if missing).
    pub resume_dir: PathBuf,
    /// Save every this many steps.
    pub save_every: usize,
    /// Show a progress bar (or, off a terminal, a line every `log_every` steps).
    pub progress: bool,
    /// Steps between log lines off a terminal.
    pub log_every: usize,
    /// Seed of the per-epoch shuffles.
    pub seed: u64,
    /// Stop (after saving) once this many steps were taken in this call: a time-boxed run,
    /// continued by calling again.
    pub max_steps: Option<usize>,
}

fn resume_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.json")), dir.join(format!("{name}.safetensors")))
}

fn save_state(
    dir: &Path,
    name: &str,
    model: &Classifier,
    opt: &AdamW,
    best: Option<&crate::Params>,
    resume: &Resume,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors: HashMap<String, Tensor> =
        model.vars().iter().map(|(n, v)| (format!("model.{n}"), v.as_tensor().clone())).collect();
    opt.save_into(&mut tensors);
    if let Some(best) = best {
        for (n, p) in best.iter() {
            tensors.insert(format!("best.{n}"), Tensor::from_slice(&p.data, &p.shape[..], &Device::Cpu)?);
        }
    }
    let (json, weights) = resume_paths(dir, name);
    // Write to temporary names and rename: an interrupted save never leaves a torn checkpoint.
    let (tmp_json, tmp_weights) = (json.with_extension("json.tmp"), weights.with_extension("safetensors.tmp"));
    candle_core::safetensors::save(&tensors, &tmp_weights)?;
    let record = serde_json::to_vec(resume).map_err(|e| Error::Json(e.to_string()))?;
    std::fs::write(&tmp_json, record).map_err(|e| Error::io(&tmp_json, e))?;
    std::fs::rename(&tmp_weights, &weights).map_err(|e| Error::io(&weights, e))?;
    std::fs::rename(&tmp_json, &json).map_err(|e| Error::io(&json, e))?;
    Ok(())
}

fn params_with_prefix(tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<crate::Params> {
    let mut params = crate::Params::new();
    for (key, t) in tensors {
        if let Some(name) = key.strip_prefix(prefix) {
            params.insert(name.to_string(), t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?);
        }
    }
    Ok(params)
}

fn load_state(
    dir: &Path,
    name: &str,
    model: &Classifier,
    opt: &mut AdamW,
) -> Result<Option<(Resume, Option<crate::Params>)>> {
    let (json, weights) = resume_paths(dir, name);
    if !json.exists() {
        return Ok(None);
    }
    let record = std::fs::read(&json).map_err(|e| Error::io(&json, e))?;
    let resume: Resume =
        serde_json::from_slice(&record).map_err(|e| Error::Json(format!("{}: {e}", json.display())))?;
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)?;
    model.load_params(&params_with_prefix(&tensors, "model.")?)?;
    opt.restore(&tensors, resume.step);
    let best = params_with_prefix(&tensors, "best.")?;
    let has_best = best.iter().next().is_some();
    Ok(Some((resume, has_best.then_some(best))))
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

/// Trains `model` for one stage on `train` (against `teacher` for the distillation objectives),
/// resuming from `run.resume_dir` when a record of this stage is there, and evaluating on `dev`
/// after every epoch.
pub fn train(
    model: &Classifier,
    teacher: Option<&Classifier>,
    train: &Encoded,
    dev: &Encoded,
    stage: &Stage,
    run: &Run,
) -> Result<StageReport> {
    if train.items.is_empty() || stage.batch == 0 {
        return Err(Error::Shape("no training examples".into()));
    }
    if teacher.is_none() && stage.objective != Objective::Labels {
        return Err(Error::Shape(format!("stage `{}` needs a teacher", stage.name)));
    }
    let steps_per_epoch = train.items.len().div_ceil(stage.batch);
    let total = steps_per_epoch * stage.epochs;
    let mut opt = AdamW::default();
    let (mut resume, mut best) = match load_state(&run.resume_dir, &stage.name, model, &mut opt)? {
        Some((resume, _)) if (resume.total, resume.batch) != (total, stage.batch) => {
            return Err(Error::Resume(format!(
                "{} holds stage `{}` with {} steps of {}, this run has {total} of {}; remove it to start over",
                run.resume_dir.display(),
                stage.name,
                resume.total,
                resume.batch,
                stage.batch
            )));
        }
        Some((resume, best)) => (resume, best),
        None => (Resume { total, batch: stage.batch, ..Resume::default() }, None),
    };
    let bar = mpc_io_std::progress_bar(run.progress, total as u64, &stage.name);
    bar.set_position(resume.step as u64);
    let started = Instant::now();
    // Time not yet added to the record's total.
    let mut run_started = started;
    let (mut seen, mut recent) = (0usize, Vec::new());
    let stop_at = run.max_steps.map_or(total, |m| total.min(resume.step.saturating_add(m)));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    while resume.step < stop_at {
        let (epoch, at) = (resume.step / steps_per_epoch, resume.step % steps_per_epoch);
        if at == 0 || batches.is_empty() {
            batches = train.epoch_batches(stage.batch, run.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9));
        }
        let indices = &batches[at][..];
        let batch = train.batch(indices)?;
        let out = model.forward(&batch)?;
        let loss = match (stage.objective, teacher) {
            (Objective::Labels, _) => candle_nn::loss::cross_entropy(&out.logits, &batch.labels)?,
            (Objective::Intermediate, Some(t)) => intermediate_loss(&out, &t.forward(&batch)?, &batch.mask)?,
            (Objective::Prediction, Some(t)) => prediction_loss(&out.logits, &t.forward(&batch)?.logits)?,
            _ => unreachable!("checked above"),
        };
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            return Err(Error::Diverged { stage: stage.name.clone(), step: resume.step });
        }
        let grads = loss.backward()?;
        opt.step(model, &grads, stage.lr * stage.schedule.factor(resume.step, total))?;
        resume.step += 1;
        resume.losses.push(value);
        resume.examples += indices.len();
        recent.push(value);
        seen += indices.len();
        let rate = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("loss {:.4} · {rate:.1} ex/s", mean(&recent[recent.len().saturating_sub(20)..])));
        bar.inc(1);
        if bar.is_hidden() && run.progress && resume.step % run.log_every.max(1) == 0 {
            eprintln!("{} step {}/{total}: loss {:.4}, {rate:.1} ex/s", stage.name, resume.step, mean(&recent));
            recent.clear();
        }
        let epoch_done = resume.step % steps_per_epoch == 0;
        if epoch_done {
            let accuracy = dev.accuracy(model, 64)?;
            resume.dev_accuracy.push(accuracy);
            if run.progress {
                bar.println(format!("{} epoch {}: dev accuracy {:.4}", stage.name, epoch + 1, accuracy));
                if bar.is_hidden() {
                    eprintln!("{} epoch {}: dev accuracy {accuracy:.4}", stage.name, epoch + 1);
                }
            }
            if stage.keep_best && resume.best_dev.is_none_or(|b| accuracy > b) {
                resume.best_dev = Some(accuracy);
                best = Some(model.to_params()?);
            }
        }
        if epoch_done || resume.step % run.save_every.max(1) == 0 || resume.step == stop_at {
            resume.seconds += run_started.elapsed().as_secs_f64();
            run_started = Instant::now();
            save_state(&run.resume_dir, &stage.name, model, &opt, best.as_ref(), &resume)?;
        }
    }
    bar.finish_and_clear();
    if resume.step < total {
        return Err(Error::Paused { stage: stage.name.clone(), step: resume.step, total });
    }
    if let Some(best) = &best {
        model.load_params(best)?;
    }
    let seconds = resume.seconds + run_started.elapsed().as_secs_f64();
    let tenth = (resume.losses.len() / 10).max(1);
    Ok(StageReport {
        name: stage.name.clone(),
        steps: resume.step,
        first_loss: mean(&resume.losses[..tenth.min(resume.losses.len())]),
        last_loss: mean(&resume.losses[resume.losses.len().saturating_sub(tenth)..]),
        dev_accuracy: resume.dev_accuracy,
        examples_per_s: resume.examples as f64 / seconds.max(1e-9),
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_transformer::{BertConfig, Params, Preset};

    #[test]
    fn warmup_linear_rises_then_falls_to_zero() {
        let s = Schedule::WarmupLinear(0.1);
        assert_eq!(s.factor(0, 100), 0.0);
        assert!((s.factor(5, 100) - 0.5).abs() < 1e-12);
        assert!((s.factor(10, 100) - 1.0).abs() < 1e-12);
        assert!((s.factor(55, 100) - 0.5).abs() < 1e-12);
        assert_eq!(s.factor(100, 100), 0.0);
        assert_eq!(Schedule::Constant.factor(7, 10), 1.0);
    }

    /// A task a 1-layer model learns: label 1 when token 5 occurs.
    fn toy_task(n: usize, seed: u64) -> Encoded {
        let mut state = seed;
        let mut next = move |m: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        let items = (0..n)
            .map(|_| {
                let len = 3 + next(6) as usize;
                let mut tokens: Vec<u32> = (0..len).map(|_| 6 + next(14) as u32).collect();
                let label = next(2) as usize;
                if label == 1 {
                    let at = next(len as u64) as usize;
                    tokens[at] = 5;
                }
                tokens.insert(0, 1);
                (tokens, label)
            })
            .collect();
        Encoded { items, pad: 0 }
    }

    fn toy_model(preset: Preset) -> Classifier {
        let mut config = BertConfig::tiny(1, 16, 2, 20);
        config.num_labels = Some(2);
        Classifier::new(&config, preset, &Params::random(&config, 3), 2, 4).unwrap()
    }

    fn run(dir: &Path, max_steps: Option<usize>) -> Run {
        Run { resume_dir: dir.to_path_buf(), save_every: 3, progress: false, log_every: 10, seed: 1, max_steps }
    }

    fn stage(objective: Objective, epochs: usize, lr: f64) -> Stage {
        Stage {
            name: format!("{objective:?}"),
            objective,
            epochs,
            lr,
            schedule: Schedule::WarmupLinear(0.1),
            batch: 16,
            keep_best: objective != Objective::Intermediate,
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mpc-distill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn training_on_labels_learns_a_learnable_task() {
        let (train_set, dev) = (toy_task(512, 1), toy_task(128, 2));
        let model = toy_model(Preset::ALL[0]);
        let before = dev.accuracy(&model, 64).unwrap();
        let dir = temp("learn");
        let report =
            train(&model, None, &train_set, &dev, &stage(Objective::Labels, 6, 3e-3), &run(&dir, None)).unwrap();
        let after = dev.accuracy(&model, 64).unwrap();
        assert!(report.last_loss < 0.5 * report.first_loss, "{report:?}");
        assert!(after > 0.9 && after > before + 0.2, "dev accuracy {before} -> {after}");
        assert_eq!(report.dev_accuracy.len(), 6);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn distillation_moves_a_quad_student_towards_its_teacher() {
        let (train_set, dev) = (toy_task(256, 3), toy_task(64, 4));
        let teacher = toy_model(Preset::ALL[0]);
        let dir = temp("teacher");
        train(&teacher, None, &train_set, &dev, &stage(Objective::Labels, 4, 3e-3), &run(&dir, None)).unwrap();
        let names: Vec<String> = teacher.vars().keys().cloned().collect();
        let mut teacher = teacher;
        teacher.freeze(names.iter().map(String::as_str));
        let quad = Preset::parse("quad+2quad").unwrap();
        let student = Classifier::new(teacher.config(), quad, &teacher.to_params().unwrap(), 2, 0).unwrap();
        let batch = dev.batch(&(0..64).collect::<Vec<_>>()).unwrap();
        // The teacher's answers and weights before the student learns from it.
        let teacher_logits = teacher.forward(&batch).unwrap().logits.to_vec2::<f32>().unwrap();
        let teacher_weights = teacher.to_params().unwrap();
        let gap = |s: &Classifier| -> f64 {
            let (a, b) = (s.forward(&batch).unwrap(), teacher.forward(&batch).unwrap());
            intermediate_loss(&a, &b, &batch.mask).unwrap().to_scalar::<f32>().unwrap() as f64
        };
        let before = gap(&student);
        let s1 = train(
            &student,
            Some(&teacher),
            &train_set,
            &dev,
            &stage(Objective::Intermediate, 2, 1e-3),
            &run(&dir, None),
        )
        .unwrap();
        assert!(gap(&student) < 0.5 * before, "stage 1: {before} -> {}", gap(&student));
        assert!(s1.last_loss < s1.first_loss);
        let s2 =
            train(&student, Some(&teacher), &train_set, &dev, &stage(Objective::Prediction, 2, 1e-3), &run(&dir, None))
                .unwrap();
        assert!(s2.last_loss <= s2.first_loss + 1e-6, "{s2:?}");
        // The teacher never moved: the same answers and the same weights as before both stages.
        assert_eq!(teacher.forward(&batch).unwrap().logits.to_vec2::<f32>().unwrap(), teacher_logits);
        let after = teacher.to_params().unwrap();
        for (name, p) in teacher_weights.iter() {
            assert_eq!(after.get(name, &p.shape).unwrap(), &p.data[..], "{name} moved");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_paused_stage_resumes_to_the_same_weights() {
        let (train_set, dev) = (toy_task(160, 5), toy_task(32, 6));
        let spec = stage(Objective::Labels, 2, 3e-3);
        let whole = toy_model(Preset::ALL[1]);
        let dir = temp("whole");
        train(&whole, None, &train_set, &dev, &spec, &run(&dir, None)).unwrap();
        let paused = toy_model(Preset::ALL[1]);
        let dir2 = temp("paused");
        let err = train(&paused, None, &train_set, &dev, &spec, &run(&dir2, Some(7))).unwrap_err();
        assert!(matches!(err, Error::Paused { step: 7, total: 20, .. }), "{err}");
        // A fresh process: new weights, everything from the resume files.
        let resumed = toy_model(Preset::ALL[1]);
        let report = train(&resumed, None, &train_set, &dev, &spec, &run(&dir2, None)).unwrap();
        assert_eq!(report.steps, 20);
        let (a, b) = (whole.to_params().unwrap(), resumed.to_params().unwrap());
        for ((name, x), (_, y)) in a.iter().zip(b.iter()) {
            let diff = x.data.iter().zip(&y.data).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-5, "{name} differs by {diff}");
        }
        // A finished stage is not trained again; a record of another configuration is refused.
        let again = train(&resumed, None, &train_set, &dev, &spec, &run(&dir2, None)).unwrap();
        assert_eq!(again.steps, 20);
        let other = Stage { batch: 8, ..spec };
        assert!(matches!(train(&resumed, None, &train_set, &dev, &other, &run(&dir2, None)), Err(Error::Resume(_))));
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir2).unwrap();
    }

    #[test]
    fn intermediate_loss_ignores_padding_only() {
        let model = toy_model(Preset::ALL[0]);
        let batch = Batch::new(&[(&[1, 6, 7][..], 0), (&[1, 8][..], 1)], 0).unwrap();
        let out = model.forward(&batch).unwrap();
        let same = model.forward(&batch).unwrap();
        let zero = intermediate_loss(&out, &same, &batch.mask).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(zero, 0.0);
        // Changing the padded token (second text, position 2) changes nothing that is compared.
        let repadded = Batch { ids: Tensor::new(&[[1u32, 6, 7], [1, 8, 13]], &Device::Cpu).unwrap(), ..batch.clone() };
        let other = model.forward(&repadded).unwrap();
        let masked = intermediate_loss(&out, &other, &batch.mask).unwrap().to_scalar::<f32>().unwrap();
        assert!(masked.abs() < 1e-10, "{masked}");
        let changed = Batch { ids: Tensor::new(&[[1u32, 6, 9], [1, 8, 0]], &Device::Cpu).unwrap(), ..batch.clone() };
        let moved = model.forward(&changed).unwrap();
        assert!(intermediate_loss(&out, &moved, &batch.mask).unwrap().to_scalar::<f32>().unwrap() > 0.0);
        let p = prediction_loss(&out.logits, &out.logits).unwrap().to_scalar::<f32>().unwrap();
        let q = prediction_loss(&moved.logits, &out.logits).unwrap().to_scalar::<f32>().unwrap();
        assert!(q > p, "the soft cross-entropy is smallest at the teacher's logits: {p} vs {q}");
    }
}
