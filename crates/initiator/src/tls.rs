//! The host's secure channel: each queue's connection runs the TLS 1.3 handshake with the host's
//! pre-shared key before its ICReq. Setup (ICReq, Connect, authentication) runs on user-space records,
//! so whatever the target sends after its handshake (session tickets: SPDK's target sends two) is
//! consumed there; an I/O queue then moves to kernel TLS at a record boundary, with the sequence
//! numbers the setup reached, or keeps user-space records where the kernel has no TLS (or when
//! asked to). The admin queue stays on user-space records (little traffic).

use crate::error::Error;
use ff_nvme_tls::ClientPsk;
use ff_nvme_tls::psk::ConfiguredPsk;
use ff_sock::TcpSock;
use ff_sock::tls::RecordLayer;
use std::time::Instant;

/// A host's TLS settings.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// The pre-shared key in interchange format, parsed (`--psk NVMeTLSkey-1:01:...:`).
    pub psk: ConfiguredPsk,
    /// Move I/O queues to kernel TLS where available; `false`: user-space records always.
    pub ktls: bool,
}

/// Runs the handshake on a freshly connected `sock` as `hostnqn` to `subnqn`; returns the user-space
/// record layer the connection's setup runs on.
pub(crate) fn handshake(
    sock: &TcpSock,
    opts: &TlsOptions,
    hostnqn: &str,
    subnqn: &str,
    deadline: Instant,
) -> Result<Box<dyn RecordLayer>, Error> {
    let client = ClientPsk { hostnqn: hostnqn.to_string(), subnqn: subnqn.to_string(), psk: opts.psk.clone() };
    let est = ff_nvme_tls::connect(sock, &client, deadline).map_err(|e| Error::Tls(e.to_string()))?;
    tracing::debug!(identity = %est.identity, suite = est.cipher_suite(), "TLS established");
    Ok(est.record_layer())
}

/// Moves a set-up connection's records to kernel TLS when `opts` asks and the kernel can: `None`
/// then; else the user-space layer back.
pub(crate) fn to_kernel(
    sock: &TcpSock,
    records: Box<dyn RecordLayer>,
    opts: &TlsOptions,
) -> Result<Option<Box<dyn RecordLayer>>, Error> {
    if !opts.ktls {
        return Ok(Some(records));
    }
    let records =
        ff_sock::tls::move_to_kernel(sock, records).map_err(|e| Error::Tls(format!("kernel TLS setup failed: {e}")))?;
    if records.is_none() {
        tracing::debug!("I/O queue on kernel TLS");
    }
    Ok(records)
}
