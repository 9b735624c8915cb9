//! The talk's blocking server: thread per connection, blocking reads and writes.
//!
//! Usage: `cargo run -p ff-talk --example blocking_server -- [ADDR] [SECONDS]` (default 127.0.0.1:7000, run
//! until killed when SECONDS is 0 or absent). Drive it with the `loadgen` example.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into()).parse()?;
    let secs: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let server = ff_talk::servers::blocking::serve_blocking(addr, Arc::new(AtomicBool::new(false)))?;
    println!("blocking server (thread per connection, blocking reads and writes) on {}", server.local_addr());
    if secs == 0 {
        loop {
            std::thread::park();
        }
    }
    std::thread::sleep(Duration::from_secs(secs));
    println!("stopped: {:?}", server.stop());
    Ok(())
}
