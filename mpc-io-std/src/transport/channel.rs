//! An in-memory transport over std channels, for parties running as threads of one process.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use mpc_core::transport::{self, ErrorKind, ErrorType, PartyId, Transport};

/// A failed channel operation: its kind, the peer, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The peer of the operation.
    pub peer: PartyId,
    /// Bytes expected, where a length was at stake.
    pub expected: Option<usize>,
    /// Bytes received or offered, where a length was at stake.
    pub actual: Option<usize>,
}

impl transport::Error for ChannelError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (peer {})", self.kind, self.peer)?;
        if let (Some(e), Some(a)) = (self.expected, self.actual) {
            write!(f, ": expected {e} bytes, got {a}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ChannelError {}

struct Link {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

/// One party's end of in-memory links to some of the other parties.
pub struct ChannelTransport {
    links: BTreeMap<PartyId, Link>,
    timeout: Duration,
    max_message: usize,
}

impl ChannelTransport {
    /// The default receive timeout: long enough for a party computing a large layer between two
    /// messages, short enough that a stuck test ends.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    /// The default largest message, 4 GiB.
    pub const DEFAULT_MAX_MESSAGE: usize = 1 << 32;

    fn empty() -> Self {
        Self { links: BTreeMap::new(), timeout: Self::DEFAULT_TIMEOUT, max_message: Self::DEFAULT_MAX_MESSAGE }
    }

    /// A connected pair of transports: `a`'s end (talking to `b`) and `b`'s end (talking to `a`).
    pub fn pair(a: PartyId, b: PartyId) -> (Self, Self) {
        let (tx_ab, rx_ab) = mpsc::channel();
        let (tx_ba, rx_ba) = mpsc::channel();
        let mut end_a = Self::empty();
        let mut end_b = Self::empty();
        end_a.links.insert(b, Link { tx: tx_ab, rx: rx_ba });
        end_b.links.insert(a, Link { tx: tx_ba, rx: rx_ab });
        (end_a, end_b)
    }

    /// Merges another transport's links into this one (to give one party links to several peers).
    pub fn join(mut self, other: ChannelTransport) -> Self {
        self.links.extend(other.links);
        self
    }

    /// Sets the receive timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest message accepted for sending or receiving.
    pub fn with_max_message(mut self, max: usize) -> Self {
        self.max_message = max;
        self
    }

    fn link(&self, peer: PartyId) -> Result<&Link, ChannelError> {
        self.links.get(&peer).ok_or(ChannelError { kind: ErrorKind::UnknownPeer, peer, expected: None, actual: None })
    }
}

impl ErrorType for ChannelTransport {
    type Error = ChannelError;
}

impl Transport for ChannelTransport {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), ChannelError> {
        let err = |kind| ChannelError { kind, peer: to, expected: None, actual: Some(msg.len()) };
        if msg.len() > self.max_message {
            return Err(err(ErrorKind::TooLarge));
        }
        self.link(to)?.tx.send(msg.to_vec()).map_err(|_| err(ErrorKind::Disconnected))
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), ChannelError> {
        let err = |kind, actual| ChannelError { kind, peer: from, expected: Some(buf.len()), actual };
        if buf.len() > self.max_message {
            return Err(err(ErrorKind::TooLarge, None));
        }
        let msg = match self.link(from)?.rx.recv_timeout(self.timeout) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => return Err(err(ErrorKind::TimedOut, None)),
            Err(RecvTimeoutError::Disconnected) => return Err(err(ErrorKind::Disconnected, None)),
        };
        if msg.len() != buf.len() {
            return Err(err(ErrorKind::LengthMismatch, Some(msg.len())));
        }
        buf.copy_from_slice(&msg);
        Ok(())
    }
}

impl std::fmt::Debug for ChannelTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelTransport").field("peers", &self.links.keys().collect::<Vec<_>>()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_order_and_checks_lengths() {
        let (mut a, mut b) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        a.send(PartyId::P1, b"one").unwrap();
        a.send(PartyId::P1, b"three").unwrap();
        let mut buf = [0u8; 3];
        b.recv(PartyId::P0, &mut buf).unwrap();
        assert_eq!(&buf, b"one");
        let e = b.recv(PartyId::P0, &mut buf).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LengthMismatch);
        assert_eq!((e.expected, e.actual), (Some(3), Some(5)));
        assert_eq!(b.recv(PartyId::Dealer, &mut buf).unwrap_err().kind, ErrorKind::UnknownPeer);
    }

    #[test]
    fn reports_timeouts_and_disconnects() {
        let (a, b) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        let mut b = b.with_timeout(Duration::from_millis(20));
        let mut buf = [0u8; 1];
        assert_eq!(b.recv(PartyId::P0, &mut buf).unwrap_err().kind, ErrorKind::TimedOut);
        drop(a);
        assert_eq!(b.recv(PartyId::P0, &mut buf).unwrap_err().kind, ErrorKind::Disconnected);
        assert_eq!(b.send(PartyId::P0, &buf).unwrap_err().kind, ErrorKind::Disconnected);
    }

    #[test]
    fn refuses_oversized_messages() {
        let (a, _b) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        let mut a = a.with_max_message(4);
        assert_eq!(a.send(PartyId::P1, &[0u8; 5]).unwrap_err().kind, ErrorKind::TooLarge);
    }
}
