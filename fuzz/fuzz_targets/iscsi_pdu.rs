//! Arbitrary bytes into the iSCSI receive decoder; decoded headers must re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Same body as the crate's stable `fuzz_body` test.
    ff_iscsi::fuzzing::pdu_decode(data);
});
