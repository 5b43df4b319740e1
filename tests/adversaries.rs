//! Adversarial peers over real TCP + TLS: an honest P0 (and dealer) against a P1 that sends
//! wrong-length, oversized, duplicated, reordered or garbage messages, stalls, or disconnects in
//! the middle of the inference; and honest parties against a dealer that dies mid-session.
//!
//! Every case must end in a typed error within the timeouts: no panic, no hang, and no result.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mpc_core::Transport;
use mpc_core::transport::{Error as _, ErrorKind, ErrorType, Metered, PartyId, Role};
use mpc_io_std::run::network::{Endpoints, NetError, Peer, connect_party, connect_party_with};
use mpc_io_std::run::threads::PartyContext;
use mpc_io_std::run::{PartyReport, PrivateJob, private_party};
use mpc_io_std::service::dealer::{DealerServiceOptions, DealerServiceStats, serve_dealer};
use mpc_io_std::transport::tcp::{Identity, TcpOptions, TcpTransport, listen_loopback, make_certs};
use mpc_transformer::Preset;

/// What the malicious P1 does to its outgoing messages.
#[derive(Clone, Copy, Debug)]
enum Attack {
    /// Replace message `at` by a few bytes.
    WrongLength { at: usize },
    /// Replace message `at` by one above P0's frame limit.
    Oversized { at: usize },
    /// Send message `at` twice.
    Duplicate { at: usize },
    /// Swap the first two messages from `at` on that are sent back to back (no receive between
    /// them) and differ in length.
    Reorder { at: usize },
    /// Close the connection instead of sending message `at`.
    Disconnect { at: usize },
    /// Sleep past P0's read timeout before sending message `at`.
    Stall { at: usize },
}

/// P1's link to P0, with the attack applied to what it sends.
struct Malicious<T> {
    inner: Option<T>,
    attack: Attack,
    sent: usize,
    /// A message held back to be sent after the next one (`Reorder`), and whether that was done.
    held: Option<Vec<u8>>,
    reordered: bool,
}

impl<T: Transport> ErrorType for Malicious<T> {
    type Error = ErrorKind;
}

impl<T: Transport> Transport for Malicious<T> {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), ErrorKind> {
        let index = self.sent;
        self.sent += 1;
        let inner = self.inner.as_mut().ok_or(ErrorKind::Disconnected)?;
        let mut send = |m: &[u8]| inner.send(to, m).map_err(|e| e.kind());
        match self.attack {
            Attack::WrongLength { at } if at == index => send(&[1, 2, 3]),
            Attack::Oversized { at } if at == index => send(&vec![0u8; 2 << 20]),
            Attack::Duplicate { at } if at == index => {
                send(msg)?;
                send(msg)
            }
            Attack::Reorder { at } if index >= at && !self.reordered => match self.held.take() {
                Some(held) if held.len() != msg.len() => {
                    self.reordered = true;
                    send(msg)?;
                    send(&held)
                }
                Some(held) => {
                    // The same length: swapping would pass unseen; keep looking.
                    send(&held)?;
                    self.held = Some(msg.to_vec());
                    Ok(())
                }
                None => {
                    self.held = Some(msg.to_vec());
                    Ok(())
                }
            },
            Attack::Disconnect { at } if at == index => {
                // Dropping the transport closes the TLS connection.
                self.inner = None;
                Err(ErrorKind::Disconnected)
            }
            Attack::Stall { at } if at == index => {
                std::thread::sleep(STALL_TIMEOUT * 3);
                send(msg)
            }
            _ => send(msg),
        }
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let inner = self.inner.as_mut().ok_or(ErrorKind::Disconnected)?;
        // A held message must go before we wait for an answer to it (else both sides wait).
        if let Some(held) = self.held.take() {
            inner.send(PartyId::P0, &held).map_err(|e| e.kind())?;
        }
        inner.recv(from, buf).map_err(|e| e.kind())
    }
}

/// The read timeout where a timeout is the expected error (a stalling peer): short, since the
/// kind cannot race into another (a slow honest step is a timeout too).
const STALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// The read timeout everywhere else: long, so that a loaded machine never turns the expected
/// error (a wrong length, say) into a timeout.
const PATIENT: Duration = Duration::from_secs(10);

