//! What a target serves and how: built from command-line flags or a TOML file. Defaults serve a 1 GiB
//! RAM namespace under [`DEFAULT_NQN`] on 127.0.0.1:4420, with discovery also on 127.0.0.1:8009; the
//! command line's default also exports it over iSCSI as LUN 0 of [`DEFAULT_IQN`] on 127.0.0.1:3260.

use crate::reactor::PollMode;
use ff_blockdev::BackendSpec;
use ff_nvme_tcp::target::C2hSuccess;
use ff_nvmf::Limits;
use ff_sock::{GroupOptions, PlacementMode};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The subsystem NQN served by default.
pub const DEFAULT_NQN: &str = "nqn.2026-11.io.ferrofabric:default";
/// The default I/O listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4420";
/// The default discovery listener (the well-known discovery port).
pub const DEFAULT_DISCOVERY_LISTEN: &str = "127.0.0.1:8009";
/// The iSCSI target served by default.
pub const DEFAULT_IQN: &str = "iqn.2026-11.io.ferrofabric:default";
/// The default iSCSI portal (the well-known iSCSI port).
pub const DEFAULT_ISCSI_LISTEN: &str = "127.0.0.1:3260";

/// One iSCSI logical unit: a namespace of a subsystem, so both protocols reach the same backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LunSpec {
    /// Logical unit number (0 to 16383).
    pub lun: u16,
    /// NQN of the subsystem holding the namespace.
    pub nqn: String,
    /// Namespace id in that subsystem.
    pub nsid: u32,
}

/// CHAP credentials of an iSCSI target.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChapSpec {
    /// CHAP_N the initiator must send.
    pub user: String,
    /// The initiator's secret (12 to 255 bytes; RFC 7143 asks for at least 12).
    pub secret: String,
    /// Our CHAP_N for mutual CHAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_user: Option<String>,
    /// Our secret for mutual CHAP (must differ from the initiator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_secret: Option<String>,
}

impl std::fmt::Debug for ChapSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChapSpec").field("user", &self.user).field("mutual_user", &self.mutual_user).finish()
    }
}

/// One iSCSI target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiTargetSpec {
    /// iSCSI name (iqn., eui. or naa.).
    pub name: String,
    /// TargetAlias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Any initiator may log in.
    #[serde(default = "yes")]
    pub allow_any_initiator: bool,
    /// Initiator names allowed when `allow_any_initiator` is false.
    #[serde(default)]
    pub initiators: Vec<String>,
    /// CHAP required when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap: Option<ChapSpec>,
    /// Logical units.
    #[serde(default, rename = "lun")]
    pub luns: Vec<LunSpec>,
}

/// iSCSI settings shared by every portal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IscsiOptions {
    /// Portals (empty: no iSCSI).
    pub listen: Vec<SocketAddr>,
    /// HeaderDigest: `allow` (the initiator chooses), `require` or `never`.
    #[serde(deserialize_with = "from_str", serialize_with = "digest_str")]
    pub header_digest: ff_iscsi::DigestPolicy,
    /// DataDigest: `allow`, `require` or `never`.
    #[serde(deserialize_with = "from_str", serialize_with = "digest_str")]
    pub data_digest: ff_iscsi::DigestPolicy,
    /// ImmediateData offered.
    pub immediate_data: bool,
    /// InitialR2T required.
    pub initial_r2t: bool,
    /// Largest MaxBurstLength accepted, bytes.
    pub max_burst_length: u32,
    /// Largest FirstBurstLength accepted, bytes.
    pub first_burst_length: u32,
    /// MaxRecvDataSegmentLength declared, bytes.
    pub max_recv_data_segment_length: u32,
    /// Commands outstanding per session (the CmdSN window).
    pub queue_depth: u32,
}

impl Default for IscsiOptions {
    fn default() -> Self {
        let l = ff_iscsi::Limits::default();
        IscsiOptions {
            listen: Vec::new(),
            header_digest: l.header_digest,
            data_digest: l.data_digest,
            immediate_data: l.immediate_data,
            initial_r2t: l.initial_r2t,
            max_burst_length: l.max_burst_length,
            first_burst_length: l.first_burst_length,
            max_recv_data_segment_length: l.max_recv_data_segment_length,
            queue_depth: l.queue_depth,
        }
    }
}

