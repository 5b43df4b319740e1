//! # mpc-transformer
//!
//! BERT-family encoders (BERT, MiniLM, RoBERTa) written once over the `mpc-nn`
//! [`Backend`](mpc_nn::Backend), so the same code runs in plaintext, in simulation and under
//! MPC, with MPCFormer's approximation [`Preset`]s.
//!
//! - [`BertConfig`]: the shape, with Hugging Face's `config.json` names;
//! - [`Params`]: the model owner's named tensors (filled from safetensors on the std side);
//! - [`Encoder`]: weights prepared in a backend, and the forward pass;
//! - [`Session`]: the private-inference procedure every setting uses (handshake, load once,
//!   infer many, reveal to the data owner, material in bounded memory).
//!
//! ## Example
//!
//! The encoder in plaintext; the same [`Encoder`] computes under MPC through a [`Session`]
//! (see its example):
//!
//! ```
//! use mpc_transformer::{BertConfig, Encoder, Params, Preset, Unobserved};
//! use mpc_transformer::nn::Plain;
//!
//! let config = BertConfig::tiny(2, 16, 2, 30);
//! let params = Params::random(&config, 1);
//! let preset = Preset::parse("quad+2quad").unwrap();
//! let mut plain = Plain::<f64>::new();
//! let model = Encoder::load(&mut plain, &config, preset, Some(&params), None).unwrap();
//! let embedding = model.forward(&mut plain, Some(&[2, 5, 7, 3]), &[1.0; 4], &mut Unobserved).unwrap();
//! assert_eq!(embedding.len(), 16, "a sentence embedding (no classifier in this configuration)");
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod encoder;
pub mod params;
pub mod preset;
pub mod session;

pub use config::BertConfig;
pub use encoder::{Bucket, Encoder, Head, ModelError, Observer, Unobserved};
pub use mpc_nn as nn;
pub use params::{Param, ParamError, Params};
pub use preset::{Activation, Normaliser, Preset};
pub use session::{
    Inference, Link, Phase, Provider, Reveal, Session, SessionBackend, SessionError, SessionObserver, SessionOptions,
};
