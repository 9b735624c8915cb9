//! What a host connects with: identity, digests, keep-alive, queue count and depth, socket options,
//! DH-HMAC-CHAP credentials and timeouts.

use crate::auth::DhchapOptions;
use ff_nvme_tcp::Digests;
use ff_sock::{GroupOptions, SockOptions};
use std::time::Duration;

/// Settings of a host's association with one controller.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Host NQN (default: `nqn.2014-08.org.nvmexpress:uuid:<uuid>` from the machine id, else random).
    pub hostnqn: String,
    /// Host identifier sent in Connect (default: the same UUID's bytes).
    pub hostid: [u8; 16],
    /// Header and data digests requested.
    pub digests: Digests,
    /// Keep-alive timeout asked of the controller; a Keep Alive is sent every KATO/2. Zero disables it.
    pub kato: Duration,
    /// I/O queues to connect (capped by what Set Features Number of Queues grants).
    pub io_queues: u16,
    /// Entries per I/O queue (commands in flight).
    pub queue_depth: u16,
    /// TCP options of every connection (`mark` is SO_MARK, set before connect).
    pub sock: SockOptions,
    /// SO_MARK per I/O queue: queue `qid` uses `queue_marks[(qid - 1) % len]`, overriding `sock.mark`.
    /// Give one mark per reactor and spread queues over reactors in the same round-robin order, and
    /// every reactor's sockets carry its own mark: on NICs that steer by mark, one rx queue per reactor
    /// (the talk's "tell the NIC"). Empty: every queue uses `sock.mark`.
    pub queue_marks: Vec<u32>,
    /// Ask I/O queues to run without SQ flow control (Connect CATTR bit 2): we never rely on SQHD, and
    /// it lets a target finish a successful read with its C2HData alone (half the PDUs of a read).
    pub disable_sq_flow_control: bool,
    /// Socket group options used for the admin queue and for connection setup.
    pub group: GroupOptions,
    /// DH-HMAC-CHAP credentials, used when a controller asks for authentication (Connect ATR) on a
    /// queue. `None`: such a controller cannot be connected to.
    pub dhchap: Option<DhchapOptions>,
    /// TLS 1.3 with a pre-shared key on every queue (the controller's port requires a secure channel).
    pub tls: Option<crate::tls::TlsOptions>,
    /// Bound on TCP connect plus connection initialization and Connect.
    pub connect_timeout: Duration,
    /// A command not completed in this time is aborted, then its queue is reconnected.
    pub command_timeout: Duration,
}

impl Default for HostOptions {
    fn default() -> Self {
        let uuid = host_uuid();
        HostOptions {
            hostnqn: format!("nqn.2014-08.org.nvmexpress:uuid:{}", uuid_string(&uuid)),
            hostid: uuid,
            digests: Digests::default(),
            kato: Duration::from_secs(10),
            io_queues: 1,
            queue_depth: 128,
            sock: SockOptions::default(),
            queue_marks: Vec::new(),
            disable_sq_flow_control: true,
            group: GroupOptions::default(),
            dhchap: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
        }
    }
}

impl HostOptions {
    /// The socket options of I/O queue `qid` (its SO_MARK from [`HostOptions::queue_marks`]).
    pub fn queue_sock(&self, qid: u16) -> SockOptions {
        let mut s = self.sock.clone();
        if !self.queue_marks.is_empty() && qid > 0 {
            s.mark = Some(self.queue_marks[usize::from(qid - 1) % self.queue_marks.len()]);
        }
        s
    }
}

/// A stable UUID from `/etc/machine-id` (same host, same NQN across runs), or a random one.
fn host_uuid() -> [u8; 16] {
    let parsed = std::fs::read_to_string("/etc/machine-id").ok().and_then(|s| {
        let hex = s.trim();
        if hex.len() != 32 {
            return None;
        }
        let mut u = [0u8; 16];
        for (i, b) in u.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(u)
    });
    let mut u = parsed.unwrap_or_else(random_bytes);
    // Mark it as a version 4 (random) UUID, variant 1, so tools accept it.
    if let Some(b) = u.get_mut(6) {
        *b = (*b & 0x0F) | 0x40;
    }
    if let Some(b) = u.get_mut(8) {
        *b = (*b & 0x3F) | 0x80;
    }
    u
}

fn random_bytes() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut u = [0u8; 16];
    for chunk in u.chunks_mut(8) {
        // RandomState is seeded from the OS per instance.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        for (d, s) in chunk.iter_mut().zip(h.finish().to_le_bytes()) {
            *d = s;
        }
    }
    u
}

fn uuid_string(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}