/// Parses a digest policy: `allow`, `require` or `never`.
pub fn parse_digest(s: &str) -> Result<ff_iscsi::DigestPolicy, String> {
    match s {
        "allow" => Ok(ff_iscsi::DigestPolicy::Allow),
        "require" => Ok(ff_iscsi::DigestPolicy::Require),
        "never" => Ok(ff_iscsi::DigestPolicy::Never),
        o => Err(format!("unknown digest policy {o:?} (allow, require or never)")),
    }
}

fn digest_name(d: ff_iscsi::DigestPolicy) -> &'static str {
    match d {
        ff_iscsi::DigestPolicy::Allow => "allow",
        ff_iscsi::DigestPolicy::Require => "require",
        ff_iscsi::DigestPolicy::Never => "never",
    }
}

fn digest_str<S: serde::Serializer>(v: &ff_iscsi::DigestPolicy, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(digest_name(*v))
}

/// A digest policy as the configuration spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestArg(pub ff_iscsi::DigestPolicy);

impl std::str::FromStr for DigestArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_digest(s).map(DigestArg)
    }
}

/// One namespace: its id and what stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Namespace id (1-based).
    pub nsid: u32,
    /// Backend: `null`, `ram`, `file:PATH`, or a table with `kind`, `size`, `block_size`.
    pub backend: BackendSpec,
    /// UUID (with or without dashes); derived from the NQN and nsid when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// NGUID as 32 hex digits; derived from the NQN and nsid when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nguid: Option<String>,
}

impl NamespaceSpec {
    /// Namespace `nsid` on `backend`, identifiers derived.
    pub fn new(nsid: u32, backend: BackendSpec) -> NamespaceSpec {
        NamespaceSpec { nsid, backend, uuid: None, nguid: None }
    }
}

/// One subsystem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsystemSpec {
    /// Subsystem NQN.
    pub nqn: String,
    /// Serial number (up to 20 ASCII characters).
    #[serde(default = "default_serial")]
    pub serial: String,
    /// Model number (up to 40 ASCII characters).
    #[serde(default = "default_model")]
    pub model: String,
    /// Any host may connect.
    #[serde(default = "yes")]
    pub allow_any_host: bool,
    /// Host NQNs allowed when `allow_any_host` is false.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Highest namespace ID (the subsystem's Identify NN); 0 takes the target's `limits.max_namespaces`.
    #[serde(default)]
    pub max_namespaces: u32,
    /// Hosts that must authenticate with DH-HMAC-CHAP (`[[subsystem.host]]`); each is also allowed
    /// to connect. Hosts without an entry here connect without authentication.
    #[serde(default, rename = "host", skip_serializing_if = "Vec::is_empty")]
    pub auth_hosts: Vec<HostAuthSpec>,
    /// Namespaces.
    #[serde(default)]
    pub namespaces: Vec<NamespaceSpec>,
}

/// One host's secrets on a subsystem: DH-HMAC-CHAP (`DHHC-1:...` strings as `nvme gen-dhchap-key`
/// prints them) and the TLS pre-shared key (`NVMeTLSkey-1:...`, as `nvme gen-tls-key` prints it).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAuthSpec {
    /// Host NQN.
    pub nqn: String,
    /// The host's secret (the host's `--dhchap-secret`); none: no in-band authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhchap_key: Option<String>,
    /// The controller's secret for bidirectional authentication (the host's `--dhchap-ctrl-secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhchap_ctrl_key: Option<String>,
    /// The TLS pre-shared key in interchange format (`NVMeTLSkey-1:01:...:`): the host may connect
    /// through a TLS listener with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk: Option<String>,
}

impl HostAuthSpec {
    /// An entry with a DH-HMAC-CHAP secret only.
    pub fn dhchap(nqn: impl Into<String>, key: impl Into<String>) -> HostAuthSpec {
        HostAuthSpec { nqn: nqn.into(), dhchap_key: Some(key.into()), dhchap_ctrl_key: None, psk: None }
    }

    /// The controller core's form, when the host authenticates in band.
    pub fn to_core(&self) -> Option<ff_nvmf::DhchapHost> {
        Some(ff_nvmf::DhchapHost {
            hostnqn: self.nqn.clone(),
            key: self.dhchap_key.clone()?,
            ctrl_key: self.dhchap_ctrl_key.clone(),
        })
    }

