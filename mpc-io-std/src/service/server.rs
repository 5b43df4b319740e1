//! The model owner's server: P0 for many clients, each over its own session, until stopped.
//!
//! The checkpoint is read once; each admitted client gets a thread that connects to the dealer,
//! loads the model into its session (the weight masks are the session's own) and answers the
//! client's queries until the client ends the session. At most `max_sessions` sessions run at
//! once; a client past that is told [`BUSY`] at once. A connection that fails TLS
//! or says no hello in time is dropped without touching the accept loop. When stopped, the
//! server refuses new clients and returns once no query is in progress.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use mpc_core::protocol::Truncation;
use mpc_core::transport::{ErrorType, Metered, PartyId, Role, Transport};
use mpc_nn::WeightMode;
use mpc_transformer::{BertConfig, Params, Preset};
use serde_json::json;

use super::{ADMITTED, BUSY, HELLO_TIMEOUT, Log, SessionId, Slots, now, poll_accept};
use crate::run::network::{NetError, join_dealer};
use crate::run::threads::{PartyContext, party_rng};
use crate::run::{Meters, PartySession, PrivateJob};
use crate::transport::tcp::{Identity, TcpError, TcpOptions, TcpTransport};

/// The model a server offers: read once, shared by every session.
#[derive(Debug)]
pub struct ServedModel {
    /// The public shape.
    pub config: BertConfig,
    /// The weights (P0's secret).
    pub params: Params,
    /// The approximations (public: clients must ask for the same).
    pub preset: Preset,
    /// How the weights take part.
    pub weights: WeightMode,
    /// Truncation at the session precision.
    pub truncation: Truncation,
}

/// Settings of a server.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Sessions served at once; a client past it is told busy.
    pub max_sessions: usize,
    /// Connections in their handshake at once (past it, a connection is closed unanswered).
    pub max_handshakes: usize,
    /// Material each session holds ahead and makes per batch, in ring elements.
    pub material: (usize, usize),
    /// Timeouts and limits of every link.
    pub tcp: TcpOptions,
    /// Queries whose material each session makes while it is idle (clients must ask the same).
    pub pool: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_sessions: 4,
            max_handshakes: 32,
            material: (mpc_core::preprocessing::DEFAULT_BUDGET, mpc_core::preprocessing::DEFAULT_CHUNK),
            tcp: TcpOptions::default(),
            pool: 0,
        }
    }
}

/// What a server did, when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Sessions admitted.
    pub sessions: u64,
    /// Sessions that ended in an error.
    pub failed: u64,
    /// Queries answered.
    pub queries: u64,
    /// Clients told busy.
    pub busy: u64,
    /// Connections dropped before a hello (TLS failed, garbage, silence, too many at once).
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sessions: AtomicU64,
    failed: AtomicU64,
    queries: AtomicU64,
    busy: AtomicU64,
    refused: AtomicU64,
    /// Sessions inside a query right now (from the query's first message to its answer).
    in_query: AtomicUsize,
}

/// Serves `model` to clients on `listener`, with the dealer at `dealer_at`, until `stop` is
/// set; then refuses new clients and returns once no query is in progress (idle sessions are
/// left to end with the process). Logs one JSON line per query and per session end.
pub fn serve(
    listener: TcpListener,
    dealer_at: SocketAddr,
    certs: &Path,
    model: Arc<ServedModel>,
    options: ServeOptions,
    stop: Arc<AtomicBool>,
    log: Log,
) -> Result<ServeStats, NetError> {
    let identity = Arc::new(Identity::load(certs, PartyId::P0)?);
    listener.set_nonblocking(true).map_err(|e| TcpError::new_other(e.to_string()))?;
    let handshakes = Slots::new(options.max_handshakes);
    let sessions = Slots::new(options.max_sessions);
    let counters = Arc::new(Counters::default());
    while !stop.load(Ordering::Relaxed) {
        let Some((tcp, from)) = poll_accept(&listener).map_err(|e| TcpError::new_other(e.to_string()))? else {
            continue;
        };
        let Some(handshake) = handshakes.take() else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            log(json!({"event": "refused", "time": now(), "error": "too many connections in their handshake"}));
            continue;
        };
        let (identity, model, sessions, counters, stop, log) =
            (identity.clone(), model.clone(), sessions.clone(), counters.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || {
            let hello = TcpOptions { read_timeout: HELLO_TIMEOUT, ..options.tcp };
            let mut peer = TcpTransport::new(hello);
            let greeted = peer
                .accept_stream(&identity, tcp, from, &[PartyId::P1])
                .and_then(|_| SessionId::recv(&mut peer, PartyId::P1));
            drop(handshake);
            let id = match greeted {
                Ok(id) => id,
                Err(e) => {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    log(json!({"event": "refused", "time": now(), "error": e.to_string()}));
                    return;
                }
            };
            let slot = if stop.load(Ordering::Relaxed) { None } else { sessions.take() };
            let Some(_slot) = slot else {
                counters.busy.fetch_add(1, Ordering::Relaxed);
                let _ = peer.send(PartyId::P1, &[BUSY]);
                log(json!({"event": "busy", "time": now(), "session": id.tag()}));
                return;
            };
            counters.sessions.fetch_add(1, Ordering::Relaxed);
            log(json!({"event": "admitted", "time": now(), "session": id.tag()}));
            peer.set_options(options.tcp);
            let result = peer
                .send(PartyId::P1, &[ADMITTED])
                .map_err(|e| (0, NetError::from(e)))
                .and_then(|_| serve_session(peer, id, dealer_at, &identity, &model, &options, &counters, &log));
            let (queries, error) = match result {
                Ok(queries) => (queries, None),
                Err((queries, e)) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    (queries, Some(e.to_string()))
                }
            };
            log(json!({"event": "session", "time": now(), "session": id.tag(), "queries": queries, "error": error}));
        });
    }
    // Stopped: no new client is admitted; the queries in progress finish.
    while counters.in_query.load(Ordering::Acquire) > 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Ok(ServeStats {
        sessions: get(&counters.sessions),
        failed: get(&counters.failed),
        queries: get(&counters.queries),
        busy: get(&counters.busy),
        refused: get(&counters.refused),
    })
}

