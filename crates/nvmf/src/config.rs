//! Configuration: subsystems with their namespaces and allowed hosts, and
//! the target-wide [`Limits`]. Deserializable from TOML; [`Namespace`] is
//! the validated form with derived identifiers that the rest of the crate
//! uses.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Well-known NQN of the discovery subsystem.
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";
/// NQNs are at most 223 bytes (the Connect field is 256 with a NUL).
pub const NQN_MAX_LEN: usize = 223;

/// A configuration that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// An NQN is empty, too long, or reserved.
    #[error("invalid NQN {0:?}")]
    BadNqn(String),
    /// A subsystem with this NQN already exists.
    #[error("subsystem {0} already exists")]
    DuplicateSubsystem(String),
    /// No subsystem with this NQN.
    #[error("no subsystem {0}")]
    NoSubsystem(String),
    /// Namespace ID is 0, beyond `max_namespaces`, or already used.
    #[error("invalid or duplicate namespace id {0}")]
    BadNsid(u32),
    /// No controller with this ID.
    #[error("no controller {0}")]
    NoController(u16),
    /// No namespace with this ID.
    #[error("no namespace {0}")]
    NoNamespace(u32),
    /// Block size other than 512 or 4096, or zero blocks.
    #[error("namespace {0}: block size must be 512 or 4096 and blocks > 0")]
    BadGeometry(u32),
    /// NGUID/UUID text that does not parse.
    #[error("namespace {nsid}: bad {field}")]
    BadId {
        /// Namespace ID.
        nsid: u32,
        /// Which field.
        field: &'static str,
    },
    /// Serial/model/firmware not printable ASCII or too long.
    #[error("{0} must be printable ASCII within its width")]
    BadText(&'static str),
    /// A limit outside what the protocol can express.
    #[error("limit {0} out of range")]
    BadLimit(&'static str),
    /// A DH-HMAC-CHAP secret, hash or group that cannot be used.
    #[error("authentication: {0}")]
    BadAuth(String),
}

fn yes() -> bool {
    true
}

fn default_block_size() -> u32 {
    512
}

/// One namespace of a subsystem.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    /// Namespace ID (1..=`Limits::max_namespaces`).
    pub nsid: u32,
    /// Logical block size: 512 or 4096.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    /// Capacity in logical blocks.
    pub blocks: u64,
    /// NGUID as 32 hex digits; derived from NQN + NSID when absent.
    #[serde(default)]
    pub nguid: Option<String>,
    /// UUID as text (with or without dashes); derived when absent.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Whether the backend has a volatile write cache (Flush/FUA matter).
    #[serde(default)]
    pub volatile_write_cache: bool,
    /// Whether Dataset Management deallocate is supported.
    #[serde(default = "yes")]
    pub supports_deallocate: bool,
    /// Whether Write Zeroes is supported.
    #[serde(default = "yes")]
    pub supports_write_zeroes: bool,
}

/// One NVM subsystem.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsystemConfig {
    /// Subsystem NQN.
    pub nqn: String,
    /// Serial number (Identify SN, up to 20 ASCII characters).
    pub serial: String,
    /// Model number (Identify MN, up to 40 ASCII characters).
    #[serde(default = "default_model")]
    pub model: String,
    /// Firmware revision (Identify FR, up to 8 ASCII characters).
    #[serde(default = "default_fw")]
    pub firmware_rev: String,
    /// Namespaces.
    #[serde(default)]
    pub namespaces: Vec<NamespaceConfig>,
    /// Accept any host NQN.
    #[serde(default)]
    pub allow_any_host: bool,
    /// Host NQNs allowed when `allow_any_host` is false.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Highest namespace ID of this subsystem (its Identify NN); 0 takes `Limits::max_namespaces`.
    #[serde(default)]
    pub max_namespaces: u32,
    /// Hosts that must authenticate with DH-HMAC-CHAP, with their secrets. Other hosts connect
    /// without authentication, as before.
    #[serde(default)]
    pub dhchap: Vec<DhchapHost>,
    /// DH-HMAC-CHAP hashes allowed, most preferred first (`sha256`, `sha384`, `sha512`); empty: all.
    #[serde(default)]
    pub dhchap_hashes: Vec<String>,
    /// DH groups allowed, most preferred first (`null`, `ffdhe2048` ... `ffdhe8192`); empty: all.
    #[serde(default)]
    pub dhchap_dhgroups: Vec<String>,
}

