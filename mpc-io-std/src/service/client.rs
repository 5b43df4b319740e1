//! The data owner's client: P1 for one session of any number of queries with a server.

use std::net::SocketAddr;
use std::path::Path;

use mpc_core::protocol::Truncation;
use mpc_core::transport::{PartyId, Role, Transport};
use mpc_nn::WeightMode;
use mpc_transformer::{BertConfig, Params, Preset};

use super::{ADMITTED, BUSY, SessionId};
use crate::run::network::{NetError, Peer, connect_party_with};
use crate::run::{Meters, PartyReport, PartySession, PrivateJob};
use crate::transport::tcp::{TcpOptions, TcpTransport};

/// Settings of a client session (the public parameters must match the server's: the session's
/// handshake names the first that differs).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct QueryOptions {
    /// How the server's weights take part.
    pub weights: WeightMode,
    /// Truncation at the session precision.
    pub truncation: Truncation,
    /// Material held ahead and made per batch, in ring elements.
    pub material: (usize, usize),
    /// Timeouts and limits of every link.
    pub tcp: TcpOptions,
    /// Queries whose material is made while the session is idle (as the server does).
    pub pool: usize,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            weights: WeightMode::Owner,
            truncation: Truncation::default(),
            material: (mpc_core::preprocessing::DEFAULT_BUDGET, mpc_core::preprocessing::DEFAULT_CHUNK),
            tcp: TcpOptions::default(),
            pool: 0,
        }
    }
}

/// Where a client finds the server and the dealer.
#[derive(Clone, Copy, Debug)]
pub struct ServiceAddresses {
    /// The server (P0).
    pub server: SocketAddr,
    /// The dealer.
    pub dealer: SocketAddr,
}

/// Says hello to the server (P0) over `peer` with a fresh session identifier, and reads its
/// answer: the identifier if admitted, [`NetError::Busy`] if not.
pub fn hello(peer: &mut TcpTransport) -> Result<SessionId, NetError> {
    let id = SessionId::random()?;
    peer.send(PartyId::P0, id.as_bytes())?;
    let mut answer = [0u8; 1];
    peer.recv(PartyId::P0, &mut answer)?;
    match answer[0] {
        ADMITTED => Ok(id),
        BUSY => Err(NetError::Busy),
        _ => Err(NetError::Protocol(mpc_core::Error::Malformed("the server's answer to the hello"))),
    }
}

/// Runs `queries` (token ids, in order) over one session with the server, for a model of shape
/// `config` under `preset`; `observe` sees each query's report (its `output` is the revealed
/// result) as it ends. Returns the number of queries answered. A server with no free slot
/// answers at once: [`NetError::Busy`].
pub fn query_session(
    at: ServiceAddresses,
    certs: &Path,
    config: &BertConfig,
    preset: Preset,
    options: QueryOptions,
    queries: &[&[u32]],
    mut observe: impl FnMut(usize, &PartyReport),
) -> Result<usize, NetError> {
    let mut ctx = connect_party_with(Role::P1, at.dealer, Peer::Connect(at.server), certs, None, options.tcp)?;
    // P1 knows the shape only; the weights stay at the server.
    let none = Params::default();
    let job = PrivateJob {
        weights: options.weights,
        truncation: options.truncation,
        material: options.material,
        pool: options.pool,
        ..PrivateJob::new(config, &none, &[], preset)
    };
    let mut session = PartySession::open(&mut ctx, &job)?;
    let mut answered = 0;
    session.answer(queries, Meters::default(), |i, report| {
        answered += 1;
        observe(i, report)
    })?;
    session.close()?;
    Ok(answered)
}
