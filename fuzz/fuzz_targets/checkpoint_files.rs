//! config.json and safetensors files are read from disk: feed the parsers anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mpc_io_std::checkpoint::parse_config(data);
    let _ = mpc_io_std::checkpoint::parse_weights(data);
});
