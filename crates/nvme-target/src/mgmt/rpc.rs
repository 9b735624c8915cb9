//! The RPC methods: their parameters (typed, unknown fields refused, errors naming the field) and what
//! each answers.

use super::*;

/// The methods [`Manager`] answers, for `rpc_get_methods`.
pub const METHODS: &[&str] = &[
    "rpc_get_methods",
    "ferrofabric_get_version",
    "framework_get_config",
    "save_config",
    "load_config",
    "nvmf_get_subsystems",
    "nvmf_create_subsystem",
    "nvmf_delete_subsystem",
    "nvmf_subsystem_add_ns",
    "nvmf_subsystem_remove_ns",
    "nvmf_subsystem_resize_ns",
    "nvmf_subsystem_add_host",
    "nvmf_subsystem_remove_host",
    "nvmf_subsystem_allow_any_host",
    "nvmf_get_listeners",
    "nvmf_add_listener",
    "nvmf_remove_listener",
    "nvmf_subsystem_add_listener",
    "nvmf_subsystem_get_controllers",
    "nvmf_disconnect_controller",
    "nvmf_get_stats",
];

/// A size parameter: bytes, or text with a suffix (`"1G"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeParam {
    Bytes(u64),
    Text(String),
}

impl SizeParam {
    fn bytes(&self, field: &str) -> Result<u64, RpcError> {
        match self {
            SizeParam::Bytes(n) => Ok(*n),
            SizeParam::Text(t) => parse_size(t).map_err(|e| RpcError::invalid_param(field, e)),
        }
    }
}

/// An address parameter as `rpc.py` spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenAddress {
    #[serde(default)]
    trtype: Option<String>,
    #[serde(default)]
    adrfam: Option<String>,
    traddr: String,
    trsvcid: String,
}

impl ListenAddress {
    fn socket_addr(&self) -> Result<SocketAddr, RpcError> {
        if let Some(t) = &self.trtype
            && !t.eq_ignore_ascii_case("tcp")
        {
            return Err(RpcError::invalid_param("listen_address.trtype", format!("{t:?}: only tcp is served")));
        }
        let ip: IpAddr = self.traddr.parse().map_err(|_| {
            RpcError::invalid_param("listen_address.traddr", format!("{:?} is not an IP address", self.traddr))
        })?;
        let port: u16 = self.trsvcid.parse().map_err(|_| {
            RpcError::invalid_param("listen_address.trsvcid", format!("{:?} is not a port number", self.trsvcid))
        })?;
        if let Some(f) = &self.adrfam {
            let ok = match f.to_ascii_lowercase().as_str() {
                "ipv4" => ip.is_ipv4(),
                "ipv6" => ip.is_ipv6(),
                _ => return Err(RpcError::invalid_param("listen_address.adrfam", format!("{f:?}: ipv4 or ipv6"))),
            };
            if !ok {
                return Err(RpcError::invalid_param("listen_address.adrfam", format!("{f} does not match {ip}")));
            }
        }
        Ok(SocketAddr::new(ip, port))
    }
}

