//! The io_uring engine's listeners: a multishot accept per listener that installs each connection
//! straight into the kernel-allocated part of the fixed-file table (no register syscall), then a
//! FIXED_FD_INSTALL SQE (same enter, no syscall) for the regular descriptor that socket options and the
//! NAPI-id/peer-address getters need. Regular descriptors take over while that range is nearly full.

use super::Uring;
use crate::counters::GroupCounters;
use crate::group::{Accepted, Core, ListenerId};
use crate::ring::{Cqe, Kind, PlainSqe, UserData};
use crate::socket::{Listener, TcpSock};
use crate::write::StableBuf;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A listener's accept request.
#[derive(Clone, Copy, Default)]
pub(super) struct AcceptState {
    /// The armed request, if any (true: direct into the fixed-file table).
    armed: Option<bool>,
    /// A cancellation of the armed request was sent (mode switch).
    cancelling: bool,
    /// The accept failed with a permanent error and is not armed again.
    failed: bool,
}

/// Whether an accept error passes (the request is armed again) rather than ending the listener.
fn transient_accept_error(errno: i32) -> bool {
    matches!(
        errno,
        libc::ECONNABORTED
            | libc::EPROTO
            | libc::EMFILE
            | libc::ENFILE
            | libc::ENOBUFS
            | libc::ENOMEM
            | libc::EAGAIN
            | libc::EINTR
            | libc::EPERM
            | libc::ECANCELED
            | libc::ETIMEDOUT
    )
}

impl<B: StableBuf> Uring<B> {
    pub(in crate::group) fn add_listener(
        &mut self,
        l: &Listener,
        id: ListenerId,
        c: &mut GroupCounters,
    ) -> io::Result<()> {
        let i = id.idx as usize;
        if self.accepts.len() <= i {
            self.accepts.resize(i + 1, AcceptState::default());
        }
        self.accepts[i] = AcceptState::default();
        self.arm_accept(l.as_raw_fd(), id, c)
    }

    /// Cancels the accept of listener `id` (submitted now).
    pub(in crate::group) fn close_listener(&mut self, id: ListenerId, c: &mut GroupCounters) -> io::Result<()> {
        if let Some(direct) = self.accepts.get(id.idx as usize).and_then(|a| a.armed) {
            let kind = if direct { Kind::AcceptDirect } else { Kind::AcceptFd };
            self.cancel(UserData::sock(kind, id.idx, id.generation), c);
            self.ring.enter(None, c)?;
        }
        Ok(())
    }

    /// Whether accepts should go straight into the fixed-file table: the range exists and more than a
    /// quarter of it is free. The margin matters: when a direct accept finds the range full the kernel
    /// closes the connection it just accepted, so the group switches to regular descriptors well before.
    fn want_direct(&self) -> bool {
        let a = self.ring.setup.accept_files;
        a > 0 && !self.accept_full && a - self.accept_in_use.min(a) > a / 4
    }

    /// Arms the accept of listener `id` on `fd` (multishot where the kernel has it, else one-shot,
    /// which the completion handler re-arms the same way).
    fn arm_accept(&mut self, fd: RawFd, id: ListenerId, c: &mut GroupCounters) -> io::Result<()> {
        let direct = self.want_direct() && self.ring.accept_multi();
        let kind = if direct { Kind::AcceptDirect } else { Kind::AcceptFd };
        // Null address pointers: the accept writes no memory of ours. The request holds its own
        // reference to the listener's file, so the listener may be closed while it is in flight.
        let e = PlainSqe::accept(fd, direct, self.ring.accept_multi(), UserData::sock(kind, id.idx, id.generation));
        self.ring.push_plain(e, c)?;
        if let Some(a) = self.accepts.get_mut(id.idx as usize) {
            a.armed = Some(direct);
            a.cancelling = false;
        }
        Ok(())
    }

    /// Queues FIXED_FD_INSTALL for an accepted slot: a regular descriptor for the same socket.
    pub(super) fn install_fd(&mut self, lidx: u32, slot: u32, c: &mut GroupCounters) {
        if self.ring.push_plain(PlainSqe::fd_install(slot, UserData::install(lidx, slot)), c).is_err() {
            self.install_retry.push((lidx, slot));
        }
    }

    /// Releases a slot of the accept range with an IORING_OP_CLOSE SQE (no syscall). Safe to do
    /// asynchronously because only the kernel allocates in this range, and not before the close ran.
    pub(super) fn close_accept_slot(&mut self, slot: u32, c: &mut GroupCounters) {
        if self.ring.push_plain(PlainSqe::close_fixed(slot), c).is_err() {
            self.ring.uninstall(slot);
            c.ctl_calls += 1;
        }
        self.accept_in_use = self.accept_in_use.saturating_sub(1);
        self.accept_full = false;
    }

