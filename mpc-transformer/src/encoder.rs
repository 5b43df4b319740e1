//! The BERT-family encoder, written once over any [`Backend`].
//!
//! Layout: activations are row-major `tokens × width` vectors. P1's token ids stay private: the
//! embedding multiplies P1's one-hot rows by the table, P1 sending them masked one way
//! (`tokens × vocab` ring elements, 31 MB at 128 tokens and BERT's 30,522-word vocabulary, in
//! both weight modes; CrypTen's secret one-hot matmul opens that from each party plus the whole
//! table). Positions and segment are public, so their rows are added locally.

use alloc::format;
use alloc::vec::Vec;

use mpc_nn::backend::broadcast_values;
use mpc_nn::core::Error;
use mpc_nn::core::transport::Role;
use mpc_nn::layers::{Embedding, LayerNorm, Linear, Matrix, MultiHead};
use mpc_nn::{Backend, Tensor};

use crate::config::BertConfig;
use crate::params::{ParamError, Params};
use crate::preset::Preset;

/// Why a model could not be loaded or run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelError {
    /// The configuration is unusable.
    Config(&'static str),
    /// A parameter is missing or mis-shaped.
    Param(ParamError),
    /// The computation failed (a peer, a shape, the preprocessing).
    Backend(Error),
    /// A token id is outside the vocabulary.
    Token(u32),
    /// The input is longer than the position table.
    TooLong {
        /// Tokens given.
        tokens: usize,
        /// Tokens the model takes.
        max: usize,
    },
}

impl From<Error> for ModelError {
    fn from(e: Error) -> Self {
        ModelError::Backend(e)
    }
}

impl From<ParamError> for ModelError {
    fn from(e: ParamError) -> Self {
        ModelError::Param(e)
    }
}

impl core::fmt::Display for ModelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ModelError::Config(what) => write!(f, "configuration: {what}"),
            ModelError::Param(e) => write!(f, "parameters: {e}"),
            ModelError::Backend(e) => write!(f, "computation: {e}"),
            ModelError::Token(t) => write!(f, "token id {t} is outside the vocabulary"),
            ModelError::TooLong { tokens, max } => write!(f, "{tokens} tokens, the model takes at most {max}"),
        }
    }
}

impl core::error::Error for ModelError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ModelError::Param(e) => Some(e),
            ModelError::Backend(e) => Some(e),
            _ => None,
        }
    }
}

/// The stages whose cost is reported apart, as MPCFormer reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Token, position and segment embeddings.
    Embed,
    /// Every linear layer and the attention products Q·Kᵀ and P·V.
    Linear,
    /// The attention normaliser (softmax, 2Quad or 2ReLU).
    Softmax,
    /// The feed-forward activation (and the pooler's tanh).
    Activation,
    /// LayerNorm and the residual additions.
    Norm,
}

impl Bucket {
    /// Every bucket.
    pub const ALL: [Bucket; 5] = [Bucket::Embed, Bucket::Linear, Bucket::Softmax, Bucket::Activation, Bucket::Norm];

    /// The bucket's lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Bucket::Embed => "embed",
            Bucket::Linear => "linear",
            Bucket::Softmax => "softmax",
            Bucket::Activation => "activation",
            Bucket::Norm => "norm",
        }
    }
}

/// Watches a forward pass: told when each stage starts and ends (to time and meter it) and when
/// each layer is done (to show progress).
pub trait Observer<B: Backend + ?Sized> {
    /// A stage of `bucket` starts.
    fn enter(&mut self, _backend: &B, _bucket: Bucket) {}
    /// The stage ends.
    fn leave(&mut self, _backend: &B, _bucket: Bucket) {}
    /// Layer `index` (of `total`) is done.
    fn layer_done(&mut self, _index: usize, _total: usize) {}
}

/// An observer that watches nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unobserved;

impl<B: Backend + ?Sized> Observer<B> for Unobserved {}

