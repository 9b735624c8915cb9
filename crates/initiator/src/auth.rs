//! NVMe in-band authentication (DH-HMAC-CHAP) of one queue, right after its Connect: the host's
//! credentials ([`DhchapOptions`]) and the Authentication Send / Receive exchange that drives
//! [`ff_nvme_auth::HostAuth`] over a [`SyncLink`].

use crate::buf::Buf;
use crate::error::{AuthCause, Error};
use crate::link::SyncLink;
use ff_nvme::nvme::{Sqe, opcode};
use ff_nvme_auth::fabrics::{self, AuthCommand};
use ff_nvme_auth::{AuthError, HostAuth, HostConfig, OsRandom, Step};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The engine's types that [`DhchapOptions`] is made of.
pub use ff_nvme_auth::{DhGroup, FailureReason, HashId, Secret, SecretError};

/// Room for one Authentication Receive: the largest message (a Challenge with an ffdhe8192 value
/// and a SHA-512 challenge) is a little over 1 KiB; the target caps payloads at 8 KiB.
const RECV_LEN: usize = 8192;

/// How long the AUTH_Failure2 may take: the controller closes the queue right after it.
const FAILURE2_WAIT: Duration = Duration::from_millis(500);

/// A host's DH-HMAC-CHAP credentials (nvme-cli's `--dhchap-secret` / `--dhchap-ctrl-secret`) and
/// what it offers in AUTH_Negotiate.
#[derive(Clone, Debug)]
pub struct DhchapOptions {
    /// The host secret: proves this host (bound to its host NQN).
    pub secret: Secret,
    /// The controller secret: when set, the controller must prove itself too (bidirectional).
    pub ctrl_secret: Option<Secret>,
    /// Hashes offered (default: all).
    pub hashes: Vec<HashId>,
    /// DH groups offered (default: all, null included).
    pub dh_groups: Vec<DhGroup>,
}

impl DhchapOptions {
    /// Parses the `DHHC-1:<hh>:<base64>:` strings; the error names which secret is bad, never the key.
    pub fn parse(secret: &str, ctrl_secret: Option<&str>) -> Result<DhchapOptions, Error> {
        let secret = Secret::parse(secret).map_err(|cause| Error::BadSecret { which: "host secret", cause })?;
        let ctrl_secret = ctrl_secret
            .map(|s| Secret::parse(s).map_err(|cause| Error::BadSecret { which: "controller secret", cause }))
            .transpose()?;
        Ok(DhchapOptions { secret, ctrl_secret, hashes: HashId::ALL.to_vec(), dh_groups: DhGroup::ALL.to_vec() })
    }

    /// The engine's configuration for one association (shared by its queues, so S2 sequence numbers
    /// come from one counter).
    pub(crate) fn host_config(&self, hostnqn: &str, subnqn: &str) -> Arc<HostConfig> {
        let mut c = HostConfig::new(hostnqn, subnqn, self.secret.clone());
        c.controller_secret = self.ctrl_secret.clone();
        c.hashes = self.hashes.clone();
        c.dh_groups = self.dh_groups.clone();
        Arc::new(c)
    }
}

