//! A decorator that counts what a transport carries.

use serde::{Deserialize, Serialize};

use super::{ErrorType, PartyId, Transport};

/// Bytes, messages and rounds seen by one party on one transport.
///
/// A **round** is a flight of messages that can all be in transit at once: a party starts a new
/// round with its first message, and again whenever it sends after having received (a send that
/// may depend on what arrived). Two parties exchanging openings (send, then receive) spend one
/// round each; a one-way message costs its sender one round and its receiver none. The rounds
/// of a two-party protocol are the larger of the two parties' counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommStats {
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Communication rounds (see the type's docs).
    pub rounds: u64,
}

impl CommStats {
    /// What was counted between `earlier` and `self` (for per-stage buckets).
    pub fn since(&self, earlier: &CommStats) -> CommStats {
        CommStats {
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
            messages_sent: self.messages_sent - earlier.messages_sent,
            messages_received: self.messages_received - earlier.messages_received,
            rounds: self.rounds - earlier.rounds,
        }
    }

    /// Sums two counts (for totals over transports or buckets).
    pub fn plus(&self, other: &CommStats) -> CommStats {
        CommStats {
            bytes_sent: self.bytes_sent + other.bytes_sent,
            bytes_received: self.bytes_received + other.bytes_received,
            messages_sent: self.messages_sent + other.messages_sent,
            messages_received: self.messages_received + other.messages_received,
            rounds: self.rounds + other.rounds,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum LastOp {
    #[default]
    Nothing,
    Sent,
    Received,
}

/// The counting of [`Metered`], apart from any transport: fed with the sizes of the messages a
/// party sends and receives, it counts them and their rounds. The simulated setting feeds it
/// with the messages a protocol would exchange, to predict the real counts exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlightCounter {
    stats: CommStats,
    last: LastOp,
}

impl FlightCounter {
    /// A message of `bytes` was sent: a send after a receive (or first) starts a new round.
    pub fn sent(&mut self, bytes: u64) {
        if self.last != LastOp::Sent {
            self.stats.rounds += 1;
        }
        self.last = LastOp::Sent;
        self.stats.bytes_sent += bytes;
        self.stats.messages_sent += 1;
    }

    /// A message of `bytes` was received.
    pub fn received(&mut self, bytes: u64) {
        self.last = LastOp::Received;
        self.stats.bytes_received += bytes;
        self.stats.messages_received += 1;
    }

    /// The counts so far.
    pub fn stats(&self) -> CommStats {
        self.stats
    }
}

/// Wraps a transport and counts bytes, messages and rounds (see [`CommStats`]).
#[derive(Debug)]
pub struct Metered<T> {
    inner: T,
    counter: FlightCounter,
}

impl<T> Metered<T> {
    /// Starts counting from zero.
    pub fn new(inner: T) -> Self {
        Self { inner, counter: FlightCounter::default() }
    }

    /// The counts so far.
    pub fn stats(&self) -> CommStats {
        self.counter.stats()
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped transport, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the transport.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: ErrorType> ErrorType for Metered<T> {
    type Error = T::Error;
}

impl<T: Transport> Transport for Metered<T> {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), Self::Error> {
        self.inner.send(to, msg)?;
        self.counter.sent(msg.len() as u64);
        Ok(())
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.recv(from, buf)?;
        self.counter.received(buf.len() as u64);
        Ok(())
    }

    #[cfg(feature = "alloc")]
    fn send_words(&mut self, to: PartyId, words: alloc::vec::Vec<u64>) -> Result<(), Self::Error> {
        let bytes = 8 * words.len() as u64;
        self.inner.send_words(to, words)?;
        self.counter.sent(bytes);
        Ok(())
    }

    #[cfg(feature = "alloc")]
    fn recv_words(&mut self, from: PartyId, len: usize) -> Result<alloc::vec::Vec<u64>, Self::Error> {
        let words = self.inner.recv_words(from, len)?;
        self.counter.received(8 * len as u64);
        Ok(words)
    }

    fn hands_over_words(&self) -> bool {
        self.inner.hands_over_words()
    }
}
