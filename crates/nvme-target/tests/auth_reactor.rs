//! DH-HMAC-CHAP's Diffie-Hellman exponentiations do not stall the reactor: on a one-core target,
//! a host doing I/O keeps getting completions while another host's ffdhe8192 authentication
//! waits for its exponentiations (each Authentication Send that needs one stays parked until a
//! DH worker returns the result). Asserted on counts and order only: how many of the I/O host's
//! commands complete between the authenticating host's Send and that Send's completion. With the
//! exponentiation on the reactor thread that number is at most one or two (the reactor serves
//! nobody until the Send completes); off it, the I/O host keeps going. Timings are printed.
//!
//! Also: a host that leaves while its computation is away leaves nothing behind (the late result
//! is dropped, the reactor serves on).

mod common;

use common::Host;
use ff_nvme::nvme::{Cqe, SglDescriptor, Sqe, opcode};
use ff_nvme_auth::fabrics::{self, AuthCommand};
use ff_nvme_auth::{DhGroup, HashId, HostAuth, HostConfig, OsRandom, Secret, SeededRandom, Step};
use ff_nvme_tcp::{CapsuleCmd, Digests, Pdu};
use ff_target::{HostAuthSpec, RunningTarget, TargetOptions};
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NQN: &str = "nqn.2026-12.io.ferrofabric:auth-reactor";
const AUTH_HOST: &str = common::HOST_NQN;
const IO_HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000bb";
/// Fewest I/O completions expected while one exponentiation is away. Inline on the reactor it
/// is at most 2: a read the reactor took in a poll before the one that took the Send, and one
/// it took with or after the Send, whose completion goes out only after the Send's. An ffdhe8192
/// exponentiation lasts hundreds of the I/O host's round trips on an idle machine (tens on a
/// loaded 2-core one).
const MIN_SERVED: usize = 5;

fn start(secret: &Secret) -> RunningTarget {
    let mut backend: ff_blockdev::BackendSpec = "ram".parse().unwrap();
    backend.block_size = Some(4096);
    let mut o = TargetOptions::default().with_default_subsystem(NQN, backend);
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen.clear();
    o.cores = 1;
    o.subsystems[0].auth_hosts = vec![HostAuthSpec {
        nqn: AUTH_HOST.into(),
        dhchap_key: Some(secret.to_dhhc_string()),
        dhchap_ctrl_key: None,
        psk: None,
    }];
    ff_target::start(&o).expect("target starts")
}

fn open(t: &RunningTarget) -> Host {
    let mut h = Host::connect(t.io_addrs[0]);
    h.handshake(Digests::default());
    h
}

fn auth_sqe(fct: u8, cid: u16, cmd: AuthCommand, payload_len: u32) -> Sqe {
    let (cdw10, cdw11) = cmd.to_dwords();
    let dptr = if fct == fabrics::FCTYPE_AUTH_SEND {
        SglDescriptor::in_capsule(0, payload_len)
    } else {
        SglDescriptor::transport(payload_len)
    };
    Sqe { opcode: opcode::FABRICS, flags: 0x40, cid, nsid: u32::from(fct), dptr, cdw10, cdw11, ..Sqe::default() }
}

/// Writes an Authentication Send of `payload` without waiting for its completion.
fn post_auth_send(h: &mut Host, payload: &[u8]) {
    let sqe = auth_sqe(fabrics::FCTYPE_AUTH_SEND, 9, AuthCommand::dhchap(payload.len() as u32), payload.len() as u32);
    h.send(Pdu::CapsuleCmd(CapsuleCmd { sqe }), payload);
}

fn auth_recv(h: &mut Host) -> Vec<u8> {
    let (c, data) = h.admin(auth_sqe(fabrics::FCTYPE_AUTH_RECV, 10, AuthCommand::dhchap(4096), 4096));
    assert!(c.status().is_success(), "Authentication Receive: {:?}", c.status());
    data
}

fn read(cid: u16, slba: u64) -> Sqe {
    Sqe {
        opcode: 0x02,
        flags: 0x40,
        cid,
        nsid: 1,
        dptr: SglDescriptor::transport(4096),
        cdw10: slba as u32,
        cdw11: (slba >> 32) as u32,
        cdw12: 0,
        ..Sqe::default()
    }
}

/// Whether bytes wait on `h`'s socket (the parked Send's completion), without consuming them.
fn has_reply(h: &Host) -> bool {
    h.s.set_nonblocking(true).unwrap();
    let r = h.s.peek(&mut [0u8; 1]);
    h.s.set_nonblocking(false).unwrap();
    match r {
        Ok(n) => n > 0,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("authenticating host's socket: {e}"),
    }
}

/// The I/O host reads 4 KiB at a time until `waiting` has a reply: how many reads completed
/// meanwhile, and the slowest of them.
fn serve_until_reply(io: &mut Host, waiting: &Host, next_cid: &mut u16) -> (usize, Duration) {
    let (mut n, mut max) = (0, Duration::ZERO);
    let give_up = Instant::now() + Duration::from_secs(120);
    while !has_reply(waiting) {
        assert!(Instant::now() < give_up, "the authentication never completed");
        *next_cid = next_cid.wrapping_add(1).max(1);
        let t0 = Instant::now();
        let (c, data): (Cqe, Vec<u8>) = io.admin(read(*next_cid, u64::from(*next_cid % 64)));
        max = max.max(t0.elapsed());
        assert!(c.status().is_success() && data.len() == 4096, "read: {:?}", c.status());
        n += 1;
    }
    (n, max)
}

