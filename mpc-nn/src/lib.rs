//! # mpc-nn
//!
//! Tensors, the `Backend` trait and the neural-network layers of mpcformer, written once and run
//! in plaintext, in simulation and under MPC. This crate is filled in by the backend issue; today
//! it re-exports the engine it builds on.
#![no_std]
#![forbid(unsafe_code)]

pub use mpc_core as core;
