//! What the runtime tells the protocol core about the targets it serves: names, aliases, portal groups,
//! portals, allow-lists, CHAP credentials, and our side's limits for negotiation.
//!
//! Plain data, shared by every connection of a portal through an `Arc`; a reload builds a new one
//! (connections already logged in keep the one they started with).

use crate::chap::ChapAlg;

/// Whether a digest is used (RFC 7143 HeaderDigest / DataDigest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DigestPolicy {
    /// Whatever the initiator prefers (its list order decides).
    #[default]
    Allow,
    /// CRC32C or no login.
    Require,
    /// Never CRC32C.
    Never,
}

/// One CHAP name and secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChapSecret {
    /// CHAP_N to expect (initiator) or send (target, mutual CHAP).
    pub name: String,
    /// The shared secret.
    pub secret: Vec<u8>,
}

impl core::fmt::Debug for ChapSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChapSecret").field("name", &self.name).field("secret", &"<hidden>").finish()
    }
}

/// How initiators must authenticate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Auth {
    /// AuthMethod=None (CHAP is not offered).
    #[default]
    None,
    /// CHAP is required.
    Chap(ChapAuth),
}

/// CHAP settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChapAuth {
    /// Accepted initiator credentials (any of them).
    pub initiators: Vec<ChapSecret>,
    /// Our credentials for mutual CHAP; without them mutual CHAP requests fail.
    pub target: Option<ChapSecret>,
    /// Fail initiators that do not ask for mutual CHAP.
    pub require_mutual: bool,
    /// Algorithms we accept, in no particular order (the initiator's order decides).
    pub algorithms: Vec<ChapAlg>,
}

impl ChapAuth {
    /// One-way CHAP with one initiator secret, MD5 and SHA-256 accepted.
    pub fn one_way(name: &str, secret: &[u8]) -> Self {
        ChapAuth {
            initiators: vec![ChapSecret { name: name.into(), secret: secret.into() }],
            target: None,
            require_mutual: false,
            algorithms: vec![ChapAlg::Md5, ChapAlg::Sha256],
        }
    }
}

/// One target we serve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetDesc {
    /// iSCSI name (iqn.…, eui.…, naa.…).
    pub name: String,
    /// TargetAlias, if any.
    pub alias: Option<String>,
    /// TargetPortalGroupTag of the portal group the connection arrived on.
    pub portal_group_tag: u16,
    /// Addresses for SendTargets, as `host:port` (`[v6]:port` for IPv6).
    pub portals: Vec<String>,
    /// Initiator names allowed to log in; `None` admits any.
    pub allowed_initiators: Option<Vec<String>>,
    /// Authentication required of initiators.
    pub auth: Auth,
}

impl TargetDesc {
    /// Whether `initiator` may use this target.
    pub fn admits(&self, initiator: &str) -> bool {
        self.allowed_initiators.as_ref().is_none_or(|l| l.iter().any(|n| n.eq_ignore_ascii_case(initiator)))
    }
}

/// Our preferences and limits for the operational keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// MaxRecvDataSegmentLength we declare (512 to 2^24 - 1).
    pub max_recv_data_segment_length: u32,
    /// Largest MaxBurstLength we accept.
    pub max_burst_length: u32,
    /// Largest FirstBurstLength we accept.
    pub first_burst_length: u32,
    /// Largest MaxOutstandingR2T we accept.
    pub max_outstanding_r2t: u16,
    /// ImmediateData we are willing to use.
    pub immediate_data: bool,
    /// InitialR2T we require (Yes forces it; No lets the initiator choose).
    pub initial_r2t: bool,
    /// Header digest policy.
    pub header_digest: DigestPolicy,
    /// Data digest policy.
    pub data_digest: DigestPolicy,
    /// DefaultTime2Wait we propose in answers.
    pub default_time2wait: u16,
    /// DefaultTime2Retain we propose in answers.
    pub default_time2retain: u16,
    /// Commands outstanding per session (the CmdSN window).
    pub queue_depth: u32,
    /// Largest Expected Data Transfer Length we gather into one buffer.
    pub max_transfer: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_recv_data_segment_length: 256 * 1024,
            max_burst_length: 1024 * 1024,
            first_burst_length: 256 * 1024,
            max_outstanding_r2t: 16,
            immediate_data: true,
            initial_r2t: false,
            header_digest: DigestPolicy::Allow,
            data_digest: DigestPolicy::Allow,
            default_time2wait: 2,
            default_time2retain: 20,
            queue_depth: 128,
            max_transfer: 16 * 1024 * 1024,
        }
    }
}

/// Everything a portal's connections need to log in and run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortalConfig {
    /// The targets reachable through this portal.
    pub targets: Vec<TargetDesc>,
    /// Authentication for discovery sessions.
    pub discovery_auth: Auth,
    /// Initiators allowed to open discovery sessions; `None` admits any.
    pub discovery_initiators: Option<Vec<String>>,
    /// Negotiation limits.
    pub limits: Limits,
}

impl PortalConfig {
    /// The target called `name` (iSCSI names compare case-insensitively).
    pub fn target(&self, name: &str) -> Option<&TargetDesc> {
        self.targets.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }
}
