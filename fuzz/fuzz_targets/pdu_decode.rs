//! Arbitrary bytes into the NVMe/TCP receive decoder, target and host roles.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Same body as the crate's stable `fuzz_body` test.
    ff_nvme_tcp::fuzzing::pdu_decode(data);
});
