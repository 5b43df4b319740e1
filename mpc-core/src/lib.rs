//! # mpc-core
//!
//! The engine of mpcformer: two computing parties, **P0** (the model owner) and **P1** (the data
//! owner), hold additive secret shares over the ring Z_2^64 with fixed-point encoding, while a
//! trusted **dealer** supplies correlated randomness (CrypTen's TTP model, semi-honest security).
//!
//! The crate is `#![no_std]`. Its layers, bottom up:
//!
//! | module | what it holds |
//! |---|---|
//! | [`ring`] | the [`Ring`] trait (wrapping arithmetic on `u64`, and `u32`) |
//! | [`fixed`] | [`FixedPoint`] encoding of reals with a configurable number of fractional bits |
//! | [`share`] | additive and XOR sharing, [`Shares`] (zeroized on drop), seeded zero-sharing |
//! | [`transport`] | the [`Transport`] trait, error kinds, and the [`Metered`] decorator |
//! | [`preprocessing`] | the [`Preprocessing`] provider trait, the seeded trusted dealer, a store of offline material and a test double |
//! | [`protocol`] | [`Party`]: input, open, Beaver multiplication, square, matmul, truncation |
//! | [`gemm`] | the wrapping GEMM, with SIMD kernels chosen at run time under `std` |
//! | [`testing`] | harnesses feeding untrusted bytes to the engine (fuzzers, property tests) |
//!
//! Protocol logic never touches sockets: transports are drivers supplied by the integrator (see
//! `mpc-io-std` for channels and TCP + TLS).
//!
//! ## Features
//! - `alloc` (default): shares, material and protocols. Without it only the ring, fixed point,
//!   transport traits and the portable GEMM remain.
//! - `std` (default): runtime detection of AVX-512 / AVX2 for the GEMM and `std::error::Error`.
#![no_std]
// The only `unsafe` of the workspace lives in `gemm::x86` (calls of `#[target_feature]` kernels
// after runtime detection); every other module is checked by this deny.
#![deny(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod fixed;
pub mod gemm;
pub mod ring;
pub mod transport;

#[cfg(feature = "alloc")]
pub mod preprocessing;
#[cfg(feature = "alloc")]
pub mod protocol;
#[cfg(feature = "alloc")]
pub mod share;
#[cfg(feature = "alloc")]
pub mod testing;
#[cfg(feature = "alloc")]
pub mod wire;

pub use error::Error;
pub use fixed::FixedPoint;
pub use ring::Ring;
pub use transport::{ErrorKind, Metered, PartyId, Role, Transport};

#[cfg(feature = "alloc")]
pub use preprocessing::Preprocessing;
#[cfg(feature = "alloc")]
pub use protocol::Party;
#[cfg(feature = "alloc")]
pub use share::Shares;
