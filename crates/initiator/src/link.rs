//! One host connection on a socket group: moving the sans-IO core's PDUs to the socket and received bytes
//! into the core (payload straight into the command's buffer), plus [`SyncLink`], a connection with a
//! group of its own driven synchronously, used for connection setup and by the admin thread.

use crate::buf::Buf;
use crate::error::Error;
use ff_nvme::nvme::{Cqe, Sqe, fctype, opcode};
use ff_nvme_tcp::host::{HostCompletion, HostConfig, HostConn, HostOutput, RecvTarget, TxData};
use ff_sock::{Event, GroupOptions, SockError, SockGroup, SockId, StableBuf, TcpSock, WriteReq};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Write data of one PDU: a view of a command's [`Buf`] (several H2CData PDUs share one buffer).
#[derive(Debug)]
pub struct TxChunk(pub TxData<Buf>);

// SAFETY: the view holds an Arc of the Buf, whose IoBuf heap allocation never moves or reallocates while
// shared, and its range is fixed at creation: the bytes stay put for the chunk's whole life.
unsafe impl StableBuf for TxChunk {
    fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// Most receive steps per readable event before other connections get their turn.
const RECV_BUDGET: usize = 256;
/// Scratch for headers, padding and digests.
pub type Small = [u8; 256];

/// Queues the core's PDUs on the socket and collects its completions; a `Close` output ends in its error
/// (after the H2CTermReq before it was queued).
pub fn push_out(
    group: &mut SockGroup<TxChunk>,
    id: SockId,
    conn: &mut HostConn<Buf>,
    done: &mut Vec<HostCompletion<Buf>>,
) -> Result<(), Error> {
    let mut closed = None;
    while let Some(o) = conn.poll_output() {
        match o {
            HostOutput::Send(tx) => {
                let Some(mut req) = WriteReq::new(tx.head(), 0) else {
                    return Err(Error::Protocol("PDU header too large".into()));
                };
                if let Some(d) = tx.data {
                    req.push_data(TxChunk(d));
                }
                if let Some(g) = tx.ddgst {
                    req.set_tail(&g);
                }
                if let Err((e, _)) = group.write(id, req) {
                    return Err(e.into());
                }
            }
            HostOutput::Completion(c) => done.push(c),
            HostOutput::Close(e) => closed = Some(e),
        }
    }
    match closed {
        Some(e) => Err(Error::Transport(e)),
        None => Ok(()),
    }
}

/// Reads what the socket holds into the core until it would block (bounded per call).
pub fn pull_in(
    group: &mut SockGroup<TxChunk>,
    id: SockId,
    conn: &mut HostConn<Buf>,
    small: &mut Small,
) -> Result<(), Error> {
    let in_place = group.parses_in_place();
    for _ in 0..RECV_BUDGET {
        let r = match conn.recv_target() {
            // Headers are decoded where the pipe fill put them, a batch per call.
            RecvTarget::Small(_) if in_place => group.recv_in_place(id, |bytes| conn.feed(bytes)).map(|_| ()),
            RecvTarget::Small(n) => {
                let dst = small.get_mut(..n.clamp(1, 256)).unwrap_or(&mut []);
                group.recv(id, dst).map(|k| {
                    conn.feed(dst.get(..k).unwrap_or(&[]));
                })
            }
            RecvTarget::Data(dst) => group.recv(id, dst).map(|k| conn.data_received(k)),
            // The core's Close output says why.
            RecvTarget::Closed => return Ok(()),
        };
        match r {
            Ok(()) => {}
            Err(SockError::WouldBlock) => return Ok(()),
            Err(SockError::Eof) => return Err(Error::ConnectionLost("controller closed the connection".into())),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A connection whose socket group is its own, driven by the calling thread.
pub struct SyncLink {
    group: SockGroup<TxChunk>,
    id: SockId,
    /// The connection core.
    pub conn: HostConn<Buf>,
    small: Box<Small>,
    events: Vec<Event<TxChunk>>,
}

impl SyncLink {
    /// Connects to `addr` (with `tls`: runs the TLS handshake as that host to that subsystem first)
    /// and waits for ICResp.
    pub fn connect(
        addr: SocketAddr,
        cfg: HostConfig,
        gopts: &GroupOptions,
        deadline: Instant,
        tls: Option<QueueTls<'_>>,
    ) -> Result<SyncLink, Error> {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let sock = TcpSock::connect(addr, &gopts.sock, left)?;
        let records = match tls {
            Some(t) => Some(crate::tls::handshake(&sock, t.opts, t.hostnqn, t.subnqn, deadline)?),
            None => None,
        };
        let mut group = SockGroup::new(gopts.clone())?;
        let id = join(&mut group, sock, records)?;
        let mut l = SyncLink { group, id, conn: HostConn::new(cfg), small: Box::new([0; 256]), events: Vec::new() };
        let mut done = Vec::new();
        while !l.conn.is_ready() {
            if Instant::now() >= deadline {
                return Err(Error::Timeout("ICResp"));
            }
            l.turn(deadline.saturating_duration_since(Instant::now()), &mut done)?;
        }
        Ok(l)
    }

    /// The socket group's waker (wakes [`SyncLink::turn`]).
    pub fn waker(&mut self) -> Result<ff_sock::Waker, Error> {
        Ok(self.group.waker()?)
    }

    /// One round: send what is queued, wait at most `wait`, receive; completions go to `done`.
    pub fn turn(&mut self, wait: Duration, done: &mut Vec<HostCompletion<Buf>>) -> Result<(), Error> {
        push_out(&mut self.group, self.id, &mut self.conn, done)?;
        self.group.poll(Some(wait), &mut self.events)?;
        for ev in self.events.drain(..) {
            match ev {
                Event::Readable(id) if id == self.id => {
                    pull_in(&mut self.group, id, &mut self.conn, &mut self.small)?;
                }
                Event::Failed(_, e) => return Err(e.into()),
                // Write completions drop their chunks here, which lets write commands complete.
                _ => {}
            }
        }
        push_out(&mut self.group, self.id, &mut self.conn, done)?;
        self.group.flush();
        Ok(())
    }

    /// Runs one command to completion (other completions are dropped: setup runs one at a time).
    pub fn exec(
        &mut self,
        sqe: Sqe,
        data: Option<Buf>,
        read_buf: Option<Buf>,
        deadline: Instant,
    ) -> Result<HostCompletion<Buf>, Error> {
        let cid = self
            .conn
            .submit(sqe, data, read_buf)
            .map_err(|e| Error::ConnectionLost(format!("cannot submit: {}", e.kind)))?;
        let mut done = Vec::new();
        loop {
            self.turn(deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)), &mut done)?;
            if let Some(i) = done.iter().position(|c| c.cid == cid) {
                return Ok(done.swap_remove(i));
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout("command"));
            }
        }
    }

    /// Hands the socket and core over to another group. Refused while bytes wait in the receive pipe.
    pub fn detach(mut self) -> Result<Detached, Error> {
        if self.group.pipe_len(self.id) != 0 {
            return Err(Error::Protocol("unexpected bytes after Connect".into()));
        }
        self.group.flush();
        let records = self.group.take_record_layer(self.id)?;
        let sock = self.group.close(self.id)?;
        Ok(Detached { sock, records, conn: self.conn })
    }
}

/// Adds a queue's socket to `group`, with its user-space TLS records when it has them.
pub(crate) fn join(
    group: &mut SockGroup<TxChunk>,
    sock: TcpSock,
    records: Option<Box<dyn ff_sock::tls::RecordLayer>>,
) -> Result<SockId, Error> {
    Ok(match records {
        Some(r) => group.add_tls(sock, r)?,
        None => group.add(sock)?,
    })
}

/// A queue's connection out of its setup group, ready to join another.
pub struct Detached {
    /// The socket.
    pub sock: TcpSock,
    /// Its user-space TLS records, when it has them (their sequence numbers continue).
    pub records: Option<Box<dyn ff_sock::tls::RecordLayer>>,
    /// The connection core.
    pub conn: HostConn<Buf>,
}

/// What a queue's TLS handshake needs: the settings and who talks to whom.
#[derive(Clone, Copy)]
pub struct QueueTls<'a> {
    /// The host's TLS settings.
    pub opts: &'a crate::tls::TlsOptions,
    /// Our host NQN.
    pub hostnqn: &'a str,
    /// The subsystem the queue connects to.
    pub subnqn: &'a str,
}

