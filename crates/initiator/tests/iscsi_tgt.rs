//! The iSCSI host against a real target: Linux tgt (`tgtd`), started by each test on a free portal and
//! its own control port, stopped when the test ends. Login (AuthMethod None, CHAP one-way and mutual,
//! digests), discovery, setup commands, and data written then read back through R2T, immediate and
//! unsolicited data. Without tgtd the tests print `SKIP` and pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ff_initiator::iscsi::{Chap, IscsiError, IscsiHost, IscsiOptions, LoginError, discover};
use ff_testkit::tgt::Tgt;
use std::time::Duration;

const IQN: &str = ff_testkit::tgt::IQN;
const LUN_BYTES: u64 = 32 << 20;
const T: Duration = Duration::from_secs(10);

fn start(test: &str) -> Option<Tgt> {
    Tgt::start(test, LUN_BYTES)
}

fn opts() -> IscsiOptions {
    IscsiOptions { target_name: Some(IQN.into()), ..IscsiOptions::default() }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

/// Writes blocks of several sizes (immediate data, unsolicited Data-Out, R2Ts) and reads them back.
fn write_read_back(h: &mut IscsiHost) {
    h.wait_ready(1).unwrap();
    let cap = h.read_capacity(1).unwrap();
    assert_eq!((cap.bytes(), cap.block_size), (LUN_BYTES, 512));
    let inq = h.inquiry(1).unwrap();
    assert!(inq.len() >= 36 && inq[0] & 0x1f == 0, "a disk: {inq:?}");
    for (i, (lba, len)) in
        [(0u64, 512usize), (8, 4096), (100, 64 << 10), (1000, 1 << 20), (60000, 4096)].into_iter().enumerate()
    {
        let data = pattern(len, i as u8 + 1);
        h.write(1, lba, &data, 512).unwrap();
        assert_eq!(h.read(1, lba, len, 512).unwrap(), data, "{len} bytes at LBA {lba}");
    }
    // The last block, and a read past the end fails with CHECK CONDITION without hurting the session.
    let last = cap.blocks - 1;
    h.write(1, last, &pattern(512, 9), 512).unwrap();
    assert_eq!(h.read(1, last, 512, 512).unwrap(), pattern(512, 9));
    assert!(matches!(h.read(1, last, 1024, 512), Err(IscsiError::Command { .. })));
    assert_eq!(h.read(1, 8, 4096, 512).unwrap(), pattern(4096, 2));
}

#[test]
fn login_none_write_read_back_logout() {
    let Some(t) = start("login_none_write_read_back_logout") else { return };
    let mut h = IscsiHost::connect(t.addr, opts(), T).unwrap();
    assert!(h.session().unwrap().tsih() != 0);
    write_read_back(&mut h);
    h.logout().unwrap();
}

#[test]
fn digests_and_r2t_only_writes() {
    let Some(t) = start("digests_and_r2t_only_writes") else { return };
    // tgt offers no digest unless told to.
    for k in ["HeaderDigest", "DataDigest"] {
        t.adm(&["--op", "update", "--mode", "target", "--tid", "1", "--name", k, "--value", "CRC32C,None"]);
    }
    let o = IscsiOptions {
        header_digest: true,
        data_digest: true,
        initial_r2t: true,
        immediate_data: false,
        max_recv_data_segment_length: 8192,
        ..opts()
    };
    let mut h = IscsiHost::connect(t.addr, o, T).unwrap();
    let p = *h.session().unwrap().params();
    assert!(p.header_digest && p.data_digest && p.initial_r2t && !p.immediate_data);
    write_read_back(&mut h);
    h.logout().unwrap();
}

#[test]
fn discovery_lists_the_target() {
    let Some(t) = start("discovery_lists_the_target") else { return };
    let found = discover(t.addr, IscsiOptions::default(), T).unwrap();
    assert!(found.iter().any(|d| d.name == IQN), "{found:?}");
}

#[test]
fn chap_one_way_and_mutual() {
    let Some(t) = start("chap_one_way_and_mutual") else { return };
    t.adm(&["--op", "new", "--mode", "account", "--user", "ini", "--password", "ini-secret-12"]);
    t.adm(&["--op", "new", "--mode", "account", "--user", "tgt", "--password", "tgt-secret-12"]);
    t.adm(&["--op", "bind", "--mode", "account", "--tid", "1", "--user", "ini"]);
    // Without credentials the target refuses us.
    match IscsiHost::connect(t.addr, opts(), T) {
        Err(IscsiError::Login(LoginError::Status { class: 2, .. })) => {}
        other => panic!("login without CHAP: {:?}", other.map(|_| ())),
    }
    let chap = |secret: &str| Chap { user: "ini".into(), secret: secret.as_bytes().to_vec(), mutual: None };
    match IscsiHost::connect(t.addr, IscsiOptions { chap: Some(chap("wrong-secret-1")), ..opts() }, T) {
        Err(IscsiError::Login(LoginError::Status { class: 2, detail: 1 })) => {}
        other => panic!("login with a wrong secret: {:?}", other.map(|_| ())),
    }
    let mut h = IscsiHost::connect(t.addr, IscsiOptions { chap: Some(chap("ini-secret-12")), ..opts() }, T).unwrap();
    h.wait_ready(1).unwrap();
    h.logout().unwrap();
    t.adm(&["--op", "bind", "--mode", "account", "--tid", "1", "--user", "tgt", "--outgoing"]);
    let mutual =
        |secret: &str| Chap { mutual: Some(("tgt".into(), secret.as_bytes().to_vec())), ..chap("ini-secret-12") };
    let mut h = IscsiHost::connect(t.addr, IscsiOptions { chap: Some(mutual("tgt-secret-12")), ..opts() }, T).unwrap();
    h.wait_ready(1).unwrap();
    h.logout().unwrap();
    match IscsiHost::connect(t.addr, IscsiOptions { chap: Some(mutual("not-the-secret")), ..opts() }, T) {
        Err(IscsiError::Login(LoginError::MutualChap)) => {}
        other => panic!("mutual CHAP with the wrong target secret: {:?}", other.map(|_| ())),
    }
}

#[test]
fn wrong_target_name_is_a_clear_error() {
    let Some(t) = start("wrong_target_name_is_a_clear_error") else { return };
    let o = IscsiOptions { target_name: Some("iqn.2026-12.io.ferrofabric:nope".into()), ..opts() };
    let e = IscsiHost::connect(t.addr, o, T).err().expect("login must fail");
    assert!(e.to_string().contains("target not found"), "{e}");
}
