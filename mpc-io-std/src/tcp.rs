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
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mpc_core::transport::{self, ErrorKind, ErrorType, PartyId, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection};

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

/// Timeouts and limits of a link.
#[derive(Clone, Copy, Debug)]
pub struct TcpOptions {
    /// How long to wait for a connection, a handshake, or an accepted peer.
    pub connect_timeout: Duration,
    /// How long to wait for a message.
    pub read_timeout: Duration,
    /// The largest message accepted.
    pub max_message: u64,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(30), read_timeout: Duration::from_secs(300), max_message: 1 << 32 }
    }
}

/// A party's TLS identity: the session's CA and its own certificate and key.
#[derive(Debug)]
pub struct Identity {
    role: PartyId,
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn io_error(kind: ErrorKind, detail: String) -> TcpError {
    TcpError::new(kind, None, detail)
}

impl Identity {
    /// Reads `ca.pem`, `<role>.pem` and `<role>.key` from `dir` (as written by [`make_certs`]).
    pub fn load(dir: &Path, role: PartyId) -> Result<Self, TcpError> {
        let file = |name: String| dir.join(name);
        let bad = |what: &Path, e: &dyn std::fmt::Display| {
            io_error(ErrorKind::Unauthenticated, format!("{}: {e}", what.display()))
        };
        let ca_path = file("ca.pem".into());
        let ca = CertificateDer::from_pem_file(&ca_path).map_err(|e| bad(&ca_path, &e))?;
        let cert_path = file(format!("{}.pem", role.name()));
        let chain = CertificateDer::pem_file_iter(&cert_path)
            .map_err(|e| bad(&cert_path, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&cert_path, &e))?;
        let key_path = file(format!("{}.key", role.name()));
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| bad(&key_path, &e))?;
        Ok(Self { role, ca, chain, key })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TcpError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(|e| io_error(ErrorKind::Unauthenticated, format!("CA certificate: {e}")))?;
        Ok(Arc::new(roots))
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn client_config(&self) -> Result<Arc<ClientConfig>, TcpError> {
        let config = ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| io_error(ErrorKind::Other, e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| io_error(ErrorKind::Unauthenticated, format!("own certificate: {e}")))?;
        Ok(Arc::new(config))
    }

    fn server_config(&self) -> Result<Arc<ServerConfig>, TcpError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, Self::provider())
            .build()
            .map_err(|e| io_error(ErrorKind::Unauthenticated, e.to_string()))?;
        let config = ServerConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| io_error(ErrorKind::Other, e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| io_error(ErrorKind::Unauthenticated, format!("own certificate: {e}")))?;
        Ok(Arc::new(config))
    }
}

/// Writes a test CA and a certificate and key per role (`p0`, `p1`, `dealer`, each naming its
/// role as DNS name) into `dir`: `ca.pem`, `<role>.pem`, `<role>.key`. The CA's key is not kept.
pub fn make_certs(dir: &Path) -> Result<(), TcpError> {
    make_certs_with(dir, |_| Validity::default())
}

/// When a certificate is valid: from `not_before` to `not_after`, each (year, month, day) UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// The first day.
    pub not_before: (i32, u8, u8),
    /// The last day.
    pub not_after: (i32, u8, u8),
}

impl Default for Validity {
    /// 2024-01-01 to 2124-01-01: test certificates that do not expire during a test.
    fn default() -> Self {
        Self { not_before: (2024, 1, 1), not_after: (2124, 1, 1) }
    }
}

/// [`make_certs`] with each role's certificate valid over `validity(role)` (an expired one, to
/// test that it is refused).
pub fn make_certs_with(dir: &Path, validity: impl Fn(PartyId) -> Validity) -> Result<(), TcpError> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, date_time_ymd};
    let fail = |e: &dyn std::fmt::Display| io_error(ErrorKind::Other, e.to_string());
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let ca_key = KeyPair::generate().map_err(|e| fail(&e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(&e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "mpcformer test CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| fail(&e))?;
    let issuer = Issuer::new(ca_params, ca_key);
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).map_err(|e| fail(&e))?;
    for role in [PartyId::P0, PartyId::P1, PartyId::Dealer] {
        let key = KeyPair::generate().map_err(|e| fail(&e))?;
        let mut params = CertificateParams::new(vec![role.name().to_string()]).map_err(|e| fail(&e))?;
        params.distinguished_name.push(rcgen::DnType::CommonName, role.name());
        let Validity { not_before: (y0, m0, d0), not_after: (y1, m1, d1) } = validity(role);
        params.not_before = date_time_ymd(y0, m0, d0);
        params.not_after = date_time_ymd(y1, m1, d1);
        let cert = params.signed_by(&key, &issuer).map_err(|e| fail(&e))?;
        std::fs::write(dir.join(format!("{}.pem", role.name())), cert.pem()).map_err(|e| fail(&e))?;
        std::fs::write(dir.join(format!("{}.key", role.name())), key.serialize_pem()).map_err(|e| fail(&e))?;
    }
    Ok(())
}

type Incoming = Result<Vec<u8>, (ErrorKind, String)>;

/// Cuts a byte stream into messages framed by a little-endian u64 length, refusing any frame
/// longer than the limit before allocating it.
#[derive(Debug)]
pub struct FrameDecoder {
    pending: Vec<u8>,
    max_message: u64,
}

impl FrameDecoder {
    /// A decoder accepting messages of at most `max_message` bytes.
    pub fn new(max_message: u64) -> Self {
        Self { pending: Vec::new(), max_message }
    }

    /// Appends received bytes and returns the messages they complete, or the frame that is too
    /// large.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, (ErrorKind, String)> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while self.pending.len() - start >= 8 {
            let len = u64::from_le_bytes(self.pending[start..start + 8].try_into().expect("eight bytes"));
            if len > self.max_message {
                return Err((ErrorKind::TooLarge, format!("frame of {len} bytes")));
            }
            let len = len as usize;
            if self.pending.len() - start - 8 < len {
                break;
            }
            out.push(self.pending[start + 8..start + 8 + len].to_vec());
            start += 8 + len;
        }
        self.pending.drain(..start);
        Ok(out)
    }

    /// Bytes held for an incomplete frame.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// The frame of one message.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + msg.len());
    out.extend_from_slice(&(msg.len() as u64).to_le_bytes());
    out.extend_from_slice(msg);
    out
}

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