    /// Adds an accepted socket and lists it for `take_accepted`.
    fn join(&mut self, core: &mut Core<B>, listener: ListenerId, sock: TcpSock, preinstalled: Option<u32>) {
        let peer = sock.peer_addr().ok();
        let id = core.reserve();
        match self.add(id, &sock, preinstalled, &mut core.counters) {
            Ok(()) => {
                core.fill_slot(id, sock);
                core.accepted.push(Accepted { listener, sock: id, peer });
            }
            Err(e) => {
                core.free.push(id.idx);
                core.counters.accept_errors += 1;
                tracing::warn!("accepted connection could not join the group: {e}");
            }
        }
    }

    /// An accept completion: a slot (direct) or a descriptor, or an error; re-arms when it was the last.
    pub(super) fn on_accept(&mut self, core: &mut Core<B>, direct: bool, ud: UserData, cqe: Cqe) {
        let (idx, g) = ud.sock_of();
        let (lid, live) = core.listener_id(idx, g);
        if cqe.res >= 0 {
            if direct {
                core.counters.accepts_multishot += 1;
                self.accept_in_use += 1;
                self.install_fd(idx, cqe.res as u32, &mut core.counters);
            } else {
                core.counters.accepts_plain += 1;
                // SAFETY: the accept returned a fresh descriptor that nobody else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(cqe.res) };
                let sock = TcpSock::from_accepted(fd, &core.opts.sock);
                self.join(core, lid, sock, None);
            }
        } else {
            let errno = -cqe.res;
            if errno != libc::ECANCELED {
                core.counters.accept_errors += 1;
            }
            if errno == libc::ENFILE && direct {
                // The range is full (the kernel closed the connection it could not place, see
                // `want_direct`): regular descriptors until a slot is freed.
                self.accept_full = true;
            }
            if !transient_accept_error(errno)
                && let Some(i) = live
                && let Some(a) = self.accepts.get_mut(i)
            {
                tracing::warn!("accept on listener {i} failed for good: {}", io::Error::from_raw_os_error(errno));
                a.failed = true;
            }
        }
        let Some(i) = live else { return };
        let Some(Some(l)) = core.listeners.get(i) else { return };
        let (fd, lid) = (l.listener.as_raw_fd(), ListenerId { idx, generation: l.generation });
        let Some(a) = self.accepts.get(i).copied() else { return };
        if a.armed != Some(direct) {
            return;
        }
        if !cqe.more() {
            // Multishot ended (error, cancellation for a mode switch, one-shot accept): arm again, so
            // pending connections keep waiting in the backlog rather than being lost.
            self.accepts[i].armed = None;
            if !a.failed {
                match self.arm_accept(fd, lid, &mut core.counters) {
                    Ok(()) => core.counters.accept_rearms += 1,
                    Err(e) => tracing::warn!("accept could not be re-armed: {e}"),
                }
            }
        } else if !a.cancelling && self.ring.accept_multi() && self.want_direct() != direct {
            // Switch modes (range nearly full, or free again): cancel, re-arm at the last completion.
            self.accepts[i].cancelling = true;
            let kind = if direct { Kind::AcceptDirect } else { Kind::AcceptFd };
            self.cancel(UserData::new(kind, ud.payload()), &mut core.counters);
        }
    }

    /// FIXED_FD_INSTALL done: the accepted socket gets its regular descriptor and joins the group.
    pub(super) fn on_fd_install(&mut self, core: &mut Core<B>, ud: UserData, cqe: Cqe) {
        let (lidx, slot) = ud.install_of();
        if cqe.res < 0 {
            core.counters.accept_errors += 1;
            if matches!(-cqe.res, libc::EMFILE | libc::ENFILE | libc::ENOMEM) {
                self.install_retry.push((lidx, slot));
            } else {
                tracing::warn!("fd install of accepted slot {slot} failed: {}", io::Error::from_raw_os_error(-cqe.res));
                self.close_accept_slot(slot, &mut core.counters);
            }
            return;
        }
        let (lid, _) = match core.listeners.get(lidx as usize) {
            Some(Some(l)) => core.listener_id(lidx, l.generation & 0xFF_FFFF),
            _ => core.listener_id(lidx, 0),
        };
        // SAFETY: FIXED_FD_INSTALL returned a fresh descriptor that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(cqe.res) };
        let sock = TcpSock::from_accepted(fd, &core.opts.sock);
        self.join(core, lid, sock, Some(slot));
    }
}
