//! Whole seeded exchanges checked against an independent recomputation.
//!
//! How the expected values were made: the two transcripts below were dumped once, then a Python
//! script (hashlib/hmac/base64 and `pow` only) re-derived everything from the message bytes,
//! the two DHHC-1 secrets and the seeded random streams (`SeededRandom(seed)` is
//! SHA-256(le64(seed) || le64(block)) blocks, reproducible outside Rust):
//! - C1 equals the controller stream's first HL bytes, C2 the host stream's bytes after its DH
//!   exponent; both DH values equal `pow(2, x, p)` with the exponents drawn from those streams
//!   (top bit set) and p the RFC 7919 ffdhe2048 prime;
//! - Kh = HMAC-SHA-256(host key, HOSTNQN || "NVMe-over-Fabrics") (hh 01),
//!   Kc = HMAC-SHA-384(controller key, SUBNQN || "NVMe-over-Fabrics") (hh 02);
//! - R1 = HMAC(Kh, Ca1 || le32(S1) || le16(T_ID) || 00 || "HostHost" || HOSTNQN || 00 || SUBNQN),
//!   R2 = HMAC(Kc, Ca2 || le32(S2) || le16(T_ID) || 00 || "Controller" || SUBNQN || 00 ||
//!   HOSTNQN), with Ca = C for the null group and HMAC(H(g^xy mod p), C) otherwise.
//!
//! R1 matched the Reply's R field and R2 the Success1's; those values are pinned here.

use std::sync::Arc;

use ff_nvme_auth::{
    ControllerAuth, ControllerConfig, DhGroup, HashId, HostAuth, HostConfig, HostCredentials, Secret, SeededRandom,
    SeqnumCounter, Step,
};

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:6b0b6f5e-ffab-4a0c-9a8f-2b53a9e1d1c7";
const SUBNQN: &str = "nqn.2024-01.io.ferrofabric:subsys1";
const HOST_SECRET: &str = "DHHC-1:01:C7XNT6VDFTFfbGtrSimOlLFg7BAdH+UwUgkLTuSA5gcd+7/H:";
const CTRL_SECRET: &str = "DHHC-1:02:Hi9ha9idssh3FgURRbfMUvOY7NlHiApDCmHhmIRCdhdlNQwebHEt/7DHoag3SmCHFvei/Q==:";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn send(s: Step) -> Vec<u8> {
    match s {
        Step::Send(b) => b,
        other => panic!("expected Send, got {other:?}"),
    }
}

/// (S1, S2, R1, R2) of a bidirectional exchange with T_ID 0x0102.
fn exchange(hash: HashId, group: DhGroup) -> (u32, u32, String, String) {
    let mut hc = HostConfig::new(HOSTNQN, SUBNQN, Secret::parse(HOST_SECRET).unwrap());
    hc.controller_secret = Some(Secret::parse(CTRL_SECRET).unwrap());
    hc.seqnum = Arc::new(SeqnumCounter::new(1000));
    let mut cc = ControllerConfig::new(SUBNQN);
    cc.hashes = vec![hash];
    cc.dh_groups = vec![group];
    cc.seqnum = Arc::new(SeqnumCounter::new(41));
    let creds = HostCredentials {
        hostnqn: HOSTNQN.into(),
        secret: Some(Secret::parse(HOST_SECRET).unwrap()),
        controller_secret: Some(Secret::parse(CTRL_SECRET).unwrap()),
    };
    let mut host = HostAuth::new(Arc::new(hc), SeededRandom::new(1));
    let mut ctrl = ControllerAuth::new(Arc::new(cc), creds, SeededRandom::new(2));
    let n = host.start(0x0102);
    let c = send(ctrl.on_message(&n).unwrap());
    let r = send(host.on_message(&c).unwrap());
    let s1 = send(ctrl.on_message(&r).unwrap());
    let hl = hash.hash_len();
    let le32 = |b: &[u8]| u32::from_le_bytes(b[12..16].try_into().unwrap());
    (le32(&c), le32(&r), hex(&r[16..16 + hl]), hex(&s1[16..16 + hl]))
}

#[test]
fn null_group_sha256_matches_python() {
    let (s1, s2, r1, r2) = exchange(HashId::Sha256, DhGroup::Null);
    assert_eq!((s1, s2), (42, 1001));
    assert_eq!(r1, "eca9cbb375e5ff9e9679f7badf9fa1685e244ef62218c85c50e6fc23c1914506");
    assert_eq!(r2, "b8df3680b398c30677d4ac55e3b4816951d20fe687de2240f0ac60f6f1d77dc8");
}

#[test]
fn ffdhe2048_sha384_matches_python() {
    let (s1, s2, r1, r2) = exchange(HashId::Sha384, DhGroup::Ffdhe2048);
    assert_eq!((s1, s2), (42, 1001));
    assert_eq!(
        r1,
        "1dc4037d8dfcb8f7381262be5e3ea36ed40ce8b0cd99ac90\
         f62d9082808a6cf0066ee03a881a40324667cecbe59bd94e"
    );
    assert_eq!(
        r2,
        "dbf915d1b3672150d93343edf9fb98ffa5a440aaefda16c4\
         d03eb3d3c3f60c3097a67cbd0c7aad96ad1c3878ec594a1f"
    );
}