/// One host's DH-HMAC-CHAP secrets, as `DHHC-1:...` strings (`nvme gen-dhchap-key` output).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DhchapHost {
    /// The host NQN.
    pub hostnqn: String,
    /// The host's secret (`--dhchap-secret` on the host).
    pub key: String,
    /// The controller's secret for bidirectional authentication (`--dhchap-ctrl-secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctrl_key: Option<String>,
}

impl DhchapHost {
    /// The parsed credentials; errors name the host and what is wrong, never the key.
    pub fn credentials(&self) -> Result<ff_nvme_auth::HostCredentials, ConfigError> {
        validate_nqn(&self.hostnqn)?;
        let key = ff_nvme_auth::Secret::parse(&self.key)
            .map_err(|e| ConfigError::BadAuth(format!("host {}: dhchap key: {e}", self.hostnqn)))?;
        let ctrl = match &self.ctrl_key {
            None => None,
            Some(k) => Some(
                ff_nvme_auth::Secret::parse(k)
                    .map_err(|e| ConfigError::BadAuth(format!("host {}: dhchap ctrl key: {e}", self.hostnqn)))?,
            ),
        };
        Ok(ff_nvme_auth::HostCredentials { hostnqn: self.hostnqn.clone(), secret: Some(key), controller_secret: ctrl })
    }
}

impl std::fmt::Debug for DhchapHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs.
        f.debug_struct("DhchapHost")
            .field("hostnqn", &self.hostnqn)
            .field("ctrl_key", &self.ctrl_key.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

fn default_model() -> String {
    "ferrofabric".to_string()
}

fn default_fw() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Target-wide limits, advertised in CAP / Identify and enforced on Connect
/// and I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Maximum I/O queues per controller (Number of Queues grant ceiling).
    pub max_io_queues: u16,
    /// Maximum entries per queue: CAP.MQES + 1 and MAXCMD. At least 32 so
    /// the host's 32-entry admin queue fits.
    pub max_queue_depth: u32,
    /// Maximum data transfer as a power of two of 4 KiB pages (the MDTS
    /// exponent); 0 means no limit.
    pub mdts: u8,
    /// Bytes of in-capsule data an I/O command capsule may carry; advertised
    /// as IOCCSZ = (64 + this) / 16. Multiple of 16.
    pub in_capsule_data_size: u32,
    /// Maximum live queue connections (admin + I/O) across the target.
    pub max_connections: u32,
    /// Keep-alive timeout in ms applied when a discovery host asks for none
    /// (the spec's two minutes).
    pub kato_default_ms: u32,
    /// Highest namespace ID (Identify NN).
    pub max_namespaces: u32,
    /// Honour Connect CATTR "disable SQ flow control" (advertised in the
    /// discovery log TREQ). When false such Connects are rejected.
    pub allow_sq_flow_control_disable: bool,
    /// How long a DH-HMAC-CHAP transaction (or the wait for the first one after Connect) may
    /// take before the queue is closed, in ms. Generous by default: an emulated host needs
    /// seconds for one ffdhe8192 exponentiation.
    pub auth_timeout_ms: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_io_queues: 16,
            max_queue_depth: 128,
            mdts: 5,
            in_capsule_data_size: 8192,
            max_connections: 4096,
            kato_default_ms: 120_000,
            max_namespaces: 1024,
            allow_sq_flow_control_disable: true,
            auth_timeout_ms: 30_000,
        }
    }
}

