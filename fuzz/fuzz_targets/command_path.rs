//! Arbitrary host bytes through the whole target command path (transport core, session, controller
//! core, null/RAM backends), without sockets. The first byte picks the starting state: raw after ICReq,
//! on an admin queue, or on an I/O queue of an enabled controller.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ff_target::fuzzing::command_path(data);
});
