//! NVMe/TCP secure channels on the target: the table of hosts' pre-shared keys the handshake looks
//! identities up in, and the handshake itself, run on a short-lived thread per connection before a
//! reactor takes it (the acceptor hands TLS listeners' connections here). After the handshake the
//! record keys go to kernel TLS, or, where the kernel has none (or `[tls] ktls = false`), the
//! connection joins its reactor with user-space records.

use crate::config::{TargetOptions, TlsOptions};
use ff_nvme_tls::psk::{ConfiguredPsk, PskIdentity};
use ff_nvme_tls::{Established, PskLookup};
use ff_nvmf::DISCOVERY_NQN;
use ff_sock::TcpSock;
use ff_sock::tls::RecordLayer;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Hosts' TLS pre-shared keys by subsystem NQN, then host NQN. Management changes it while
/// handshakes read it (not on the I/O path: a lock is fine).
#[derive(Default)]
pub struct PskTable {
    keys: RwLock<BTreeMap<String, BTreeMap<String, ConfiguredPsk>>>,
}

impl PskTable {
    /// The keys `opts` configures (`[[subsystem.host]] psk`); entries were validated with the options.
    pub fn from_options(opts: &TargetOptions) -> PskTable {
        let t = PskTable::default();
        for s in &opts.subsystems {
            for h in &s.auth_hosts {
                if let Ok(Some(k)) = h.tls_psk() {
                    t.set(&s.nqn, &h.nqn, Some(k));
                }
            }
        }
        t
    }

    /// Sets (or with `None`, removes) `host`'s key on subsystem `subnqn`.
    pub fn set(&self, subnqn: &str, host: &str, key: Option<ConfiguredPsk>) {
        let mut m = self.keys.write().unwrap_or_else(|e| e.into_inner());
        match key {
            Some(k) => {
                m.entry(subnqn.to_string()).or_default().insert(host.to_string(), k);
            }
            None => {
                if let Some(hosts) = m.get_mut(subnqn) {
                    hosts.remove(host);
                }
            }
        }
    }

    /// Forgets every key of subsystem `subnqn` (it was deleted).
    pub fn remove_subsystem(&self, subnqn: &str) {
        self.keys.write().unwrap_or_else(|e| e.into_inner()).remove(subnqn);
    }

    /// The key a TLS identity names: the host's key on that subsystem; for the discovery subsystem,
    /// the host's key on any subsystem (the first by NQN), since discovery has no hosts of its own.
    pub fn lookup(&self, id: &PskIdentity) -> Option<ConfiguredPsk> {
        let m = self.keys.read().unwrap_or_else(|e| e.into_inner());
        if id.subnqn == DISCOVERY_NQN {
            return m.values().find_map(|hosts| hosts.get(&id.hostnqn)).cloned();
        }
        m.get(&id.subnqn)?.get(&id.hostnqn).cloned()
    }
}

/// What a TLS connection brings to its reactor.
pub struct TlsConn {
    /// Who the handshake says the peer is (its NQNs; Connect must name the same).
    pub identity: PskIdentity,
    /// User-space records; `None` when kernel TLS carries them.
    pub records: Option<Box<dyn RecordLayer>>,
}

/// A connection whose handshake finished, for the acceptor to place.
pub struct Handshaken {
    /// The socket (kernel TLS installed, or plain TCP carrying user-space records).
    pub sock: TcpSock,
    /// The peer.
    pub peer: SocketAddr,
    /// The listener's port id.
    pub port: usize,
    /// The secure channel.
    pub tls: TlsConn,
}

/// Runs TLS handshakes, one thread each, at most `max_handshakes` at once.
pub struct Handshaker {
    table: Arc<PskTable>,
    opts: TlsOptions,
    running: Arc<AtomicUsize>,
}

impl Handshaker {
    /// A handshaker looking keys up in `table`.
    pub fn new(table: Arc<PskTable>, opts: TlsOptions) -> Handshaker {
        Handshaker { table, opts, running: Arc::new(AtomicUsize::new(0)) }
    }

    /// True while handshakes run (their results are due soon).
    pub fn busy(&self) -> bool {
        self.running.load(Ordering::Acquire) > 0
    }

    /// Starts the handshake of `sock`; a success goes to `done`, a failure is logged and closes it.
    pub fn start(&self, sock: TcpSock, peer: SocketAddr, port: usize, done: Sender<Handshaken>) {
        if self.running.fetch_add(1, Ordering::AcqRel) >= self.opts.max_handshakes {
            self.running.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%peer, max = self.opts.max_handshakes, "refusing TLS connection: too many handshakes running");
            return;
        }
        let table = self.table.clone();
        let lookup: PskLookup = Arc::new(move |id: &PskIdentity| table.lookup(id));
        let (opts, running) = (self.opts.clone(), self.running.clone());
        let spawned = std::thread::Builder::new().name("ff-tls-handshake".into()).spawn(move || {
            let deadline = Instant::now() + Duration::from_millis(opts.handshake_timeout_ms);
            let result = ff_nvme_tls::accept(&sock, &lookup, deadline);
            match result {
                Ok(est) => {
                    if let Some(tls) = secure(&sock, peer, est, opts.ktls) {
                        let _ = done.send(Handshaken { sock, peer, port, tls });
                    }
                }
                Err(e) => tracing::warn!(%peer, port, "TLS handshake refused: {e}"),
            }
            // After the hand-over: while this counts, the acceptor polls for results often.
            running.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(e) = spawned {
            self.running.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(%peer, "cannot start a TLS handshake thread: {e}");
        }
    }
}

/// Hands the keys of an established connection to the kernel, or keeps user-space records where the
/// kernel cannot (`ff_sock::tls::move_to_kernel`). `None`: the socket is unusable (kernel TLS half set
/// up).
fn secure(sock: &TcpSock, peer: SocketAddr, est: Established, ktls: bool) -> Option<TlsConn> {
    let suite = est.cipher_suite();
    let records = if ktls {
        match ff_sock::tls::move_to_kernel(sock, est.record_layer()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, "kernel TLS setup failed, closing the connection: {e}");
                return None;
            }
        }
    } else {
        Some(est.record_layer())
    };
    tracing::info!(%peer, identity = %est.identity, suite, ktls = records.is_none(), "TLS established");
    Some(TlsConn { identity: est.identity, records })
}
