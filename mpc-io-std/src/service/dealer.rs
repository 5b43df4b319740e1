//! A dealer for many sessions at once, until stopped.
//!
//! Each connection is handed to its own thread for the TLS handshake (only P0 and P1
//! certificates are accepted) and the join message; the accept loop pairs the P0 and P1
//! connections that present the same [`SessionId`] and starts a dealer session for them in a
//! thread of its own. A connection whose partner does not come within the connect timeout is
//! dropped; a second connection for a role already waiting is refused. Each session's memory is
//! bounded ([`Dealer::with_max_held_elements`]); its end or failure frees it and touches no other.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use mpc_core::preprocessing::{DEFAULT_MAX_HELD_ELEMENTS, Dealer};
use mpc_core::transport::PartyId;
use serde_json::json;

use super::{HELLO_TIMEOUT, Log, SessionId, Slots, now, poll_accept};
use crate::run::network::NetError;
use crate::run::threads::party_rng;
use crate::transport::tcp::{Identity, TcpError, TcpOptions, TcpTransport};

/// Settings of a dealer service.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct DealerServiceOptions {
    /// Sessions served at once; a pair past it is dropped (both parties fail at once).
    pub max_sessions: usize,
    /// Connections in their handshake or waiting for their partner, at most.
    pub max_pending: usize,
    /// Ring elements one session may make the dealer hold at once.
    pub max_held_elements: usize,
    /// Timeouts and limits of every link.
    pub tcp: TcpOptions,
    /// Stop after this many sessions have started (and ended); `None`: until stopped.
    pub sessions: Option<u64>,
    /// Every session's dealer seeds from this seed instead of the OS: reproducible runs for
    /// tests. **Never** for real use (whoever knows it knows every share); the command line
    /// accepts it only on loopback addresses.
    pub insecure_seed: Option<[u8; 32]>,
}

impl Default for DealerServiceOptions {
    fn default() -> Self {
        Self {
            max_sessions: 16,
            max_pending: 64,
            max_held_elements: DEFAULT_MAX_HELD_ELEMENTS,
            tcp: TcpOptions::default(),
            sessions: None,
            insecure_seed: None,
        }
    }
}

/// What a dealer service did, when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DealerServiceStats {
    /// Sessions started.
    pub sessions: u64,
    /// Sessions that ended in an error.
    pub failed: u64,
    /// Connections refused (handshake, join, duplicate role, no partner in time, no slot).
    pub refused: u64,
}

/// A connection that has said which session it joins.
struct Joined {
    id: SessionId,
    role: PartyId,
    transport: TcpTransport,
}

