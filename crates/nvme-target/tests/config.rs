//! A target described by a TOML file: two subsystems (one open, one restricted to a host list), several
//! namespaces on different backends, IPv4 and IPv6 listeners, poll sock backend and two reactors.

mod common;
use common::Host;
use ff_nvme::nvme::{Sqe, opcode};
use ff_nvme_tcp::Digests;
use ff_target::TargetOptions;
use std::net::SocketAddr;

const TOML: &str = r#"
listen = ["127.0.0.1:0", "[::1]:0"]
discovery_listen = []
cores = 2
poll = "event"
placement = "round-robin"

[sock]
backend = "poll"

[limits]
max_queue_depth = 64

[[subsystem]]
nqn = "nqn.2026-11.io.ferrofabric:open"
serial = "OPEN0001"

[[subsystem.namespaces]]
nsid = 1
backend = { kind = "ram", size = "32M" }

[[subsystem.namespaces]]
nsid = 2
backend = { kind = "null", size = "64M", block_size = 4096 }

[[subsystem]]
nqn = "nqn.2026-11.io.ferrofabric:closed"
serial = "CLOSED01"
allow_any_host = false
hosts = ["nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"]

[[subsystem.namespaces]]
nsid = 1
backend = "ram"
"#;

fn identify(h: &mut Host, cns: u32, nsid: u32) -> Vec<u8> {
    let sqe = Sqe {
        opcode: opcode::ADMIN_IDENTIFY,
        flags: 0x40,
        cid: 2,
        nsid,
        dptr: ff_nvme::nvme::SglDescriptor::transport(4096),
        cdw10: cns,
        ..Sqe::default()
    };
    let (cqe, data) = h.admin(sqe);
    assert!(cqe.status().is_success(), "identify cns {cns}: {:?}", cqe.status());
    data
}

#[test]
fn toml_config_serves_what_it_describes() {
    // The closed subsystem's RAM namespace gets the default 1 GiB, allocated lazily.
    let o = TargetOptions::from_toml(TOML).unwrap();
    o.validate().unwrap();
    let t = ff_target::start(&o).unwrap();
    assert_eq!(t.io_addrs.len(), 2);
    let v6: SocketAddr = t.io_addrs[1];
    assert!(v6.is_ipv6());
    for addr in &t.io_addrs {
        let mut h = Host::connect(*addr);
        h.handshake(Digests::default());
        h.connect_admin("nqn.2026-11.io.ferrofabric:open", 0);
        h.enable();
        let list = identify(&mut h, 2, 0);
        let ids: Vec<u32> =
            list.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).take_while(|&n| n != 0).collect();
        assert_eq!(ids, [1, 2], "active namespaces");
        let ns2 = identify(&mut h, 0, 2);
        let nsze = u64::from_le_bytes(ns2[0..8].try_into().unwrap());
        let lbaf0 = u32::from_le_bytes(ns2[128..132].try_into().unwrap());
        assert_eq!(nsze, (64 << 20) / 4096);
        assert_eq!((lbaf0 >> 16) & 0xFF, 12, "4096-byte blocks");
    }
    // A host not on the list is refused by the closed subsystem.
    let mut h = Host::connect(t.io_addrs[0]);
    h.handshake(Digests::default());
    let st = h.try_connect_admin("nqn.2026-11.io.ferrofabric:closed", 0);
    assert_eq!(st, ff_nvme::nvme::status::CONNECT_INVALID_HOST, "unlisted host refused");
    t.stop();
}

#[test]
fn c2h_success_always_answers_a_read_with_one_pdu() {
    for (mode, one_pdu) in [("sq-flow-off", false), ("always", true)] {
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\ndiscovery_listen = []\nc2h_success = \"{mode}\"\n\
             [[subsystem]]\nnqn = \"nqn.2026-11.io.ferrofabric:c2h\"\n[[subsystem.namespaces]]\nnsid = 1\nbackend = \"null\"\n"
        );
        let o = TargetOptions::from_toml(&text).unwrap();
        let t = ff_target::start(&o).unwrap();
        let mut h = Host::connect(t.io_addrs[0]);
        h.handshake(Digests::default());
        h.connect_admin("nqn.2026-11.io.ferrofabric:c2h", 0);
        h.enable();
        // Identify Controller, then a Keep Alive: the PDUs that follow show whether a response capsule
        // followed the data (the host keeps SQ flow control on).
        let id = Sqe {
            opcode: opcode::ADMIN_IDENTIFY,
            flags: 0x40,
            cid: 20,
            dptr: ff_nvme::nvme::SglDescriptor::transport(4096),
            cdw10: 1,
            ..Sqe::default()
        };
        h.send(ff_nvme_tcp::Pdu::CapsuleCmd(ff_nvme_tcp::CapsuleCmd { sqe: id }), &[]);
        let ka = Sqe { opcode: opcode::ADMIN_KEEP_ALIVE, cid: 21, ..Sqe::default() };
        h.send(ff_nvme_tcp::Pdu::CapsuleCmd(ff_nvme_tcp::CapsuleCmd { sqe: ka }), &[]);
        let Some((ff_nvme_tcp::Pdu::C2HData(d), data)) = h.recv() else { panic!("{mode}: no C2HData") };
        assert_eq!((d.cccid, data.len(), d.success), (20, 4096, one_pdu), "{mode}");
        if !one_pdu {
            let Some((ff_nvme_tcp::Pdu::CapsuleResp(r), _)) = h.recv() else { panic!("{mode}: no response") };
            assert_eq!(r.cqe.cid, 20);
        }
        let Some((ff_nvme_tcp::Pdu::CapsuleResp(r), _)) = h.recv() else { panic!("{mode}: no keep-alive response") };
        assert_eq!(r.cqe.cid, 21, "{mode}: the next PDU answers the next command");
        t.stop();
    }
}

