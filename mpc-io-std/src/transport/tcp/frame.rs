//! Messages on a byte stream: a little-endian u64 length, then the bytes; a frame longer than
//! the limit is refused before anything is allocated.

use mpc_core::transport::ErrorKind;

pub(super) type Incoming = Result<Vec<u8>, (ErrorKind, String)>;

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
        assert!(d.pending() <= 8 && d.pending.capacity() < 64, "{} bytes held", d.pending());
        assert_eq!(FrameDecoder::new(16).push(&frame(&[0; 17])).unwrap_err().0, ErrorKind::TooLarge);
        assert_eq!(FrameDecoder::new(16).push(&frame(&[0; 16])).unwrap().len(), 1);
    }
}