/// What the encoder returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// Classification logits: tanh pooler on the first token, then a linear layer.
    Classifier {
        /// Number of labels.
        labels: usize,
    },
    /// The mean of the last hidden states over the unmasked tokens (sentence embeddings).
    MeanPool,
}

struct Layer<B: Backend> {
    qkv: Linear<B>,
    attention_out: Linear<B>,
    attention_norm: LayerNorm<B>,
    ffn_in: Linear<B>,
    ffn_out: Linear<B>,
    ffn_norm: LayerNorm<B>,
}

/// A loaded encoder: its weights prepared in the backend, ready for forward passes.
pub struct Encoder<B: Backend> {
    config: BertConfig,
    preset: Preset,
    head: Head,
    word_embeddings: Embedding<B>,
    positions: B::Vector,
    segment: B::Vector,
    embedding_norm: LayerNorm<B>,
    layers: Vec<Layer<B>>,
    pooler: Option<Linear<B>>,
    classifier: Option<Linear<B>>,
}

impl<B: Backend> core::fmt::Debug for Encoder<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encoder")
            .field("layers", &self.layers.len())
            .field("hidden", &self.config.hidden_size)
            .field("preset", &self.preset)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// A linear layer's weight (`in × out`, row-major) and bias, as f64.
type DenseF64 = (Vec<f64>, Vec<f64>);

/// Reads parameters at the model owner; elsewhere, knows only their shapes.
struct Source<'a> {
    params: Option<&'a Params>,
}

impl Source<'_> {
    /// `name` (shape `shape`) times `scale`, as f64, at the owner; `None` elsewhere.
    fn get(&self, name: &str, shape: &[usize], scale: f64) -> Result<Option<Vec<f64>>, ParamError> {
        match self.params {
            None => Ok(None),
            Some(p) => Ok(Some(p.get(name, shape)?.iter().map(|&v| v as f64 * scale).collect())),
        }
    }

    /// A linear layer `name` (PyTorch's `[out, in]`), transposed to `in × out`, times `scale`.
    fn linear(&self, name: &str, out: usize, inp: usize, scale: f64) -> Result<Option<DenseF64>, ParamError> {
        self.linears(&[(name, scale)], out, inp)
    }

    /// Linear layers side by side (each PyTorch's `[out, in]`, times its scale): one
    /// `in × (parts·out)` weight whose columns are the parts' in order, and their biases
    /// concatenated. Written in one pass from the stored f32 values (a model's weights are the
    /// largest thing the owner loads: no intermediate copies).
    fn linears(&self, parts: &[(&str, f64)], out: usize, inp: usize) -> Result<Option<DenseF64>, ParamError> {
        let Some(p) = self.params else { return Ok(None) };
        let width = parts.len() * out;
        let mut w = alloc::vec![0.0; inp * width];
        let mut bias = Vec::with_capacity(width);
        for (i, &(name, scale)) in parts.iter().enumerate() {
            let stored = p.get(&format!("{name}.weight"), &[out, inp])?;
            transpose_into(stored, out, inp, scale, &mut w, width, i * out);
            bias.extend(p.get(&format!("{name}.bias"), &[out])?.iter().map(|&v| v as f64 * scale));
        }
        Ok(Some((w, bias)))
    }
}

/// Writes `x` (`rows × cols`, row-major) transposed and times `scale` into `out`, whose rows are
/// `stride` wide, starting at column `offset`: out[c·stride + offset + r] = x[r·cols + c]·scale.
/// In square tiles, so that neither side is read or written a whole row apart at every step.
fn transpose_into(x: &[f32], rows: usize, cols: usize, scale: f64, out: &mut [f64], stride: usize, offset: usize) {
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for c in c0..(c0 + TILE).min(cols) {
                let row = &mut out[c * stride + offset..];
                for r in r0..(r0 + TILE).min(rows) {
                    row[r] = x[r * cols + c] as f64 * scale;
                }
            }
        }
    }
}

