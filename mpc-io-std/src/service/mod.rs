//! Private inference as a service: a dealer for many sessions ([`dealer`]), the model owner's
//! server ([`server`]) and the data owner's client ([`client`]).
//!
//! A client (P1) opens a session: it draws a [`SessionId`], connects to the server (P0) over
//! mutual TLS and says hello with it; the server admits it or answers busy at once. Both then
//! connect to the dealer and present the identifier, which pairs their two connections into one
//! dealer session. From there it is the usual [`Session`](mpc_transformer::Session): handshake,
//! load, any number of queries, close.
//!
//! | message | from → to | bytes |
//! |---|---|---|
//! | hello | P1 → P0 | the session identifier (16) |
//! | answer | P0 → P1 | [`ADMITTED`] or [`BUSY`] (1) |
//! | join | P0 and P1 → dealer | the session identifier (16) |

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mpc_core::Transport;
use mpc_core::transport::{ErrorType, PartyId};

use crate::run::network::NetError;

pub mod client;
pub mod dealer;
pub mod server;

/// The server's answer to a hello: the session may start.
pub const ADMITTED: u8 = 0;
/// The server's answer to a hello: every session slot is taken (or the server is stopping).
pub const BUSY: u8 = 1;

/// How long a new connection may take to say hello (the TLS handshake has its own timeout).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// A session's identifier: 16 bytes the client draws from the OS and both parties present to
/// the dealer. Whoever knows it could take a party's place at the dealer before the party
/// arrives, so it travels only inside TLS and logs show only its [`tag`](SessionId::tag).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh identifier from the OS.
    pub fn random() -> Result<Self, NetError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|_| NetError::Entropy)?;
        Ok(Self(id))
    }

    /// The identifier's bytes, as sent.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The identifier received from a peer.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Its first four bytes in hex: enough to tell sessions apart in a log, far too few to join
    /// one.
    pub fn tag(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Receives a hello or a join from `from`.
    pub(crate) fn recv<T: Transport>(transport: &mut T, from: PartyId) -> Result<Self, <T as ErrorType>::Error> {
        let mut id = [0u8; 16];
        transport.recv(from, &mut id)?;
        Ok(Self(id))
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({}..)", self.tag())
    }
}

/// One line of a service's log (printed as JSON by the command line).
pub type Log = Arc<dyn Fn(serde_json::Value) + Send + Sync>;

/// A log that drops every line.
pub fn quiet() -> Log {
    Arc::new(|_| {})
}

/// At most `max` holders at once: each [`Slots::take`] returns a guard that frees its slot when
/// dropped (on every path out of a connection's thread, error or panic).
#[derive(Debug)]
pub(crate) struct Slots {
    used: AtomicUsize,
    max: usize,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { used: AtomicUsize::new(0), max })
    }

    /// A slot, if one is free.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Slot> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| (u < self.max).then_some(u + 1))
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

/// A held slot of [`Slots`].
#[derive(Debug)]
pub(crate) struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The time since the Unix epoch in seconds, for log lines.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Polls a non-blocking listener: a connection, or `None` after a short sleep.
pub(crate) fn poll_accept(
    listener: &std::net::TcpListener,
) -> std::io::Result<Option<(std::net::TcpStream, std::net::SocketAddr)>> {
    match listener.accept() {
        Ok((tcp, from)) => {
            tcp.set_nonblocking(false)?;
            Ok(Some((tcp, from)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            std::thread::sleep(Duration::from_millis(20));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
