//! Fuzz entry point for the whole command path without sockets: bytes from a host go through the
//! transport core, the session (Connect, admin and I/O commands) and a null/RAM backend, exactly as a
//! reactor drives them. Used by the cargo-fuzz target `command_path` and by a bounded stable test.

use crate::config::{NamespaceSpec, SubsystemSpec, TargetOptions};
use crate::session::{Env, Session};
use crate::shared::Shared;
use crate::token::IoTag;
use crate::txbuf::PoolAlloc;
use ff_blockdev::{BlockDev, BufPool, IoDone};
use ff_nvme::nvme::{SglDescriptor, Sqe, fctype, opcode};
use ff_nvme_tcp::target::{RecvTarget, TargetOutput};
use ff_nvme_tcp::{CapsuleCmd, Digests, Framing, IcReq, Pdu};
use ff_nvmf::registry::CATTR_DISABLE_SQ_FLOW;
use std::sync::{Arc, OnceLock};

/// The subsystem the fuzzer's prefix connects to.
pub const FUZZ_NQN: &str = "nqn.2026-11.io.ferrofabric:fuzz";
/// Its namespace on a null device that leaves read buffers untouched (`ff-bench core` reads it).
pub const NSID_NULL_NOFILL: u32 = 3;

fn shared() -> &'static Arc<Shared> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mut o = TargetOptions::default();
        let ns = |nsid, spec: &str| {
            let mut b: ff_blockdev::BackendSpec = spec.parse().expect("constant spec");
            b.size = Some(8 << 20);
            NamespaceSpec::new(nsid, b)
        };
        o.subsystems.push(SubsystemSpec {
            nqn: FUZZ_NQN.into(),
            serial: "FUZZ".into(),
            model: "fuzz".into(),
            allow_any_host: true,
            hosts: Vec::new(),
            auth_hosts: Vec::new(),
            max_namespaces: 0,
            namespaces: vec![ns(1, "ram"), ns(2, "null"), ns(NSID_NULL_NOFILL, "null-nofill")],
        });
        crate::build_shared(&o, &[], &[]).expect("fuzz target configuration").0
    })
}

fn encode(p: Pdu, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 256 + data.len()];
    match p.encode_with_data(&Framing::default(), data, &mut b) {
        Ok(n) => b.truncate(n),
        Err(_) => b.clear(),
    }
    b
}

/// A valid ICReq, and (when `queue` is given) a Connect for that queue (0: admin with a dynamic
/// controller id; otherwise an I/O queue of controller `cntlid`), so inputs start past setup.
/// `sq_flow_off`: the Connect disables SQ flow control, so reads end with a C2HData flagged SUCCESS.
pub fn prefix(queue: Option<(u16, u16)>, sq_flow_off: bool) -> Vec<u8> {
    let mut v = encode(Pdu::IcReq(IcReq { pfv: 0, hpda: 0, dgst: Digests::default(), maxr2t: 0 }), &[]);
    if let Some((qid, cntlid)) = queue {
        let mut data = vec![0u8; 1024];
        data[16..18].copy_from_slice(&cntlid.to_le_bytes());
        data[256..256 + FUZZ_NQN.len()].copy_from_slice(FUZZ_NQN.as_bytes());
        let host = b"nqn.2014-08.org.nvmexpress:uuid:fuzz";
        data[512..512 + host.len()].copy_from_slice(host);
        let sqe = Sqe {
            opcode: opcode::FABRICS,
            flags: 0x40,
            cid: 0xFFF0,
            nsid: u32::from(fctype::CONNECT),
            dptr: SglDescriptor::in_capsule(0, 1024),
            cdw10: u32::from(qid) << 16,
            cdw11: 31 | if sq_flow_off { u32::from(CATTR_DISABLE_SQ_FLOW) << 16 } else { 0 },
            ..Sqe::default()
        };
        v.extend(encode(Pdu::CapsuleCmd(CapsuleCmd { sqe }), &data));
    }
    v
}

/// What one run exercised (so tests can check the inputs reach the command path).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Commands handed to the session.
    pub commands: u64,
    /// Commands that completed successfully.
    pub successes: u64,
    /// Device completions.
    pub device_ios: u64,
}