fn transpose<T: Copy>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols).flat_map(|c| (0..rows).map(move |r| x[r * cols + c])).collect()
}

fn load_linear<B: Backend>(
    b: &mut B,
    src: &Source<'_>,
    name: &str,
    out: usize,
    inp: usize,
) -> Result<Linear<B>, ModelError> {
    let wb = src.linear(name, out, inp, 1.0)?;
    Ok(Linear::load(b, wb, inp, out)?)
}

fn load_norm<B: Backend>(
    b: &mut B,
    src: &Source<'_>,
    name: &str,
    h: usize,
    eps: f64,
) -> Result<LayerNorm<B>, ModelError> {
    let gamma = src.get(&format!("{name}.weight"), &[h], 1.0)?;
    let beta = src.get(&format!("{name}.bias"), &[h], 1.0)?;
    let params = gamma.as_deref().zip(beta.as_deref());
    Ok(LayerNorm::load(b, params, h, eps)?)
}

/// Q, K and V as one `h × 3h` layer (one opening of the input for all three), with 1/√d folded
/// into Q so that the scores need no scaling.
fn load_qkv<B: Backend>(b: &mut B, src: &Source<'_>, pre: &str, config: &BertConfig) -> Result<Linear<B>, ModelError> {
    let h = config.hidden_size;
    let scale = 1.0 / libm::sqrt(config.head_dim() as f64);
    let names = ["query", "key", "value"].map(|part| format!("{pre}.attention.self.{part}"));
    let parts = [(&names[0][..], scale), (&names[1][..], 1.0), (&names[2][..], 1.0)];
    let fused = src.linears(&parts, h, h)?;
    Ok(Linear::load(b, fused, h, 3 * h)?)
}