fn handshake(conn: &mut Connection, tcp: &mut TcpStream, peer: Option<PartyId>) -> Result<(), TcpError> {
    while conn.is_handshaking() {
        conn.complete_io(tcp).map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ErrorKind::TimedOut,
                std::io::ErrorKind::InvalidData => ErrorKind::Unauthenticated,
                _ => ErrorKind::Disconnected,
            };
            TcpError::new(kind, peer, format!("TLS handshake: {e}"))
        })?;
    }
    Ok(())
}

/// The role a verified peer certificate names (its DNS name).
fn certified_role(conn: &Connection) -> Option<PartyId> {
    let cert = conn.peer_certificates()?.first()?;
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    [PartyId::P0, PartyId::P1, PartyId::Dealer].into_iter().find(|role| {
        ServerName::try_from(role.name()).is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
    })
}

fn start_link(conn: Connection, tcp: TcpStream, peer: PartyId, options: TcpOptions) -> Result<Link, TcpError> {
    tcp.set_read_timeout(None)
        .and_then(|_| tcp.set_write_timeout(None))
        .and_then(|_| tcp.set_nodelay(true))
        .map_err(|e| TcpError::new(ErrorKind::Other, Some(peer), e.to_string()))?;
    let mut reader_tcp = tcp.try_clone().map_err(|e| TcpError::new(ErrorKind::Other, Some(peer), e.to_string()))?;
    let mut writer_tcp = tcp;
    let conn = Arc::new(Mutex::new(conn));
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>();
    let (in_tx, in_rx) = mpsc::channel::<Incoming>();

    let reader_conn = conn.clone();
    thread::spawn(move || {
        let mut frames = FrameDecoder::new(options.max_message);
        let mut plain: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        // The handshake may already have pulled the peer's first records into the TLS state, so
        // each turn first drains what the state holds, and only then waits on the socket.
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
                            Ok(k) => plain.extend_from_slice(&chunk[..k]),
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
            match frames.push(&plain) {
                Ok(messages) => {
                    for msg in messages {
                        if in_tx.send(Ok(msg)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = in_tx.send(Err(e));
                    return;
                }
            }
            plain.clear();
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
                for chunk in frame(&msg).chunks(1 << 14) {
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
        let (mut tcp, from) = accept_with_timeout(listener, self.options.connect_timeout)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let stream: Vec<u8> = [frame(b"first"), frame(b""), frame(&[7u8; 300])].concat();
        for cut in [1, 7, 8, 9, 13, 100, stream.len()] {
            let mut d = FrameDecoder::new(1 << 20);
            let mut got = Vec::new();
            for chunk in stream.chunks(cut) {
                got.extend(d.push(chunk).unwrap());
            }
            assert_eq!(got, vec![b"first".to_vec(), vec![], vec![7u8; 300]], "cut {cut}");
            assert_eq!(d.pending(), 0);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_streams_never_panic_the_decoder(stream: Vec<u8>, cut in 1usize..64) {
            let mut d = FrameDecoder::new(1 << 12);
            for chunk in stream.chunks(cut) {
                if d.push(chunk).is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        let mut d = FrameDecoder::new(16);
        let err = d.push(&u64::MAX.to_le_bytes()).unwrap_err();
        assert_eq!(err.0, ErrorKind::TooLarge);
        assert_eq!(FrameDecoder::new(16).push(&frame(&[0; 17])).unwrap_err().0, ErrorKind::TooLarge);
        assert_eq!(FrameDecoder::new(16).push(&frame(&[0; 16])).unwrap().len(), 1);
    }
}