/// Feeds `input` to a fresh session (after [`prefix`], chosen by the first byte) and runs every
/// command it yields to completion. Must never panic, hang or grow without bound.
pub fn command_path(input: &[u8]) -> Stats {
    let Some((&mode, rest)) = input.split_first() else { return Stats::default() };
    // Odd `mode / 3`: headers are fed everything that is left, as a reactor decoding in place from its
    // pipe feeds every buffered byte; even: exactly what the connection asks for.
    let window = if (mode / 3) % 2 == 1 { usize::MAX } else { 0 };
    // Odd `mode / 6`: the host disabled SQ flow control (reads answered by one C2HData PDU).
    drive(mode % 3, rest, window, (mode / 6) % 2 == 1)
}

/// Runs `commands` (encoded PDUs) on an I/O queue of an enabled controller, feeding headers at least
/// `window` bytes at a time (0: exactly what the connection asks for; a reactor decoding in place feeds
/// what one pipe fill holds). The queue is connected as ff-perf connects its queues (SQ flow control
/// disabled: a read is answered by one C2HData PDU). The socket-less command path `ff-bench core` times.
pub fn io_queue_path(commands: &[u8], window: usize) -> Stats {
    drive(2, commands, window, true)
}

/// Mode 0: raw after ICReq; 1: on an admin queue; 2: on an I/O queue of an enabled controller.
fn drive(mode: u8, rest: &[u8], window: usize, sq_flow_off: bool) -> Stats {
    let mut stats = Stats::default();
    let shared = shared();
    let mut pool = BufPool::new();
    let mut devs: Vec<Option<Box<dyn BlockDev>>> = Vec::new();
    let mut admin = None;
    let queue = match mode {
        0 => None,
        1 => Some((0, 0xFFFF)),
        _ => {
            let (s, cntlid) = enabled_controller(shared, &mut pool, &mut devs);
            admin = Some(s);
            Some((1, cntlid))
        }
    };
    let mut stream = prefix(queue, sq_flow_off);
    stream.extend_from_slice(rest);
    let mut session = Session::new(shared.clone(), ([127, 0, 0, 1], 1).into());
    let mut off = 0;
    // Device completions, reused across steps as a reactor reuses its own.
    let mut done = Vec::new();
    // Every step consumes at least one byte or ends the loop; the bound is a second guard.
    for _ in 0..stream.len() * 2 + 16 {
        if off >= stream.len() {
            break;
        }
        let mut alloc = PoolAlloc(&mut pool);
        match session.conn.recv_target(&mut alloc) {
            RecvTarget::Small(n) => {
                let end = off.saturating_add(n.max(1).max(window)).min(stream.len());
                let used = session.conn.feed(&stream[off..end], &mut alloc);
                off += used.max(usize::from(used == 0 && !session.conn.is_closed()));
            }
            RecvTarget::Data(dst) => {
                let n = dst.len().min(stream.len() - off);
                dst[..n].copy_from_slice(&stream[off..off + n]);
                off += n;
                session.conn.data_received(n, &mut alloc);
            }
            RecvTarget::Closed => break,
        }
        if !drain(&mut session, &mut pool, &mut devs, shared, &mut done, &mut stats) {
            break;
        }
    }
    session.on_close();
    if let Some(mut a) = admin {
        a.on_close();
    }
    stats
}

/// An admin session whose controller is enabled with one I/O queue granted; returns it and its cntlid.
fn enabled_controller(
    shared: &Arc<Shared>,
    pool: &mut BufPool,
    devs: &mut Vec<Option<Box<dyn BlockDev>>>,
) -> (Session, u16) {
    let mut s = Session::new(shared.clone(), ([127, 0, 0, 1], 2).into());
    let mut stream = prefix(Some((0, 0xFFFF)), false);
    let enable = Sqe {
        opcode: opcode::FABRICS,
        cid: 1,
        nsid: u32::from(fctype::PROPERTY_SET),
        cdw11: 0x14,
        cdw12: 1 | (6 << 16) | (4 << 20),
        ..Sqe::default()
    };
    let queues = Sqe { opcode: opcode::ADMIN_SET_FEATURES, cid: 2, cdw10: 0x07, ..Sqe::default() };
    stream.extend(encode(Pdu::CapsuleCmd(CapsuleCmd { sqe: enable }), &[]));
    stream.extend(encode(Pdu::CapsuleCmd(CapsuleCmd { sqe: queues }), &[]));
    let mut cntlid = 0;
    let mut alloc = PoolAlloc(pool);
    let mut off = 0;
    while off < stream.len() {
        match s.conn.recv_target(&mut alloc) {
            RecvTarget::Small(n) => off += s.conn.feed(&stream[off..(off + n.max(1)).min(stream.len())], &mut alloc),
            RecvTarget::Data(dst) => {
                let n = dst.len().min(stream.len() - off);
                dst[..n].copy_from_slice(&stream[off..off + n]);
                off += n;
                s.conn.data_received(n, &mut alloc);
            }
            RecvTarget::Closed => break,
        }
        while let Some(out) = s.conn.poll_output() {
            if let TargetOutput::Command(cmd) = out {
                let cid = cmd.sqe.cid;
                let mut env = Env { devs, pool: alloc.0, shared, tag: IoTag::default(), on_ring: false };
                if let Some(c) = s.execute(cmd, &mut env) {
                    if cid == 0xFFF0 {
                        cntlid = c.dw0 as u16;
                    }
                    s.conn.complete(cid, c);
                }
            }
        }
    }
    (s, cntlid)
}

