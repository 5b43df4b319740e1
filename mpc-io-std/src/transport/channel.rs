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

/// One message in flight: bytes (in a buffer that goes back to the sender once read), or words
/// handed over whole ([`Transport::send_words`]: the receiver keeps the buffer).
enum Message {
    Bytes(Vec<u8>),
    Words(Vec<u64>),
}

impl Message {
    fn len(&self) -> usize {
        match self {
            Message::Bytes(b) => b.len(),
            Message::Words(w) => 8 * w.len(),
        }
    }
}

struct Link {
    tx: Sender<Message>,
    rx: Receiver<Message>,
    /// Buffers of our messages the peer has read (wiped), for our next ones: a fresh buffer per
    /// message costs a page fault per 4 KiB, which dominated megabyte messages on a VM.
    spare: Receiver<Vec<u8>>,
    /// Where the peer's buffers go back once read.
    give_back: Sender<Vec<u8>>,
    /// Spare buffers taken off `spare`: at most [`SPARE_BUFFERS`] of them, of at most
    /// [`SPARE_BYTES`] together.
    pool: Vec<Vec<u8>>,
}

/// Spare buffers a link keeps.
const SPARE_BUFFERS: usize = 8;

/// Bytes of spare buffers a link keeps (a BERT query's largest message at 128 tokens is 31 MB).
const SPARE_BYTES: usize = 64 << 20;

impl Drop for Link {
    fn drop(&mut self) {
        // Words handed over and never read are wiped here (byte buffers are wiped as they are
        // read, and refused ones by `recv`).
        for message in self.rx.try_iter() {
            if let Message::Words(mut words) = message {
                zeroize::Zeroize::zeroize(&mut words);
            }
        }
    }
}

impl Link {
    /// A buffer holding `msg`: the smallest spare one it fits in, else the largest (grown).
    fn buffer_for(&mut self, msg: &[u8]) -> Vec<u8> {
        self.pool.extend(self.spare.try_iter());
        // The largest buffers that fit the bounds stay.
        self.pool.sort_by_key(|b| core::cmp::Reverse(b.capacity()));
        let mut bytes = 0;
        self.pool.retain(|b| {
            bytes += b.capacity();
            bytes <= SPARE_BYTES
        });
        self.pool.truncate(SPARE_BUFFERS);
        let fitting = (0..self.pool.len())
            .filter(|&i| self.pool[i].capacity() >= msg.len())
            .min_by_key(|&i| self.pool[i].capacity());
        let largest = (0..self.pool.len()).max_by_key(|&i| self.pool[i].capacity());
        let mut buf = fitting.or(largest).map(|i| self.pool.swap_remove(i)).unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(msg);
        buf
    }
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
        let (back_to_a, spare_a) = mpsc::channel();
        let (back_to_b, spare_b) = mpsc::channel();
        let mut end_a = Self::empty();
        let mut end_b = Self::empty();
        end_a.links.insert(b, Link { tx: tx_ab, rx: rx_ba, spare: spare_a, give_back: back_to_b, pool: Vec::new() });
        end_b.links.insert(a, Link { tx: tx_ba, rx: rx_ab, spare: spare_b, give_back: back_to_a, pool: Vec::new() });
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
        let link = self.link_to(to, msg.len())?;
        let buf = link.buffer_for(msg);
        link.tx.send(Message::Bytes(buf)).map_err(|_| send_error(ErrorKind::Disconnected, to, msg.len()))
    }

    fn send_words(&mut self, to: PartyId, mut words: Vec<u64>) -> Result<(), ChannelError> {
        let bytes = 8 * words.len();
        let link = match self.link_to(to, bytes) {
            Ok(link) => link,
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut words);
                return Err(e);
            }
        };
        link.tx.send(Message::Words(words)).map_err(|mpsc::SendError(message)| {
            // Not delivered: wiped here (bytes are the caller's).
            if let Message::Words(mut words) = message {
                zeroize::Zeroize::zeroize(&mut words);
            }
            send_error(ErrorKind::Disconnected, to, bytes)
        })
    }

    fn recv_words(&mut self, from: PartyId, len: usize) -> Result<Vec<u64>, ChannelError> {
        let expected = 8 * len;
        match self.next_message(from, expected)? {
            Message::Words(words) if words.len() == len => Ok(words),
            Message::Bytes(msg) if msg.len() == expected => {
                let words = msg.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
                self.discard(from, Message::Bytes(msg));
                Ok(words)
            }
            other => {
                let actual = other.len();
                self.discard(from, other);
                Err(recv_error(ErrorKind::LengthMismatch, from, expected, Some(actual)))
            }
        }
    }

    fn hands_over_words(&self) -> bool {
        true
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), ChannelError> {
        let message = self.next_message(from, buf.len())?;
        let actual = message.len();
        let fits = actual == buf.len();
        if fits {
            match &message {
                Message::Bytes(msg) => buf.copy_from_slice(msg),
                Message::Words(words) => {
                    for (out, w) in buf.chunks_exact_mut(8).zip(words) {
                        out.copy_from_slice(&w.to_le_bytes());
                    }
                }
            }
        }
        self.discard(from, message);
        if fits { Ok(()) } else { Err(recv_error(ErrorKind::LengthMismatch, from, buf.len(), Some(actual))) }
    }
}

