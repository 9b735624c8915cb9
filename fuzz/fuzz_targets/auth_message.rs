//! Arbitrary bytes into the DH-HMAC-CHAP message decoder and into host and controller state
//! machines in each state (null group or ffdhe2048, uni- or bidirectional, from the first byte).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Same body as the crate's stable `fuzz_body` test.
    ff_nvme_auth::fuzzing::auth_message(data);
});