/// Length of the Connect command's data.
pub const CONNECT_DATA_LEN: usize = 1024;

/// Connect CATTR bit 2: the host does not use SQ flow control, so the controller may finish a read with
/// a C2HData PDU flagged SUCCESS instead of a separate response capsule.
pub const CATTR_DISABLE_SQ_FLOW: u8 = 0x04;

/// The Connect command and its data for queue `qid` (`cntlid` 0xFFFF on the admin queue: dynamic model).
#[allow(clippy::too_many_arguments)] // every argument is a Connect field
pub fn connect_cmd(
    qid: u16,
    sqsize: u16,
    cattr: u8,
    kato_ms: u32,
    hostid: &[u8; 16],
    cntlid: u16,
    subnqn: &str,
    hostnqn: &str,
) -> (Sqe, Buf) {
    let sqe = Sqe {
        opcode: opcode::FABRICS,
        nsid: u32::from(fctype::CONNECT),
        cdw10: u32::from(qid) << 16,
        cdw11: u32::from(sqsize) | (u32::from(cattr) << 16),
        cdw12: kato_ms,
        ..Sqe::default()
    };
    let mut d = vec![0u8; CONNECT_DATA_LEN];
    put(&mut d, 0, hostid);
    put(&mut d, 16, &cntlid.to_le_bytes());
    put(&mut d, 256, &subnqn.as_bytes()[..subnqn.len().min(255)]);
    put(&mut d, 512, &hostnqn.as_bytes()[..hostnqn.len().min(255)]);
    (sqe, Buf::from_slice(&d))
}

fn put(d: &mut [u8], off: usize, src: &[u8]) {
    if let Some(dst) = d.get_mut(off..off + src.len()) {
        dst.copy_from_slice(src);
    }
}

/// Checks a completion's status.
pub fn check(what: &'static str, c: &HostCompletion<Buf>) -> Result<Cqe, Error> {
    if c.digest_error {
        return Err(Error::Protocol(format!("{what}: data digest mismatch")));
    }
    let st = c.cqe.status();
    if st.is_success() { Ok(c.cqe) } else { Err(Error::Status { what, status: st }) }
}