impl Limits {
    /// Checks every limit fits its protocol field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_io_queues == 0 || self.max_io_queues == u16::MAX {
            return Err(ConfigError::BadLimit("max_io_queues"));
        }
        if !(32..=65536).contains(&self.max_queue_depth) {
            return Err(ConfigError::BadLimit("max_queue_depth"));
        }
        if self.mdts > 16 {
            return Err(ConfigError::BadLimit("mdts"));
        }
        if !self.in_capsule_data_size.is_multiple_of(16) || self.in_capsule_data_size > (1 << 20) {
            return Err(ConfigError::BadLimit("in_capsule_data_size"));
        }
        if self.max_namespaces == 0 || self.max_namespaces >= 0xFFFF_FFFE {
            return Err(ConfigError::BadLimit("max_namespaces"));
        }
        if self.auth_timeout_ms == 0 {
            return Err(ConfigError::BadLimit("auth_timeout_ms"));
        }
        Ok(())
    }

    /// CAP.MQES (0's based).
    pub fn mqes(&self) -> u16 {
        u16::try_from(self.max_queue_depth.saturating_sub(1)).unwrap_or(u16::MAX)
    }

    /// Largest data transfer in bytes, `None` when unlimited.
    pub fn mdts_bytes(&self) -> Option<u64> {
        (self.mdts != 0).then(|| 4096u64 << self.mdts)
    }

    /// IOCCSZ in 16-byte units (SQE included).
    pub fn ioccsz(&self) -> u32 {
        (64 + self.in_capsule_data_size) / 16
    }
}

/// Everything a target is configured with (the TOML root).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// Target-wide limits.
    pub limits: Limits,
    /// NVM subsystems.
    pub subsystems: Vec<SubsystemConfig>,
    /// Addresses listed in the discovery log.
    pub listeners: Vec<crate::discovery::Port>,
}

/// A validated namespace with its identifiers resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Namespace ID.
    pub nsid: u32,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// log2(block_size).
    pub lba_shift: u8,
    /// Capacity in blocks.
    pub blocks: u64,
    /// Namespace globally unique identifier.
    pub nguid: [u8; 16],
    /// Namespace UUID.
    pub uuid: [u8; 16],
    /// Volatile write cache present.
    pub vwc: bool,
    /// Deallocate supported.
    pub deallocate: bool,
    /// Write Zeroes supported.
    pub write_zeroes: bool,
    /// Whether I/O is accepted (false → Namespace Not Ready, retryable).
    pub ready: bool,
}

impl Namespace {
    /// The configuration that describes this namespace (identifiers as text).
    pub fn to_config(&self) -> NamespaceConfig {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let u = hex(&self.uuid);
        NamespaceConfig {
            nsid: self.nsid,
            block_size: self.block_size,
            blocks: self.blocks,
            nguid: Some(hex(&self.nguid)),
            uuid: Some(format!("{}-{}-{}-{}-{}", &u[0..8], &u[8..12], &u[12..16], &u[16..20], &u[20..32])),
            volatile_write_cache: self.vwc,
            supports_deallocate: self.deallocate,
            supports_write_zeroes: self.write_zeroes,
        }
    }

