//! The network setting: P0, P1 and the dealer as processes over TCP + mutual TLS.
//!
//! Topology: the dealer listens for both parties; P0 listens for P1; P1 connects to both. Every
//! connection authenticates both ends by the session CA and the roles the certificates name. The
//! dealer is the many-session service of [`service::dealer`]: the parties join it with the
//! identifier P1 drew for their session.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use mpc_core::Error;
use std::sync::atomic::{AtomicBool, Ordering};

use mpc_core::preprocessing::DealerClient;
use mpc_core::transport::{Metered, PartyId, Role, Transport};

use crate::run::threads::{PartyContext, party_rng, seed_bytes};
use crate::service::dealer::{DealerServiceOptions, serve_dealer};
use crate::service::{self, SessionId};
use crate::transport::tcp::{Identity, TcpError, TcpOptions, TcpTransport, listen, listen_loopback};

/// Why a networked party or dealer stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetError {
    /// Setting up a link failed.
    Link(TcpError),
    /// The protocol failed.
    Protocol(Error),
    /// The OS gave no randomness.
    Entropy,
    /// The server has no free session slot (or is stopping): try again later.
    Busy,
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::Link(e) => write!(f, "link: {e}"),
            NetError::Protocol(e) => write!(f, "protocol: {e}"),
            NetError::Entropy => f.write_str("no randomness from the operating system"),
            NetError::Busy => f.write_str("the server is busy: every session slot is taken"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Link(e) => Some(e),
            NetError::Protocol(e) => Some(e),
            NetError::Entropy | NetError::Busy => None,
        }
    }
}

impl From<TcpError> for NetError {
    fn from(e: TcpError) -> Self {
        NetError::Link(e)
    }
}

impl From<Error> for NetError {
    fn from(e: Error) -> Self {
        NetError::Protocol(e)
    }
}

/// Where a computing party finds the others.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    /// The dealer's address.
    pub dealer: SocketAddr,
    /// P0: where to listen for P1. P1: where P0 listens.
    pub peer: SocketAddr,
}

/// Connects a computing party to the dealer and to its peer, ready for [`private_party`].
///
/// [`private_party`]: crate::run::private_party
pub fn connect_party(
    role: Role,
    endpoints: Endpoints,
    certs: &Path,
    seed: Option<u64>,
    options: TcpOptions,
) -> Result<PartyContext<TcpTransport>, NetError> {
    let peer = match role {
        Role::P0 => Peer::Listen(listen(endpoints.peer)?),
        Role::P1 => Peer::Connect(endpoints.peer),
    };
    connect_party_with(role, endpoints.dealer, peer, certs, seed, options)
}

/// How a computing party reaches its peer: P0 accepts on a bound listener, P1 connects.
#[derive(Debug)]
pub enum Peer {
    /// Accept the peer on this listener (P0).
    Listen(TcpListener),
    /// Connect to the peer at this address (P1).
    Connect(SocketAddr),
}

/// [`connect_party`] with P0's listener bound by the caller (no bind, drop and re-bind race).
///
/// P1 connects to P0 and says hello with a fresh [`SessionId`]; P0 admits it; both then join
/// the dealer with that identifier (see [`service`]).
pub fn connect_party_with(
    role: Role,
    dealer_at: SocketAddr,
    peer_at: Peer,
    certs: &Path,
    seed: Option<u64>,
    options: TcpOptions,
) -> Result<PartyContext<TcpTransport>, NetError> {
    let identity = Identity::load(certs, role.id())?;
    let mut peer = TcpTransport::new(options);
    let id = match (role, peer_at) {
        (Role::P0, Peer::Listen(listener)) => {
            peer.accept(&identity, &listener, &[PartyId::P1])?;
            let id = SessionId::recv(&mut peer, PartyId::P1)?;
            peer.send(PartyId::P1, &[service::ADMITTED])?;
            id
        }
        (Role::P1, Peer::Connect(addr)) => {
            peer.connect(&identity, PartyId::P0, addr)?;
            service::client::hello(&mut peer)?
        }
        _ => return Err(NetError::Protocol(Error::Malformed("P0 listens for its peer, P1 connects"))),
    };
    let dealer = join_dealer(&identity, role, dealer_at, id, options)?;
    let rng = party_rng(seed.map(seed_bytes), role.id()).map_err(|_| NetError::Entropy)?;
    Ok(PartyContext { role, peer: Metered::new(peer), dealer, rng })
}

