//! Stored preprocessing material is read from files: feed the reader anything. What it accepts
//! must write back byte for byte (the format is canonical) and serve requests without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpc_core::preprocessing::{Preprocessing, Request, Store};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(mut store) = Store::<u64>::from_bytes(bytes, 1 << 14) {
        assert_eq!(&store.to_bytes()[..], bytes);
        let _ = store.material(&Request::Beaver { n: 1 });
    }
});