/// An open host's admin queue (enabled) and I/O queue, on the target's one reactor.
fn io_host(t: &RunningTarget) -> (Host, Host) {
    let mut admin = open(t);
    let c = admin.connect_as(NQN, IO_HOST, 0, 0xFFFF, 30_000);
    assert!(c.status().is_success() && !fabrics::connect_requires_auth(c.dw0));
    admin.enable();
    let mut io = open(t);
    assert!(io.connect_as(NQN, IO_HOST, 1, c.dw0 as u16, 0).status().is_success());
    (admin, io)
}

fn host_cfg(secret: &Secret) -> Arc<HostConfig> {
    let mut c = HostConfig::new(AUTH_HOST, NQN, Secret::parse(&secret.to_dhhc_string()).unwrap());
    c.hashes = vec![HashId::Sha512];
    c.dh_groups = vec![DhGroup::Ffdhe8192];
    Arc::new(c)
}

#[test]
fn io_of_another_host_keeps_completing_during_an_ffdhe8192_authentication() {
    let secret = Secret::generate(None, None, &mut SeededRandom::new(21)).unwrap();
    let t = start(&secret);
    let (_admin, mut io) = io_host(&t);
    let mut cid = 0u16;
    // Warm up (and make sure the I/O path works) before measuring.
    serve_until_reply_n(&mut io, &mut cid, 50);

    let t0 = Instant::now();
    let mut b = open(&t);
    let c = b.connect_as(NQN, AUTH_HOST, 0, 0xFFFF, 30_000);
    assert!(fabrics::connect_requires_auth(c.dw0), "{c:?}");
    let mut a = HostAuth::new(host_cfg(&secret), OsRandom);
    // Negotiate: the target's public value (one exponentiation) is computed before the Send completes.
    post_auth_send(&mut b, &a.start(1));
    let (served1, max1) = serve_until_reply(&mut io, &b, &mut cid);
    let (p, _) = b.recv().expect("Negotiate's completion");
    let Pdu::CapsuleResp(r) = p else { panic!("{p:?}") };
    assert!(r.cqe.status().is_success());
    let challenge = auth_recv(&mut b);
    let Ok(Step::Send(reply)) = a.on_message(&challenge) else { panic!("a Challenge") };
    // Reply: the shared secret (the second exponentiation) before the Send completes.
    post_auth_send(&mut b, &reply);
    let (served2, max2) = serve_until_reply(&mut io, &b, &mut cid);
    let (p, _) = b.recv().expect("Reply's completion");
    let Pdu::CapsuleResp(r) = p else { panic!("{p:?}") };
    assert!(r.cqe.status().is_success());
    let success1 = auth_recv(&mut b);
    assert_eq!(a.on_message(&success1), Ok(Step::Authenticated));
    b.enable();
    eprintln!(
        "auth_reactor: ffdhe8192 admin queue authenticated in {:?}; the I/O host completed {served1} reads \
         (slowest {max1:?}) during the Negotiate's exponentiation and {served2} (slowest {max2:?}) during the Reply's",
        t0.elapsed()
    );
    assert!(served1 >= MIN_SERVED, "only {served1} reads completed while the Negotiate computed");
    assert!(served2 >= MIN_SERVED, "only {served2} reads completed while the Reply computed");
    t.stop();
}

fn serve_until_reply_n(io: &mut Host, cid: &mut u16, n: usize) {
    for _ in 0..n {
        *cid = cid.wrapping_add(1).max(1);
        let (c, _) = io.admin(read(*cid, 0));
        assert!(c.status().is_success(), "read: {:?}", c.status());
    }
}

#[test]
fn a_host_that_leaves_while_its_computation_is_away_leaves_nothing_behind() {
    let secret = Secret::generate(None, None, &mut SeededRandom::new(22)).unwrap();
    let t = start(&secret);
    let (_admin, mut io) = io_host(&t);
    let mut cid = 0u16;
    for round in 0..3 {
        let mut b = open(&t);
        b.connect_as(NQN, AUTH_HOST, 0, 0xFFFF, 30_000);
        post_auth_send(&mut b, &HostAuth::new(host_cfg(&secret), OsRandom).start(round));
        drop(b);
    }
    // The reactor still serves, and the next host's authentication (behind those jobs in the
    // workers' queue) runs to the end.
    serve_until_reply_n(&mut io, &mut cid, 20);
    let mut b = open(&t);
    b.connect_as(NQN, AUTH_HOST, 0, 0xFFFF, 30_000);
    let mut a = HostAuth::new(host_cfg(&secret), OsRandom);
    post_auth_send(&mut b, &a.start(7));
    let (p, _) = b.recv().expect("Negotiate's completion");
    assert!(matches!(p, Pdu::CapsuleResp(r) if r.cqe.status().is_success()));
    let Ok(Step::Send(reply)) = a.on_message(&auth_recv(&mut b)) else { panic!("a Challenge") };
    post_auth_send(&mut b, &reply);
    let (p, _) = b.recv().expect("Reply's completion");
    assert!(matches!(p, Pdu::CapsuleResp(r) if r.cqe.status().is_success()));
    assert_eq!(a.on_message(&auth_recv(&mut b)), Ok(Step::Authenticated));
    serve_until_reply_n(&mut io, &mut cid, 20);
    // The departed hosts' connections are gone: only the I/O host's two and the last one remain
    // (as the reactor publishes them, every tick).
    let give_up = Instant::now() + Duration::from_secs(30);
    let conns = || t.reactor_stats().iter().map(|s| s.connections.len()).sum::<usize>();
    while conns() != 3 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(conns(), 3, "connections left on the reactor");
    t.stop();
}