/// A refused send of `bytes` bytes to `to`.
fn send_error(kind: ErrorKind, to: PartyId, bytes: usize) -> ChannelError {
    ChannelError { kind, peer: to, expected: None, actual: Some(bytes) }
}

/// A failed receive of `bytes` bytes from `from` (`actual`: the length that came instead).
fn recv_error(kind: ErrorKind, from: PartyId, bytes: usize, actual: Option<usize>) -> ChannelError {
    ChannelError { kind, peer: from, expected: Some(bytes), actual }
}

impl ChannelTransport {
    /// The link a message of `bytes` bytes goes out on: refused when it is too large or there
    /// is no link to `to`.
    fn link_to(&mut self, to: PartyId, bytes: usize) -> Result<&mut Link, ChannelError> {
        if bytes > self.max_message {
            return Err(send_error(ErrorKind::TooLarge, to, bytes));
        }
        self.links.get_mut(&to).ok_or(send_error(ErrorKind::UnknownPeer, to, bytes))
    }

    /// The next message from `from`, expected to hold `bytes` bytes, within the timeout:
    /// refused at once when that is more than a message may hold.
    fn next_message(&self, from: PartyId, bytes: usize) -> Result<Message, ChannelError> {
        if bytes > self.max_message {
            return Err(recv_error(ErrorKind::TooLarge, from, bytes, None));
        }
        match self.link(from)?.rx.recv_timeout(self.timeout) {
            Ok(message) => Ok(message),
            Err(RecvTimeoutError::Timeout) => Err(recv_error(ErrorKind::TimedOut, from, bytes, None)),
            Err(RecvTimeoutError::Disconnected) => Err(recv_error(ErrorKind::Disconnected, from, bytes, None)),
        }
    }

    /// Done with a message read: wiped (messages carry shares too, the dealer's corrections),
    /// a byte buffer then handed back to the sender for its next message.
    fn discard(&self, from: PartyId, message: Message) {
        match message {
            Message::Bytes(mut msg) => {
                zeroize::Zeroize::zeroize(msg.as_mut_slice());
                self.give_back(from, msg);
            }
            Message::Words(mut words) => zeroize::Zeroize::zeroize(&mut words),
        }
    }