    /// The TLS pre-shared key, parsed.
    pub fn tls_psk(&self) -> anyhow::Result<Option<ff_nvme_tls::psk::ConfiguredPsk>> {
        self.psk
            .as_deref()
            .map(|p| {
                p.parse::<ff_nvme_tls::psk::ConfiguredPsk>()
                    .map_err(|e| anyhow::anyhow!("TLS PSK of host {}: {e}", self.nqn))
            })
            .transpose()
    }

    /// Checks every secret parses (errors name the host, never the key) and that the entry has one.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.dhchap_key.is_some() || self.psk.is_some(),
            "host {}: give a dhchap_key, a psk or both",
            self.nqn
        );
        anyhow::ensure!(
            self.dhchap_ctrl_key.is_none() || self.dhchap_key.is_some(),
            "host {}: a dhchap_ctrl_key needs a dhchap_key",
            self.nqn
        );
        if let Some(core) = self.to_core() {
            core.credentials().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        self.tls_psk().map(|_| ())
    }
}

impl std::fmt::Debug for HostAuthSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostAuthSpec").field("nqn", &self.nqn).finish_non_exhaustive()
    }
}

/// How TLS connections run (`[tls]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsOptions {
    /// Hand the record keys to kernel TLS after the handshake (the default); where the kernel has no
    /// TLS, or with `false`, records are sealed and opened in user space.
    pub ktls: bool,
    /// How long a connection has to finish its TLS handshake.
    pub handshake_timeout_ms: u64,
    /// Handshakes running at once (each on its own short-lived thread); beyond that a new TLS
    /// connection is refused and logged.
    pub max_handshakes: usize,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions { ktls: true, handshake_timeout_ms: 10_000, max_handshakes: 64 }
    }
}

/// Target-wide DH-HMAC-CHAP policy (`[auth]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthOptions {
    /// Hashes allowed, most preferred first: `sha256`, `sha384`, `sha512` (or `hmac(sha256)`...);
    /// empty: all, strongest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<String>,
    /// DH groups allowed, most preferred first: `null`, `ffdhe2048`, `ffdhe3072`, `ffdhe4096`,
    /// `ffdhe6144`, `ffdhe8192`; empty: all, strongest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dhgroups: Vec<String>,
}

/// Deserializes a value through its `FromStr` spelling (types of crates that do not use serde).
fn from_str<'de, D: serde::Deserializer<'de>, T: FromConfigStr>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    T::from_config_str(&s).map_err(serde::de::Error::custom)
}

/// Types the configuration spells as strings.
trait FromConfigStr: Sized {
    fn from_config_str(s: &str) -> Result<Self, String>;
}

impl FromConfigStr for C2hSuccess {
    fn from_config_str(s: &str) -> Result<Self, String> {
        s.parse()
    }
}

impl FromConfigStr for ff_iscsi::DigestPolicy {
    fn from_config_str(s: &str) -> Result<Self, String> {
        parse_digest(s)
    }
}

fn yes() -> bool {
    true
}
fn default_serial() -> String {
    "FF0000000001".into()
}
fn default_model() -> String {
    "ferrofabric".into()
}

/// Who accepts connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcceptMode {
    /// One acceptor thread places each connection on a reactor by `placement` (NAPI id, CPU, ...)
    /// after its first bytes arrived.
    Acceptor,
    /// Every reactor owns an SO_REUSEPORT listener per address and accepts on its own socket group (on
    /// io_uring: multishot accept straight into the ring's fixed-file table); the kernel's reuseport
    /// hash spreads connections, `placement` is not used.
    Reactor,
}

impl std::str::FromStr for AcceptMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "acceptor" => Ok(AcceptMode::Acceptor),
            "reactor" => Ok(AcceptMode::Reactor),
            o => Err(format!("unknown accept mode {o:?} (acceptor or reactor)")),
        }
    }
}

