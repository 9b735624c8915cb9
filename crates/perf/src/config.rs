//! What a perf run does: [`PerfConfig`] (target, namespace, workload, queues and reactor threads,
//! digests, verify, sock options, seed, host NQN and DH-HMAC-CHAP credentials) and the access [`Pattern`].

use ff_sock::GroupOptions;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// The subsystem NQN `ferrofabric target` serves by default (the same constant as `ff-target`'s, kept
/// here so the load engine does not depend on the target).
pub const DEFAULT_NQN: &str = "nqn.2026-11.io.ferrofabric:default";

/// The target `ferrofabric target` serves over iSCSI by default.
pub const DEFAULT_ISCSI_TARGET: &str = "iqn.2026-11.io.ferrofabric:default";

/// The initiator name perf logs in with unless told otherwise.
pub const DEFAULT_INITIATOR: &str = ff_initiator::iscsi::DEFAULT_INITIATOR;

/// An iSCSI logical unit to drive instead of an NVMe/TCP namespace (the portal is [`PerfConfig::addr`],
/// digests are [`PerfConfig::hdgst`] and [`PerfConfig::ddgst`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IscsiTarget {
    /// TargetName.
    pub target: String,
    /// Logical unit number.
    pub lun: u16,
    /// InitiatorName.
    pub initiator: String,
    /// CHAP credentials, when the target wants them.
    pub chap: Option<ff_initiator::iscsi::Chap>,
}

/// Access pattern, named as in fio and spdk_nvme_perf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Random reads.
    RandRead,
    /// Random writes.
    RandWrite,
    /// Sequential mixed reads and writes (`rwmixread` percent reads).
    Rw,
    /// Random mixed reads and writes (`rwmixread` percent reads).
    RandRw,
}

impl Pattern {
    /// Offsets are drawn at random (else they advance sequentially).
    pub fn is_random(self) -> bool {
        matches!(self, Pattern::RandRead | Pattern::RandWrite | Pattern::RandRw)
    }

    /// Percentage of reads: fixed for the pure patterns, `rwmixread` for the mixed ones.
    pub fn read_pct(self, rwmixread: u8) -> u8 {
        match self {
            Pattern::Read | Pattern::RandRead => 100,
            Pattern::Write | Pattern::RandWrite => 0,
            Pattern::Rw | Pattern::RandRw => rwmixread.min(100),
        }
    }
}

impl FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Pattern::Read),
            "write" => Ok(Pattern::Write),
            "randread" => Ok(Pattern::RandRead),
            "randwrite" => Ok(Pattern::RandWrite),
            "rw" | "readwrite" => Ok(Pattern::Rw),
            "randrw" => Ok(Pattern::RandRw),
            o => Err(format!("unknown pattern {o:?} (read, write, randread, randwrite, rw, randrw)")),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pattern::Read => "read",
            Pattern::Write => "write",
            Pattern::RandRead => "randread",
            Pattern::RandWrite => "randwrite",
            Pattern::Rw => "rw",
            Pattern::RandRw => "randrw",
        })
    }
}

/// One perf run.
#[derive(Clone, Debug)]
pub struct PerfConfig {
    /// Target I/O address.
    pub addr: SocketAddr,
    /// Subsystem NQN.
    pub nqn: String,
    /// Namespace; `None`: the first active one.
    pub nsid: Option<u32>,
    /// Commands in flight per queue.
    pub queue_depth: u16,
    /// Bytes per I/O (a multiple of the namespace's block size).
    pub io_size: usize,
    /// Access pattern.
    pub pattern: Pattern,
    /// Read percentage of the mixed patterns.
    pub rwmixread: u8,
    /// Measured seconds (after the warm-up).
    pub seconds: f64,
    /// Seconds of load before measuring (excluded from every figure).
    pub warmup_seconds: f64,
    /// I/O queues (one connection each).
    pub queues: u16,
    /// Reactor threads; queue `i` runs on thread `i % cores`.
    pub cores: usize,
    /// Header digest.
    pub hdgst: bool,
    /// Data digest.
    pub ddgst: bool,
    /// Write a pattern derived from (LBA, generation), read every write back and check every read of a
    /// block this run wrote; a mismatch fails the run with the LBA.
    pub verify: bool,
    /// Bound the offsets to the first `size` bytes of the namespace.
    pub size: Option<u64>,
    /// Sock layer options of the reactors (backend, pipe, cut-over, zero copy) and TCP options (`sock`,
    /// including SO_MARK) of every connection.
    pub group: GroupOptions,
    /// Seed of offsets, read/write mix and verify data.
    pub seed: u64,
    /// Pin reactor thread `i` to CPU `cpus[i % len]` (empty: no pinning).
    pub cpus: Vec<usize>,
    /// Reactors never block in the wait syscall (lowest latency, a core each).
    pub busy_poll: bool,
    /// Draw a live progress line on stderr when it is a terminal.
    pub progress: bool,
    /// A command not completed in this time is aborted and its queue reconnected.
    pub command_timeout: std::time::Duration,
    /// Drive this iSCSI logical unit (one session per queue) instead of the NVMe/TCP subsystem `nqn`.
    pub iscsi: Option<IscsiTarget>,
    /// NVMe/TCP host NQN; `None`: the initiator's default (from the machine id).
    pub hostnqn: Option<String>,
    /// NVMe/TCP DH-HMAC-CHAP credentials, used when the target asks the host to authenticate.
    pub dhchap: Option<ff_initiator::DhchapOptions>,
    /// TLS 1.3 with a pre-shared key on every queue.
    pub tls: Option<ff_initiator::TlsOptions>,
}

impl Default for PerfConfig {
    fn default() -> Self {
        PerfConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 4420)),
            nqn: DEFAULT_NQN.to_string(),
            nsid: None,
            queue_depth: 32,
            io_size: 4096,
            pattern: Pattern::RandRead,
            rwmixread: 50,
            seconds: 5.0,
            warmup_seconds: 1.0,
            queues: 1,
            cores: 1,
            hdgst: false,
            ddgst: false,
            verify: false,
            size: None,
            group: GroupOptions::default(),
            seed: 1,
            cpus: Vec::new(),
            busy_poll: false,
            progress: false,
            command_timeout: std::time::Duration::from_secs(10),
            iscsi: None,
            hostnqn: None,
            dhchap: None,
            tls: None,
        }
    }
}

impl PerfConfig {
    /// Checks what does not need the target: sizes, counts, durations.
    pub fn validate(&self) -> Result<(), String> {
        if self.queue_depth == 0 {
            return Err("queue depth must be at least 1".into());
        }
        if self.io_size == 0 || !self.io_size.is_multiple_of(512) {
            return Err(format!("I/O size {} is not a non-zero multiple of 512", self.io_size));
        }
        if self.queues == 0 || self.cores == 0 {
            return Err("queues and cores must be at least 1".into());
        }
        if self.rwmixread > 100 {
            return Err(format!("rwmixread {} is not a percentage", self.rwmixread));
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0) {
            return Err(format!("run time {} s must be positive", self.seconds));
        }
        if !(self.warmup_seconds.is_finite() && self.warmup_seconds >= 0.0) {
            return Err(format!("warm-up {} s must be zero or positive", self.warmup_seconds));
        }
        Ok(())
    }
}
