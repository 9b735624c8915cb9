//! Driving [`Session`]s over the sock layer without an async runtime: [`IscsiGroup`] keeps several
//! sessions on one socket group polled by the calling thread (the perf reactor), and [`IscsiHost`] is one
//! blocking session with the setup commands (tools and tests); [`discover`] runs SendTargets.

use super::scsi::{self, Capacity, STATUS_CHECK_CONDITION};
use super::session::{Command, CommandError, Completion, DataDir, DiscoveredTarget, Session};
use super::{IscsiError, IscsiOptions};
use ff_sock::{Event, GroupOptions, SockError, SockGroup, SockId, SockOptions, TcpSock, WriteReq};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Names a session of an [`IscsiGroup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub usize);

/// Bytes read from a socket per receive call (then parsed out of this scratch).
const SCRATCH: usize = 256 * 1024;
/// Receive calls per readable event before other sessions get their turn.
const RECV_BUDGET: usize = 64;

struct Conn {
    sock: Option<SockId>,
    session: Session,
    /// PDUs the socket's write queue had no room for yet.
    unsent: VecDeque<Vec<u8>>,
}

/// Sessions sharing one socket group, driven by [`IscsiGroup::poll`] on the calling thread.
pub struct IscsiGroup {
    group: SockGroup<Vec<u8>>,
    conns: Vec<Conn>,
    events: Vec<Event<Vec<u8>>>,
    scratch: Vec<u8>,
    /// Completions that arrived while a setup step was driving the group.
    stash: Vec<(ConnId, Completion)>,
}

impl IscsiGroup {
    /// An empty group with these socket group options.
    pub fn new(opts: GroupOptions) -> Result<IscsiGroup, IscsiError> {
        Ok(IscsiGroup {
            group: SockGroup::new(opts)?,
            conns: Vec::new(),
            events: Vec::new(),
            scratch: vec![0; SCRATCH],
            stash: Vec::new(),
        })
    }

    /// Connects to `addr` and logs in with `opts`, by `deadline`.
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        sock: &SockOptions,
        opts: IscsiOptions,
        deadline: Instant,
    ) -> Result<ConnId, IscsiError> {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let s = TcpSock::connect(addr, sock, left)?;
        let id = self.group.add(s)?;
        let c = ConnId(self.conns.len());
        self.conns.push(Conn { sock: Some(id), session: Session::new(opts), unsent: VecDeque::new() });
        let r = self.drive_until(c, deadline, "login", |s| s.is_logged_in());
        if r.is_err() {
            self.close(c);
        }
        r.map(|()| c)
    }

    /// The session `c`.
    pub fn session(&self, c: ConnId) -> Option<&Session> {
        self.conns.get(c.0).map(|x| &x.session)
    }

    /// The session `c`, to submit commands (they leave at the next poll).
    pub fn session_mut(&mut self, c: ConnId) -> Option<&mut Session> {
        self.conns.get_mut(c.0).map(|x| &mut x.session)
    }

    /// Sessions in the group (closed ones included: ids stay valid).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether the group holds no session.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The socket group (counters, backend).
    pub fn sock_group(&self) -> &SockGroup<Vec<u8>> {
        &self.group
    }

    /// Submits `cmd` on session `c`.
    #[allow(clippy::result_large_err, reason = "the refused command goes back whole")]
    pub fn submit(&mut self, c: ConnId, cmd: Command) -> Result<u32, (IscsiError, Command)> {
        match self.conns.get_mut(c.0) {
            Some(x) => x.session.submit(cmd),
            None => Err((IscsiError::Invalid("no such session"), cmd)),
        }
    }

    /// One round: send what the sessions queued, wait at most `wait` (`None`: until something
    /// happens), receive, and append finished commands to `out`. A session whose connection fails
    /// completes its commands with errors; the group goes on.
    pub fn poll(&mut self, wait: Option<Duration>, out: &mut Vec<(ConnId, Completion)>) -> Result<usize, IscsiError> {
        let before = out.len();
        out.append(&mut self.stash);
        // Completions already waiting must not sleep behind the wait.
        let wait = if out.len() > before { Some(Duration::ZERO) } else { wait };
        self.turn(wait)?;
        out.append(&mut self.stash);
        Ok(out.len() - before)
    }

    /// Runs one command on session `c` to completion (other completions wait for the next poll).
    pub fn exec(&mut self, c: ConnId, cmd: Command, deadline: Instant) -> Result<Completion, IscsiError> {
        let tag = cmd.tag;
        self.submit(c, cmd).map_err(|(e, _)| e)?;
        loop {
            if let Some(i) = self.stash.iter().position(|(x, d)| *x == c && d.tag == tag) {
                return Ok(self.stash.swap_remove(i).1);
            }
            if let Some(e) = self.conns.get(c.0).and_then(|x| x.session.error()) {
                return Err(e.clone());
            }
            if Instant::now() >= deadline {
                return Err(IscsiError::Timeout("command"));
            }
            self.turn(Some(deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(50))))?;
        }
    }

    /// TEST UNIT READY on session `c`, repeated while the unit reports UNIT ATTENTION (the reset every new
    /// session sees once) or NOT READY, a few times at most.
    pub fn wait_ready(&mut self, c: ConnId, lun: u16, deadline: Instant) -> Result<(), IscsiError> {
        let mut last = CommandError::Status { status: STATUS_CHECK_CONDITION, sense: None };
        for attempt in 0..8 {
            let cmd = Command {
                lun: scsi::lun_to_wire(lun),
                cdb: scsi::test_unit_ready(),
                data: DataDir::None,
                tag: u64::MAX - attempt,
            };
            match self.exec(c, cmd, deadline)?.result {
                Ok(()) => return Ok(()),
                Err(CommandError::Status { status: STATUS_CHECK_CONDITION, sense })
                    if sense
                        .as_ref()
                        .is_none_or(|s| s.key == scsi::SENSE_UNIT_ATTENTION || s.key == scsi::SENSE_NOT_READY) =>
                {
                    last = CommandError::Status { status: STATUS_CHECK_CONDITION, sense };
                }
                Err(e) => return Err(IscsiError::Command { what: "TEST UNIT READY", error: e }),
            }
        }
        Err(IscsiError::Command { what: "TEST UNIT READY", error: last })
    }

    /// Logs session `c` out and closes its socket (commands still in flight fail).
    pub fn logout(&mut self, c: ConnId, deadline: Instant) -> Result<(), IscsiError> {
        let r = match self.conns.get_mut(c.0) {
            Some(x) => x.session.logout(),
            None => Err(IscsiError::Invalid("no such session")),
        };
        let r = r.and_then(|()| self.drive_until(c, deadline, "logout", Session::is_closed));
        self.close(c);
        r
    }

    /// Closes session `c`'s socket without a logout.
    pub fn close(&mut self, c: ConnId) {
        if let Some(x) = self.conns.get_mut(c.0) {
            if let Some(id) = x.sock.take() {
                let _ = self.group.close(id);
            }
            x.session.fail(IscsiError::ConnectionLost("closed by the host".into()));
            self.collect();
        }
    }

    fn drive_until(
        &mut self,
        c: ConnId,
        deadline: Instant,
        what: &'static str,
        done: impl Fn(&Session) -> bool,
    ) -> Result<(), IscsiError> {
        loop {
            let Some(x) = self.conns.get(c.0) else { return Err(IscsiError::Invalid("no such session")) };
            if done(&x.session) {
                return Ok(());
            }
            if let Some(e) = x.session.error() {
                return Err(e.clone());
            }
            if Instant::now() >= deadline {
                return Err(IscsiError::Timeout(what));
            }
            self.turn(Some(deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(50))))?;
        }
    }

    fn turn(&mut self, wait: Option<Duration>) -> Result<(), IscsiError> {
        self.push_out();
        self.group.poll(wait, &mut self.events)?;
        let mut events = std::mem::take(&mut self.events);
        for ev in events.drain(..) {
            match ev {
                Event::Readable(id) => self.pull_in(id),
                Event::Failed(id, e) => self.fail_sock(id, e),
                Event::WriteDone { sock, result: Err(e), .. } => self.fail_sock(sock, e),
                _ => {}
            }
        }
        self.events = events;
        self.push_out();
        self.group.flush();
        self.collect();
        Ok(())
    }

    /// Moves every session's outgoing PDUs to its socket's write queue.
    fn push_out(&mut self) {
        for x in &mut self.conns {
            let Some(id) = x.sock else { continue };
            while let Some(pdu) = x.unsent.pop_front().or_else(|| x.session.poll_transmit()) {
                let mut req = WriteReq::data_only(0);
                req.push_data(pdu);
                match self.group.write(id, req) {
                    Ok(()) => {}
                    Err((SockError::QueueFull, req)) => {
                        x.unsent.extend(req.into_data());
                        break;
                    }
                    Err((e, _)) => {
                        x.session.fail(IscsiError::ConnectionLost(e.to_string()));
                        break;
                    }
                }
            }
        }
    }

    fn pull_in(&mut self, id: SockId) {
        let Some(x) = self.conns.iter_mut().find(|x| x.sock == Some(id)) else { return };
        for _ in 0..RECV_BUDGET {
            match self.group.recv(id, &mut self.scratch) {
                Ok(n) => {
                    // A protocol error fails the session (its commands complete with it).
                    if x.session.receive(self.scratch.get(..n).unwrap_or(&[])).is_err() {
                        break;
                    }
                }
                Err(SockError::WouldBlock) => break,
                Err(SockError::Eof) => {
                    x.session.fail(IscsiError::ConnectionLost("target closed the connection".into()));
                    break;
                }
                Err(e) => {
                    x.session.fail(IscsiError::ConnectionLost(e.to_string()));
                    break;
                }
            }
        }
        if x.session.is_closed()
            && let Some(id) = x.sock.take()
        {
            let _ = self.group.close(id);
        }
    }

    fn fail_sock(&mut self, id: SockId, e: SockError) {
        if let Some(x) = self.conns.iter_mut().find(|x| x.sock == Some(id)) {
            x.session.fail(IscsiError::ConnectionLost(e.to_string()));
            x.sock = None;
            let _ = self.group.close(id);
        }
    }

    fn collect(&mut self) {
        for (i, x) in self.conns.iter_mut().enumerate() {
            while let Some(d) = x.session.poll_completion() {
                self.stash.push((ConnId(i), d));
            }
        }
    }
}

/// One blocking session, for setup, tools and tests.
pub struct IscsiHost {
    group: IscsiGroup,
    conn: ConnId,
    timeout: Duration,
    next_tag: u64,
}

impl IscsiHost {
    /// Connects and logs in; `timeout` bounds the login and then every command.
    pub fn connect(addr: SocketAddr, opts: IscsiOptions, timeout: Duration) -> Result<IscsiHost, IscsiError> {
        Self::connect_with(addr, opts, &GroupOptions::default(), timeout)
    }

    /// [`IscsiHost::connect`] with explicit socket group options.
    pub fn connect_with(
        addr: SocketAddr,
        opts: IscsiOptions,
        gopts: &GroupOptions,
        timeout: Duration,
    ) -> Result<IscsiHost, IscsiError> {
        let mut group = IscsiGroup::new(gopts.clone())?;
        let conn = group.connect(addr, &gopts.sock, opts, Instant::now() + timeout)?;
        Ok(IscsiHost { group, conn, timeout, next_tag: 0 })
    }

    /// The session.
    pub fn session(&self) -> Option<&Session> {
        self.group.session(self.conn)
    }

    /// Runs one command; the completion may carry a SCSI error.
    pub fn exec(&mut self, lun: u16, cdb: [u8; 16], data: DataDir) -> Result<Completion, IscsiError> {
        self.next_tag += 1;
        let cmd = Command { lun: scsi::lun_to_wire(lun), cdb, data, tag: self.next_tag };
        self.group.exec(self.conn, cmd, Instant::now() + self.timeout)
    }

    fn run(&mut self, what: &'static str, lun: u16, cdb: [u8; 16], data: DataDir) -> Result<Completion, IscsiError> {
        let c = self.exec(lun, cdb, data)?;
        match &c.result {
            Ok(()) => Ok(c),
            Err(e) => Err(IscsiError::Command { what, error: e.clone() }),
        }
    }

    /// TEST UNIT READY until the unit is ready (see [`IscsiGroup::wait_ready`]).
    pub fn wait_ready(&mut self, lun: u16) -> Result<(), IscsiError> {
        self.group.wait_ready(self.conn, lun, Instant::now() + self.timeout)
    }

    /// Standard INQUIRY data (up to 96 bytes).
    pub fn inquiry(&mut self, lun: u16) -> Result<Vec<u8>, IscsiError> {
        let c = self.run("INQUIRY", lun, scsi::inquiry(96), DataDir::Read(vec![0; 96]))?;
        let mut b = c.buf.unwrap_or_default();
        b.truncate(c.received as usize);
        Ok(b)
    }

    /// READ CAPACITY(16).
    pub fn read_capacity(&mut self, lun: u16) -> Result<Capacity, IscsiError> {
        let c = self.run("READ CAPACITY(16)", lun, scsi::read_capacity16(), DataDir::Read(vec![0; 32]))?;
        let b = c.buf.unwrap_or_default();
        Capacity::parse(b.get(..c.received as usize).unwrap_or(&[]))
            .ok_or_else(|| IscsiError::Protocol("READ CAPACITY(16) data is short or reports 0-byte blocks".into()))
    }

    /// READ(16) of `len` bytes (whole blocks of `block_size`) at `lba`.
    pub fn read(&mut self, lun: u16, lba: u64, len: usize, block_size: u32) -> Result<Vec<u8>, IscsiError> {
        let blocks = blocks_of(len, block_size)?;
        let c = self.run("READ(16)", lun, scsi::read16(lba, blocks), DataDir::Read(vec![0; len]))?;
        if c.received as usize != len {
            return Err(IscsiError::Protocol(format!("READ(16) returned {} of {len} bytes", c.received)));
        }
        Ok(c.buf.unwrap_or_default())
    }

    /// WRITE(16) of `data` (whole blocks of `block_size`) at `lba`.
    pub fn write(&mut self, lun: u16, lba: u64, data: &[u8], block_size: u32) -> Result<(), IscsiError> {
        let blocks = blocks_of(data.len(), block_size)?;
        self.run("WRITE(16)", lun, scsi::write16(lba, blocks), DataDir::Write(data.to_vec())).map(|_| ())
    }

    /// Logs out and closes the connection.
    pub fn logout(mut self) -> Result<(), IscsiError> {
        let deadline = Instant::now() + self.timeout;
        self.group.logout(self.conn, deadline)
    }
}

fn blocks_of(len: usize, block_size: u32) -> Result<u32, IscsiError> {
    let bs = block_size as usize;
    if bs == 0 || len == 0 || !len.is_multiple_of(bs) {
        return Err(IscsiError::Invalid("length is not a non-zero number of whole blocks"));
    }
    u32::try_from(len / bs).map_err(|_| IscsiError::Invalid("too many blocks for one command"))
}

/// Logs in a discovery session at `addr`, asks SendTargets=All and logs out.
pub fn discover(addr: SocketAddr, opts: IscsiOptions, timeout: Duration) -> Result<Vec<DiscoveredTarget>, IscsiError> {
    let opts = IscsiOptions { target_name: None, ..opts };
    let deadline = Instant::now() + timeout;
    let gopts = GroupOptions::default();
    let mut g = IscsiGroup::new(gopts.clone())?;
    let c = g.connect(addr, &gopts.sock, opts, deadline)?;
    g.session_mut(c).ok_or(IscsiError::Invalid("no such session"))?.send_targets()?;
    g.drive_until(c, deadline, "SendTargets", |s| s.discovered().is_some())?;
    let found = g.session(c).and_then(Session::discovered).map(<[_]>::to_vec).unwrap_or_default();
    if let Err(e) = g.logout(c, deadline) {
        tracing::debug!("discovery logout: {e}");
    }
    Ok(found)
}