/// Authenticates queue `qid` on `link` if its Connect completion (`connect_dw0`) asks for it.
///
/// A controller that does not ask gets no authentication, secret or not (as Linux does). One that asks
/// while we have no secret is an [`AuthCause::NoSecret`] error.
pub(crate) fn authenticate_queue(
    link: &mut SyncLink,
    cfg: Option<&Arc<HostConfig>>,
    qid: u16,
    connect_dw0: u32,
    deadline: Instant,
) -> Result<(), Error> {
    if !fabrics::connect_requires_auth(connect_dw0) {
        return Ok(());
    }
    let fail = |cause| Error::Auth { qid, cause };
    let Some(cfg) = cfg else { return Err(fail(AuthCause::NoSecret)) };
    let mut a = HostAuth::new(Arc::clone(cfg), OsRandom);
    // Any T_ID will do; the qid keeps the target's log easy to read.
    let mut msg = a.start(qid);
    loop {
        send(link, &msg, deadline).map_err(|e| fail_cmd(qid, e))?;
        let data = recv(link, deadline).map_err(|e| fail_cmd(qid, e))?;
        match a.on_message(&data) {
            Ok(Step::Send(b)) => msg = b,
            Ok(Step::SendThenAuthenticated(b)) => {
                send(link, &b, deadline).map_err(|e| fail_cmd(qid, e))?;
                break;
            }
            Ok(Step::Authenticated) => break,
            Err(f) => {
                if let Some(b) = f.send {
                    // Courtesy only: the queue is given up either way, so its outcome does not matter.
                    let _ = send(link, &b, deadline.min(Instant::now() + FAILURE2_WAIT));
                }
                return Err(fail(match f.error {
                    AuthError::PeerFailure(reason) => AuthCause::Rejected(reason),
                    AuthError::ControllerResponseMismatch => AuthCause::ControllerNotVerified,
                    other => AuthCause::Protocol(other),
                }));
            }
        }
    }
    if let Some((hash, group)) = a.negotiated() {
        tracing::debug!(qid, %hash, %group, bidirectional = a.is_bidirectional(), "queue authenticated");
    }
    Ok(())
}

/// A socket or status error of an Authentication Send/Receive, as an authentication failure of `qid`
/// when the controller answered with a status (a lost connection stays what it is).
fn fail_cmd(qid: u16, e: Error) -> Error {
    match e {
        Error::Status { what, status } => Error::Auth { qid, cause: AuthCause::Command { what, status } },
        other => other,
    }
}

fn auth_sqe(fctype: u8, length: usize) -> Sqe {
    let (cdw10, cdw11) = AuthCommand::dhchap(u32::try_from(length).unwrap_or(u32::MAX)).to_dwords();
    Sqe { opcode: opcode::FABRICS, nsid: u32::from(fctype), cdw10, cdw11, ..Sqe::default() }
}

/// Authentication Send of one message (in the capsule, or on R2T if the queue's capsules are smaller).
fn send(link: &mut SyncLink, msg: &[u8], deadline: Instant) -> Result<(), Error> {
    let c = link.exec(auth_sqe(fabrics::FCTYPE_AUTH_SEND, msg.len()), Some(Buf::from_slice(msg)), None, deadline)?;
    crate::link::check("Authentication Send", &c).map(|_| ())
}

/// Authentication Receive: the controller's next message.
fn recv(link: &mut SyncLink, deadline: Instant) -> Result<Vec<u8>, Error> {
    let c = link.exec(auth_sqe(fabrics::FCTYPE_AUTH_RECV, RECV_LEN), None, Some(Buf::new(RECV_LEN)), deadline)?;
    crate::link::check("Authentication Receive", &c)?;
    let len = (c.read_len as usize).min(RECV_LEN);
    Ok(c.read_buf.as_ref().and_then(|b| b.get(..len)).unwrap_or(&[]).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_commands_carry_secp_spsp_and_lengths() {
        let s = auth_sqe(fabrics::FCTYPE_AUTH_SEND, 72);
        assert_eq!((s.opcode, s.nsid, s.cdw10, s.cdw11), (0x7F, 0x05, 0xE901_0100, 72));
        let r = auth_sqe(fabrics::FCTYPE_AUTH_RECV, RECV_LEN);
        assert_eq!((r.nsid, r.cdw10, r.cdw11), (0x06, 0xE901_0100, 8192));
    }

    #[test]
    fn failures_of_the_exchange_keep_their_cause() {
        let st = ff_nvme::nvme::Status::new(fabrics::SCT_AUTH_REQUIRED, fabrics::SC_AUTH_REQUIRED);
        let e = fail_cmd(3, Error::Status { what: "Authentication Receive", status: st });
        assert!(matches!(e, Error::Auth { qid: 3, cause: AuthCause::Command { .. } }), "{e}");
        let lost = Error::ConnectionLost("gone".into());
        assert_eq!(fail_cmd(3, lost.clone()), lost);
    }
}
