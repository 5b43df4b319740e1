//! A decorator that keeps every byte a party receives: its view of the protocol, for leakage
//! tests and transcripts.

use alloc::vec::Vec;

use super::{ErrorType, PartyId, Transport};

/// Wraps a transport and appends every received message to a transcript.
#[derive(Debug)]
pub struct Recorded<T> {
    inner: T,
    transcript: Vec<u8>,
}

impl<T> Recorded<T> {
    /// Starts with an empty transcript.
    pub fn new(inner: T) -> Self {
        Self { inner, transcript: Vec::new() }
    }

    /// Everything received so far, in order.
    pub fn transcript(&self) -> &[u8] {
        &self.transcript
    }
}

impl<T: ErrorType> ErrorType for Recorded<T> {
    type Error = T::Error;
}

impl<T: Transport> Transport for Recorded<T> {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), Self::Error> {
        self.inner.send(to, msg)
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.recv(from, buf)?;
        self.transcript.extend_from_slice(buf);
        Ok(())
    }
}
