//! The talk's last step: the ff-sock layer (receive pipe, batched zero-copy-eligible writes), with
//! reactor threads fed round-robin by an acceptor.
//!
//! Usage: `cargo run -p ff-talk --example sock_server -- [ADDR] [epoll|poll] [REACTORS] [SECONDS]`
//! (defaults 127.0.0.1:7000 epoll 1 0; SECONDS 0 runs until killed).

use ff_talk::servers::sock::{SockServerConfig, serve_sock};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into()).parse()?;
    let backend = args.next().unwrap_or_else(|| "epoll".into()).parse().map_err(anyhow::Error::msg)?;
    let reactors: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let secs: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let server = serve_sock(addr, Arc::new(AtomicBool::new(false)), SockServerConfig { backend, reactors })?;
    println!("sock server ({backend} backend, {reactors} reactor(s)) on {}", server.local_addr());
    if secs == 0 {
        loop {
            std::thread::park();
        }
    }
    std::thread::sleep(Duration::from_secs(secs));
    println!("stopped: {:?}", server.stop());
    Ok(())
}
