//! The data owner's text goes through the tokenizer: feed it any string.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mpc_io_std::checkpoint::{TextTokenizer, load_tokenizer};

fn tokenizer() -> &'static TextTokenizer {
    static T: OnceLock<TextTokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::env::temp_dir().join("mpcformer-fuzz-vocab");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n##s\na\n!\n").unwrap();
        load_tokenizer(&dir, 512).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = tokenizer().encode(text.as_ref(), true);
});
