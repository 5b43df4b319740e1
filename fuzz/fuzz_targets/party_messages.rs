//! A party reads its peer's shares in every protocol step: feed it anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: &[u8]| {
    let _ = mpc_core::testing::replay_party_session(script);
});
