//! The model owner's named parameters, with Hugging Face's names and PyTorch's layouts.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mpc_nn::core::share::Prg;
use rand_core::{Rng, SeedableRng};

use crate::config::BertConfig;

/// One named tensor: its shape and row-major f32 data.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Dimensions, outermost first (`[out, in]` for a linear weight, as PyTorch stores it).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Why a parameter could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    /// No tensor of that name.
    Missing(String),
    /// The tensor has another shape than the configuration implies.
    Shape {
        /// The tensor's name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The tensor's shape.
        found: Vec<usize>,
    },
}

impl core::fmt::Display for ParamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ParamError::Missing(name) => write!(f, "missing tensor `{name}`"),
            ParamError::Shape { name, expected, found } => {
                write!(f, "tensor `{name}` has shape {found:?}, expected {expected:?}")
            }
        }
    }
}

impl core::error::Error for ParamError {}

/// A map from Hugging Face parameter names (`encoder.layer.0.attention.self.query.weight`, ...,
/// without the `bert.` prefix) to tensors. The std side fills it from safetensors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    tensors: BTreeMap<String, Param>,
}

impl Params {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a tensor.
    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) {
        self.tensors.insert(name.into(), Param { shape, data });
    }

    /// The tensor `name`, checked against `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32], ParamError> {
        let p = self.tensors.get(name).ok_or_else(|| ParamError::Missing(String::from(name)))?;
        if p.shape != shape {
            return Err(ParamError::Shape {
                name: String::from(name),
                expected: shape.to_vec(),
                found: p.shape.clone(),
            });
        }
        Ok(&p.data)
    }

    /// Whether a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Names and tensors, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Param)> {
        self.tensors.iter()
    }

    /// Random parameters for `config` with BERT's initialisation (weights N(0, 0.02²), biases 0,
    /// LayerNorm γ = 1, β = 0), with a pooler and, if `config.num_labels` is set, a classifier.
    pub fn random(config: &BertConfig, seed: u64) -> Self {
        Self::random_with_std(config, seed, 0.02)
    }

    /// [`Params::random`] with weights N(0, std²) (larger weights make tests see larger values).
    pub fn random_with_std(config: &BertConfig, seed: u64, std: f32) -> Self {
        let mut rng = Prg::seed_from_u64(seed);
        let mut normal = move |n: usize, std: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    // Box-Muller from two uniform draws in (0, 1].
                    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    let z = libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * core::f64::consts::PI * u2);
                    z as f32 * std
                })
                .collect()
        };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let mut p = Params::new();
        let linear =
            |p: &mut Params, name: &str, out: usize, inp: usize, normal: &mut dyn FnMut(usize, f32) -> Vec<f32>| {
                p.insert(format!("{name}.weight"), alloc::vec![out, inp], normal(out * inp, std));
                p.insert(format!("{name}.bias"), alloc::vec![out], alloc::vec![0.0; out]);
            };
        let norm = |p: &mut Params, name: &str| {
            p.insert(format!("{name}.weight"), alloc::vec![h], alloc::vec![1.0; h]);
            p.insert(format!("{name}.bias"), alloc::vec![h], alloc::vec![0.0; h]);
        };
        p.insert(
            "embeddings.word_embeddings.weight",
            alloc::vec![config.vocab_size, h],
            normal(config.vocab_size * h, std),
        );
        p.insert(
            "embeddings.position_embeddings.weight",
            alloc::vec![config.max_position_embeddings, h],
            normal(config.max_position_embeddings * h, std),
        );
        p.insert(
            "embeddings.token_type_embeddings.weight",
            alloc::vec![config.type_vocab_size, h],
            normal(config.type_vocab_size * h, std),
        );
        norm(&mut p, "embeddings.LayerNorm");
        for l in 0..config.num_hidden_layers {
            let pre = format!("encoder.layer.{l}");
            for part in ["query", "key", "value"] {
                linear(&mut p, &format!("{pre}.attention.self.{part}"), h, h, &mut normal);
            }
            linear(&mut p, &format!("{pre}.attention.output.dense"), h, h, &mut normal);
            norm(&mut p, &format!("{pre}.attention.output.LayerNorm"));
            linear(&mut p, &format!("{pre}.intermediate.dense"), i, h, &mut normal);
            linear(&mut p, &format!("{pre}.output.dense"), h, i, &mut normal);
            norm(&mut p, &format!("{pre}.output.LayerNorm"));
        }
        linear(&mut p, "pooler.dense", h, h, &mut normal);
        if let Some(labels) = config.num_labels {
            linear(&mut p, "classifier", labels, h, &mut normal);
        }
        p
    }
}
