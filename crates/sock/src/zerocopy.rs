//! MSG_ZEROCOPY bookkeeping: reading completion notifications from the socket error queue and tracking
//! which send ids the kernel has released, with 32-bit wrap-around.
//!
//! Each successful `sendmsg(MSG_ZEROCOPY)` on a socket takes the next 32-bit id. The kernel reports
//! finished ids as inclusive ranges `[lo, hi]` (SO_EE_ORIGIN_ZEROCOPY); a range with
//! SO_EE_CODE_ZEROCOPY_COPIED means the kernel copied the data anyway (loopback, veth, no SG support).

use std::io;
use std::os::fd::RawFd;

/// One notification: ids `lo..=hi` are released; `copied` when the kernel fell back to copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    /// First released id.
    pub lo: u32,
    /// Last released id (inclusive; may be numerically below `lo` after wrap-around).
    pub hi: u32,
    /// SO_EE_CODE_ZEROCOPY_COPIED was set.
    pub copied: bool,
}

/// What one error-queue message was.
#[derive(Debug, PartialEq, Eq)]
pub enum ErrqueueMsg {
    /// A zero-copy completion.
    Zerocopy(Notification),
    /// A socket error (ICMP or local) carried in the extended error.
    Error(i32),
    /// Something else (e.g. a timestamp); ignored.
    Other,
}

const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

/// Decodes a `struct sock_extended_err` (16 bytes: errno u32, origin u8, type u8, code u8, pad u8,
/// info u32, data u32) as found in an IP_RECVERR / IPV6_RECVERR control message.
pub fn parse_extended_err(b: &[u8]) -> Option<ErrqueueMsg> {
    let b: &[u8; 16] = b.get(..16)?.try_into().ok()?;
    let errno = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let origin = b[4];
    let code = b[6];
    let info = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    let data = u32::from_ne_bytes([b[12], b[13], b[14], b[15]]);
    Some(if origin == SO_EE_ORIGIN_ZEROCOPY && errno == 0 {
        ErrqueueMsg::Zerocopy(Notification { lo: info, hi: data, copied: code & SO_EE_CODE_ZEROCOPY_COPIED != 0 })
    } else if errno != 0 {
        ErrqueueMsg::Error(errno as i32)
    } else {
        ErrqueueMsg::Other
    })
}

/// Reads one message from the error queue of `fd`. `Ok(None)` when the queue is empty.
pub fn recv_errqueue(fd: RawFd) -> io::Result<Option<ErrqueueMsg>> {
    // Room for one cmsghdr with a sock_extended_err plus the offender address.
    let mut control = [0u64; 16];
    let mut msg = libc::msghdr {
        msg_name: std::ptr::null_mut(),
        msg_namelen: 0,
        msg_iov: std::ptr::null_mut(),
        msg_iovlen: 0,
        msg_control: std::ptr::null_mut(),
        msg_controllen: 0,
        msg_flags: 0,
    };
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: msg points at a control buffer valid for writes of msg_controllen bytes and no iovecs.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            _ => Err(e),
        };
    }
    let mut out = ErrqueueMsg::Other;
    // SAFETY: walking the control buffer the kernel filled, with the libc CMSG helpers bounding each step.
    unsafe {
        let mut cm = libc::CMSG_FIRSTHDR(&msg);
        while !cm.is_null() {
            let c = &*cm;
            let is_recverr = (c.cmsg_level == libc::SOL_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::SOL_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
            if is_recverr {
                let data = libc::CMSG_DATA(cm);
                let avail = c.cmsg_len as usize - (data as usize - cm as usize);
                let bytes = std::slice::from_raw_parts(data, avail);
                if let Some(m) = parse_extended_err(bytes) {
                    out = m;
                }
            }
            cm = libc::CMSG_NXTHDR(&msg, cm);
        }
    }
    Ok(Some(out))
}

/// True when `a` comes before `b` in the wrapping 32-bit id space.
pub fn id_before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

/// Tracks released ids: everything before `next` is released; later ranges that arrived early wait in
/// `ahead` until the gap closes (TCP usually reports in order, but nothing guarantees it).
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    next: u32,
    ahead: Vec<(u32, u32)>,
}

impl Tracker {
    /// Marks `[lo, hi]` released.
    pub fn release(&mut self, lo: u32, hi: u32) {
        if id_before(hi, self.next) {
            return; // stale or duplicate
        }
        if !id_before(self.next, lo) {
            // lo <= next: extends the released prefix.
            self.next = hi.wrapping_add(1);
            self.absorb();
        } else {
            self.ahead.push((lo, hi));
        }
    }

    fn absorb(&mut self) {
        loop {
            let next = self.next;
            let Some(i) = self.ahead.iter().position(|&(lo, _)| !id_before(next, lo)) else { break };
            let (_, hi) = self.ahead.swap_remove(i);
            if id_before(next, hi.wrapping_add(1)) {
                self.next = hi.wrapping_add(1);
            }
        }
    }

    /// Whether id `id` has been released.
    pub fn is_released(&self, id: u32) -> bool {
        id_before(id, self.next)
    }

    /// The lowest id not yet released.
    pub fn next_unreleased(&self) -> u32 {
        self.next
    }

    /// Starts the tracker at `id` (for tests of wrap-around).
    pub fn starting_at(id: u32) -> Tracker {
        Tracker { next: id, ahead: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ee(errno: u32, origin: u8, code: u8, info: u32, data: u32) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&errno.to_ne_bytes());
        b[4] = origin;
        b[6] = code;
        b[8..12].copy_from_slice(&info.to_ne_bytes());
        b[12..].copy_from_slice(&data.to_ne_bytes());
        b
    }

    #[test]
    fn parses_zerocopy_ranges_and_copied_flag() {
        assert_eq!(
            parse_extended_err(&ee(0, 5, 0, 3, 7)),
            Some(ErrqueueMsg::Zerocopy(Notification { lo: 3, hi: 7, copied: false }))
        );
        assert_eq!(
            parse_extended_err(&ee(0, 5, 1, 0, 0)),
            Some(ErrqueueMsg::Zerocopy(Notification { lo: 0, hi: 0, copied: true }))
        );
        assert_eq!(parse_extended_err(&ee(111, 2, 0, 0, 0)), Some(ErrqueueMsg::Error(111)));
        assert_eq!(parse_extended_err(&ee(0, 4, 0, 0, 0)), Some(ErrqueueMsg::Other));
        assert_eq!(parse_extended_err(&[0u8; 15]), None, "truncated");
    }

    #[test]
    fn tracker_in_order_and_out_of_order() {
        let mut t = Tracker::default();
        assert!(!t.is_released(0));
        t.release(0, 2);
        assert!(t.is_released(2) && !t.is_released(3));
        t.release(5, 6); // early
        assert!(!t.is_released(5), "gap at 3..4 holds later ids back");
        t.release(3, 4);
        assert!(t.is_released(6) && !t.is_released(7));
        t.release(1, 1); // duplicate
        assert_eq!(t.next_unreleased(), 7);
    }

    #[test]
    fn tracker_wraps_around_u32() {
        let mut t = Tracker::starting_at(u32::MAX - 1);
        assert!(!t.is_released(u32::MAX));
        t.release(u32::MAX - 1, 1); // range crossing the wrap
        assert!(t.is_released(u32::MAX) && t.is_released(0) && t.is_released(1));
        assert!(!t.is_released(2));
        t.release(3, 3);
        t.release(2, 2);
        assert_eq!(t.next_unreleased(), 4);
    }
}
