//! TCP + mutual TLS (rustls, ring provider) between the parties and the dealer.
//!
//! Each link is one TLS 1.3 connection; both ends present certificates from the session's CA,
//! and a certificate names its holder's role (`p0`, `p1`, `dealer`) as its DNS name, so a party
//! cannot claim another's role. Messages are framed with a little-endian u64 length, checked
//! against a limit before anything is allocated.
//!
//! After the handshake each link runs a reader and a writer thread around the shared TLS state
//! (encryption and decryption happen under a lock, socket I/O outside it), so that a send never
//! waits for the peer to read: both parties of a round send before they receive. A dead peer
//! ends in [`ErrorKind::Disconnected`], a silent one in [`ErrorKind::TimedOut`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mpc_core::transport::{self, ErrorKind, ErrorType, PartyId, Transport};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Connection, ServerConnection};

/// Why a link could not be set up or used.
#[derive(Debug)]
pub struct TcpError {
    /// What went wrong, for generic code.
    pub kind: ErrorKind,
    /// The peer, where known.
    pub peer: Option<PartyId>,
    /// What happened, for people.
    pub detail: String,
}

impl TcpError {
    pub(crate) fn new_other(detail: String) -> Self {
        Self::new(ErrorKind::Other, None, detail)
    }

    fn new(kind: ErrorKind, peer: Option<PartyId>, detail: impl Into<String>) -> Self {
        Self { kind, peer, detail: detail.into() }
    }
}

impl std::fmt::Display for TcpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.peer {
            Some(p) => write!(f, "{} (peer {p}): {}", self.kind, self.detail),
            None => write!(f, "{}: {}", self.kind, self.detail),
        }
    }
}

impl std::error::Error for TcpError {}

impl transport::Error for TcpError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

fn io_error(kind: ErrorKind, detail: String) -> TcpError {
    TcpError::new(kind, None, detail)
}

/// Timeouts and limits of a link.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TcpOptions {
    /// How long to wait for a connection, a handshake, or an accepted peer.
    pub connect_timeout: Duration,
    /// How long to wait for a message.
    pub read_timeout: Duration,
    /// How long one write to the socket may block (a peer that stops reading ends the link in an
    /// error after this long, also when the link is dropped).
    pub write_timeout: Duration,
    /// The largest message accepted.
    pub max_message: u64,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(60),
            max_message: 1 << 32,
        }
    }
}

/// Messages received but not yet taken by the protocol, per link: past this the reader stops
/// reading from the socket (TCP then holds the peer back), so that a peer that sends ahead
/// cannot grow our memory beyond this many messages of at most `max_message` bytes.
const INCOMING_QUEUE: usize = 16;

/// A party's TLS identity: the session's CA and its own certificate and key.
mod frame;
mod tls;

use frame::Incoming;
pub use frame::{FrameDecoder, frame, header};
pub use tls::{Identity, Validity, make_certs, make_certs_with};
use tls::{certified_role, handshake};

struct Link {
    outgoing: Option<Sender<Vec<u8>>>,
    incoming: Receiver<Incoming>,
    writer: Option<thread::JoinHandle<()>>,
}

