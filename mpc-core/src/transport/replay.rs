//! A transport that plays back a script of incoming messages: for fuzzing and for tests of how
//! the protocols react to whatever a peer might send.

use super::{ErrorKind, ErrorType, PartyId, Transport};

/// Plays back `script` as the messages peers send, whoever the sender: each message is a
/// little-endian `u32` length followed by that many bytes. Sends are counted and dropped.
///
/// Running out of script reads as [`ErrorKind::Disconnected`]; a message whose length differs
/// from the one expected as [`ErrorKind::LengthMismatch`].
#[derive(Debug)]
pub struct Replay<'a> {
    script: &'a [u8],
    sent: usize,
}

impl<'a> Replay<'a> {
    /// Plays back `script`.
    pub fn new(script: &'a [u8]) -> Self {
        Self { script, sent: 0 }
    }

    /// Messages sent so far.
    pub fn sent(&self) -> usize {
        self.sent
    }
}

impl ErrorType for Replay<'_> {
    type Error = ErrorKind;
}

impl Transport for Replay<'_> {
    fn send(&mut self, _to: PartyId, _msg: &[u8]) -> Result<(), ErrorKind> {
        self.sent += 1;
        Ok(())
    }

    fn recv(&mut self, _from: PartyId, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let (len, rest) = self.script.split_first_chunk::<4>().ok_or(ErrorKind::Disconnected)?;
        let len = u32::from_le_bytes(*len) as usize;
        let msg = rest.get(..len).ok_or(ErrorKind::Disconnected)?;
        self.script = &rest[len..];
        if len != buf.len() {
            return Err(ErrorKind::LengthMismatch);
        }
        buf.copy_from_slice(msg);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_back_messages_and_reports_their_ends() {
        let script = [2, 0, 0, 0, 7, 8, 1, 0, 0, 0, 9, 5, 0, 0, 0, 1];
        let mut t = Replay::new(&script);
        let mut two = [0u8; 2];
        t.recv(PartyId::P1, &mut two).unwrap();
        assert_eq!(two, [7, 8]);
        assert_eq!(t.recv(PartyId::P1, &mut two), Err(ErrorKind::LengthMismatch));
        assert_eq!(t.recv(PartyId::P1, &mut two), Err(ErrorKind::Disconnected));
        t.send(PartyId::P1, &two).unwrap();
        assert_eq!(t.sent(), 1);
    }
}
