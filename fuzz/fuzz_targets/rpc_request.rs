//! Arbitrary bytes as management requests: the JSON-RPC parser, then a running target's management
//! for each request it yields (those that would touch files or sockets are parsed only).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ff_target::fuzzing::rpc_request(data);
});
