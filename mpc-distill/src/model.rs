//! A BERT-family classifier in candle, with MPCFormer's approximations swapped in, that returns
//! what distillation compares: logits, every hidden state and every layer's attention scores.
//!
//! It computes exactly what [`mpc_transformer::Encoder`] computes for the same preset (the same
//! Quad, the same masked 2Quad / 2ReLU, real LayerNorm), so a student trained here is the student
//! the MPC engine runs.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::{D, DType, Device, Tensor, Var};
use mpc_transformer::{Activation, BertConfig, Normaliser, Params, Preset};

use crate::Result;

/// MPCFormer's 2Quad shift: (s + 5)².
const TWO_QUAD_SHIFT: f64 = 5.0;
/// 2ReLU's guard against an empty row: relu(s) / (Σ relu(s) + ε). MPCFormer's training code adds
/// ε/L to each entry (a row of negative scores becomes uniform), but neither its MPC benchmark nor
/// ours can compute that (such a row gives zeros), so we train what runs.
const TWO_RELU_EPS: f64 = 1e-12;

/// A tokenized batch, padded to its longest text.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Token ids, `[batch, len]` (u32).
    pub ids: Tensor,
    /// 1 for a token, 0 for padding, `[batch, len]` (f32).
    pub mask: Tensor,
    /// Gold labels, `[batch]` (u32).
    pub labels: Tensor,
}

impl Batch {
    /// Pads `texts` (token ids with their label) into one batch on the CPU.
    pub fn new(texts: &[(&[u32], usize)], pad: u32) -> Result<Self> {
        let len = texts.iter().map(|(t, _)| t.len()).max().unwrap_or(1).max(1);
        let mut ids = Vec::with_capacity(texts.len() * len);
        let mut mask = Vec::with_capacity(texts.len() * len);
        for (tokens, _) in texts {
            ids.extend(tokens.iter().copied().chain(std::iter::repeat_n(pad, len - tokens.len())));
            mask.extend((0..len).map(|i| if i < tokens.len() { 1f32 } else { 0.0 }));
        }
        let labels: Vec<u32> = texts.iter().map(|&(_, l)| l as u32).collect();
        let shape = (texts.len(), len);
        Ok(Self {
            ids: Tensor::from_vec(ids, shape, &Device::Cpu)?,
            mask: Tensor::from_vec(mask, shape, &Device::Cpu)?,
            labels: Tensor::from_vec(labels, texts.len(), &Device::Cpu)?,
        })
    }
}

/// What one forward pass returns.
#[derive(Debug)]
pub struct Outputs {
    /// `[batch, labels]`.
    pub logits: Tensor,
    /// The embedding output and every layer's output, each `[batch · len, hidden]`.
    pub hidden: Vec<Tensor>,
    /// Every layer's pre-normaliser attention scores QKᵀ/√d, `[batch, heads, len, len]`.
    pub scores: Vec<Tensor>,
}

/// A trainable BERT-family sequence classifier.
#[derive(Debug)]
pub struct Classifier {
    config: BertConfig,
    preset: Preset,
    vars: BTreeMap<String, Var>,
    frozen: BTreeSet<String>,
}

/// Names of the tensors of a classifier with `config`'s shape, with their shapes
/// (PyTorch layout: linear weights are `[out, in]`).
pub fn tensor_shapes(config: &BertConfig, labels: usize) -> Vec<(String, Vec<usize>)> {
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let mut shapes = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![config.vocab_size, h]),
        ("embeddings.position_embeddings.weight".to_string(), vec![config.max_position_embeddings, h]),
        ("embeddings.token_type_embeddings.weight".to_string(), vec![config.type_vocab_size, h]),
        ("embeddings.LayerNorm.weight".to_string(), vec![h]),
        ("embeddings.LayerNorm.bias".to_string(), vec![h]),
    ];
    let mut linear = |name: String, out: usize, inp: usize| {
        shapes.push((format!("{name}.weight"), vec![out, inp]));
        shapes.push((format!("{name}.bias"), vec![out]));
    };
    for l in 0..config.num_hidden_layers {
        let pre = format!("encoder.layer.{l}");
        for part in ["query", "key", "value"] {
            linear(format!("{pre}.attention.self.{part}"), h, h);
        }
        linear(format!("{pre}.attention.output.dense"), h, h);
        linear(format!("{pre}.intermediate.dense"), i, h);
        linear(format!("{pre}.output.dense"), h, i);
    }
    linear("pooler.dense".to_string(), h, h);
    linear("classifier".to_string(), labels, h);
    for l in 0..config.num_hidden_layers {
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("encoder.layer.{l}.{norm}.weight"), vec![h]));
            shapes.push((format!("encoder.layer.{l}.{norm}.bias"), vec![h]));
        }
    }
    shapes
}

