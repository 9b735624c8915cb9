//! Arbitrary bytes into the NVMe/TCP TLS parsers (PSK interchange strings, PSK identities), the
//! user-space record layer and both handshake engines (selected by the first byte).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Same body as the crate's stable `fuzz_body` test.
    ff_nvme_tls::fuzzing::tls_input(data);
});