/// Runs the session's outputs and device completions until quiet; false once the connection closes.
fn drain(
    session: &mut Session,
    pool: &mut BufPool,
    devs: &mut Vec<Option<Box<dyn BlockDev>>>,
    shared: &Arc<Shared>,
    done: &mut Vec<IoDone>,
    stats: &mut Stats,
) -> bool {
    loop {
        let mut progressed = false;
        while let Some(out) = session.conn.poll_output() {
            progressed = true;
            match out {
                TargetOutput::Send(tx) => {
                    if let Some(d) = tx.data {
                        d.recycle(pool);
                    }
                }
                TargetOutput::Command(cmd) => {
                    stats.commands += 1;
                    let cid = cmd.sqe.cid;
                    let mut env = Env { devs, pool, shared, tag: IoTag::default(), on_ring: false };
                    if let Some(c) = session.execute(cmd, &mut env) {
                        stats.successes += u64::from(c.status.is_success());
                        session.conn.complete(cid, c);
                    }
                }
                TargetOutput::Close(_) => return false,
            }
        }
        for d in devs.iter_mut().flatten() {
            d.poll(done);
        }
        for io in done.drain(..) {
            progressed = true;
            stats.device_ios += 1;
            let cid = IoTag::from_u64(io.tag).cid;
            if let Some(c) = session.io_done(cid, io, pool) {
                stats.successes += u64::from(c.status.is_success());
                session.conn.complete(cid, c);
            }
        }
        if !progressed {
            return !session.wants_close;
        }
    }
}

/// A running target (one reactor, loopback port 0) whose management the RPC fuzz body drives.
fn managed() -> &'static Arc<crate::Manager> {
    static MANAGER: OnceLock<Arc<crate::Manager>> = OnceLock::new();
    MANAGER.get_or_init(|| {
        let o = TargetOptions {
            listen: vec!["127.0.0.1:0".parse().expect("constant address")],
            discovery_listen: Vec::new(),
            ..TargetOptions::default()
        };
        // Serves for the life of the process, held where leak checkers see it.
        static KEEP: std::sync::Mutex<Option<crate::RunningTarget>> = std::sync::Mutex::new(None);
        let t = crate::start(&o).expect("fuzz target starts");
        let m = t.manager();
        *KEEP.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
        m
    })
}

/// Whether a request would reach outside the process (files, sockets, the configuration file): such
/// requests are parsed, not executed.
fn reaches_outside(r: &ff_rpc::Request) -> bool {
    let params = r.params.as_ref().map(|p| p.to_string()).unwrap_or_default();
    r.method.contains("listener") || r.method.contains("config") || params.contains("file")
}

/// Management requests from arbitrary bytes: the JSON-RPC parser, then each request it yields through
/// a running target's management (state kept bounded: past 8 subsystems they are all deleted).
/// Returns how many requests were executed.
pub fn rpc_request(input: &[u8]) -> usize {
    use ff_rpc::Handler;
    use ff_rpc::protocol::Incoming;
    let m = managed();
    let requests = match ff_rpc::protocol::parse_bytes(input) {
        Incoming::Single(r) => vec![r],
        Incoming::Batch(v) => v,
    };
    let mut executed = 0;
    for r in requests.into_iter().flatten() {
        if reaches_outside(&r) {
            continue;
        }
        let _ = m.call(&r.method, r.params);
        executed += 1;
    }
    let subsystems = m.running_config().subsystems;
    if subsystems.len() > 8 {
        for s in subsystems {
            let _ = m.call("nvmf_delete_subsystem", Some(serde_json::json!({ "nqn": s.nqn })));
        }
    }
    executed
}
