//! The [`Transport`] trait: blocking, exact-length messages between named parties.
//!
//! Protocols are written against this trait only; sockets, channels, TLS, shared memory or a
//! fuzzer's byte stream are drivers behind it. Errors follow the embedded-hal pattern: each
//! transport has its own error type, and generic code reacts to its [`ErrorKind`].

mod meter;
#[cfg(feature = "alloc")]
mod record;
mod replay;

pub use meter::{CommStats, FlightCounter, Metered};
#[cfg(feature = "alloc")]
pub use record::{Direction, Recorded};
pub use replay::Replay;

/// The three participants of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum PartyId {
    /// The model owner.
    P0,
    /// The data owner.
    P1,
    /// The trusted dealer of correlated randomness.
    Dealer,
}

impl PartyId {
    /// A small stable index (0, 1, 2), for tables keyed by party.
    pub const fn index(self) -> usize {
        match self {
            PartyId::P0 => 0,
            PartyId::P1 => 1,
            PartyId::Dealer => 2,
        }
    }

    /// The party's name as used in logs and certificates: `p0`, `p1`, `dealer`.
    pub const fn name(self) -> &'static str {
        match self {
            PartyId::P0 => "p0",
            PartyId::P1 => "p1",
            PartyId::Dealer => "dealer",
        }
    }
}

impl core::fmt::Display for PartyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One of the two computing parties (the dealer computes nothing on shares).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// The model owner.
    P0,
    /// The data owner.
    P1,
}

impl Role {
    /// The other computing party.
    pub const fn peer(self) -> Role {
        match self {
            Role::P0 => Role::P1,
            Role::P1 => Role::P0,
        }
    }

    /// The party's index, 0 or 1.
    pub const fn index(self) -> usize {
        match self {
            Role::P0 => 0,
            Role::P1 => 1,
        }
    }

    /// The party's identity on a transport.
    pub const fn id(self) -> PartyId {
        match self {
            Role::P0 => PartyId::P0,
            Role::P1 => PartyId::P1,
        }
    }
}

impl From<Role> for PartyId {
    fn from(r: Role) -> PartyId {
        r.id()
    }
}

impl core::fmt::Display for Role {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.id().name())
    }
}

/// What went wrong with a transport, in terms generic code can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The peer went away (closed connection, dropped channel, process died).
    Disconnected,
    /// No message arrived within the transport's timeout.
    TimedOut,
    /// A message arrived with a length other than the one the protocol expects.
    LengthMismatch,
    /// A message (declared or actual) exceeds the transport's size limit.
    TooLarge,
    /// The bytes received do not form a valid frame or message.
    Malformed,
    /// The peer could not be authenticated, or claims a role it does not hold.
    Unauthenticated,
    /// The transport has no link to the requested party.
    UnknownPeer,
    /// Any other failure of the underlying medium.
    Other,
}

impl ErrorKind {
    /// A short human description.
    pub const fn describe(self) -> &'static str {
        match self {
            ErrorKind::Disconnected => "peer disconnected",
            ErrorKind::TimedOut => "timed out waiting for peer",
            ErrorKind::LengthMismatch => "message has an unexpected length",
            ErrorKind::TooLarge => "message exceeds the size limit",
            ErrorKind::Malformed => "malformed message",
            ErrorKind::Unauthenticated => "peer not authenticated",
            ErrorKind::UnknownPeer => "no link to that party",
            ErrorKind::Other => "transport failure",
        }
    }
}

impl core::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.describe())
    }
}

/// A transport error: anything debuggable that can say what kind of failure it is.
pub trait Error: core::fmt::Debug {
    /// The generic kind of this error.
    fn kind(&self) -> ErrorKind;
}

impl Error for ErrorKind {
    fn kind(&self) -> ErrorKind {
        *self
    }
}

/// Declares the error type of a transport.
pub trait ErrorType {
    /// The error returned by every operation.
    type Error: Error;
}

/// Blocking message passing to named peers.
///
/// # Contract
/// - Messages between two parties arrive whole and in order.
/// - [`Transport::recv`] fills `buf` with exactly one message and fails with
///   [`ErrorKind::LengthMismatch`] when the message's length differs from `buf.len()`; it never
///   returns part of a message as a whole one.
/// - [`Transport::send`] may buffer but must not wait for the peer to *receive*: both parties of a
///   round send before they receive, so a send that blocked until the peer read would deadlock.
/// - A transport used across a network enforces timeouts, so that a silent peer ends in
///   [`ErrorKind::TimedOut`] rather than a hang.
pub trait Transport: ErrorType {
    /// Sends one message to `to`.
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), Self::Error>;
    /// Receives the next message from `from` into `buf`, whose length is the expected length.
    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Sends one message of 64-bit words (little-endian on the wire, as [`Transport::send`] of
    /// their bytes would), handing the buffer over: a transport within one process may pass it
    /// to the peer instead of copying it. The words may be secret: whoever ends up holding the
    /// buffer wipes it. The default sends the bytes, then wipes the buffer.
    #[cfg(feature = "alloc")]
    fn send_words(&mut self, to: PartyId, mut words: alloc::vec::Vec<u64>) -> Result<(), Self::Error> {
        words.iter_mut().for_each(|w| *w = w.to_le());
        let sent = self.send(to, bytemuck::cast_slice(&words));
        zeroize::Zeroize::zeroize(&mut words);
        sent
    }

    /// Receives the next message from `from`, of exactly `len` 64-bit words, in a buffer the
    /// transport provides (the sender's own, within one process). The caller owns the words
    /// and wipes them. The default receives into a zeroed buffer.
    #[cfg(feature = "alloc")]
    fn recv_words(&mut self, from: PartyId, len: usize) -> Result<alloc::vec::Vec<u64>, Self::Error> {
        let mut words = alloc::vec![0u64; len];
        self.recv(from, bytemuck::cast_slice_mut(&mut words))?;
        words.iter_mut().for_each(|w| *w = u64::from_le(*w));
        Ok(words)
    }

    /// Whether [`Transport::recv_words`] hands over the sender's own buffer (a transport within
    /// one process): the receiver then takes it rather than copy the words into a buffer of its
    /// own and wipe the message. The default is `false`.
    fn hands_over_words(&self) -> bool {
        false
    }
}

impl<T: ErrorType + ?Sized> ErrorType for &mut T {
    type Error = T::Error;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), Self::Error> {
        T::send(self, to, msg)
    }
    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), Self::Error> {
        T::recv(self, from, buf)
    }
    #[cfg(feature = "alloc")]
    fn send_words(&mut self, to: PartyId, words: alloc::vec::Vec<u64>) -> Result<(), Self::Error> {
        T::send_words(self, to, words)
    }
    #[cfg(feature = "alloc")]
    fn recv_words(&mut self, from: PartyId, len: usize) -> Result<alloc::vec::Vec<u64>, Self::Error> {
        T::recv_words(self, from, len)
    }
    fn hands_over_words(&self) -> bool {
        T::hands_over_words(self)
    }
}
