//! # mpc-transformer
//!
//! BERT-family encoders (BERT, MiniLM, RoBERTa) generic over the `mpc-nn` backends, with the
//! MPCFormer approximation presets. This crate is filled in by the Transformer issue; today it
//! re-exports the layers it builds on.
#![no_std]
#![forbid(unsafe_code)]

pub use mpc_nn as nn;
