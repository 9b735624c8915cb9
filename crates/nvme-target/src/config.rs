//! What a target serves and how: built from command-line flags or a TOML file. Defaults serve a 1 GiB
//! RAM namespace under [`DEFAULT_NQN`] on 127.0.0.1:4420, with discovery also on 127.0.0.1:8009.

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
    /// Namespaces.
    #[serde(default)]
    pub namespaces: Vec<NamespaceSpec>,
}

/// Deserializes a value through its `FromStr` spelling (types of crates that do not use serde).
fn from_str<'de, D: serde::Deserializer<'de>, T: std::str::FromStr<Err = String>>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
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
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            listen: vec![DEFAULT_LISTEN.parse().expect("constant address")],
            discovery_listen: vec![DEFAULT_DISCOVERY_LISTEN.parse().expect("constant address")],
            cores: 1,
            poll: PollMode::Event,
            placement: PlacementMode::NapiId,
            accept: AcceptMode::Acceptor,
            sock: GroupOptions::default(),
            limits: Limits::default(),
            c2h_success: C2hSuccess::default(),
            subsystems: Vec::new(),
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
            namespaces: vec![NamespaceSpec::new(1, backend)],
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
        anyhow::ensure!(!self.listen.is_empty(), "no listener: give at least one --listen");
        Ok(())
    }

    /// The configuration as TOML that [`TargetOptions::from_toml`] reads back.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }
}
