//! A peer's decrypted byte stream, cut into frames: feed the decoder anything, in any chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpc_io_std::transport::tcp::FrameDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let mut decoder = FrameDecoder::new(1 << 16);
    for chunk in stream.chunks(cut.max(1) as usize) {
        if decoder.push(chunk).is_err() {
            return;
        }
    }
});
