//! The dealer reads batch counts and request headers from P0: feed it anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: &[u8]| {
    let _ = mpc_core::testing::replay_dealer_session(script);
});
