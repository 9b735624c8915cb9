//! Arbitrary bytes into a fresh iSCSI target connection: login negotiation, then whatever follows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Same body as the crate's stable `fuzz_body` test.
    let _ = ff_iscsi::fuzzing::login(data);
});
