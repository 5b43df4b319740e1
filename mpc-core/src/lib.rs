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
//!
//! ## Example
//!
//! Two parties multiply secret fixed-point values in one Beaver round, over a transport the
//! integrator brings (here std channels), with material from the insecure test dealer (for
//! examples and tests; the real one is [`preprocessing::Dealer`]):
//!
//! ```
//! use std::sync::mpsc::{Receiver, Sender, channel};
//!
//! use mpc_core::preprocessing::TestDealer;
//! use mpc_core::share::Seed;
//! use mpc_core::transport::{ErrorKind, ErrorType, PartyId, Role, Transport};
//! use mpc_core::Party;
//!
//! /// A link to the other party: exact-length messages, blocking receive.
//! struct Channel(Sender<Vec<u8>>, Receiver<Vec<u8>>);
//! impl ErrorType for Channel {
//!     type Error = ErrorKind;
//! }
//! impl Transport for Channel {
//!     fn send(&mut self, _to: PartyId, msg: &[u8]) -> Result<(), ErrorKind> {
//!         self.0.send(msg.to_vec()).map_err(|_| ErrorKind::Disconnected)
//!     }
//!     fn recv(&mut self, _from: PartyId, buf: &mut [u8]) -> Result<(), ErrorKind> {
//!         let msg = self.1.recv().map_err(|_| ErrorKind::Disconnected)?;
//!         if msg.len() != buf.len() {
//!             return Err(ErrorKind::LengthMismatch);
//!         }
//!         buf.copy_from_slice(&msg);
//!         Ok(())
//!     }
//! }
//!
//! let ((to_p1, from_p0), (to_p0, from_p1)) = (channel(), channel());
//! let (dealer0, dealer1) = TestDealer::<u64>::pair([7; 32]);
//! // The parties' pairwise seed: drawn by P0 and sent to P1 in a real session.
//! let seed = Seed::from_bytes([9; 32]);
//! let run = |role: Role, link: Channel, dealer: TestDealer<u64>, seed: Seed, mine: &[f64]| {
//!     let mut party = Party::with_seed(role, link, dealer, &seed);
//!     let x = party.input_fixed(Role::P0, (role == Role::P0).then_some(mine), 2).unwrap();
//!     let y = party.input_fixed(Role::P1, (role == Role::P1).then_some(mine), 2).unwrap();
//!     let product = party.mul(&x, &y).unwrap();
//!     party.open_fixed(&product).unwrap()
//! };
//! let p1_seed = seed.clone();
//! let p1 = std::thread::spawn(move || run(Role::P1, Channel(to_p0, from_p0), dealer1, p1_seed, &[-1.5, 4.0]));
//! let opened = run(Role::P0, Channel(to_p1, from_p1), dealer0, seed, &[2.0, 0.5]);
//! assert_eq!(opened, p1.join().unwrap());
//! assert!((opened[0] + 3.0).abs() < 1e-4 && (opened[1] - 2.0).abs() < 1e-4);
//! ```
#![no_std]
// The only `unsafe` of the workspace lives in the SIMD kernel modules `gemm::x86` (calls of
// `#[target_feature]` kernels after runtime detection), `gemm::amx` (AMX tile instructions as
// inline assembly), `share::vaes` (the material's AES keystream on 512-bit vectors),
// `wire::bits_avx512` (narrow openings packed with byte permutes) and
// `protocol::compare::leaves_avx512` (comparison leaves gathered from their tables), and, outside
// this crate, `mpc_io_std::baseline_gemm` (the plaintext baseline's call of the `gemm` crate's
// kernels); every other module is checked by this deny.
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