fn address_json(a: &SocketAddr) -> Value {
    json!({
        "trtype": "TCP",
        "adrfam": if a.is_ipv4() { "IPv4" } else { "IPv6" },
        "traddr": a.ip().to_string(),
        "trsvcid": a.port().to_string(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NqnParam {
    nqn: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSubsystem {
    nqn: String,
    #[serde(default)]
    serial_number: Option<String>,
    #[serde(default)]
    model_number: Option<String>,
    #[serde(default)]
    allow_any_host: bool,
    #[serde(default)]
    max_namespaces: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceParams {
    #[serde(default)]
    nsid: Option<u32>,
    backend: String,
    #[serde(default)]
    size: Option<SizeParam>,
    #[serde(default)]
    block_size: Option<u32>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    nguid: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddNs {
    nqn: String,
    namespace: NamespaceParams,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NsRef {
    nqn: String,
    nsid: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeNs {
    nqn: String,
    nsid: u32,
    size: SizeParam,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostParam {
    nqn: String,
    host: String,
}

/// `nvmf_subsystem_add_host`: SPDK's `dhchap_key` / `dhchap_ctrlr_key` / `psk` name keyring entries;
/// here they carry the `DHHC-1:...` secrets and the `NVMeTLSkey-1:...` PSK themselves (no keyring).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddHostParam {
    nqn: String,
    host: String,
    #[serde(default)]
    dhchap_key: Option<String>,
    #[serde(default)]
    dhchap_ctrlr_key: Option<String>,
    #[serde(default)]
    psk: Option<String>,
}

impl AddHostParam {
    /// The host's DH-HMAC-CHAP secrets and TLS PSK, if any were given.
    fn auth(&self) -> Result<Option<HostAuthSpec>, RpcError> {
        let secret = |field: &str, v: &str| {
            if v.starts_with("DHHC-1:") {
                Ok(v.to_string())
            } else {
                Err(RpcError::invalid_param(
                    field,
                    "expected a DHHC-1:... secret (as nvme gen-dhchap-key prints it); keyring key names are not supported",
                ))
            }
        };
        if self.dhchap_key.is_none() && self.dhchap_ctrlr_key.is_some() {
            return Err(RpcError::invalid_param(
                "dhchap_ctrlr_key",
                "a controller key needs a host key (dhchap_key) too",
            ));
        }
        if self.dhchap_key.is_none() && self.psk.is_none() {
            return Ok(None);
        }
        let psk = match &self.psk {
            Some(p) if p.starts_with("NVMeTLSkey-1:") => Some(p.clone()),
            Some(_) => {
                return Err(RpcError::invalid_param(
                    "psk",
                    "expected an NVMeTLSkey-1:... PSK (as nvme gen-tls-key prints it); keyring key names are not supported",
                ));
            }
            None => None,
        };
        Ok(Some(HostAuthSpec {
            nqn: self.host.clone(),
            dhchap_key: self.dhchap_key.as_deref().map(|k| secret("dhchap_key", k)).transpose()?,
            dhchap_ctrl_key: self.dhchap_ctrlr_key.as_deref().map(|c| secret("dhchap_ctrlr_key", c)).transpose()?,
            psk,
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowAny {
    nqn: String,
    allow_any_host: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerParam {
    listen_address: ListenAddress,
    #[serde(default)]
    discovery_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubsysListener {
    nqn: String,
    listen_address: ListenAddress,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptNqn {
    #[serde(default)]
    nqn: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cntlid {
    cntlid: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathParam {
    #[serde(default)]
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

impl Manager {
    fn subsystems_json(&self, st: &State, only: Option<&str>) -> Result<Value, RpcError> {
        if let Some(n) = only
            && n != DISCOVERY_NQN
        {
            Self::subsystem(st, n)?;
        }
        let io_addrs: Vec<Value> =
            st.ports.iter().filter(|p| !p.discovery_only).map(|p| address_json(&p.addr)).collect();
        let mut out = Vec::new();
        if only.is_none_or(|n| n == DISCOVERY_NQN) {
            let all: Vec<Value> = st.ports.iter().map(|p| address_json(&p.addr)).collect();
            out.push(json!({
                "nqn": DISCOVERY_NQN,
                "subtype": "Discovery",
                "listen_addresses": all,
                "allow_any_host": true,
                "hosts": [],
            }));
        }
        let core = self.shared.target.subsystems();
        for s in st.opts.subsystems.iter().filter(|s| only.is_none_or(|n| n == s.nqn)) {
            let live = core.iter().find(|c| c.nqn == s.nqn);
            let namespaces: Vec<Value> = s
                .namespaces
                .iter()
                .map(|n| {
                    let c = live.and_then(|l| l.namespaces.iter().find(|c| c.nsid == n.nsid));
                    json!({
                        "nsid": n.nsid,
                        "backend": n.backend.kind.to_string(),
                        "block_size": c.map(|c| c.block_size),
                        "num_blocks": c.map(|c| c.blocks),
                        "uuid": c.and_then(|c| c.uuid.clone()),
                        "nguid": c.and_then(|c| c.nguid.clone()),
                    })
                })
                .collect();
            out.push(json!({
                "nqn": s.nqn,
                "subtype": "NVMe",
                "listen_addresses": io_addrs,
                "allow_any_host": s.allow_any_host,
                "hosts": s.hosts.iter().map(|h| {
                    let mut v = json!({ "nqn": h });
                    if let Some(a) = s.auth_hosts.iter().find(|a| &a.nqn == h) {
                        // Whether secrets are set, never the secrets.
                        if a.dhchap_key.is_some() {
                            v["dhchap"] = json!(if a.dhchap_ctrl_key.is_some() { "bidirectional" } else { "unidirectional" });
                        }
                        v["psk"] = json!(a.psk.is_some());
                    }
                    v
                }).collect::<Vec<_>>(),
                "serial_number": s.serial,
                "model_number": s.model,
                "max_namespaces": if s.max_namespaces == 0 { self.shared.target.limits().max_namespaces } else { s.max_namespaces },
                "namespaces": namespaces,
            }));
        }
        Ok(Value::Array(out))
    }

    fn controllers_json(&self, st: &State, nqn: Option<&str>) -> Result<Value, RpcError> {
        if let Some(n) = nqn
            && n != DISCOVERY_NQN
        {
            Self::subsystem(st, n)?;
        }
        let mut v: Vec<_> =
            self.shared.target.controllers().into_iter().filter(|c| nqn.is_none_or(|n| c.subnqn == n)).collect();
        v.sort_by_key(|c| c.cntlid);
        Ok(Value::Array(
            v.iter()
                .map(|c| {
                    let h = &c.hostid;
                    let hostid = format!(
                        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]
                    );
                    json!({
                        "cntlid": c.cntlid,
                        "subnqn": c.subnqn,
                        "hostnqn": c.hostnqn,
                        "hostid": hostid,
                        "discovery": c.discovery,
                        "num_io_qpairs": c.io_queues,
                        "live": c.live,
                    })
                })
                .collect(),
        ))
    }

    fn stats_json(&self) -> Value {
        let per_io = |syscalls: u64, ios: u64| if ios == 0 { 0.0 } else { syscalls as f64 / ios as f64 };
        let mut reactors = Vec::new();
        let mut connections = Vec::new();
        for (i, s) in self.reactor_stats().iter().enumerate() {
            let g = &s.sock;
            reactors.push(json!({
                "reactor": i,
                "backend": s.backend.map(|b| b.to_string()),
                "connections": s.connections.len(),
                "iops": s.iops,
                "io": s.io,
                "syscalls": g.syscalls(),
                "syscalls_per_io": per_io(g.syscalls(), s.io.total()),
                "events_per_wait": g.events_per_wait(),
                "bytes_parsed_in_place": g.sock.bytes_parsed_in_place,
                "bytes_copied": g.sock.bytes_copied,
                "zc_fallbacks": g.sock.zc_fallbacks,
                "sock": g,
                "ring_device_sqes": s.foreign.sqes,
            }));
            for c in &s.connections {
                let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("reactor".into(), json!(i));
                    m.insert("syscalls_per_io".into(), json!(per_io(c.sock.syscalls(), c.io.total())));
                }
                connections.push(v);
            }
        }
        json!({
            "uptime_s": self.uptime().as_secs_f64(),
            "reactors": reactors,
            "connections": connections,
            "namespaces": self.namespace_stats(),
        })
    }

    fn save(&self, st: &State, path: Option<PathBuf>) -> Result<Value, RpcError> {
        let path = path.or_else(|| st.config_path.clone()).ok_or_else(|| {
            RpcError::invalid_param("path", "the target started without --config: name the file to write")
        })?;
        let text = st.opts.to_toml().map_err(|e| RpcError::new(code::INTERNAL_ERROR, format!("{e:#}")))?;
        write_atomically(&path, &text).map_err(|e| {
            RpcError::new(code::FAILED, format!("writing {}: {e}", path.display()))
                .with_data(json!({ "field": "path" }))
        })?;
        tracing::info!(path = %path.display(), "management: configuration saved");
        Ok(json!({ "path": path }))
    }

    fn dispatch(&self, method: &str, p: Option<Value>) -> Result<Value, RpcError> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        match method {
            "rpc_get_methods" => {
                parse::<NoParams>(p)?;
                Ok(json!(METHODS))
            }
            "ferrofabric_get_version" => {
                parse::<NoParams>(p)?;
                Ok(json!({ "version": env!("CARGO_PKG_VERSION"), "name": "ferrofabric" }))
            }
            "framework_get_config" => {
                parse::<NoParams>(p)?;
                serde_json::to_value(&st.opts).map_err(|e| RpcError::new(code::INTERNAL_ERROR, e.to_string()))
            }
            "save_config" => {
                let a: PathParam = parse(p)?;
                self.save(st, a.path)
            }
            "load_config" => {
                let a: PathParam = parse(p)?;
                let path = a.path.or_else(|| st.config_path.clone()).ok_or_else(|| {
                    RpcError::invalid_param("path", "the target started without --config: name the file to read")
                })?;
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    RpcError::new(code::FAILED, format!("reading {}: {e}", path.display()))
                        .with_data(json!({ "field": "path" }))
                })?;
                let new = TargetOptions::from_toml(&text)
                    .and_then(|o| o.validate().map(|()| o))
                    .map_err(|e| RpcError::invalid_param("path", format!("{}: {e:#}", path.display())))?;
                let r = self.apply(st, &new);
                Ok(json!({ "applied": r.applied, "need_restart": r.need_restart, "failed": r.failed }))
            }
            "nvmf_get_subsystems" => {
                let a: OptNqn = parse(p)?;
                self.subsystems_json(st, a.nqn.as_deref())
            }
            "nvmf_create_subsystem" => {
                let a: CreateSubsystem = parse(p)?;
                let spec = SubsystemSpec {
                    serial: a.serial_number.unwrap_or_else(|| derived_serial(&a.nqn)),
                    model: a.model_number.unwrap_or_else(|| "ferrofabric".into()),
                    nqn: a.nqn,
                    allow_any_host: a.allow_any_host,
                    hosts: Vec::new(),
                    auth_hosts: Vec::new(),
                    max_namespaces: a.max_namespaces,
                    namespaces: Vec::new(),
                };
                self.create_subsystem(st, &spec)?;
                Ok(json!(true))
            }
            "nvmf_delete_subsystem" => {
                let a: NqnParam = parse(p)?;
                self.delete_subsystem(st, &a.nqn)?;
                Ok(json!(true))
            }
            "nvmf_subsystem_add_ns" => {
                let a: AddNs = parse(p)?;
                let n = a.namespace;
                let mut backend: BackendSpec =
                    n.backend.parse().map_err(|e| RpcError::invalid_param("namespace.backend", e))?;
                if let Some(s) = &n.size {
                    backend.size = Some(s.bytes("namespace.size")?);
                }
                backend.block_size = n.block_size;
                if n.nsid == Some(0) {
                    return Err(RpcError::invalid_param("namespace.nsid", "namespace ids start at 1"));
                }
                let spec = NamespaceSpec { nsid: n.nsid.unwrap_or(0), backend, uuid: n.uuid, nguid: n.nguid };
                Ok(json!(self.add_namespace(st, &a.nqn, spec)?))
            }
            "nvmf_subsystem_remove_ns" => {
                let a: NsRef = parse(p)?;
                self.remove_namespace(st, &a.nqn, a.nsid)?;
                Ok(json!(true))
            }
            "nvmf_subsystem_resize_ns" => {
                let a: ResizeNs = parse(p)?;
                let size = a.size.bytes("size")?;
                let blocks = self.resize_namespace(st, &a.nqn, a.nsid, size)?;
                Ok(json!({ "num_blocks": blocks }))
            }
            "nvmf_subsystem_add_host" => {
                let a: AddHostParam = parse(p)?;
                let auth = a.auth()?;
                if let Some(spec) = &auth {
                    // Checked before anything changes, so a bad key leaves the host as it was.
                    spec.validate().map_err(|e| RpcError::invalid_param("dhchap_key", format!("{e:#}")))?;
                }
                self.add_host(st, &a.nqn, &a.host)?;
                if auth.is_some() {
                    self.set_host_auth(st, &a.nqn, &a.host, auth)?;
                }
                Ok(json!(true))
            }
            "nvmf_subsystem_remove_host" => {
                let a: HostParam = parse(p)?;
                let gone = self.remove_host(st, &a.nqn, &a.host)?;
                Ok(json!({ "disconnected": gone }))
            }
            "nvmf_subsystem_allow_any_host" => {
                let a: AllowAny = parse(p)?;
                self.set_allow_any_host(st, &a.nqn, a.allow_any_host)?;
                Ok(json!(true))
            }
            "nvmf_get_listeners" => {
                parse::<NoParams>(p)?;
                Ok(Value::Array(
                    st.ports
                        .iter()
                        .map(|p| {
                            let mut v = address_json(&p.addr);
                            v["discovery_only"] = json!(p.discovery_only);
                            v["portid"] = json!(p.id);
                            v
                        })
                        .collect(),
                ))
            }
            "nvmf_add_listener" => {
                let a: ListenerParam = parse(p)?;
                let bound = self.add_listener(st, a.listen_address.socket_addr()?, a.discovery_only)?;
                Ok(address_json(&bound))
            }
            "nvmf_remove_listener" => {
                let a: ListenerParam = parse(p)?;
                let addr = self.remove_listener(st, a.listen_address.socket_addr()?)?;
                Ok(address_json(&addr))
            }
            "nvmf_subsystem_add_listener" => {
                // Every subsystem is reachable on every I/O listener: this makes sure the address is one.
                let a: SubsysListener = parse(p)?;
                if a.nqn != DISCOVERY_NQN {
                    Self::subsystem(st, &a.nqn)?;
                }
                let addr = a.listen_address.socket_addr()?;
                match st.ports.iter().find(|p| !p.discovery_only && (p.addr == addr || p.conf == addr)) {
                    Some(p) => Ok(address_json(&p.addr)),
                    None => Ok(address_json(&self.add_listener(st, addr, false)?)),
                }
            }
            "nvmf_subsystem_get_controllers" => {
                let a: OptNqn = parse(p)?;
                self.controllers_json(st, a.nqn.as_deref())
            }
            "nvmf_disconnect_controller" => {
                let a: Cntlid = parse(p)?;
                self.shared.target.disconnect_controller(a.cntlid).map_err(|e| core_error(e, "cntlid"))?;
                Ok(json!(true))
            }
            "nvmf_get_stats" => {
                parse::<NoParams>(p)?;
                Ok(self.stats_json())
            }
            other => Err(RpcError::method_not_found(other)),
        }
    }
}

impl Handler for Manager {
    fn call(&self, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
        let r = self.dispatch(method, params);
        if let Err(e) = &r {
            tracing::debug!(method, code = e.code, "management call refused: {}", e.message);
        }
        r
    }
}
