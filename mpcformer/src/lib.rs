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
//! - [`io`]: std transports, sessions in threads or over TCP + TLS, checkpoints, the tasks.
//!
//! The command line is the `mpcformer-cli` package (its `mpcformer` binary); this facade brings
//! neither clap nor candle.
//!
//! ## Example
//!
//! ```
//! use mpcformer::io::run::{PrivateJob, run_private};
//! use mpcformer::transformer::{BertConfig, Params, Preset};
//!
//! let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(1, 16, 2, 30) };
//! let params = Params::random(&config, 1);
//! let job = PrivateJob::new(&config, &params, &[2, 9, 4, 3], Preset::parse("quad+2quad").unwrap());
//! let run = run_private(job).unwrap();
//! assert_eq!(run.p0.output.output, None, "only the data owner learns the answer");
//! assert_eq!(run.p1.output.output.unwrap().len(), 2);
//! ```
#![forbid(unsafe_code)]

pub use mpc_core as core;
pub use mpc_io_std as io;
pub use mpc_nn as nn;
pub use mpc_transformer as transformer;