/// One admitted client's session, from the dealer's join to the client's end. Returns the
/// queries answered (also on failure).
#[allow(clippy::too_many_arguments)]
fn serve_session(
    peer: TcpTransport,
    id: SessionId,
    dealer_at: SocketAddr,
    identity: &Identity,
    model: &ServedModel,
    options: &ServeOptions,
    counters: &Arc<Counters>,
    log: &Log,
) -> Result<u64, (u64, NetError)> {
    let mut answered = 0;
    let fail = |answered: u64| move |e: NetError| (answered, e);
    let dealer = join_dealer(identity, Role::P0, dealer_at, id, options.tcp).map_err(fail(0))?;
    let rng = party_rng(None, PartyId::P0).map_err(|_| fail(0)(NetError::Entropy))?;
    let mark = QueryMark { busy: Arc::new(AtomicBool::new(false)), counters: counters.clone() };
    let watched = InQuery { inner: peer, mark: mark.clone() };
    let mut ctx = PartyContext { role: Role::P0, peer: Metered::new(watched), dealer, rng };
    let job = PrivateJob {
        weights: model.weights,
        truncation: model.truncation,
        material: options.material,
        pool: options.pool,
        ..PrivateJob::new(&model.config, &model.params, &[], model.preset)
    };
    let mut session = PartySession::open(&mut ctx, &job).map_err(|e| fail(0)(e.into()))?;
    mark.done();
    let result = session.answer(&[], Meters::default(), |index, report| {
        mark.done();
        answered += 1;
        counters.queries.fetch_add(1, Ordering::Relaxed);
        log(json!({
            "event": "query", "time": now(), "session": id.tag(), "query": index, "tokens": report.tokens,
            "online_s": report.online.0, "online_bytes": report.online.1.bytes_sent + report.online.1.bytes_received,
            "rounds": report.online.1.rounds, "offline_s": report.offline.0, "ahead_s": report.ahead_s,
        }));
    });
    let result = result.and_then(|_| session.close());
    mark.done();
    result.map_err(|e| fail(answered)(e.into()))?;
    ctx.dealer.finish().map_err(|e| fail(answered)(e.into()))?;
    Ok(answered)
}

/// Whether a session is inside a query, kept in the server's count of such sessions.
#[derive(Clone)]
struct QueryMark {
    busy: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl QueryMark {
    fn start(&self) {
        if !self.busy.swap(true, Ordering::AcqRel) {
            self.counters.in_query.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn done(&self) {
        if self.busy.swap(false, Ordering::AcqRel) {
            self.counters.in_query.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// P0's link to a client, marking the session as inside a query from the first message it
/// receives until the query's answer ([`QueryMark::done`]): what a stopping server waits for.
struct InQuery {
    inner: TcpTransport,
    mark: QueryMark,
}

impl Drop for InQuery {
    fn drop(&mut self) {
        self.mark.done();
    }
}

impl ErrorType for InQuery {
    type Error = TcpError;
}

impl Transport for InQuery {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), TcpError> {
        self.inner.send(to, msg)
    }
    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), TcpError> {
        self.inner.recv(from, buf)?;
        self.mark.start();
        Ok(())
    }
}
