//! The error type of the protocols and the preprocessing.

use crate::transport::{self, ErrorKind};

/// Why a protocol step failed. Every failure is reported; none is shown as a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (see the kind: disconnect, timeout, wrong length, ...).
    Transport(ErrorKind),
    /// Operand lengths or matrix dimensions do not agree.
    ShapeMismatch,
    /// The preprocessing material at hand is not what the protocol step asked for (a store filled
    /// for another program, or parties whose programs diverged).
    MaterialMismatch,
    /// The preprocessing provider has no material left.
    MaterialExhausted,
    /// A message from a peer or a stored blob is malformed (what is wrong is named).
    Malformed(&'static str),
    /// A size exceeds a configured limit.
    TooLarge,
    /// The operation is not available to this party (for example a dealer request sent by P1).
    WrongRole,
}

impl Error {
    /// Maps a transport error to a protocol error, keeping its kind.
    pub fn transport<E: transport::Error>(e: E) -> Self {
        Error::Transport(e.kind())
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Transport(kind) => write!(f, "transport: {kind}"),
            Error::ShapeMismatch => f.write_str("operand shapes do not agree"),
            Error::MaterialMismatch => f.write_str("preprocessing material does not match the request"),
            Error::MaterialExhausted => f.write_str("preprocessing material exhausted"),
            Error::Malformed(what) => write!(f, "malformed input: {what}"),
            Error::TooLarge => f.write_str("size exceeds the configured limit"),
            Error::WrongRole => f.write_str("operation not available to this party"),
        }
    }
}

impl core::error::Error for Error {}
