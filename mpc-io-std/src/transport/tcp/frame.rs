//! Messages on a byte stream: a little-endian u64 length, then the bytes; a frame longer than
//! the limit is refused before anything is allocated.

use mpc_core::transport::ErrorKind;

pub(super) type Incoming = Result<Vec<u8>, (ErrorKind, String)>;

/// Cuts a byte stream into messages framed by a little-endian u64 length, refusing any frame
/// longer than the limit before allocating it. A message's bytes are copied once, into the
/// buffer that is handed out whole; the buffer grows as bytes arrive (never to a size the peer
/// only announced).
#[derive(Debug)]
pub struct FrameDecoder {
    header: [u8; 8],
    header_len: usize,
    /// The length of the message being received, once its header is complete.
    expected: Option<usize>,
    body: Vec<u8>,
    max_message: u64,
}

impl FrameDecoder {
    /// A decoder accepting messages of at most `max_message` bytes.
    pub fn new(max_message: u64) -> Self {
        Self { header: [0; 8], header_len: 0, expected: None, body: Vec::new(), max_message }
    }

    /// Appends received bytes and returns the messages they complete, or the frame that is too
    /// large.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, (ErrorKind, String)> {
        let mut out = Vec::new();
        self.push_into(bytes, &mut out)?;
        Ok(out)
    }

    /// [`FrameDecoder::push`], appending the completed messages to `out`.
    pub fn push_into(&mut self, mut bytes: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), (ErrorKind, String)> {
        loop {
            let Some(len) = self.expected else {
                let take = (8 - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
                self.header_len += take;
                bytes = &bytes[take..];
                if self.header_len < 8 {
                    return Ok(());
                }
                let len = u64::from_le_bytes(self.header);
                if len > self.max_message {
                    return Err((ErrorKind::TooLarge, format!("frame of {len} bytes")));
                }
                self.header_len = 0;
                self.expected = Some(len as usize);
                continue;
            };
            let take = (len - self.body.len()).min(bytes.len());
            self.body.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.body.len() < len {
                return Ok(());
            }
            out.push(std::mem::take(&mut self.body));
            self.expected = None;
        }
    }

    /// Bytes held for an incomplete frame.
    pub fn pending(&self) -> usize {
        self.header_len + self.body.len()
    }
}

/// The 8-byte header of a message of `len` bytes.
pub fn header(len: usize) -> [u8; 8] {
    (len as u64).to_le_bytes()
}

/// The frame of one message (its header, then its bytes).
pub fn frame(msg: &[u8]) -> Vec<u8> {
    [&header(msg.len())[..], msg].concat()
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
        // A header announcing 2^64 - 1 bytes is refused from its eight bytes alone: nothing of
        // the announced size is reserved (the decoder holds only what it was given).
        let mut d = FrameDecoder::new(16);
        let err = d.push(&u64::MAX.to_le_bytes()).unwrap_err();
        assert_eq!(err.0, ErrorKind::TooLarge);
        assert!(d.pending() <= 8 && d.body.capacity() < 64, "{} bytes held", d.pending());
        assert_eq!(FrameDecoder::new(16).push(&frame(&[0; 17])).unwrap_err().0, ErrorKind::TooLarge);
        assert_eq!(FrameDecoder::new(16).push(&frame(&[0; 16])).unwrap().len(), 1);
    }
}
