//! The target's listening addresses: binding them, and handing them to whoever accepts (the acceptor
//! thread, or each reactor in per-reactor accept mode).

use super::*;

/// Backlog of an I/O listener.
const IO_BACKLOG: i32 = 1024;
/// Backlog of a discovery-only listener.
const DISCOVERY_BACKLOG: i32 = 128;
/// How long a listener removal waits for the acceptor to close it.
const LISTENER_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// One listening address of the target.
#[derive(Clone, Debug)]
pub(crate) struct PortEntry {
    /// Port id (the discovery log's PORTID for I/O listeners).
    pub id: usize,
    /// The address as configured (its port may be 0).
    pub conf: SocketAddr,
    /// The bound address.
    pub addr: SocketAddr,
    /// Serves discovery only (not listed in the discovery log).
    pub discovery_only: bool,
    /// Whether TLS is required, optional or not offered.
    pub tls: ff_nvmf::SecureChannel,
}

/// Who accepts on the listeners, so management knows where to send them.
pub(crate) enum ListenCtl {
    /// The acceptor thread.
    Acceptor(Sender<ListenCmd>),
    /// Each reactor on its own SO_REUSEPORT listener.
    Reactors,
}

/// Binds `n` listeners on `addr` (more than one: SO_REUSEPORT, one per reactor; the first resolves
/// port 0 for the others).
pub(crate) fn bind_listeners(addr: SocketAddr, discovery_only: bool, n: usize) -> anyhow::Result<Vec<Listener>> {
    use anyhow::Context;
    let backlog = if discovery_only { DISCOVERY_BACKLOG } else { IO_BACKLOG };
    let reuseport = n > 1;
    let first = Listener::bind_with(addr, backlog, reuseport).with_context(|| format!("listening on {addr}"))?;
    let bound = first.local_addr()?;
    let mut v = vec![first];
    for _ in 1..n {
        v.push(Listener::bind_with(bound, backlog, true).with_context(|| format!("listening on {bound}"))?);
    }
    Ok(v)
}

impl Manager {
    /// Opens a listener on `addr`; returns the bound address.
    pub(super) fn add_listener(
        &self,
        st: &mut State,
        addr: SocketAddr,
        discovery_only: bool,
    ) -> Result<SocketAddr, RpcError> {
        if let Some(p) = st.ports.iter().find(|p| p.addr == addr || (addr.port() != 0 && p.conf == addr)) {
            return Err(RpcError::exists(format!("listener {}", p.addr)));
        }
        let n = match self.listen {
            ListenCtl::Acceptor(_) => 1,
            ListenCtl::Reactors => self.inboxes.len(),
        };
        let mut ls = bind_listeners(addr, discovery_only, n).map_err(|e| {
            RpcError::new(code::FAILED, format!("{e:#}")).with_data(json!({ "field": "listen_address" }))
        })?;
        let bound = ls[0].local_addr().map_err(RpcError::failed)?;
        let id = st.next_port;
        st.next_port += 1;
        match &self.listen {
            ListenCtl::Acceptor(tx) => tx
                .send(ListenCmd::Add { listener: ls.remove(0), port: id, tls: ff_nvmf::SecureChannel::None })
                .map_err(|_| RpcError::failed("the acceptor is gone (the target is stopping)"))?,
            ListenCtl::Reactors => {
                for (inbox, l) in self.inboxes.iter().zip(ls) {
                    let _ = inbox.send(Mgmt::Listen { listener: l, port: id });
                }
            }
        }
        if !discovery_only {
            self.shared.target.add_listener(crate::nvmf_port(bound, id as u16, ff_nvmf::SecureChannel::None));
            st.opts.listen.push(bound);
        } else {
            st.opts.discovery_listen.push(bound);
        }
        st.ports.push(PortEntry { id, conf: addr, addr: bound, discovery_only, tls: ff_nvmf::SecureChannel::None });
        tracing::info!(%bound, discovery_only, "management: listening");
        Ok(bound)
    }

    /// Closes the listener on `addr` (the connections it brought stay); returns its bound address.
    pub(super) fn remove_listener(&self, st: &mut State, addr: SocketAddr) -> Result<SocketAddr, RpcError> {
        let i = st
            .ports
            .iter()
            .position(|p| p.addr == addr || p.conf == addr)
            .ok_or_else(|| RpcError::not_found(format!("listener {addr}")))?;
        let p = st.ports.remove(i);
        match &self.listen {
            ListenCtl::Acceptor(tx) => {
                let (done, closed) = std::sync::mpsc::sync_channel(1);
                if tx.send(ListenCmd::Remove { port: p.id, done }).is_ok() {
                    let _ = closed.recv_timeout(LISTENER_CLOSE_WAIT);
                }
            }
            ListenCtl::Reactors => {
                for inbox in &self.inboxes {
                    let _ = inbox.send(Mgmt::Unlisten { port: p.id });
                }
            }
        }
        if !p.discovery_only {
            self.shared.target.remove_listener(p.id as u16);
        }
        st.opts.listen.retain(|a| *a != p.addr);
        st.opts.discovery_listen.retain(|a| *a != p.addr);
        st.opts.tls_listen.retain(|a| *a != p.addr && *a != p.conf);
        tracing::info!(addr = %p.addr, "management: listener closed");
        Ok(p.addr)
    }
}
