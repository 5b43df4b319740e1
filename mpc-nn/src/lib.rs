//! # mpc-nn
//!
//! The [`Backend`] trait and its three implementations, so that one piece of model code runs
//! in every setting:
//!
//! | backend | holds | setting |
//! |---|---|---|
//! | [`Plain`] | reals (f64), exact math | plaintext reference |
//! | [`Fixed`] | fixed-point ring values in the clear | simulated: the protocol's arithmetic without the protocol |
//! | [`Secure`] | one party's additive shares | real two-party computation over any transport |
//!
//! [`layers`] holds Linear, LayerNorm (the real one), Embedding, the activations, the attention
//! normalisers and multi-head attention's products, over [`Tensor`]s of any backend.
//!
//! The numerical functions (exp, reciprocal, inverse square root, erf, GeLU, tanh, sigmoid,
//! softmax, Quad, 2Quad, 2ReLU) are written once, in [`numerics`], over the backend's
//! primitives; `Plain` overrides them with exact math.
//!
//! ## Example
//!
//! Model code written once, run exactly and in the protocol's fixed-point arithmetic:
//!
//! ```
//! use mpc_nn::core::transport::Role;
//! use mpc_nn::{Backend, Fixed, Plain};
//!
//! fn attention_weights<B: Backend>(b: &mut B, scores: &[f64]) -> Vec<f64> {
//!     let x = b.input(Role::P0, Some(scores), scores.len()).unwrap();
//!     let weights = b.softmax(&x, 1, scores.len(), None).unwrap();
//!     b.reveal(&weights).unwrap()
//! }
//! let exact = attention_weights(&mut Plain::<f64>::new(), &[1.0, 2.0, 3.0]);
//! let fixed = attention_weights(&mut Fixed::default(), &[1.0, 2.0, 3.0]);
//! assert!(exact.iter().zip(&fixed).all(|(e, f)| (e - f).abs() < 1e-3));
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod backend;
pub mod fixed;
pub mod layers;
pub mod numerics;
pub mod plain;
pub mod secure;
pub mod tensor;

pub use backend::{Backend, Product, Spread, WeightMode};
pub use fixed::Fixed;
pub use mpc_core as core;
pub use plain::{Plain, PlainGemm, matrixmultiply_gemm};
pub use secure::Secure;
pub use tensor::Tensor;