/// Serializes a value through its configuration spelling.
fn c2h_str<S: serde::Serializer>(v: &C2hSuccess, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// Everything a target needs to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetOptions {
    /// I/O listeners (each also answers discovery).
    pub listen: Vec<SocketAddr>,
    /// Discovery-only listeners.
    pub discovery_listen: Vec<SocketAddr>,
    /// TLS listeners: I/O listeners (each also answering discovery) that require a secure channel
    /// (TLS 1.3 with a host's pre-shared key, `[[subsystem.host]] psk`).
    pub tls_listen: Vec<SocketAddr>,
    /// Listeners where TLS is optional: a connection that starts with a TLS ClientHello runs the
    /// handshake, one that starts with an ICReq stays plain text (discovery: "not required", TLS 1.3).
    pub tls_optional_listen: Vec<SocketAddr>,
    /// How TLS connections are run.
    pub tls: TlsOptions,
    /// Reactor threads.
    pub cores: usize,
    /// Busy-poll or event-driven reactors.
    pub poll: PollMode,
    /// How connections are spread over reactors.
    pub placement: PlacementMode,
    /// Who accepts connections: one acceptor thread (default) or every reactor.
    pub accept: AcceptMode,
    /// Sock layer options (backend, pipe, cut-over, zero copy, TCP options).
    pub sock: GroupOptions,
    /// Advertised and enforced limits.
    pub limits: Limits,
    /// When a read completes with C2HData SUCCESS and no CapsuleResp: `sq-flow-off` (only where the
    /// host disabled SQ flow control, the spec's rule) or `always` (SPDK's target default).
    #[serde(deserialize_with = "from_str", serialize_with = "c2h_str")]
    pub c2h_success: C2hSuccess,
    /// What is served.
    #[serde(rename = "subsystem")]
    pub subsystems: Vec<SubsystemSpec>,
    /// iSCSI portals and negotiation limits.
    pub iscsi: IscsiOptions,
    /// iSCSI targets.
    #[serde(rename = "iscsi_target")]
    pub iscsi_targets: Vec<IscsiTargetSpec>,
    /// DH-HMAC-CHAP hashes and groups allowed (the secrets are per host, in each subsystem).
    pub auth: AuthOptions,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            listen: vec![DEFAULT_LISTEN.parse().expect("constant address")],
            discovery_listen: vec![DEFAULT_DISCOVERY_LISTEN.parse().expect("constant address")],
            tls_listen: Vec::new(),
            tls_optional_listen: Vec::new(),
            tls: TlsOptions::default(),
            cores: 1,
            poll: PollMode::Event,
            placement: PlacementMode::NapiId,
            accept: AcceptMode::Acceptor,
            sock: GroupOptions::default(),
            limits: Limits::default(),
            c2h_success: C2hSuccess::default(),
            subsystems: Vec::new(),
            iscsi: IscsiOptions::default(),
            iscsi_targets: Vec::new(),
            auth: AuthOptions::default(),
        }
    }
}

impl TargetOptions {
    /// The embedded default: one subsystem [`DEFAULT_NQN`] with a namespace on `backend`.
    pub fn with_default_subsystem(mut self, nqn: &str, backend: BackendSpec) -> Self {
        self.subsystems.push(SubsystemSpec {
            nqn: nqn.to_string(),
            serial: default_serial(),
            model: default_model(),
            allow_any_host: true,
            hosts: Vec::new(),
            max_namespaces: 0,
            auth_hosts: Vec::new(),
            namespaces: vec![NamespaceSpec::new(1, backend)],
        });
        self
    }

    /// Exports namespace 1 of subsystem `nqn` as LUN 0 of iSCSI target `iqn`, open to any initiator.
    pub fn with_default_iscsi_target(mut self, iqn: &str, nqn: &str) -> Self {
        self.iscsi_targets.push(IscsiTargetSpec {
            name: iqn.to_string(),
            alias: None,
            allow_any_initiator: true,
            initiators: Vec::new(),
            chap: None,
            luns: vec![LunSpec { lun: 0, nqn: nqn.to_string(), nsid: 1 }],
        });
        self
    }

    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> anyhow::Result<TargetOptions> {
        Ok(toml::from_str(text)?)
    }

