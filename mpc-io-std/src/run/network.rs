//! The network setting: P0, P1 and the dealer as processes over TCP + mutual TLS.
//!
//! Topology: the dealer listens for both parties; P0 listens for P1; P1 connects to both. Every
//! connection authenticates both ends by the session CA and the roles the certificates name.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use mpc_core::Error;
use mpc_core::preprocessing::{Dealer, DealerClient, DealerStats};
use mpc_core::transport::{Metered, PartyId, Role};

use crate::run::threads::{PartyContext, party_rng, seed_bytes};
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
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::Link(e) => write!(f, "link: {e}"),
            NetError::Protocol(e) => write!(f, "protocol: {e}"),
            NetError::Entropy => f.write_str("no randomness from the operating system"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Link(e) => Some(e),
            NetError::Protocol(e) => Some(e),
            NetError::Entropy => None,
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

/// Serves the dealer: waits for P0 and P1, hands out seeds and P0's corrections until P0 ends.
pub fn run_dealer(
    listen_on: SocketAddr,
    certs: &Path,
    seed: Option<u64>,
    options: TcpOptions,
) -> Result<DealerStats, NetError> {
    run_dealer_on(listen(listen_on)?, certs, seed, options)
}

/// [`run_dealer`] on a listener already bound (no window in which another process could take
/// the port).
pub fn run_dealer_on(
    listener: TcpListener,
    certs: &Path,
    seed: Option<u64>,
    options: TcpOptions,
) -> Result<DealerStats, NetError> {
    let identity = Identity::load(certs, PartyId::Dealer)?;
    let mut transport = TcpTransport::new(options);
    for _ in 0..2 {
        transport.accept(&identity, &listener, &[PartyId::P0, PartyId::P1])?;
    }
    let mut rng = party_rng(seed.map(seed_bytes), PartyId::Dealer).map_err(|_| NetError::Entropy)?;
    Ok(Dealer::<u64>::new(&mut rng).serve(&mut transport)?)
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
pub fn connect_party_with(
    role: Role,
    dealer_at: SocketAddr,
    peer_at: Peer,
    certs: &Path,
    seed: Option<u64>,
    options: TcpOptions,
) -> Result<PartyContext<TcpTransport>, NetError> {
    let identity = Identity::load(certs, role.id())?;
    let mut dealer = TcpTransport::new(options);
    dealer.connect(&identity, PartyId::Dealer, dealer_at)?;
    let mut peer = TcpTransport::new(options);
    match (role, peer_at) {
        (Role::P0, Peer::Listen(listener)) => {
            peer.accept(&identity, &listener, &[PartyId::P1])?;
        }
        (Role::P1, Peer::Connect(addr)) => peer.connect(&identity, PartyId::P0, addr)?,
        _ => return Err(NetError::Protocol(Error::Malformed("P0 listens for its peer, P1 connects"))),
    }
    let rng = party_rng(seed.map(seed_bytes), role.id()).map_err(|_| NetError::Entropy)?;
    let dealer = DealerClient::connect(role, Metered::new(dealer))?;
    Ok(PartyContext { role, peer: Metered::new(peer), dealer, rng })
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
    let result = std::thread::scope(|s| {
        let dealer = s.spawn(|| run_dealer_on(dealer_listener, &certs, job.seed, options));
        let certs = &certs;
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
        let rd = dealer.join().unwrap_or(Err(NetError::Protocol(Error::Malformed("the dealer panicked"))));
        match (r0, r1, rd) {
            (Ok(a), Ok(b), Ok(_)) => Ok([a, b]),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        }
    });
    let _ = std::fs::remove_dir_all(certs);
    result
}
