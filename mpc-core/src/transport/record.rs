//! A decorator that keeps every byte a party receives (its view of the protocol, for leakage
//! tests and transcripts) and, apart, every byte it sends, with each message's direction and
//! length in order.

use alloc::vec::Vec;

use super::{ErrorType, PartyId, Transport};

/// Which way a recorded message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This party sent it.
    Sent,
    /// This party received it.
    Received,
}

/// Wraps a transport and appends every received message to a transcript, every sent message to
/// another, and each message's direction and length to a log.
#[derive(Debug)]
pub struct Recorded<T> {
    inner: T,
    transcript: Vec<u8>,
    sent: Vec<u8>,
    log: Vec<(Direction, usize)>,
}

impl<T> Recorded<T> {
    /// Starts with empty records.
    pub fn new(inner: T) -> Self {
        Self { inner, transcript: Vec::new(), sent: Vec::new(), log: Vec::new() }
    }

    /// Everything received so far, in order.
    pub fn transcript(&self) -> &[u8] {
        &self.transcript
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> &[u8] {
        &self.sent
    }

    /// Each message's direction and length, in order.
    pub fn log(&self) -> &[(Direction, usize)] {
        &self.log
    }
}

impl<T: ErrorType> ErrorType for Recorded<T> {
    type Error = T::Error;
}

impl<T: Transport> Transport for Recorded<T> {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), Self::Error> {
        self.inner.send(to, msg)?;
        self.sent.extend_from_slice(msg);
        self.log.push((Direction::Sent, msg.len()));
        Ok(())
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.recv(from, buf)?;
        self.transcript.extend_from_slice(buf);
        self.log.push((Direction::Received, buf.len()));
        Ok(())
    }
}