/// Serves dealer sessions on `listener` until `stop` is set, then waits for the sessions in
/// progress to end. Logs one line per session end and per refused connection.
pub fn serve_dealer(
    listener: TcpListener,
    certs: &Path,
    options: DealerServiceOptions,
    stop: &AtomicBool,
    log: Log,
) -> Result<DealerServiceStats, NetError> {
    let identity = Arc::new(Identity::load(certs, PartyId::Dealer)?);
    let address = listener.local_addr().map_err(|e| TcpError::new_other(e.to_string()))?;
    log(json!({"event": "listening", "address": address.to_string(), "max_sessions": options.max_sessions}));
    listener.set_nonblocking(true).map_err(|e| TcpError::new_other(e.to_string()))?;
    let pending_slots = Slots::new(options.max_pending);
    let session_slots = Slots::new(options.max_sessions);
    let (joined_tx, joined_rx) = mpsc::channel::<Result<Joined, String>>();
    let mut waiting: HashMap<SessionId, (Joined, Instant, super::Slot)> = HashMap::new();
    let mut stats = DealerServiceStats::default();
    let mut sessions = Vec::new();
    let refuse = |stats: &mut DealerServiceStats, why: &str| {
        stats.refused += 1;
        log(json!({"event": "refused", "time": now(), "error": why}));
    };
    while !stop.load(Ordering::Relaxed) && options.sessions.is_none_or(|n| stats.sessions < n) {
        if let Some((tcp, from)) = poll_accept(&listener).map_err(|e| TcpError::new_other(e.to_string()))? {
            match pending_slots.take() {
                None => refuse(&mut stats, "too many pending connections"),
                Some(slot) => {
                    let (identity, joined_tx) = (identity.clone(), joined_tx.clone());
                    let hello = TcpOptions { read_timeout: HELLO_TIMEOUT, ..options.tcp };
                    std::thread::spawn(move || {
                        let joined = (|| {
                            let mut transport = TcpTransport::new(hello);
                            let role = transport.accept_stream(&identity, tcp, from, &[PartyId::P0, PartyId::P1])?;
                            let id = SessionId::recv(&mut transport, role)?;
                            transport.set_options(options.tcp);
                            Ok::<_, TcpError>(Joined { id, role, transport })
                        })();
                        let _ = joined_tx.send(joined.map_err(|e| e.to_string()));
                        drop(slot);
                    });
                }
            }
        }
        // Pair what has joined; forget partners that never came.
        while let Ok(joined) = joined_rx.try_recv() {
            let joined = match joined {
                Ok(j) => j,
                Err(e) => {
                    refuse(&mut stats, &e);
                    continue;
                }
            };
            match waiting.remove(&joined.id) {
                Some((first, _, _)) if first.role != joined.role => {
                    let Some(slot) = session_slots.take() else {
                        refuse(&mut stats, "every session slot is taken");
                        continue;
                    };
                    stats.sessions += 1;
                    let (id, max_held, seed, log) =
                        (joined.id, options.max_held_elements, options.insecure_seed, log.clone());
                    let mut transport = first.transport;
                    if let Err(e) = transport.join(joined.transport) {
                        refuse(&mut stats, &e.to_string());
                        continue;
                    }
                    sessions.push(std::thread::spawn(move || {
                        let start = Instant::now();
                        let result = party_rng(seed, PartyId::Dealer)
                            .map_err(|_| mpc_core::Error::Malformed("no randomness"))
                            .and_then(|mut rng| {
                                Dealer::<u64>::new(&mut rng).with_max_held_elements(max_held).serve(&mut transport)
                            });
                        drop(slot);
                        let seconds = start.elapsed().as_secs_f64();
                        match &result {
                            Ok(s) => log(json!({"event": "session", "time": now(), "session": id.tag(),
                                "seconds": seconds, "requests": s.requests, "correction_elements": s.correction_elements})),
                            Err(e) => log(json!({"event": "session", "time": now(), "session": id.tag(),
                                "seconds": seconds, "error": e.to_string()})),
                        }
                        result.is_ok()
                    }));
                }
                Some(first) => {
                    // The same role twice: keep the first, refuse the newcomer.
                    waiting.insert(joined.id, first);
                    refuse(&mut stats, "a second connection for a role already waiting");
                }
                None => match pending_slots.take() {
                    Some(slot) => {
                        waiting.insert(joined.id, (joined, Instant::now(), slot));
                    }
                    None => refuse(&mut stats, "too many pending connections"),
                },
            }
        }
        let before = waiting.len();
        waiting.retain(|_, (_, since, _)| since.elapsed() < options.tcp.connect_timeout);
        for _ in waiting.len()..before {
            refuse(&mut stats, "no partner joined in time");
        }
        stats.failed += finished(&mut sessions);
    }
    for session in sessions {
        stats.failed += u64::from(!session.join().unwrap_or(false));
    }
    Ok(stats)
}

/// Removes the finished session threads; returns how many of them failed.
fn finished(sessions: &mut Vec<std::thread::JoinHandle<bool>>) -> u64 {
    let mut failed = 0;
    let mut i = 0;
    while i < sessions.len() {
        if sessions[i].is_finished() {
            failed += u64::from(!sessions.swap_remove(i).join().unwrap_or(false));
        } else {
            i += 1;
        }
    }
    failed
}
