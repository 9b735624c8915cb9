//! The plain-socket baseline: the bytes of an NVMe/TCP read workload moved over loopback TCP with no
//! protocol at all. A requester keeps `qd` 72-byte "commands" outstanding; a responder answers each
//! with a 24-byte header and `io_size` bytes from one static buffer. Both spin on plain non-blocking
//! recv/send (no wait syscall, no parsing, no buffers to manage), pinned where the target and perf run.
//!
//! It is what the kernel costs with nothing of ours on top, so `bench target` measures it in the same
//! run and reports our IOPS as a fraction of it: a figure that means the same on a fast or a slow,
//! noisy day, unlike an absolute reference measured elsewhere. It is not a strict bound: with large
//! payloads a receiver that reads straight into big buffers (ours) can beat its 256 KiB recv loop.

use anyhow::{Context, Result};
use ff_perf::affinity::pin_current;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bytes of a command capsule PDU (8-byte common header + 64-byte SQE).
pub const COMMAND_BYTES: usize = 72;
/// Bytes of a C2HData PDU header.
pub const DATA_HEADER_BYTES: usize = 24;

/// One baseline measurement.
#[derive(Clone, Copy, Debug)]
pub struct Plain {
    /// Exchanges (command + response) per second in the measured window.
    pub ops_per_s: f64,
}

/// Runs the baseline for `io_size`-byte responses at queue depth `qd`: `warmup` then `seconds` measured.
pub fn run(
    io_size: usize,
    qd: u16,
    seconds: f64,
    warmup: f64,
    responder_cpu: Option<usize>,
    requester_cpu: Option<usize>,
) -> Result<Plain> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the baseline listener")?;
    let addr = listener.local_addr()?;
    let resp = DATA_HEADER_BYTES + io_size;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_r = stop.clone();
    let responder = std::thread::Builder::new().name("ff-plain-resp".into()).spawn(move || -> Result<()> {
        if let Some(cpu) = responder_cpu {
            pin_current(cpu)?;
        }
        let (s, _) = listener.accept()?;
        respond(s, resp, usize::from(qd), &stop_r)
    })?;
    // The requester gets a thread of its own too, so pinning it leaves the caller's affinity alone.
    let requester = std::thread::Builder::new()
        .name("ff-plain-req".into())
        .spawn(move || request(addr, resp, usize::from(qd), seconds, warmup, requester_cpu))?;
    let r = requester.join().map_err(|_| anyhow::anyhow!("baseline requester panicked"));
    stop.store(true, Ordering::Relaxed);
    if !matches!(r, Ok(Ok(_))) {
        // A requester that never connected leaves the responder in accept: release it.
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    }
    let joined = responder.join().map_err(|_| anyhow::anyhow!("baseline responder panicked"))?;
    let ops = r??;
    joined?;
    Ok(Plain { ops_per_s: ops })
}

fn respond(mut s: TcpStream, resp: usize, qd: usize, stop: &AtomicBool) -> Result<()> {
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    // One static answer buffer: at most `qd` responses are ever owed.
    let out = vec![0u8; resp * qd];
    let mut inb = vec![0u8; 64 << 10];
    let (mut have, mut owed) = (0usize, 0usize);
    while !stop.load(Ordering::Relaxed) {
        if owed > 0 {
            match s.write(&out[..owed.min(out.len())]) {
                Ok(n) => owed -= n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Ok(()),
            }
        }
        match s.read(&mut inb) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                have += n;
                owed += have / COMMAND_BYTES * resp;
                have %= COMMAND_BYTES;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

fn request(
    addr: std::net::SocketAddr,
    resp: usize,
    qd: usize,
    seconds: f64,
    warmup: f64,
    cpu: Option<usize>,
) -> Result<f64> {
    if let Some(cpu) = cpu {
        pin_current(cpu)?;
    }
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).context("connecting to the baseline responder")?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    let cmds = vec![0u8; COMMAND_BYTES * qd];
    let mut inb = vec![0u8; 256 << 10];
    let mut owed_cmds = qd * COMMAND_BYTES;
    let (mut got, mut done) = (0usize, 0u64);
    let t0 = Instant::now();
    let (measure_at, end_at) = (t0 + Duration::from_secs_f64(warmup), t0 + Duration::from_secs_f64(warmup + seconds));
    let mut start: Option<(Instant, u64)> = None;
    loop {
        if owed_cmds > 0 {
            match s.write(&cmds[..owed_cmds.min(cmds.len())]) {
                Ok(n) => owed_cmds -= n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("baseline requester send"),
            }
        }
        match s.read(&mut inb) {
            Ok(0) => anyhow::bail!("baseline responder closed early"),
            Ok(n) => {
                got += n;
                let k = got / resp;
                got %= resp;
                done += k as u64;
                owed_cmds += k * COMMAND_BYTES;
                let now = Instant::now();
                if start.is_none() && now >= measure_at {
                    start = Some((now, done));
                }
                if now >= end_at {
                    let (t, d) = start.unwrap_or((t0, 0));
                    return Ok((done - d) as f64 / now.duration_since(t).as_secs_f64().max(1e-9));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("baseline requester receive"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_moves_whole_responses() {
        let f = run(4096, 4, 0.2, 0.05, None, None).unwrap();
        assert!(f.ops_per_s > 0.0, "{f:?}");
    }
}