/// Material in batches of 2^16 ring elements (512 KiB), within the links' 1 MiB message limit.
const SMALL_CHUNKS: (usize, usize) = (1 << 20, 1 << 16);

fn options(read_timeout: Duration) -> TcpOptions {
    let mut options = TcpOptions::default();
    (options.connect_timeout, options.read_timeout, options.max_message) =
        (Duration::from_secs(5), read_timeout, 1 << 20);
    options
}

/// A listener on a free loopback port, kept bound until its owner accepts on it.
/// The dealer service on `listener` until `stop`, logging into `log`.
fn dealer_service(
    listener: TcpListener,
    certs: &Path,
    read_timeout: Duration,
    stop: &AtomicBool,
    log: &Arc<Mutex<Vec<serde_json::Value>>>,
) -> Result<DealerServiceStats, NetError> {
    let mut options = DealerServiceOptions::default();
    options.tcp = self::options(read_timeout);
    options.insecure_seed = Some(mpc_io_std::run::threads::seed_bytes(5));
    let log = log.clone();
    serve_dealer(listener, certs, options, stop, Arc::new(move |line| log.lock().unwrap().push(line)))
}

fn bound() -> (TcpListener, SocketAddr) {
    listen_loopback().unwrap()
}

fn certs(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mpcformer-adv-{name}-{}", std::process::id()));
    make_certs(&dir).unwrap();
    dir
}

/// Runs the small soak model with an honest P0 and dealer against `p1`; returns P0's and the
/// dealer's results and how long P0 took.
fn honest_p0_against(
    certs: &Path,
    read_timeout: Duration,
    p1: impl FnOnce(Endpoints) -> Result<(), String> + Send,
) -> (Result<PartyReport, NetError>, bool, Duration) {
    let (config, params, tokens) = mpc_io_std::tasks::soak::small_model();
    let job = PrivateJob {
        seed: Some(5),
        material: SMALL_CHUNKS,
        ..PrivateJob::new(&config, &params, &tokens, Preset::parse("quad+2quad").unwrap())
    };
    let ((dealer_listener, dealer_at), (p0_listener, p0_at)) = (bound(), bound());
    let endpoints = Endpoints { dealer: dealer_at, peer: p0_at };
    let (stop, log) = (AtomicBool::new(false), Arc::new(Mutex::new(Vec::new())));
    std::thread::scope(|s| {
        let (stop, log) = (&stop, &log);
        let dealer = s.spawn(move || dealer_service(dealer_listener, certs, read_timeout, stop, log));
        let job = &job;
        let p0 = s.spawn(move || {
            let started = Instant::now();
            let peer = Peer::Listen(p0_listener);
            let result = connect_party_with(Role::P0, dealer_at, peer, certs, Some(5), options(read_timeout))
                .and_then(|mut ctx| Ok(private_party(&mut ctx, job)?));
            (result, started.elapsed())
        });
        let _ = p1(endpoints);
        let (result, took) = p0.join().expect("P0 does not panic");
        stop.store(true, Ordering::Relaxed);
        let stats = dealer.join().expect("the dealer does not panic").expect("the dealer service runs");
        let dealer_ok = stats.sessions == 1 && stats.failed == 0;
        (result, dealer_ok, took)
    })
}

