//! The iSCSI host (initiator), RFC 7143, on the PDU codec of [`ff_iscsi`].
//!
//! - [`login`]: the login exchange as the initiator sees it: security (AuthMethod None, or CHAP with
//!   optional mutual CHAP), operational negotiation, full feature;
//! - [`session`]: [`Session`], the sans-IO connection core: bytes in, PDUs and completions out; SCSI
//!   commands with the CmdSN window, Data-In, R2T and Data-Out, immediate and unsolicited data, NOP-In
//!   answers, SendTargets discovery, logout;
//! - [`scsi`]: the CDBs we send (READ/WRITE(16), READ CAPACITY(16), TEST UNIT READY, INQUIRY), LUN
//!   encoding and sense data;
//! - [`link`]: [`IscsiGroup`], sessions on one socket group driven by the calling thread, and
//!   [`IscsiHost`], one blocking session for setup, tools and tests.
//!
//! One connection per session, ErrorRecoveryLevel 0: any protocol error ends the connection and fails the
//! commands in flight. Nothing here panics on target input.

pub mod link;
pub mod login;
pub mod scsi;
pub mod session;
#[cfg(test)]
mod tests;

pub use link::{ConnId, IscsiGroup, IscsiHost, discover};
pub use login::{Chap, LoginError};
pub use scsi::{Capacity, Sense};
pub use session::{Command, CommandError, Completion, DataDir, DiscoveredTarget, Session};

/// The initiator name `ferrofabric perf` and the tools use unless told otherwise.
pub const DEFAULT_INITIATOR: &str = "iqn.2026-12.io.ferrofabric:perf";

/// The well-known iSCSI port.
pub const ISCSI_PORT: u16 = 3260;

/// What one session logs in with and asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IscsiOptions {
    /// InitiatorName (an `iqn.` or `eui.` name).
    pub initiator_name: String,
    /// TargetName; `None` logs in a discovery session (SendTargets only).
    pub target_name: Option<String>,
    /// The initiator part of the session id; sessions to one target from one name need distinct ones.
    pub isid: [u8; 6],
    /// CHAP credentials; `None` logs in with AuthMethod=None.
    pub chap: Option<Chap>,
    /// Ask for the CRC32C header digest (a refusal fails the login).
    pub header_digest: bool,
    /// Ask for the CRC32C data digest (a refusal fails the login).
    pub data_digest: bool,
    /// MaxRecvDataSegmentLength we declare: the largest data segment the target may send us.
    pub max_recv_data_segment_length: u32,
    /// MaxBurstLength we offer (the target may lower it).
    pub max_burst_length: u32,
    /// FirstBurstLength we offer (the target may lower it).
    pub first_burst_length: u32,
    /// InitialR2T we offer: `false` lets us send unsolicited Data-Out (if the target agrees).
    pub initial_r2t: bool,
    /// ImmediateData we offer: write data in the command PDU (if the target agrees).
    pub immediate_data: bool,
}

impl Default for IscsiOptions {
    fn default() -> Self {
        IscsiOptions {
            initiator_name: DEFAULT_INITIATOR.to_string(),
            target_name: None,
            isid: random_isid(),
            chap: None,
            header_digest: false,
            data_digest: false,
            max_recv_data_segment_length: 256 * 1024,
            max_burst_length: 1024 * 1024,
            first_burst_length: 256 * 1024,
            initial_r2t: false,
            immediate_data: true,
        }
    }
}

/// A fresh ISID of the RFC's "random" format (type 0b10 in the two top bits).
pub fn random_isid() -> [u8; 6] {
    let r = ff_iscsi::chap::random_bytes(5).unwrap_or_else(|| {
        // No OS randomness: the process id still separates concurrent initiators on this host.
        std::process::id().to_be_bytes().iter().copied().chain([0x5a]).collect()
    });
    let mut isid = [0x80, 0, 0, 0, 0, 0];
    for (d, s) in isid.iter_mut().skip(1).zip(r) {
        *d = s;
    }
    isid
}

/// Why a session failed: login refused, protocol violation, transport loss, or a timeout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IscsiError {
    /// The login did not reach full feature phase.
    #[error("login: {0}")]
    Login(#[from] LoginError),
    /// The target broke the protocol; the connection was dropped.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The socket failed or the target closed the connection.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// Nothing came in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The request cannot be carried out in the session's state (closed, not logged in, full).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// A setup command failed (e.g. READ CAPACITY answered CHECK CONDITION).
    #[error("{what}: {error}")]
    Command {
        /// The command.
        what: &'static str,
        /// How it failed.
        error: CommandError,
    },
}

impl From<ff_sock::SockError> for IscsiError {
    fn from(e: ff_sock::SockError) -> IscsiError {
        match e {
            ff_sock::SockError::Timeout => IscsiError::Timeout("connect"),
            e => IscsiError::ConnectionLost(e.to_string()),
        }
    }
}

impl From<std::io::Error> for IscsiError {
    fn from(e: std::io::Error) -> IscsiError {
        IscsiError::ConnectionLost(e.to_string())
    }
}

/// Serial number arithmetic of RFC 1982 on 32 bits: `a` comes before `b`.
pub(crate) fn sn_lt(a: u32, b: u32) -> bool {
    a != b && (b.wrapping_sub(a) as i32) > 0
}

/// `a` comes before `b` or equals it.
pub(crate) fn sn_le(a: u32, b: u32) -> bool {
    a == b || sn_lt(a, b)
}