impl<B: Backend> Encoder<B> {
    /// Loads the model: `params` at the model owner (P0, or a single-party backend), `None` at
    /// P1, which knows only the public configuration. `layers` limits the depth (benchmarks).
    pub fn load(
        b: &mut B,
        config: &BertConfig,
        preset: Preset,
        params: Option<&Params>,
        layers: Option<usize>,
    ) -> Result<Self, ModelError> {
        config.validate().map_err(ModelError::Config)?;
        let src = Source { params };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let head = match config.num_labels {
            Some(labels) => Head::Classifier { labels },
            None => Head::MeanPool,
        };
        let eps = config.layer_norm_eps;
        let word = src.get("embeddings.word_embeddings.weight", &[config.vocab_size, h], 1.0)?;
        let word_embeddings = Embedding::load(b, word, config.vocab_size, h)?;
        let positions = src.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h], 1.0)?;
        let positions = b.input(Role::P0, positions.as_deref(), config.max_position_embeddings * h)?;
        let segments = src.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h], 1.0)?;
        let segment = b.input(Role::P0, segments.as_ref().map(|s| &s[..h]), h)?;
        let embedding_norm = load_norm(b, &src, "embeddings.LayerNorm", h, eps)?;
        let depth = layers.unwrap_or(config.num_hidden_layers).min(config.num_hidden_layers);
        let mut loaded = Vec::with_capacity(depth);
        for l in 0..depth {
            let pre = format!("encoder.layer.{l}");
            loaded.push(Layer {
                qkv: load_qkv(b, &src, &pre, config)?,
                attention_out: load_linear(b, &src, &format!("{pre}.attention.output.dense"), h, h)?,
                attention_norm: load_norm(b, &src, &format!("{pre}.attention.output.LayerNorm"), h, eps)?,
                ffn_in: load_linear(b, &src, &format!("{pre}.intermediate.dense"), i, h)?,
                ffn_out: load_linear(b, &src, &format!("{pre}.output.dense"), h, i)?,
                ffn_norm: load_norm(b, &src, &format!("{pre}.output.LayerNorm"), h, eps)?,
            });
        }
        let (pooler, classifier) = match head {
            Head::Classifier { labels } => (
                Some(load_linear(b, &src, "pooler.dense", h, h)?),
                Some(load_linear(b, &src, "classifier", labels, h)?),
            ),
            Head::MeanPool => (None, None),
        };
        Ok(Self {
            config: config.clone(),
            preset,
            head,
            word_embeddings,
            positions,
            segment,
            embedding_norm,
            layers: loaded,
            pooler,
            classifier,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The approximation preset.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// What the forward pass returns.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Layers loaded.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// Runs the encoder on `seq` tokens: `tokens` at the data owner (P1, or a single-party
    /// backend), `None` at P0; `mask` is the public 0/1 attention mask over the tokens. Returns
    /// the head's output: logits, or the mean-pooled sentence embedding.
    pub fn forward(
        &self,
        b: &mut B,
        tokens: Option<&[u32]>,
        mask: &[f64],
        observer: &mut dyn Observer<B>,
    ) -> Result<B::Vector, ModelError> {
        let seq = mask.len();
        let max = self.config.max_tokens();
        if seq == 0 || seq > max {
            return Err(ModelError::TooLong { tokens: seq, max });
        }
        if tokens.is_some_and(|t| t.len() != seq) {
            return Err(ModelError::Backend(Error::ShapeMismatch));
        }
        let mut x = self.embed(b, tokens, seq, observer)?;
        let total = self.layers.len();
        for (index, layer) in self.layers.iter().enumerate() {
            x = self.layer(b, layer, &x, mask, observer)?;
            observer.layer_done(index, total);
        }
        self.finish(b, &x, mask, observer)
    }

    fn embed(
        &self,
        b: &mut B,
        tokens: Option<&[u32]>,
        seq: usize,
        observer: &mut dyn Observer<B>,
    ) -> Result<Matrix<B>, ModelError> {
        let (h, vocab) = (self.config.hidden_size, self.config.vocab_size);
        observer.enter(b, Bucket::Embed);
        if let Some(&t) = tokens.and_then(|t| t.iter().find(|&&t| t as usize >= vocab)) {
            return Err(ModelError::Token(t));
        }
        let indices: Option<Vec<usize>> = tokens.map(|t| t.iter().map(|&t| t as usize).collect());
        let words = self.word_embeddings.forward(b, indices.as_deref(), seq)?;
        let offset = self.config.position_offset();
        let positions = &self.positions[offset * h..(offset + seq) * h];
        let x = b.add(&b.add(words.data(), positions), &broadcast_values(&self.segment, seq, h, false));
        observer.leave(b, Bucket::Embed);
        observer.enter(b, Bucket::Norm);
        let x = self.embedding_norm.forward(b, &Tensor::matrix(seq, h, x)?)?;
        observer.leave(b, Bucket::Norm);
        Ok(x)
    }

    /// `linear`'s output, then the LayerNorm of the residual sum x + output. Where the linear's
    /// truncation would take a round of its own, the product stays wide and the truncation
    /// rides on the normalisation's first opening.
    fn linear_add_norm(
        &self,
        b: &mut B,
        x: &Matrix<B>,
        input: &Matrix<B>,
        linear: &Linear<B>,
        norm: &LayerNorm<B>,
        observer: &mut dyn Observer<B>,
    ) -> Result<Matrix<B>, ModelError> {
        let wide = b.linear_truncation_takes_a_round();
        observer.enter(b, Bucket::Linear);
        let y = if wide { linear.forward_wide(b, input)? } else { linear.forward(b, input)? };
        observer.leave(b, Bucket::Linear);
        observer.enter(b, Bucket::Norm);
        let sum = if wide { b.add(&b.extend(x.data(), b.frac_bits(), 0), y.data()) } else { b.add(x.data(), y.data()) };
        let sum = Tensor::matrix(x.rows(), x.cols(), sum)?;
        let normalised = if wide { norm.forward_wide(b, &sum)? } else { norm.forward(b, &sum)? };
        observer.leave(b, Bucket::Norm);
        Ok(normalised)
    }

    fn layer(
        &self,
        b: &mut B,
        layer: &Layer<B>,
        x: &Matrix<B>,
        mask: &[f64],
        observer: &mut dyn Observer<B>,
    ) -> Result<Matrix<B>, ModelError> {
        let seq = mask.len();
        let heads = MultiHead { heads: self.config.num_attention_heads, head_dim: self.config.head_dim() };
        observer.enter(b, Bucket::Linear);
        let qkv = layer.qkv.forward(b, x)?;
        let (scores, values) = heads.scores_wide(b, &qkv)?;
        observer.leave(b, Bucket::Linear);

        observer.enter(b, Bucket::Softmax);
        let key_mask: Vec<f64> = (0..heads.heads * seq).flat_map(|_| mask.iter().copied()).collect();
        let probs = self.preset.attention.apply_to_product(b, &scores, seq, Some(&key_mask))?;
        observer.leave(b, Bucket::Softmax);

        observer.enter(b, Bucket::Linear);
        let context = heads.context(b, &probs, &values, seq)?;
        observer.leave(b, Bucket::Linear);
        let x = self.linear_add_norm(b, x, &context, &layer.attention_out, &layer.attention_norm, observer)?;

        observer.enter(b, Bucket::Linear);
        // Quad takes the product before its truncation and fuses the two; the others would only
        // trade the owner-weight product's one-way truncation for an exchange.
        let fused = self.preset.activation.reads_product();
        let inner = if fused { layer.ffn_in.forward_wide(b, &x)? } else { layer.ffn_in.forward(b, &x)? };
        observer.leave(b, Bucket::Linear);
        observer.enter(b, Bucket::Activation);
        let activation = self.preset.activation;
        let activated = if fused { activation.apply_to_product(b, &inner)? } else { activation.apply(b, &inner)? };
        observer.leave(b, Bucket::Activation);
        self.linear_add_norm(b, &x, &activated, &layer.ffn_out, &layer.ffn_norm, observer)
    }

    fn finish(
        &self,
        b: &mut B,
        x: &Matrix<B>,
        mask: &[f64],
        observer: &mut dyn Observer<B>,
    ) -> Result<B::Vector, ModelError> {
        let h = self.config.hidden_size;
        match (self.head, &self.pooler, &self.classifier) {
            (Head::Classifier { .. }, Some(pooler), Some(classifier)) => {
                observer.enter(b, Bucket::Linear);
                let first = Tensor::matrix(1, h, b.wrap(x.data()[..h].to_vec()))?;
                let pooled = pooler.forward(b, &first)?;
                observer.leave(b, Bucket::Linear);
                observer.enter(b, Bucket::Activation);
                let pooled = Tensor::matrix(1, h, b.tanh(pooled.data())?)?;
                observer.leave(b, Bucket::Activation);
                observer.enter(b, Bucket::Linear);
                let logits = classifier.forward(b, &pooled)?;
                observer.leave(b, Bucket::Linear);
                Ok(logits.into_data())
            }
            _ => {
                // The mask is public: drop masked rows locally, sum, divide by the public count.
                observer.enter(b, Bucket::Norm);
                let kept: Vec<B::Elem> = x
                    .data()
                    .chunks_exact(h)
                    .zip(mask)
                    .filter(|(_, m)| **m != 0.0)
                    .flat_map(|(row, _)| row.iter().copied())
                    .collect();
                let count = kept.len() / h;
                let summed = b.sum_rows(&transpose(&kept, count, h), h, count);
                let mean = b.mul_public(&summed, &alloc::vec![1.0 / count.max(1) as f64; h])?;
                observer.leave(b, Bucket::Norm);
                Ok(mean)
            }
        }
    }
}