/// A P1 that follows the protocol except for `attack`.
fn malicious_p1(certs: &Path, endpoints: Endpoints, attack: Attack, read_timeout: Duration) -> Result<(), String> {
    let (config, params, tokens) = mpc_io_std::tasks::soak::small_model();
    let job = PrivateJob {
        seed: Some(5),
        material: SMALL_CHUNKS,
        ..PrivateJob::new(&config, &params, &tokens, Preset::parse("quad+2quad").unwrap())
    };
    // P1's own limit is far above P0's, so that P0's limit is the one tested.
    let mut loose = options(read_timeout);
    loose.max_message = 1 << 32;
    let ctx = connect_party(Role::P1, endpoints, certs, Some(5), loose).map_err(|e| e.to_string())?;
    let PartyContext { role, peer, dealer, rng } = ctx;
    let peer = Malicious { inner: Some(peer), attack, sent: 0, held: None, reordered: false };
    let mut ctx = PartyContext { role, peer: Metered::new(peer), dealer, rng };
    private_party(&mut ctx, &job).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn every_misbehaving_peer_ends_the_honest_party_in_a_typed_error() {
    let certs = certs("peers");
    let cases = [
        (Attack::WrongLength { at: 2 }, ErrorKind::LengthMismatch),
        (Attack::WrongLength { at: 40 }, ErrorKind::LengthMismatch),
        (Attack::Oversized { at: 10 }, ErrorKind::TooLarge),
        (Attack::Duplicate { at: 5 }, ErrorKind::LengthMismatch),
        (Attack::Reorder { at: 20 }, ErrorKind::LengthMismatch),
        (Attack::Disconnect { at: 30 }, ErrorKind::Disconnected),
        (Attack::Stall { at: 15 }, ErrorKind::TimedOut),
    ];
    // P1's first message is its handshake: a wrong length there is another protocol version.
    let first = Attack::WrongLength { at: 0 };
    let (result, dealer_ok, _) = honest_p0_against(&certs, PATIENT, |e| malicious_p1(&certs, e, first, PATIENT));
    let handshake = mpc_core::Error::Malformed("the parties' public parameters differ");
    assert!(matches!(result, Err(NetError::Protocol(e)) if e == handshake), "{result:?}");
    assert!(!dealer_ok);
    for (attack, expected) in cases {
        let timeout = if matches!(attack, Attack::Stall { .. }) { STALL_TIMEOUT } else { PATIENT };
        let (result, dealer_ok, took) =
            honest_p0_against(&certs, timeout, |e| malicious_p1(&certs, e, attack, timeout));
        match result {
            Err(NetError::Protocol(mpc_core::Error::Transport(kind))) => {
                assert_eq!(kind, expected, "{attack:?}")
            }
            other => panic!("{attack:?}: expected a {expected:?} error, got {other:?}"),
        }
        assert!(!dealer_ok, "{attack:?}: the dealer sees P0 leave and stops with an error");
        assert!(took < timeout * 4, "{attack:?}: P0 stopped after {took:?}");
    }
    std::fs::remove_dir_all(&certs).unwrap();
}

/// Connects to `addr` (retrying until it listens, for at most ten seconds: the bytes must reach
/// a listening port), sends garbage instead of a TLS hello, and waits for the other end to drop
/// the connection.
fn send_garbage(addr: SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut socket = loop {
        match std::net::TcpStream::connect(addr) {
            Ok(socket) => break socket,
            Err(_) if started.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{addr} never listened: {e}")),
        }
    };
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    socket.write_all(&garbage).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    // The refusal closes the connection (an alert, then EOF, or a reset).
    let mut sink = Vec::new();
    let _ = socket.read_to_end(&mut sink);
    Ok(())
}

/// The error names the refused TLS handshake, and says it was refused for what arrived (a
/// corrupt message, `Unauthenticated`), not for a peer that left or stayed silent.
fn refused_handshake(e: &NetError) -> bool {
    matches!(e, NetError::Link(link)
        if link.kind() == ErrorKind::Unauthenticated && link.to_string().contains("TLS handshake: received corrupt"))
}

#[test]
fn garbage_instead_of_tls_is_refused_at_the_handshake() {
    let certs = certs("garbage");
    let (result, _, took) = honest_p0_against(&certs, PATIENT, |e| send_garbage(e.peer));
    match &result {
        Err(e) => assert!(refused_handshake(e), "P0 refused for another reason: {e}"),
        Ok(_) => panic!("P0 computed with garbage for a peer"),
    }
    assert!(took < PATIENT * 2, "{took:?}");
    std::fs::remove_dir_all(&certs).unwrap();
}

#[test]
fn garbage_instead_of_tls_is_refused_by_the_dealer_which_keeps_serving() {
    let certs = certs("garbage-dealer");
    let ((dealer_listener, dealer_at), (p0_listener, p0_at)) = (bound(), bound());
    let (config, params, tokens) = mpc_io_std::tasks::soak::small_model();
    let job = PrivateJob { material: SMALL_CHUNKS, ..PrivateJob::new(&config, &params, &tokens, Preset::ALL[1]) };
    let (stop, log) = (AtomicBool::new(false), Arc::new(Mutex::new(Vec::new())));
    let (stats, [r0, r1]) = std::thread::scope(|s| {
        let (certs, stop, log) = (&certs, &stop, &log);
        let dealer = s.spawn(move || dealer_service(dealer_listener, certs, PATIENT, stop, log));
        send_garbage(dealer_at).expect("the garbage reaches the dealer's port");
        // Then an honest session through the same dealer.
        let job = &job;
        let party = |role: Role, peer: Peer| {
            move || -> Result<PartyReport, NetError> {
                let mut ctx = connect_party_with(role, dealer_at, peer, certs, None, options(PATIENT))?;
                let report = private_party(&mut ctx, job)?;
                if role == Role::P0 {
                    ctx.dealer.finish()?;
                }
                Ok(report)
            }
        };
        let p0 = s.spawn(party(Role::P0, Peer::Listen(p0_listener)));
        let p1 = s.spawn(party(Role::P1, Peer::Connect(p0_at)));
        let results = [p0.join().expect("P0 does not panic"), p1.join().expect("P1 does not panic")];
        stop.store(true, Ordering::Relaxed);
        (dealer.join().expect("the dealer does not panic").expect("the dealer service runs"), results)
    });
    assert!(r0.is_ok() && r1.is_ok(), "{r0:?} {r1:?} {:?}", log.lock().unwrap());
    assert_eq!((stats.sessions, stats.failed, stats.refused), (1, 0, 1), "{stats:?}");
    let log = log.lock().unwrap();
    let refusal = log.iter().find(|l| l["event"] == "refused").expect("a refusal logged");
    assert!(refusal["error"].as_str().unwrap().contains("TLS handshake: received corrupt"), "{refusal}");
    std::fs::remove_dir_all(&certs).unwrap();
}

/// Values that would be computed on duplicated or reordered messages of equal lengths are
/// wrong, not detected: the semi-honest model trusts the peer to follow the protocol (a
/// malicious peer can always falsify its shares). What a transport *can* see, it refuses.
#[test]
fn a_dealer_dying_mid_session_ends_both_parties_in_errors() {
    let certs = certs("dealer");
    let ((dealer_listener, dealer_at), (p0_listener, p0_at)) = (bound(), bound());
    let (config, params, tokens) = mpc_io_std::tasks::soak::small_model();
    let job = PrivateJob::new(&config, &params, &tokens, Preset::ALL[0]);
    let started = Instant::now();
    let [r0, r1] = std::thread::scope(|s| {
        // The dealer hands out seeds, takes P0's first batch of requests, and dies.
        let certs = &certs;
        s.spawn(move || {
            let identity = Identity::load(certs, PartyId::Dealer).unwrap();
            let mut transport = TcpTransport::new(options(PATIENT));
            for _ in 0..2 {
                let role = transport.accept(&identity, &dealer_listener, &[PartyId::P0, PartyId::P1]).unwrap();
                let mut join = [0u8; 16];
                transport.recv(role, &mut join).unwrap();
            }
            transport.send(PartyId::P0, &[7u8; 32]).unwrap();
            transport.send(PartyId::P1, &[9u8; 32]).unwrap();
            let mut count = [0u8; 8];
            let _ = transport.recv(PartyId::P0, &mut count);
            drop(transport);
        });
        let job = &job;
        let party = |role: Role, peer: Peer| {
            move || -> Result<PartyReport, NetError> {
                let mut ctx = connect_party_with(role, dealer_at, peer, certs, None, options(PATIENT))?;
                Ok(private_party(&mut ctx, job)?)
            }
        };
        let p0 = s.spawn(party(Role::P0, Peer::Listen(p0_listener)));
        let p1 = s.spawn(party(Role::P1, Peer::Connect(p0_at)));
        [p0.join().expect("P0 does not panic"), p1.join().expect("P1 does not panic")]
    });
    let kind = |r: &Result<PartyReport, NetError>| match r {
        Err(NetError::Protocol(mpc_core::Error::Transport(kind))) => Some(*kind),
        _ => None,
    };
    assert_eq!(kind(&r0), Some(ErrorKind::Disconnected), "P0 waits on the dead dealer: {r0:?}");
    assert!(matches!(kind(&r1), Some(ErrorKind::Disconnected | ErrorKind::TimedOut)), "P1 loses P0: {r1:?}");
    assert!(started.elapsed() < PATIENT * 2, "no hang: {:?}", started.elapsed());
    std::fs::remove_dir_all(&certs).unwrap();
}