#[test]
fn bad_configs_are_clear_errors() {
    assert!(TargetOptions::from_toml("c2h_success = \"sometimes\"").unwrap_err().to_string().contains("sq-flow-off"));
    assert!(TargetOptions::from_toml("cores = \"many\"").is_err());
    assert!(TargetOptions::from_toml("unknown_key = 1").is_err());
    let o = TargetOptions::from_toml("listen = []\n").unwrap();
    assert!(o.validate().unwrap_err().to_string().contains("listener"));
    let o = TargetOptions::from_toml("").unwrap();
    assert!(o.validate().is_ok(), "no subsystem is valid: management adds them while the target serves");
    let bad_backend =
        "[[subsystem]]\nnqn = \"nqn.2026-11.io.x:y\"\n[[subsystem.namespaces]]\nnsid = 1\nbackend = \"tape\"\n";
    assert!(TargetOptions::from_toml(bad_backend).is_err());
}

#[test]
fn bad_iscsi_configs_name_the_field() {
    let target = |body: &str| format!("[[iscsi_target]]\n{body}\n");
    let cases: Vec<(String, &str)> = vec![
        ("[iscsi]\nheader_digest = \"sometimes\"\n".into(), "allow, require or never"),
        ("[iscsi]\nmax_burst_length = 100\n".into(), "iscsi.max_burst_length"),
        ("[iscsi]\nfirst_burst_length = 2097152\nmax_burst_length = 1048576\n".into(), "iscsi.first_burst_length"),
        ("[iscsi]\nqueue_depth = 0\n".into(), "iscsi.queue_depth"),
        ("[iscsi]\nmax_recv_data_segment_length = 16777216\n".into(), "max_recv_data_segment_length"),
        (target("name = \"disk0\""), "starts with iqn."),
        (target("name = \"iqn.2026-12.x:a b\""), "only letters"),
        (format!("{}{}", target("name = \"iqn.2026-12.x:a\""), target("name = \"IQN.2026-12.x:A\"")), "defined twice"),
        (target("name = \"iqn.2026-12.x:a\"\n[[iscsi_target.lun]]\nlun = 16384\nnqn = \"n\"\nnsid = 1"), "over 16383"),
        (
            target(
                "name = \"iqn.2026-12.x:a\"\n[[iscsi_target.lun]]\nlun = 1\nnqn = \"n\"\nnsid = 1\n[[iscsi_target.lun]]\nlun = 1\nnqn = \"n\"\nnsid = 2",
            ),
            "lun 1 is defined twice",
        ),
        (
            target("name = \"iqn.2026-12.x:a\"\n[iscsi_target.chap]\nuser = \"u\"\nsecret = \"short\""),
            "12 to 255 bytes",
        ),
        (
            target(
                "name = \"iqn.2026-12.x:a\"\n[iscsi_target.chap]\nuser = \"u\"\nsecret = \"twelve-bytes-ok\"\nmutual_user = \"t\"",
            ),
            "both mutual_user and mutual_secret",
        ),
        (
            target(
                "name = \"iqn.2026-12.x:a\"\n[iscsi_target.chap]\nuser = \"u\"\nsecret = \"twelve-bytes-ok\"\nmutual_user = \"t\"\nmutual_secret = \"twelve-bytes-ok\"",
            ),
            "differ from the initiator's",
        ),
    ];
    for (toml, needle) in cases {
        let err = match TargetOptions::from_toml(&toml) {
            Err(e) => e.to_string(),
            Ok(o) => o.validate().map(|()| String::new()).unwrap_or_else(|e| e.to_string()),
        };
        assert!(err.contains(needle), "{toml:?}: error {err:?} does not say {needle:?}");
    }
    // A LUN whose namespace does not exist yet is fine (management may add it).
    let later =
        target("name = \"iqn.2026-12.x:a\"\n[[iscsi_target.lun]]\nlun = 0\nnqn = \"nqn.2026-12.x:later\"\nnsid = 1");
    assert!(TargetOptions::from_toml(&later).unwrap().validate().is_ok());
}

#[test]
fn per_reactor_accept_serves_on_every_backend() {
    for backend in ["epoll", "poll", "uring"] {
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\ndiscovery_listen = []\ncores = 2\naccept = \"reactor\"\n[sock]\nbackend = \"{backend}\"\n\
             [[subsystem]]\nnqn = \"nqn.2026-11.io.ferrofabric:pr\"\n[[subsystem.namespaces]]\nnsid = 1\nbackend = \"null\"\n"
        );
        let o = TargetOptions::from_toml(&text).unwrap();
        let t = ff_target::start(&o).unwrap();
        // Several hosts: SO_REUSEPORT spreads them over both reactors' listeners.
        for _ in 0..6 {
            let mut h = Host::connect(t.io_addrs[0]);
            h.handshake(Digests::default());
            h.connect_admin("nqn.2026-11.io.ferrofabric:pr", 0);
            h.enable();
            assert_eq!(identify(&mut h, 1, 0).len(), 4096, "{backend}");
        }
        let stats = t.stop_and_report();
        let accepted: u64 = stats.iter().map(|r| r.sock.accepts_multishot + r.sock.accepts_plain).sum();
        assert_eq!(accepted, 6, "{backend}: the reactors accepted every host themselves");
    }
}