    /// Validates a namespace of subsystem `nqn`.
    pub fn from_config(nqn: &str, c: &NamespaceConfig, limits: &Limits) -> Result<Self, ConfigError> {
        if c.nsid == 0 || c.nsid > limits.max_namespaces {
            return Err(ConfigError::BadNsid(c.nsid));
        }
        let lba_shift = match c.block_size {
            512 => 9,
            4096 => 12,
            _ => return Err(ConfigError::BadGeometry(c.nsid)),
        };
        if c.blocks == 0 {
            return Err(ConfigError::BadGeometry(c.nsid));
        }
        let nguid = match &c.nguid {
            Some(s) => parse_hex16(s).ok_or(ConfigError::BadId { nsid: c.nsid, field: "nguid" })?,
            None => derive_id(nqn, c.nsid, 0x6e67_7569_6400_0000),
        };
        let uuid = match &c.uuid {
            Some(s) => parse_hex16(s).ok_or(ConfigError::BadId { nsid: c.nsid, field: "uuid" })?,
            None => {
                let mut u = derive_id(nqn, c.nsid, 0x7575_6964_0000_0000);
                // RFC 9562 version 8 (custom) with the RFC variant, so tools
                // that parse UUIDs accept it.
                u[6] = (u[6] & 0x0F) | 0x80;
                u[8] = (u[8] & 0x3F) | 0x80;
                u
            }
        };
        if nguid == [0; 16] || uuid == [0; 16] {
            // All-zero identifiers mean "not reported" to the host.
            return Err(ConfigError::BadId { nsid: c.nsid, field: "nguid/uuid (all zero)" });
        }
        Ok(Self {
            nsid: c.nsid,
            block_size: c.block_size,
            lba_shift,
            blocks: c.blocks,
            nguid,
            uuid,
            vwc: c.volatile_write_cache,
            deallocate: c.supports_deallocate,
            write_zeroes: c.supports_write_zeroes,
            ready: true,
        })
    }
}

/// Checks an NQN is usable as a subsystem name.
pub fn validate_nqn(nqn: &str) -> Result<(), ConfigError> {
    if nqn.is_empty() || nqn.len() > NQN_MAX_LEN || nqn.bytes().any(|b| b == 0) {
        return Err(ConfigError::BadNqn(nqn.to_string()));
    }
    Ok(())
}

/// Checks an Identify text field: printable ASCII, at most `width` bytes.
pub(crate) fn validate_text(s: &str, width: usize, what: &'static str) -> Result<(), ConfigError> {
    if s.len() > width || !s.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Err(ConfigError::BadText(what));
    }
    Ok(())
}

impl SubsystemConfig {
    /// The highest namespace ID this subsystem takes.
    pub fn max_nsid(&self, limits: &Limits) -> u32 {
        if self.max_namespaces == 0 { limits.max_namespaces } else { self.max_namespaces.min(limits.max_namespaces) }
    }

    /// Validates the subsystem and resolves its namespaces.
    pub fn validate(&self, limits: &Limits) -> Result<Vec<Namespace>, ConfigError> {
        validate_nqn(&self.nqn)?;
        if self.max_namespaces > limits.max_namespaces {
            return Err(ConfigError::BadLimit("max_namespaces (above the target's)"));
        }
        let limits = &Limits { max_namespaces: self.max_nsid(limits), ..*limits };
        if self.nqn == DISCOVERY_NQN {
            return Err(ConfigError::BadNqn(self.nqn.clone()));
        }
        validate_text(&self.serial, 20, "serial")?;
        validate_text(&self.model, 40, "model")?;
        validate_text(&self.firmware_rev, 8, "firmware_rev")?;
        for h in &self.hosts {
            validate_nqn(h)?;
        }
        crate::auth::SubsysAuth::from_config(self)?;
        let mut out: Vec<Namespace> = Vec::with_capacity(self.namespaces.len());
        for c in &self.namespaces {
            if out.iter().any(|n| n.nsid == c.nsid) {
                return Err(ConfigError::BadNsid(c.nsid));
            }
            out.push(Namespace::from_config(&self.nqn, c, limits)?);
        }
        Ok(out)
    }

    /// Whether `hostnqn` may connect.
    pub fn host_allowed(&self, hostnqn: &str) -> bool {
        self.allow_any_host || self.hosts.iter().any(|h| h == hostnqn)
    }
}

/// 16 bytes from 32 hex digits, dashes ignored.
fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let hex = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