impl Classifier {
    /// A classifier with `labels` outputs from `params` (a BERT checkpoint, with or without a
    /// head); tensors it lacks (the classifier, perhaps the pooler) start from BERT's
    /// initialisation ([`Params::random`] with `seed`).
    pub fn new(config: &BertConfig, preset: Preset, params: &Params, labels: usize, seed: u64) -> Result<Self> {
        let mut config = config.clone();
        config.num_labels = Some(labels);
        let mut vars = BTreeMap::new();
        // BERT's initialisation for what `params` lacks, made only when something is missing.
        let mut fallback: Option<Params> = None;
        for (name, shape) in tensor_shapes(&config, labels) {
            let data = match params.get(&name, &shape) {
                Ok(data) => data.to_vec(),
                Err(e) if params.contains(&name) => return Err(crate::Error::Shape(e.to_string())),
                Err(_) => {
                    let fallback = fallback.get_or_insert_with(|| Params::random(&config, seed));
                    fallback.get(&name, &shape).map_err(|e| crate::Error::Shape(e.to_string()))?.to_vec()
                }
            };
            vars.insert(name, Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu)?)?);
        }
        Ok(Self { config, preset, vars, frozen: BTreeSet::new() })
    }

    /// The configuration (with `num_labels` set).
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The approximations the forward pass uses.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The same weights under another preset (a student initialised from its teacher).
    pub fn with_preset(mut self, preset: Preset) -> Self {
        self.preset = preset;
        self
    }

    /// Keeps the tensors named in `names` fixed: gradients neither flow into them nor update them.
    pub fn freeze<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.frozen.extend(names.into_iter().map(str::to_string));
    }

    /// The tensors training updates, by name.
    pub fn trainable(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter().filter(|(n, _)| !self.frozen.contains(*n))
    }

    /// Every tensor, by name.
    pub fn vars(&self) -> &BTreeMap<String, Var> {
        &self.vars
    }

    /// A deep copy with its own storage (a frozen teacher, or the best checkpoint so far).
    pub fn snapshot(&self) -> Result<Self> {
        let mut vars = BTreeMap::new();
        for (name, var) in &self.vars {
            vars.insert(name.clone(), Var::from_tensor(&var.as_tensor().copy()?)?);
        }
        Ok(Self { config: self.config.clone(), preset: self.preset, vars, frozen: self.frozen.clone() })
    }

    /// The weights as [`Params`] (for export, or for the MPC encoder).
    pub fn to_params(&self) -> Result<Params> {
        let mut params = Params::new();
        for (name, var) in &self.vars {
            let t = var.as_tensor();
            params.insert(name.clone(), t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(params)
    }

    /// Overwrites the weights with those of `params` (same names and shapes).
    pub fn load_params(&self, params: &Params) -> Result<()> {
        for (name, var) in &self.vars {
            let data = params.get(name, var.dims()).map_err(|e| crate::Error::Shape(e.to_string()))?;
            var.set(&Tensor::from_slice(data, var.dims(), &Device::Cpu)?)?;
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Tensor> {
        let var = self.vars.get(name).ok_or_else(|| crate::Error::Shape(format!("no tensor `{name}`")))?;
        // A frozen tensor is detached so that backpropagation does not even compute its gradient.
        Ok(if self.frozen.contains(name) { var.as_tensor().detach() } else { var.as_tensor().clone() })
    }

    /// x · Wᵀ + b for x of shape `[n, in]`.
    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let w = self.get(&format!("{name}.weight"))?;
        let b = self.get(&format!("{name}.bias"))?;
        Ok(x.matmul(&w.t()?)?.broadcast_add(&b)?)
    }

    /// LayerNorm over the last axis (written with differentiable primitives).
    fn layer_norm(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.config.layer_norm_eps)?.sqrt()?)?;
        let gamma = self.get(&format!("{name}.weight"))?;
        let beta = self.get(&format!("{name}.bias"))?;
        Ok(normed.broadcast_mul(&gamma)?.broadcast_add(&beta)?)
    }

    fn activation(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.preset.activation {
            Activation::Gelu => x.gelu_erf()?,
            // 0.125x² + 0.25x + 0.5.
            Activation::Quad => ((x.sqr()? * 0.125)? + (x * 0.25)?)?.affine(1.0, 0.5)?,
            Activation::Relu => x.relu()?,
        })
    }

    /// The attention normaliser over the keys, `key_mask` of shape `[batch, 1, 1, len]`.
    fn normalise(&self, scores: &Tensor, key_mask: &Tensor) -> Result<Tensor> {
        Ok(match self.preset.attention {
            Normaliser::Softmax => {
                let s = scores.broadcast_add(&key_mask.affine(1e4, -1e4)?)?;
                // Shifting by the (detached) row maximum changes nothing mathematically.
                let e = s.broadcast_sub(&s.max_keepdim(D::Minus1)?.detach())?.exp()?;
                e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?
            }
            Normaliser::TwoQuad => {
                let q = (scores + TWO_QUAD_SHIFT)?.sqr()?.broadcast_mul(key_mask)?;
                q.broadcast_div(&q.sum_keepdim(D::Minus1)?)?
            }
            Normaliser::TwoRelu => {
                let r = scores.relu()?.broadcast_mul(key_mask)?;
                r.broadcast_div(&(r.sum_keepdim(D::Minus1)? + TWO_RELU_EPS)?)?
            }
        })
    }

    /// The forward pass on a batch.
    pub fn forward(&self, batch: &Batch) -> Result<Outputs> {
        let c = &self.config;
        let (n, len) = batch.ids.dims2()?;
        let (h, heads) = (c.hidden_size, c.num_attention_heads);
        let d = c.head_dim();
        let offset = c.position_offset();
        if len + offset > c.max_position_embeddings {
            return Err(crate::Error::Shape(format!("{len} tokens, the model holds {}", c.max_position_embeddings)));
        }
        let word = self.get("embeddings.word_embeddings.weight")?.embedding(&batch.ids.flatten_all()?)?;
        let positions = self.get("embeddings.position_embeddings.weight")?.narrow(0, offset, len)?;
        let positions = positions.unsqueeze(0)?.broadcast_as((n, len, h))?.reshape((n * len, h))?;
        let segment = self.get("embeddings.token_type_embeddings.weight")?.narrow(0, 0, 1)?;
        let mut x = self.layer_norm(&(word + positions)?.broadcast_add(&segment)?, "embeddings.LayerNorm")?;
        let key_mask = batch.mask.reshape((n, 1, 1, len))?;
        let mut hidden = vec![x.clone()];
        let mut scores = Vec::with_capacity(c.num_hidden_layers);
        let split_heads =
            |t: Tensor| -> Result<Tensor> { Ok(t.reshape((n, len, heads, d))?.transpose(1, 2)?.contiguous()?) };
        for l in 0..c.num_hidden_layers {
            let pre = format!("encoder.layer.{l}");
            let q = split_heads(self.linear(&x, &format!("{pre}.attention.self.query"))?)?;
            let k = split_heads(self.linear(&x, &format!("{pre}.attention.self.key"))?)?;
            let v = split_heads(self.linear(&x, &format!("{pre}.attention.self.value"))?)?;
            let s = (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?;
            let p = self.normalise(&s, &key_mask)?;
            scores.push(s);
            let context = p.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((n * len, h))?;
            let attended = (self.linear(&context, &format!("{pre}.attention.output.dense"))? + &x)?;
            let a = self.layer_norm(&attended, &format!("{pre}.attention.output.LayerNorm"))?;
            let f = self.activation(&self.linear(&a, &format!("{pre}.intermediate.dense"))?)?;
            let out = (self.linear(&f, &format!("{pre}.output.dense"))? + &a)?;
            x = self.layer_norm(&out, &format!("{pre}.output.LayerNorm"))?;
            hidden.push(x.clone());
        }
        let first = x.reshape((n, len, h))?.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.linear(&first, "pooler.dense")?.tanh()?;
        let logits = self.linear(&pooled, "classifier")?;
        Ok(Outputs { logits, hidden, scores })
    }

    /// Predicted labels of a batch.
    pub fn predict(&self, batch: &Batch) -> Result<Vec<u32>> {
        Ok(self.forward(batch)?.logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_nn::Plain;
    use mpc_transformer::{Encoder, Unobserved};

    #[test]
    fn the_classifier_computes_what_the_mpc_encoder_computes_for_every_preset() {
        let mut config = BertConfig::tiny(2, 32, 4, 50);
        config.num_labels = Some(3);
        // Large weights: scores far from zero, where the approximations differ most.
        let params = Params::random_with_std(&config, 5, 0.2);
        let texts: [&[u32]; 2] = [&[1, 7, 9, 3, 2, 11], &[4, 5, 6]];
        let batch = Batch::new(&[(texts[0], 0), (texts[1], 1)], 0).unwrap();
        for preset in Preset::ALL {
            let model = Classifier::new(&config, preset, &params, 3, 0).unwrap();
            let logits = model.forward(&batch).unwrap().logits.to_vec2::<f32>().unwrap();
            for (tokens, ours) in texts.iter().zip(&logits) {
                let mut plain = Plain::<f64>::new();
                let encoder = Encoder::load(&mut plain, &config, preset, Some(&params), None).unwrap();
                let mask = vec![1.0; tokens.len()];
                let theirs = encoder.forward(&mut plain, Some(tokens), &mask, &mut Unobserved).unwrap();
                for (a, b) in ours.iter().zip(theirs.iter()) {
                    assert!((*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()), "{preset}: {ours:?} vs {theirs:?}");
                }
            }
        }
    }

    #[test]
    fn missing_head_tensors_are_initialised_and_wrong_shapes_refused() {
        let config = BertConfig::tiny(1, 16, 2, 20);
        let params = Params::random(&config, 1);
        assert!(!params.contains("classifier.weight"));
        let model = Classifier::new(&config, Preset::ALL[0], &params, 2, 9).unwrap();
        assert_eq!(model.vars()["classifier.weight"].dims(), [2, 16]);
        let mut bad = params.clone();
        bad.insert("pooler.dense.bias", vec![3], vec![0.0; 3]);
        assert!(matches!(Classifier::new(&config, Preset::ALL[0], &bad, 2, 9), Err(crate::Error::Shape(_))));
    }

    #[test]
    fn exported_params_round_trip() {
        let mut config = BertConfig::tiny(1, 16, 2, 20);
        config.num_labels = Some(2);
        let model = Classifier::new(&config, Preset::ALL[1], &Params::random(&config, 2), 2, 0).unwrap();
        let other = Classifier::new(&config, Preset::ALL[1], &Params::random(&config, 3), 2, 0).unwrap();
        other.load_params(&model.to_params().unwrap()).unwrap();
        let batch = Batch::new(&[(&[1, 2, 3][..], 0)], 0).unwrap();
        let a = model.forward(&batch).unwrap().logits.to_vec2::<f32>().unwrap();
        let b = other.forward(&batch).unwrap().logits.to_vec2::<f32>().unwrap();
        assert_eq!(a, b);
    }
}
