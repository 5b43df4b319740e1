//! # mpcformer
//!
//! Private Transformer inference with secure multi-party computation (MPC).
//!
//! This facade re-exports the crates of the project so that a single dependency brings the whole
//! stack; depend on the individual crates to pick only what you need (for example `mpc-core` alone
//! in a `no_std` firmware).
//!
//! - [`core`]: ring arithmetic, fixed point, sharing, transports, preprocessing and the protocols;
//! - [`nn`]: tensors, the backend trait and the layers;
//! - [`transformer`]: BERT-family encoders generic over the backend;
//! - [`io`]: std transports, the threaded launcher, model loading and the CLI.
#![forbid(unsafe_code)]

pub use mpc_core as core;
pub use mpc_io_std as io;
pub use mpc_nn as nn;
pub use mpc_transformer as transformer;
