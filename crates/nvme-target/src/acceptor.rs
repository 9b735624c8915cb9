//! The acceptor: one management thread that owns the listeners, accepts connections, waits for their
//! first bytes (the host's ICReq, or a TLS ClientHello) so the NIC rx queue is known, places each on a
//! reactor with the sock layer's [`Placer`], and hands it over through the reactor's inbox and waker.
//! A TLS listener's connections go through their handshake ([`Handshaker`]) first and are placed when
//! it succeeds. Management adds and removes listeners through [`ListenCmd`]s.

use crate::reactor::{Inbox, Mgmt};
use crate::tls::{Handshaken, Handshaker};
use ff_nvmf::SecureChannel;
use ff_sock::socket::wait_readable_any;
use ff_sock::{Listener, Placement, Placer, SockOptions, TcpSock};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The acceptor's wait when nothing else is due.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Its wait while TLS handshakes run on their threads.
const HANDSHAKE_POLL: Duration = Duration::from_millis(1);

/// How long a connection may stay silent before it is placed without a hardware hint.
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(500);

/// A change of the acceptor's listeners (management).
pub enum ListenCmd {
    /// Accept on `listener` too, as port `port`.
    Add {
        /// The bound listener.
        listener: Listener,
        /// Its port id.
        port: usize,
        /// Whether its connections run a TLS handshake first.
        tls: SecureChannel,
    },
    /// Close port `port`'s listener (connections it brought stay); `done` hears when it is closed.
    Remove {
        /// The port id.
        port: usize,
        /// Answered once the listener is closed.
        done: std::sync::mpsc::SyncSender<()>,
    },
}

/// One accepted connection waiting for its first bytes.
struct Pending {
    sock: TcpSock,
    peer: SocketAddr,
    port: usize,
    tls: SecureChannel,
    since: Instant,
}

/// A listener and what its connections need.
pub struct Listening {
    /// The bound listener.
    pub listener: Listener,
    /// Its port id.
    pub port: usize,
    /// Whether its connections run a TLS handshake first (required), may (optional: when their first
    /// bytes are a TLS record), or never.
    pub tls: SecureChannel,
}

/// The connection goes through a TLS handshake: always on a TLS-required listener; on a TLS-optional
/// one when its first bytes are a TLS record (a host that is silent past the first-bytes wait, or
/// starts with an ICReq, continues in plain text).
fn wants_tls(p: &Pending) -> bool {
    match p.tls {
        SecureChannel::Required => true,
        SecureChannel::Optional => starts_with_tls(p),
        SecureChannel::None => false,
    }
}

/// The connection's first bytes (peeked, left in place) are a TLS record header.
fn starts_with_tls(p: &Pending) -> bool {
    let mut first = [0u8; 3];
    p.sock.peek(&mut first).unwrap_or(0) == first.len() && ff_nvme_tls::looks_like_tls(&first)
}

/// A TLS ClientHello on a plain NVMe/TCP listener: said clearly and closed here (the NVMe/TCP codec
/// would only see an unknown PDU type, and its termination PDU means nothing to a TLS client).
fn refuse_tls_on_plain(p: &Pending) -> bool {
    if p.port >= crate::iscsi::PORT_BASE || p.tls != SecureChannel::None {
        return false;
    }
    if starts_with_tls(p) {
        tracing::warn!(peer = %p.peer, port = p.port, "refusing a TLS ClientHello on a plain-text listener (use a --tls-listen port)");
        return true;
    }
    false
}

/// Runs until `stop`: accepts on `listeners` (each with its port id), places, and dispatches to
/// `reactors`. `released` carries placements of closed connections back so the id-to-group map stays
/// right; `cmds` changes the listeners.
#[allow(clippy::too_many_arguments)] // one call site, each argument a distinct piece of the thread's world
pub fn run(
    mut listeners: Vec<Listening>,
    handshaker: Option<Handshaker>,
    cmds: Receiver<ListenCmd>,
    mut placer: Placer,
    reactors: Vec<Inbox>,
    released: Receiver<Placement>,
    sock_opts: SockOptions,
    max_connections: usize,
    stop: Arc<AtomicBool>,
) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut live = 0usize;
    let (shaken_tx, shaken) = std::sync::mpsc::channel::<Handshaken>();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(h) = shaken.try_recv() {
            let placement = placer.place(&h.sock);
            let r = &reactors[placement.group % reactors.len()];
            let (peer, port) = (h.peer, h.port);
            if r.send(Mgmt::Connection { sock: h.sock, peer, port, placement, tls: Some(h.tls) }).is_err() {
                placer.release(placement);
            } else {
                live += 1;
            }
        }
        while let Ok(p) = released.try_recv() {
            placer.release(p);
            live = live.saturating_sub(1);
        }
        while let Ok(c) = cmds.try_recv() {
            match c {
                ListenCmd::Add { listener, port, tls } => listeners.push(Listening { listener, port, tls }),
                ListenCmd::Remove { port, done } => {
                    listeners.retain(|l| l.port != port);
                    let _ = done.send(());
                }
            }
        }
        let mut fds: Vec<BorrowedFd<'_>> = listeners.iter().map(|l| l.listener.as_fd()).collect();
        fds.extend(pending.iter().map(|p| p.sock.as_fd()));
        // A finished handshake waits for this loop to place it: poll often while any run.
        let wait = if handshaker.as_ref().is_some_and(Handshaker::busy) { HANDSHAKE_POLL } else { IDLE_POLL };
        let ready = match wait_readable_any(&fds, wait) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("acceptor: poll failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let mut to_place = Vec::new();
        for &i in ready.iter().rev() {
            if i >= listeners.len() {
                to_place.push(i - listeners.len());
            }
        }
        // Silent for too long: place without a hint rather than hold the connection forever.
        let now = Instant::now();
        for (k, p) in pending.iter().enumerate() {
            if now.duration_since(p.since) > FIRST_BYTES_WAIT && !to_place.contains(&k) {
                to_place.push(k);
            }
        }
        to_place.sort_unstable_by(|a, b| b.cmp(a));
        for k in to_place {
            let p = pending.swap_remove(k);
            if wants_tls(&p) {
                match &handshaker {
                    Some(h) => h.start(p.sock, p.peer, p.port, shaken_tx.clone()),
                    None => tracing::error!(peer = %p.peer, "TLS listener without a handshaker: closing"),
                }
                continue;
            }
            if refuse_tls_on_plain(&p) {
                continue;
            }
            let placement = placer.place(&p.sock);
            let r = &reactors[placement.group % reactors.len()];
            tracing::debug!(peer = %p.peer, group = placement.group, key = ?placement.key, "placing connection");
            if r.send(Mgmt::Connection { sock: p.sock, peer: p.peer, port: p.port, placement, tls: None }).is_err() {
                placer.release(placement);
            } else {
                live += 1;
            }
        }
        for &i in &ready {
            let Some(l) = listeners.get(i) else { continue };
            loop {
                match l.listener.accept(&sock_opts) {
                    Ok(Some((sock, peer))) => {
                        if live + pending.len() >= max_connections {
                            tracing::warn!(%peer, max_connections, "refusing connection: limit reached");
                            drop(sock);
                            continue;
                        }
                        pending.push(Pending { sock, peer, port: l.port, tls: l.tls, since: Instant::now() });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        break;
                    }
                }
            }
        }
    }
}