impl Drop for Link {
    /// Delivers what was sent before the link goes: closes the outgoing queue and waits for the
    /// writer to put the rest on the wire (bounded by the socket's write timeout), so that a
    /// party that sends its last message and exits does not lose it.
    fn drop(&mut self) {
        drop(self.outgoing.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// One party's TLS links to its peers.
pub struct TcpTransport {
    links: BTreeMap<PartyId, Link>,
    options: TcpOptions,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport").field("peers", &self.links.keys().collect::<Vec<_>>()).finish()
    }
}

fn start_link(conn: Connection, tcp: TcpStream, peer: PartyId, options: TcpOptions) -> Result<Link, TcpError> {
    tcp.set_read_timeout(None)
        .and_then(|_| tcp.set_write_timeout(Some(options.write_timeout)))
        .and_then(|_| tcp.set_nodelay(true))
        .map_err(|e| TcpError::new(ErrorKind::Other, Some(peer), e.to_string()))?;
    let mut reader_tcp = tcp.try_clone().map_err(|e| TcpError::new(ErrorKind::Other, Some(peer), e.to_string()))?;
    let mut writer_tcp = tcp;
    let conn = Arc::new(Mutex::new(conn));
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>();
    let (in_tx, in_rx) = mpsc::sync_channel::<Incoming>(INCOMING_QUEUE);

    let reader_conn = conn.clone();
    thread::spawn(move || {
        let mut frames = FrameDecoder::new(options.max_message);
        let mut ready: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        // The handshake may already have pulled the peer's first records into the TLS state, so
        // each turn first drains what the state holds, and only then waits on the socket. The
        // decrypted bytes go straight into the message they belong to; the messages they
        // complete are handed over after the lock is released.
        let mut fed: &[u8] = &[];
        loop {
            {
                let Ok(mut guard) = reader_conn.lock() else { return };
                loop {
                    if !fed.is_empty()
                        && let Err(e) = guard.read_tls(&mut fed)
                    {
                        let _ = in_tx.send(Err((ErrorKind::Malformed, format!("TLS: {e}"))));
                        return;
                    }
                    if let Err(e) = guard.process_new_packets() {
                        let _ = in_tx.send(Err((ErrorKind::Malformed, format!("TLS: {e}"))));
                        return;
                    }
                    let mut chunk = [0u8; 1 << 14];
                    loop {
                        match guard.reader().read(&mut chunk) {
                            Ok(0) => break,
                            Ok(k) => {
                                if let Err(e) = frames.push_into(&chunk[..k], &mut ready) {
                                    let _ = in_tx.send(Err(e));
                                    return;
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => {
                                let _ = in_tx.send(Err((ErrorKind::Disconnected, e.to_string())));
                                return;
                            }
                        }
                    }
                    if fed.is_empty() {
                        break;
                    }
                }
            }
            for msg in ready.drain(..) {
                if in_tx.send(Ok(msg)).is_err() {
                    return;
                }
            }
            let n = match reader_tcp.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = in_tx.send(Err((ErrorKind::Disconnected, "connection closed".into())));
                    return;
                }
                Ok(n) => n,
            };
            fed = &buf[..n];
        }
    });

    let writer = thread::spawn(move || {
        for msg in out_rx {
            let mut wire = Vec::with_capacity(msg.len() + msg.len() / 1000 + 64);
            {
                let Ok(mut guard) = conn.lock() else { return };
                let head = header(msg.len());
                for chunk in std::iter::once(&head[..]).chain(msg.chunks(1 << 14)) {
                    if guard.writer().write_all(chunk).is_err() {
                        return;
                    }
                    while guard.wants_write() {
                        if guard.write_tls(&mut wire).is_err() {
                            return;
                        }
                    }
                }
            }
            if writer_tcp.write_all(&wire).is_err() {
                let _ = writer_tcp.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
        // The link is dropped: say goodbye in TLS, then close the socket for both directions. The
        // peer reads everything sent and then a clean end (not a silence it would wait out), and
        // our reader thread, blocked on its clone of the socket, wakes up and ends.
        if let Ok(mut guard) = conn.lock() {
            guard.send_close_notify();
            let mut wire = Vec::new();
            while guard.wants_write() && guard.write_tls(&mut wire).is_ok() {}
            let _ = writer_tcp.write_all(&wire);
        }
        let _ = writer_tcp.flush();
        let _ = writer_tcp.shutdown(std::net::Shutdown::Both);
    });

    Ok(Link { outgoing: Some(out_tx), incoming: in_rx, writer: Some(writer) })
}

/// Opens a listening socket.
pub fn listen(addr: SocketAddr) -> Result<TcpListener, TcpError> {
    TcpListener::bind(addr).map_err(|e| io_error(ErrorKind::Other, format!("listen on {addr}: {e}")))
}

/// A listener on a free loopback port, and its address: bound from here until accepted on, so
/// that no other process can take the port in between (no bind, drop, re-bind race).
pub fn listen_loopback() -> Result<(TcpListener, SocketAddr), TcpError> {
    let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr().map_err(|e| io_error(ErrorKind::Other, e.to_string()))?;
    Ok((listener, addr))
}

impl TcpTransport {
    /// No links yet.
    pub fn new(options: TcpOptions) -> Self {
        Self { links: BTreeMap::new(), options }
    }

    /// Connects to `peer` at `addr` (retrying until the connect timeout, so that processes may
    /// start in any order) and authenticates it (its certificate must name `peer`).
    pub fn connect(&mut self, identity: &Identity, peer: PartyId, addr: SocketAddr) -> Result<(), TcpError> {
        let deadline = std::time::Instant::now() + self.options.connect_timeout;
        let mut tcp = loop {
            match TcpStream::connect_timeout(&addr, self.options.connect_timeout) {
                Ok(tcp) => break tcp,
                Err(_) if std::time::Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Err(e) => {
                    return Err(TcpError::new(ErrorKind::Disconnected, Some(peer), format!("connect to {addr}: {e}")));
                }
            }
        };
        let _ = tcp.set_read_timeout(Some(self.options.connect_timeout));
        let _ = tcp.set_write_timeout(Some(self.options.connect_timeout));
        let name = ServerName::try_from(peer.name().to_string())
            .map_err(|e| TcpError::new(ErrorKind::Other, Some(peer), e.to_string()))?;
        let client = ClientConnection::new(identity.client_config()?, name)
            .map_err(|e| TcpError::new(ErrorKind::Other, Some(peer), e.to_string()))?;
        let mut conn = Connection::from(client);
        handshake(&mut conn, &mut tcp, Some(peer))?;
        let link = start_link(conn, tcp, peer, self.options)?;
        self.links.insert(peer, link);
        Ok(())
    }

    /// Accepts one peer on `listener`, which must present a certificate naming one of `expected`
    /// (and not one already linked). Returns its role.
    pub fn accept(
        &mut self,
        identity: &Identity,
        listener: &TcpListener,
        expected: &[PartyId],
    ) -> Result<PartyId, TcpError> {
        let (tcp, from) = accept_with_timeout(listener, self.options.connect_timeout)?;
        self.accept_stream(identity, tcp, from, expected)
    }

    /// [`TcpTransport::accept`] on a connection already accepted (by a server's accept loop,
    /// which hands each connection to its own thread): the TLS handshake and the role check.
    pub fn accept_stream(
        &mut self,
        identity: &Identity,
        mut tcp: TcpStream,
        from: SocketAddr,
        expected: &[PartyId],
    ) -> Result<PartyId, TcpError> {
        let _ = tcp.set_read_timeout(Some(self.options.connect_timeout));
        let _ = tcp.set_write_timeout(Some(self.options.connect_timeout));
        let server =
            ServerConnection::new(identity.server_config()?).map_err(|e| io_error(ErrorKind::Other, e.to_string()))?;
        let mut conn = Connection::from(server);
        handshake(&mut conn, &mut tcp, None)?;
        let role = certified_role(&conn)
            .filter(|r| expected.contains(r) && !self.links.contains_key(r) && *r != identity.role)
            .ok_or_else(|| {
                io_error(
                    ErrorKind::Unauthenticated,
                    format!("peer at {from} holds no certificate for an expected role"),
                )
            })?;
        let link = start_link(conn, tcp, role, self.options)?;
        self.links.insert(role, link);
        Ok(role)
    }
}

impl TcpTransport {
    /// Takes over the links of `other` (to peers not linked here): a server that accepted two
    /// parties separately serves them as one transport.
    pub fn join(&mut self, mut other: TcpTransport) -> Result<(), TcpError> {
        if let Some(peer) = other.links.keys().find(|p| self.links.contains_key(p)) {
            return Err(TcpError::new(ErrorKind::Other, Some(*peer), "already linked"));
        }
        self.links.append(&mut other.links);
        Ok(())
    }

    /// The peers linked.
    pub fn peers(&self) -> impl Iterator<Item = PartyId> + '_ {
        self.links.keys().copied()
    }

    /// Changes the timeouts and limits for what follows (a server waits for a short hello, then
    /// for the protocol's longer steps).
    pub fn set_options(&mut self, options: TcpOptions) {
        self.options = options;
    }
}

fn accept_with_timeout(listener: &TcpListener, timeout: Duration) -> Result<(TcpStream, SocketAddr), TcpError> {
    listener.set_nonblocking(true).map_err(|e| io_error(ErrorKind::Other, e.to_string()))?;
    let start = std::time::Instant::now();
    loop {
        match listener.accept() {
            Ok((tcp, from)) => {
                tcp.set_nonblocking(false).map_err(|e| io_error(ErrorKind::Other, e.to_string()))?;
                return Ok((tcp, from));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > timeout {
                    return Err(io_error(ErrorKind::TimedOut, "no peer connected in time".into()));
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(io_error(ErrorKind::Other, e.to_string())),
        }
    }
}

impl ErrorType for TcpTransport {
    type Error = TcpError;
}

impl Transport for TcpTransport {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), TcpError> {
        if msg.len() as u64 > self.options.max_message {
            return Err(TcpError::new(ErrorKind::TooLarge, Some(to), format!("{} bytes", msg.len())));
        }
        let link = self.links.get(&to).ok_or_else(|| TcpError::new(ErrorKind::UnknownPeer, Some(to), "no link"))?;
        let queue = link.outgoing.as_ref().ok_or_else(|| TcpError::new(ErrorKind::Disconnected, Some(to), "closed"))?;
        queue.send(msg.to_vec()).map_err(|_| TcpError::new(ErrorKind::Disconnected, Some(to), "link closed"))
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), TcpError> {
        let link = self.links.get(&from).ok_or_else(|| TcpError::new(ErrorKind::UnknownPeer, Some(from), "no link"))?;
        match link.incoming.recv_timeout(self.options.read_timeout) {
            Ok(Ok(msg)) if msg.len() == buf.len() => {
                buf.copy_from_slice(&msg);
                Ok(())
            }
            Ok(Ok(msg)) => Err(TcpError::new(
                ErrorKind::LengthMismatch,
                Some(from),
                format!("expected {} bytes, got {}", buf.len(), msg.len()),
            )),
            Ok(Err((kind, detail))) => Err(TcpError::new(kind, Some(from), detail)),
            Err(RecvTimeoutError::Timeout) => Err(TcpError::new(ErrorKind::TimedOut, Some(from), "no message in time")),
            Err(RecvTimeoutError::Disconnected) => {
                Err(TcpError::new(ErrorKind::Disconnected, Some(from), "link closed"))
            }
        }
    }
}