    /// Checks what the controller core cannot: 1 to 256 reactors, and a listener. No subsystem is
    /// fine: management may add them while the target serves.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.cores >= 1 && self.cores <= 256, "cores must be 1..=256, not {}", self.cores);
        anyhow::ensure!(
            !self.listen.is_empty() || !self.tls_listen.is_empty() || !self.tls_optional_listen.is_empty(),
            "no listener: give at least one --listen or --tls-listen"
        );
        anyhow::ensure!(
            (self.tls_listen.is_empty() && self.tls_optional_listen.is_empty()) || self.accept == AcceptMode::Acceptor,
            "TLS listeners need accept = \"acceptor\" (the handshake runs before a reactor takes the connection)"
        );
        anyhow::ensure!(self.tls.max_handshakes >= 1, "tls.max_handshakes must be at least 1");
        anyhow::ensure!(self.tls.handshake_timeout_ms >= 1, "tls.handshake_timeout_ms must be at least 1");
        self.validate_auth()?;
        self.validate_iscsi()
    }

    /// Checks the `[auth]` names and every `[[subsystem.host]]` secret.
    fn validate_auth(&self) -> anyhow::Result<()> {
        ff_nvmf::auth::parse_hashes(&self.auth.hashes).map_err(|e| anyhow::anyhow!("[auth] hashes: {e}"))?;
        ff_nvmf::auth::parse_dh_groups(&self.auth.dhgroups).map_err(|e| anyhow::anyhow!("[auth] dhgroups: {e}"))?;
        for s in &self.subsystems {
            let mut seen = std::collections::HashSet::new();
            for h in &s.auth_hosts {
                anyhow::ensure!(
                    seen.insert(&h.nqn),
                    "subsystem {}: host {} has two [[subsystem.host]] entries",
                    s.nqn,
                    h.nqn
                );
                h.validate().map_err(|e| anyhow::anyhow!("subsystem {}: {e}", s.nqn))?;
            }
        }
        Ok(())
    }

    fn validate_iscsi(&self) -> anyhow::Result<()> {
        use anyhow::{bail, ensure};
        let i = &self.iscsi;
        ensure!(
            (512..=16_777_215).contains(&i.max_recv_data_segment_length),
            "iscsi.max_recv_data_segment_length must be 512..=16777215, not {}",
            i.max_recv_data_segment_length
        );
        ensure!(
            (512..=16_777_215).contains(&i.max_burst_length),
            "iscsi.max_burst_length must be 512..=16777215, not {}",
            i.max_burst_length
        );
        ensure!(
            (512..=i.max_burst_length).contains(&i.first_burst_length),
            "iscsi.first_burst_length must be 512..=max_burst_length ({}), not {}",
            i.max_burst_length,
            i.first_burst_length
        );
        ensure!((1..=1024).contains(&i.queue_depth), "iscsi.queue_depth must be 1..=1024, not {}", i.queue_depth);
        let mut names = std::collections::HashSet::new();
        for t in &self.iscsi_targets {
            let n = t.name.to_ascii_lowercase();
            if !(n.starts_with("iqn.") || n.starts_with("eui.") || n.starts_with("naa.")) || n.len() > 223 {
                bail!(
                    "iscsi_target name {:?}: an iSCSI name starts with iqn., eui. or naa. and has at most 223 bytes",
                    t.name
                );
            }
            if n.bytes().any(|b| !(b.is_ascii_alphanumeric() || b"-.:".contains(&b))) {
                bail!("iscsi_target name {:?}: only letters, digits, '-', '.' and ':' are allowed", t.name);
            }
            ensure!(names.insert(n), "iscsi_target {:?} is defined twice", t.name);
            let mut luns = std::collections::HashSet::new();
            for l in &t.luns {
                ensure!(l.lun < 16384, "iscsi_target {:?}: lun {} is over 16383", t.name, l.lun);
                // Not an error: management may add the namespace later (the LUN appears then), and a
                // saved configuration must start even after its namespace was removed.
                if !self.subsystems.iter().any(|s| s.nqn == l.nqn && s.namespaces.iter().any(|n| n.nsid == l.nsid)) {
                    tracing::warn!(
                        target = %t.name,
                        lun = l.lun,
                        "LUN names namespace {} of {}, which does not exist (yet): not reported until it does",
                        l.nsid,
                        l.nqn
                    );
                }
                ensure!(luns.insert(l.lun), "iscsi_target {:?}: lun {} is defined twice", t.name, l.lun);
            }
            if let Some(c) = &t.chap {
                ensure!(
                    (12..=255).contains(&c.secret.len()),
                    "iscsi_target {:?}: the CHAP secret must have 12 to 255 bytes",
                    t.name
                );
                ensure!(
                    c.mutual_user.is_some() == c.mutual_secret.is_some(),
                    "iscsi_target {:?}: mutual CHAP needs both mutual_user and mutual_secret",
                    t.name
                );
                if let Some(m) = &c.mutual_secret {
                    ensure!(
                        (12..=255).contains(&m.len()) && *m != c.secret,
                        "iscsi_target {:?}: the mutual CHAP secret must have 12 to 255 bytes and differ from the initiator's",
                        t.name
                    );
                }
            }
        }
        Ok(())
    }

    /// The configuration as TOML that [`TargetOptions::from_toml`] reads back.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }
}
