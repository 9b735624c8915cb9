//! Reloading a configuration file (SIGHUP, `load_config`): the difference with what runs, applied
//! through the same operations as the RPC methods; and writing the running configuration back.

use super::*;

/// What a configuration reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Changes applied, one line each.
    pub applied: Vec<String>,
    /// Differences that only a restart applies (cores, sock options, limits, ...).
    pub need_restart: Vec<String>,
    /// Changes that failed, with why.
    pub failed: Vec<String>,
}

/// Writes `text` to `path` atomically: a temporary file in the same folder, synced, renamed over it,
/// and the folder synced (a crash leaves the old file or the new one, never half of one).
pub(super) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let tmp = dir.join(format!(".{}.tmp.{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl Manager {
    /// Applies the difference between the running configuration and `new`.
    pub(super) fn apply(&self, st: &mut State, new: &TargetOptions) -> ReloadReport {
        let mut r = ReloadReport::default();
        let outcome = |r: &mut ReloadReport, what: String, res: Result<(), RpcError>| match res {
            Ok(()) => r.applied.push(what),
            Err(e) => r.failed.push(format!("{what}: {}", e.message)),
        };
        let cur = st.opts.clone();
        // Subsystems gone, or changed in what only a re-creation changes.
        for s in &cur.subsystems {
            let recreate = new
                .subsystems
                .iter()
                .find(|n| n.nqn == s.nqn)
                .map(|n| n.serial != s.serial || n.model != s.model || n.max_namespaces != s.max_namespaces);
            if recreate != Some(false) {
                outcome(&mut r, format!("deleted subsystem {}", s.nqn), self.delete_subsystem(st, &s.nqn));
            }
        }
        for n in &new.subsystems {
            let Some(s) = st.opts.subsystems.iter().find(|s| s.nqn == n.nqn).cloned() else {
                outcome(&mut r, format!("created subsystem {}", n.nqn), self.create_subsystem(st, n));
                continue;
            };
            if s.allow_any_host != n.allow_any_host {
                let res = self.set_allow_any_host(st, &n.nqn, n.allow_any_host);
                outcome(&mut r, format!("{}: allow_any_host = {}", n.nqn, n.allow_any_host), res);
            }
            for h in s.hosts.iter().filter(|h| !n.hosts.contains(h)) {
                outcome(&mut r, format!("{}: removed host {h}", n.nqn), self.remove_host(st, &n.nqn, h).map(|_| ()));
            }
            for h in n.hosts.iter().filter(|h| !s.hosts.contains(h)) {
                outcome(&mut r, format!("{}: added host {h}", n.nqn), self.add_host(st, &n.nqn, h));
            }
            // DH-HMAC-CHAP secrets: changed, added or dropped (connected queues keep their state).
            for h in &s.auth_hosts {
                if !n.auth_hosts.iter().any(|x| x.nqn == h.nqn) {
                    let res = self.set_host_auth(st, &n.nqn, &h.nqn, None);
                    outcome(&mut r, format!("{}: host {} no longer authenticates", n.nqn, h.nqn), res);
                }
            }
            for h in &n.auth_hosts {
                if !s.auth_hosts.contains(h) {
                    let res = self
                        .add_host(st, &n.nqn, &h.nqn)
                        .and_then(|()| self.set_host_auth(st, &n.nqn, &h.nqn, Some(h.clone())));
                    outcome(&mut r, format!("{}: DH-HMAC-CHAP secrets of host {} set", n.nqn, h.nqn), res);
                }
            }
            for ns in &s.namespaces {
                let same = n.namespaces.iter().find(|x| x.nsid == ns.nsid);
                let resize = same.filter(|x| {
                    *x != ns
                        && x.backend.kind == ns.backend.kind
                        && x.backend.block_size == ns.backend.block_size
                        && x.uuid == ns.uuid
                        && x.nguid == ns.nguid
                });
                match (same, resize) {
                    (Some(x), Some(_)) => {
                        let size = x.backend.size.unwrap_or(ff_blockdev::DEFAULT_SIZE);
                        let res = self.resize_namespace(st, &n.nqn, ns.nsid, size).map(|_| ());
                        outcome(&mut r, format!("{}: resized namespace {} to {size} bytes", n.nqn, ns.nsid), res);
                    }
                    (Some(x), None) if x == ns => {}
                    _ => {
                        let res = self.remove_namespace(st, &n.nqn, ns.nsid);
                        outcome(&mut r, format!("{}: removed namespace {}", n.nqn, ns.nsid), res);
                    }
                }
            }
            let have: Vec<u32> = st
                .opts
                .subsystems
                .iter()
                .find(|x| x.nqn == n.nqn)
                .map(|x| x.namespaces.iter().map(|ns| ns.nsid).collect())
                .unwrap_or_default();
            for ns in n.namespaces.iter().filter(|ns| !have.contains(&ns.nsid)) {
                let res = self.add_namespace(st, &n.nqn, ns.clone()).map(|_| ());
                outcome(&mut r, format!("{}: added namespace {}", n.nqn, ns.nsid), res);
            }
        }
        // Listeners: by the configured address or the bound one.
        let wanted: Vec<(SocketAddr, bool)> =
            new.listen.iter().map(|a| (*a, false)).chain(new.discovery_listen.iter().map(|a| (*a, true))).collect();
        let matches =
            |p: &PortEntry, (a, d): &(SocketAddr, bool)| p.discovery_only == *d && (p.conf == *a || p.addr == *a);
        let gone: Vec<SocketAddr> = st
            .ports
            .iter()
            .filter(|p| p.tls == ff_nvmf::SecureChannel::None && !wanted.iter().any(|w| matches(p, w)))
            .map(|p| p.addr)
            .collect();
        for a in gone {
            outcome(&mut r, format!("closed listener {a}"), self.remove_listener(st, a).map(|_| ()));
        }
        for w in &wanted {
            if !st.ports.iter().any(|p| p.tls == ff_nvmf::SecureChannel::None && matches(p, w)) {
                let res = self.add_listener(st, w.0, w.1).map(|_| ());
                outcome(&mut r, format!("opened listener {}", w.0), res);
            }
        }
        let restart = [
            (cur.cores != new.cores, "cores"),
            (cur.poll != new.poll, "poll"),
            (cur.placement != new.placement, "placement"),
            (cur.accept != new.accept, "accept"),
            (cur.sock != new.sock, "sock"),
            (cur.limits != new.limits, "limits"),
            (cur.c2h_success != new.c2h_success, "c2h_success"),
            (cur.auth != new.auth, "auth"),
            // TLS listeners are set at start (management does not open or close them yet).
            (cur.tls_listen != new.tls_listen, "tls_listen"),
            (cur.tls_optional_listen != new.tls_optional_listen, "tls_optional_listen"),
            (cur.tls != new.tls, "tls"),
            // iSCSI portals and targets are set at start (management does not change them yet).
            (cur.iscsi != new.iscsi, "iscsi"),
            (cur.iscsi_targets != new.iscsi_targets, "iscsi_target"),
        ];
        r.need_restart = restart.iter().filter(|(d, _)| *d).map(|(_, n)| n.to_string()).collect();
        r
    }
}