/// Connects `role` to the dealer at `dealer_at` and joins session `id` there.
pub fn join_dealer(
    identity: &Identity,
    role: Role,
    dealer_at: SocketAddr,
    id: SessionId,
    options: TcpOptions,
) -> Result<DealerClient<Metered<TcpTransport>>, NetError> {
    let mut dealer = TcpTransport::new(options);
    dealer.connect(identity, PartyId::Dealer, dealer_at)?;
    dealer.send(PartyId::Dealer, id.as_bytes())?;
    Ok(DealerClient::connect(role, Metered::new(dealer))?)
}

/// Runs the dealer, P0 and P1 as threads of this process, but over TCP + TLS on loopback with
/// fresh certificates: the network setting's code paths, from one command.
pub fn run_loopback(
    job: &crate::run::PrivateJob<'_>,
    options: TcpOptions,
) -> Result<[crate::run::PartyReport; 2], NetError> {
    run_loopback_queries(job, options, &[job.tokens], |_, _| {})
}

/// [`run_loopback`] with P1 asking `queries` back to back over one [`Session`] on the same
/// three connections (one TLS session per link, the model loaded once); `observe` sees P1's
/// report after each. Returns the last reports.
///
/// [`Session`]: mpc_transformer::Session
pub fn run_loopback_queries(
    job: &crate::run::PrivateJob<'_>,
    options: TcpOptions,
    queries: &[&[u32]],
    mut observe: impl FnMut(usize, &crate::run::PartyReport) + Send,
) -> Result<[crate::run::PartyReport; 2], NetError> {
    use crate::run::PartyReport;
    // A fresh directory of our own (create_dir fails on an existing one), made 0700 with the keys
    // 0600 inside by make_certs.
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|_| NetError::Entropy)?;
    let tag = u64::from_le_bytes(tag);
    let certs = std::env::temp_dir().join(format!("mpcformer-loopback-{}-{tag:016x}", std::process::id()));
    std::fs::create_dir(&certs)
        .map_err(|e| NetError::Link(TcpError::new_other(format!("{}: {e}", certs.display()))))?;
    crate::transport::tcp::make_certs(&certs)?;
    // Both listeners stay bound from here until their owner accepts on them.
    let ((dealer_listener, dealer_at), (p0_listener, p0_at)) = (listen_loopback()?, listen_loopback()?);
    let observe = &mut observe;
    let stop = AtomicBool::new(false);
    let dealer_options = DealerServiceOptions {
        tcp: options,
        insecure_seed: job.seed.map(seed_bytes),
        ..DealerServiceOptions::default()
    };
    let result = std::thread::scope(|s| {
        let (certs, stop) = (&certs, &stop);
        let dealer = s.spawn(move || serve_dealer(dealer_listener, certs, dealer_options, stop, service::quiet()));
        let p0 = s.spawn(move || -> Result<PartyReport, NetError> {
            let mut ctx = connect_party_with(Role::P0, dealer_at, Peer::Listen(p0_listener), certs, job.seed, options)?;
            let last = crate::run::private_queries(&mut ctx, job, queries, |_, _| {})?;
            ctx.dealer.finish()?;
            Ok(last)
        });
        let p1 = s.spawn(move || -> Result<PartyReport, NetError> {
            let mut ctx = connect_party_with(Role::P1, dealer_at, Peer::Connect(p0_at), certs, job.seed, options)?;
            Ok(crate::run::private_queries(&mut ctx, job, queries, observe)?)
        });
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<_, NetError>>| {
            h.join().unwrap_or(Err(NetError::Protocol(Error::Malformed("a party panicked"))))
        };
        let (r0, r1) = (join(p0), join(p1));
        stop.store(true, Ordering::Relaxed);
        let rd = dealer.join().unwrap_or(Err(NetError::Protocol(Error::Malformed("the dealer panicked"))));
        let rd = rd.and_then(|stats| match stats.failed {
            0 => Ok(()),
            _ => Err(NetError::Protocol(Error::Malformed("the dealer's session failed"))),
        });
        match (r0, r1, rd) {
            (Ok(a), Ok(b), Ok(())) => Ok([a, b]),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        }
    });
    let _ = std::fs::remove_dir_all(certs);
    result
}