    /// Hands a read (and wiped) byte buffer back to its sender (dropped if the peer is gone).
    fn give_back(&self, from: PartyId, msg: Vec<u8>) {
        if let Some(link) = self.links.get(&from) {
            let _ = link.give_back.send(msg);
        }
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

    /// Words sent as a buffer arrive as that same buffer (no copy), which the transport says,
    /// through a meter too.
    #[test]
    fn hands_over_word_buffers_and_says_so() {
        let (mut a, mut b) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        let words = vec![7u64, 8, 9];
        let at = words.as_ptr();
        a.send_words(PartyId::P1, words).unwrap();
        let got = b.recv_words(PartyId::P0, 3).unwrap();
        assert_eq!((got.as_slice(), got.as_ptr()), (&[7u64, 8, 9][..], at));
        assert!(transport::Metered::new(&mut b).hands_over_words());
    }

    /// `wire::send` copies its parts once into one buffer that the peer receives as it is (no
    /// copy out, no wipe of a message), with the bytes a byte transport would carry: read by
    /// `wire::recv_owned` or by `wire::recv`, the same values.
    #[test]
    fn wire_messages_are_handed_over_as_one_copy_of_their_parts() {
        use mpc_core::wire;
        let (mut a, mut b) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        let (x, y) = ([1u64, u64::MAX, 3], [4u64, 5]);
        for _ in 0..2 {
            wire::send(&mut a, PartyId::P1, &[&x[..], &y[..]]).unwrap();
        }
        let expected = [1u64, u64::MAX, 3, 4, 5];
        let owned = wire::recv_owned::<u64, _>(&mut b, PartyId::P0, 5).unwrap();
        assert_eq!(&owned[..], &expected[..]);
        let mut read = [0u64; 5];
        wire::recv(&mut b, PartyId::P0, &mut read).unwrap();
        assert_eq!(read, expected);
        // A narrower ring goes as bytes, as before.
        wire::send(&mut a, PartyId::P1, &[&[7u32, 8][..]]).unwrap();
        let mut narrow = [0u32; 2];
        wire::recv(&mut b, PartyId::P0, &mut narrow).unwrap();
        assert_eq!(narrow, [7, 8]);
        // A message of the wrong length is refused either way.
        wire::send(&mut a, PartyId::P1, &[&x[..]]).unwrap();
        assert_eq!(b.recv_words(PartyId::P0, 2).unwrap_err().kind, ErrorKind::LengthMismatch);
    }

    /// P0 takes the dealer's corrections as this transport hands them over, and so leaves the
    /// used buffers it holds to the draws (it once took one for each correction and wiped it).
    #[test]
    fn a_handing_over_dealer_link_leaves_the_used_buffers_to_the_draws() {
        use mpc_core::preprocessing::{Dealer, DealerClient, Preprocessing, PreprocessingExt};
        use mpc_core::share::Shares;
        use mpc_core::transport::Role;
        let (p0_d, d_p0) = ChannelTransport::pair(PartyId::P0, PartyId::Dealer);
        let (p1_d, d_p1) = ChannelTransport::pair(PartyId::P1, PartyId::Dealer);
        let mut dealer_link = d_p0.join(d_p1);
        let mut rng = crate::os_rng().unwrap();
        std::thread::scope(|s| {
            s.spawn(move || Dealer::<u64>::new(&mut rng).serve(&mut dealer_link).unwrap());
            s.spawn(move || DealerClient::connect(Role::P1, p1_d).unwrap().finish().unwrap());
            let mut p0 = DealerClient::connect(Role::P0, p0_d).unwrap();
            let n = 1 << 16;
            for _ in 0..2 {
                Preprocessing::<u64>::recycle(&mut p0, Shares::zeros(n));
            }
            assert_eq!(p0.recycled_words(), 2 * n);
            // A square pair: r drawn over one used buffer, r² the dealer's correction.
            let pair = PreprocessingExt::<u64>::square(&mut p0, n).unwrap();
            assert_eq!((pair.r.len(), pair.r2.len()), (n, n));
            assert_eq!(p0.recycled_words(), n, "one buffer drawn over, the other still held");
            p0.finish().unwrap();
        });
    }

    /// P0's owned mask taken off W as it is drawn (`mask_owned`) is the mask the dealer keeps:
    /// the same F = W - B as asking for B and subtracting it, and the triples made for it give
    /// C = A · B.
    #[test]
    fn an_owned_mask_taken_off_the_weights_as_drawn_is_the_dealers() {
        use mpc_core::preprocessing::{Dealer, DealerClient, Preprocessing, PreprocessingExt, subtract_owned_mask};
        use mpc_core::share::{Seed, Shares};
        use mpc_core::transport::Role;
        let (m, k, n) = (3, 37, 29);
        let w: Vec<u64> = (0..(k * n) as u64).map(|i| i.wrapping_mul(0xD1B5_4A32_D192_ED03)).collect();
        // Each way in its own session of a dealer with the same seeds: F, A and C at P0 and P1.
        let session = |fused: bool| {
            let (p0_d, d_p0) = ChannelTransport::pair(PartyId::P0, PartyId::Dealer);
            let (p1_d, d_p1) = ChannelTransport::pair(PartyId::P1, PartyId::Dealer);
            let mut dealer_link = d_p0.join(d_p1);
            let seeds = [Seed::from_bytes([3; 32]), Seed::from_bytes([5; 32])];
            std::thread::scope(|s| {
                s.spawn(move || Dealer::<u64>::from_seeds(seeds).serve(&mut dealer_link).unwrap());
                let p1 = s.spawn(move || {
                    let mut p1 = DealerClient::connect(Role::P1, p1_d).unwrap();
                    let mask = PreprocessingExt::<u64>::owned_mask(&mut p1, k, n).unwrap();
                    let triple = PreprocessingExt::<u64>::owned_triple(&mut p1, m, k, n, mask.id).unwrap();
                    p1.finish().unwrap();
                    triple
                });
                let mut p0 = DealerClient::connect(Role::P0, p0_d).unwrap();
                let w = Shares::from_vec(w.clone());
                let mask = match fused {
                    true => Preprocessing::<u64>::mask_owned(&mut p0, w, k, n).unwrap(),
                    false => subtract_owned_mask(&mut p0, w, k, n).unwrap(),
                };
                let triple = PreprocessingExt::<u64>::owned_triple(&mut p0, m, k, n, mask.id).unwrap();
                p0.finish().unwrap();
                (mask.b.to_vec(), triple, p1.join().unwrap())
            })
        };
        let (f, t0, t1) = session(true);
        let (f_default, _, _) = session(false);
        assert_eq!(f, f_default, "the same F either way");
        assert_ne!(f, w, "F is masked");
        // C = A · B with B = W - F.
        let b: Vec<u64> = w.iter().zip(&f).map(|(w, f)| w.wrapping_sub(*f)).collect();
        let mut ab = vec![0u64; m * n];
        mpc_core::gemm::gemm_naive(m, k, n, &t1.a, &b, &mut ab);
        let c: Vec<u64> = t0.c.iter().zip(t1.c.iter()).map(|(x, y)| x.wrapping_add(*y)).collect();
        assert_eq!(c, ab);
    }

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
    fn recycled_buffers_deliver_every_message_intact() {
        // Sizes that make the sender reuse, grow and pick among returned buffers.
        let (mut a, mut b) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        let sizes = [10usize, 1 << 20, 3, 1 << 19, 0, 1 << 20, 77, 1 << 21, 5, 1 << 20];
        for round in 0..3u8 {
            for (i, &n) in sizes.iter().enumerate() {
                let msg: Vec<u8> = (0..n).map(|j| (j as u8) ^ (i as u8) ^ round).collect();
                a.send(PartyId::P1, &msg).unwrap();
                // A second message in flight before the first is read.
                b.send(PartyId::P0, &msg[..n / 2]).unwrap();
                let mut got = vec![0u8; n];
                b.recv(PartyId::P0, &mut got).unwrap();
                assert_eq!(got, msg, "round {round}, message {i}");
                let mut half = vec![0u8; n / 2];
                a.recv(PartyId::P1, &mut half).unwrap();
                assert_eq!(half, msg[..n / 2]);
            }
        }
        // A refused message's buffer goes back too, and the next one arrives intact.
        a.send(PartyId::P1, b"four").unwrap();
        assert_eq!(b.recv(PartyId::P0, &mut [0u8; 3]).unwrap_err().kind, ErrorKind::LengthMismatch);
        a.send(PartyId::P1, b"xyz").unwrap();
        let mut buf = [0u8; 3];
        b.recv(PartyId::P0, &mut buf).unwrap();
        assert_eq!(&buf, b"xyz");
        let pool = &a.links[&PartyId::P1].pool;
        assert!(pool.len() <= SPARE_BUFFERS && pool.iter().map(Vec::capacity).sum::<usize>() <= SPARE_BYTES);
    }

    #[test]
    fn words_are_handed_over_and_read_as_bytes_either_way() {
        let (mut a, mut b) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        // Words to words: the same buffer, not a copy.
        let words: Vec<u64> = (0..1000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let (expected, buffer) = (words.clone(), words.as_ptr() as usize);
        a.send_words(PartyId::P1, words).unwrap();
        let got = b.recv_words(PartyId::P0, 1000).unwrap();
        assert_eq!(got, expected);
        assert_eq!(got.as_ptr() as usize, buffer, "handed over");
        // Words read as bytes, and bytes read as words: little-endian, as on a wire.
        a.send_words(PartyId::P1, vec![0x0102_0304_0506_0708, 9]).unwrap();
        let mut bytes = [0u8; 16];
        b.recv(PartyId::P0, &mut bytes).unwrap();
        assert_eq!(bytes, [8, 7, 6, 5, 4, 3, 2, 1, 9, 0, 0, 0, 0, 0, 0, 0]);
        a.send(PartyId::P1, &bytes).unwrap();
        assert_eq!(b.recv_words(PartyId::P0, 2).unwrap(), vec![0x0102_0304_0506_0708, 9]);
        // Lengths are checked both ways; the next message arrives intact.
        a.send_words(PartyId::P1, vec![1, 2, 3]).unwrap();
        let e = b.recv_words(PartyId::P0, 2).unwrap_err();
        assert_eq!((e.kind, e.expected, e.actual), (ErrorKind::LengthMismatch, Some(16), Some(24)));
        a.send_words(PartyId::P1, vec![4]).unwrap();
        assert_eq!(b.recv(PartyId::P0, &mut [0u8; 9]).unwrap_err().kind, ErrorKind::LengthMismatch);
        a.send(PartyId::P1, &[1u8; 7]).unwrap();
        assert_eq!(b.recv_words(PartyId::P0, 1).unwrap_err().kind, ErrorKind::LengthMismatch);
        a.send_words(PartyId::P1, vec![5, 6]).unwrap();
        assert_eq!(b.recv_words(PartyId::P0, 2).unwrap(), vec![5, 6]);
        // Refused words: too large, an unknown peer, a peer gone.
        let mut small = a.with_max_message(8);
        assert_eq!(small.send_words(PartyId::P1, vec![1, 2]).unwrap_err().kind, ErrorKind::TooLarge);
        assert_eq!(small.send_words(PartyId::Dealer, vec![1]).unwrap_err().kind, ErrorKind::UnknownPeer);
        let (_c, d) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        assert_eq!(d.with_max_message(8).recv_words(PartyId::P0, 2).unwrap_err().kind, ErrorKind::TooLarge);
        drop(b);
        assert_eq!(small.send_words(PartyId::P1, vec![1]).unwrap_err().kind, ErrorKind::Disconnected);
    }

    #[test]
    fn reports_timeouts_and_disconnects() {
        let (a, b) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        let mut b = b.with_timeout(Duration::from_millis(20));
        let mut buf = [0u8; 1];
        let e = b.recv(PartyId::P0, &mut buf).unwrap_err();
        // The error names the length that was awaited, as a length mismatch does.
        assert_eq!((e.kind, e.expected, e.actual), (ErrorKind::TimedOut, Some(1), None));
        let e = b.recv_words(PartyId::P0, 2).unwrap_err();
        assert_eq!((e.kind, e.expected), (ErrorKind::TimedOut, Some(16)));
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