/// Stable 128-bit identifier from NQN + NSID: two FNV-1a-64 lanes with
/// distinct seeds. Must never change between releases: hosts compare NGUIDs
/// across reconnects and multipath controllers.
fn derive_id(nqn: &str, nsid: u32, seed: u64) -> [u8; 16] {
    let lane = |basis: u64| {
        let mut h: u64 = basis;
        for b in nqn.bytes().chain([0]).chain(nsid.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        h
    };
    let a = lane(0xcbf2_9ce4_8422_2325 ^ seed);
    let b = lane(0x8422_2325_cbf2_9ce4 ^ seed.rotate_left(17));
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ns(nsid: u32) -> NamespaceConfig {
        NamespaceConfig {
            nsid,
            block_size: 512,
            blocks: 100,
            nguid: None,
            uuid: None,
            volatile_write_cache: false,
            supports_deallocate: true,
            supports_write_zeroes: true,
        }
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let l = Limits::default();
        let a = Namespace::from_config("nqn.a", &ns(1), &l).unwrap();
        let a2 = Namespace::from_config("nqn.a", &ns(1), &l).unwrap();
        let b = Namespace::from_config("nqn.a", &ns(2), &l).unwrap();
        let c = Namespace::from_config("nqn.b", &ns(1), &l).unwrap();
        assert_eq!(a.nguid, a2.nguid);
        assert_eq!(a.uuid, a2.uuid);
        assert_ne!(a.nguid, b.nguid);
        assert_ne!(a.nguid, c.nguid);
        assert_ne!(a.nguid, a.uuid);
        assert_eq!(a.uuid[6] >> 4, 8);
        assert_eq!(a.uuid[8] >> 6, 2);
    }

    #[test]
    fn explicit_ids_parse() {
        let mut c = ns(1);
        c.uuid = Some("00112233-4455-6677-8899-aabbccddeeff".into());
        c.nguid = Some("0123456789abcdef0123456789ABCDEF".into());
        let n = Namespace::from_config("nqn.a", &c, &Limits::default()).unwrap();
        assert_eq!(n.uuid[0], 0x00);
        assert_eq!(n.uuid[15], 0xff);
        assert_eq!(n.nguid[1], 0x23);
        c.uuid = Some("xyz".into());
        assert!(Namespace::from_config("nqn.a", &c, &Limits::default()).is_err());
    }

    #[test]
    fn geometry_and_nsid_checks() {
        let l = Limits::default();
        let mut c = ns(0);
        assert_eq!(Namespace::from_config("n", &c, &l), Err(ConfigError::BadNsid(0)));
        c.nsid = 1;
        c.block_size = 1024;
        assert_eq!(Namespace::from_config("n", &c, &l), Err(ConfigError::BadGeometry(1)));
        let s = SubsystemConfig {
            nqn: "nqn.x".into(),
            serial: "S".into(),
            model: "M".into(),
            firmware_rev: "1".into(),
            namespaces: vec![ns(1), ns(1)],
            allow_any_host: true,
            hosts: vec![],
            max_namespaces: 0,
            dhchap: vec![],
            dhchap_hashes: vec![],
            dhchap_dhgroups: vec![],
        };
        assert_eq!(s.validate(&l), Err(ConfigError::BadNsid(1)));
        let small = SubsystemConfig { namespaces: vec![ns(1), ns(3)], max_namespaces: 2, ..s.clone() };
        assert_eq!(small.validate(&l), Err(ConfigError::BadNsid(3)));
        let big = SubsystemConfig { namespaces: vec![], max_namespaces: l.max_namespaces + 1, ..s.clone() };
        assert!(big.validate(&l).is_err());
        let mut d = s.clone();
        d.nqn = DISCOVERY_NQN.into();
        assert!(d.validate(&l).is_err());
    }

    #[test]
    fn limits_derived_values() {
        let l = Limits::default();
        l.validate().unwrap();
        assert_eq!(l.mqes(), 127);
        assert_eq!(l.ioccsz(), (64 + 8192) / 16);
        assert_eq!(l.mdts_bytes(), Some(128 * 1024));
        assert_eq!(Limits { mdts: 0, ..l }.mdts_bytes(), None);
        assert!(Limits { max_queue_depth: 16, ..l }.validate().is_err());
        assert!(Limits { in_capsule_data_size: 10, ..l }.validate().is_err());
    }
}
