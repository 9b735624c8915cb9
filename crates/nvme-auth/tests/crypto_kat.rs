//! Responses and augmented challenges against values computed independently with Python's
//! `hmac`/`hashlib` from the concatenation the kernel (`nvme_auth_dhchap_setup_host_response`)
//! and SPDK (`spdk_nvme_dhchap_calculate`) use.

use ff_nvme_auth::crypto::{ResponseInput, Role, augmented_challenge, response, verify_response};
use ff_nvme_auth::{HashId, Secret};

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:6b0b6f5e-ffab-4a0c-9a8f-2b53a9e1d1c7";
const SUBNQN: &str = "nqn.2024-01.io.ferrofabric:subsys1";
const SPEC_EXAMPLE: &str = "DHHC-1:00:ia6zGodOr4SEG0Zzaw398rpY0wqipUWj4jWjUh4HWUz6aQ2n:";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// Python:
/// ```text
/// kh  = hmac.new(key, HOSTNQN + b"NVMe-over-Fabrics", sha256).digest()   # key: spec example
/// msg = bytes(range(32)) + le32(0x01020304) + le16(0x0506) + b"\0" + b"HostHost"
///       + HOSTNQN + b"\0" + SUBNQN
/// hmac.new(kh, msg, sha256).hexdigest()
/// ```
#[test]
fn host_response_null_group_sha256() {
    let raw = Secret::parse(SPEC_EXAMPLE).unwrap().transform("");
    let secret = Secret::from_key(Some(HashId::Sha256), raw.as_bytes()).unwrap();
    let key = secret.transform(HOSTNQN);
    let c: Vec<u8> = (0..32).collect();
    let input = ResponseInput {
        hash: HashId::Sha256,
        challenge: &c,
        dh_secret: None,
        seqnum: 0x0102_0304,
        t_id: 0x0506,
        sc_c: 0,
        hostnqn: HOSTNQN,
        subsysnqn: SUBNQN,
    };
    let r = response(Role::Host, key.as_bytes(), &input);
    assert_eq!(hex(&r), "31cb241d1e78c74a10069a4132b39d5755bb3b989a8c6ebad3a3ad9679193566");
    assert!(verify_response(Role::Host, key.as_bytes(), &input, &r));
    let mut wrong = r.clone();
    wrong[0] ^= 1;
    assert!(!verify_response(Role::Host, key.as_bytes(), &input, &wrong));
    // The same inputs in the controller's role hash differently.
    assert!(!verify_response(Role::Controller, key.as_bytes(), &input, &r));
    assert!(!verify_response(Role::Host, key.as_bytes(), &input, &r[..31]));
}

/// Python, with `zb` the 256-byte ffdhe2048 secret of the dh.rs known answer
/// (`pow(pow(2, y, p), x, p).to_bytes(256, "big")`):
/// ```text
/// ca  = hmac.new(sha512(zb).digest(), bytes(range(0x40, 0x80)), sha512).digest()
/// msg = ca + le32(0xdeadbeef) + le16(1) + b"\0" + b"Controller" + SUBNQN + b"\0" + HOSTNQN
/// hmac.new(key, msg, sha512).hexdigest()     # key: the spec example, hh 00 (untransformed)
/// ```
/// (The secret's own derivation from the two exponents is checked in dh.rs.)
#[test]
fn controller_response_ffdhe2048_sha512() {
    let zb = unhex(ZB_HEX);
    let c2: Vec<u8> = (0x40..0x80).collect();
    assert_eq!(
        hex(&augmented_challenge(HashId::Sha512, &c2, Some(&zb))),
        "82fc1e1bb4e560296c5ce35fe89d27a3befb3d8ff5285d6e623947d5bb01014f\
         c0af0b2649bcf3f0aabc233bf00d6c4bc6b7f201ea929df60f0d70e2f8853886"
    );
    let key = Secret::parse(SPEC_EXAMPLE).unwrap().transform(SUBNQN);
    let input = ResponseInput {
        hash: HashId::Sha512,
        challenge: &c2,
        dh_secret: Some(&zb),
        seqnum: 0xdead_beef,
        t_id: 1,
        sc_c: 0,
        hostnqn: HOSTNQN,
        subsysnqn: SUBNQN,
    };
    assert_eq!(
        hex(&response(Role::Controller, key.as_bytes(), &input)),
        "234e39d2619b7d96e445f0b7eceb2a49280cb13f3c920726e8ad8a4ad9487a6c\
         4c143a407710b10c9f0376277819be26a6c20ca1d1b8ded3f0b4a204eaaaaa88"
    );
    // Without DH the challenge is used as is.
    assert_eq!(augmented_challenge(HashId::Sha512, &c2, None), c2);
}

/// The ffdhe2048 shared secret of the dh.rs known answer, from Python
/// (`pow(pow(2, y, p), x, p).to_bytes(256, "big").hex()`).
const ZB_HEX: &str = concat!(
    "12a04f0eaf4fb7ec483898c0af31c515ce368f088464d5d173b2877b2ef006d8",
    "854e3b9863fa8b4012ff2aac58ae8c80683a7f9222ec15b7661303655e0525f7",
    "228229734faffcf949ce3c71612ad0a7a2caf69ae6067cbba0a7ee79a0bc26f2",
    "8558a10923ab80c39c50a505e39ed77385fd3604834eab2107cda299c006a315",
    "e0f115becf5dc3f7a9e220a47eb39197bf2e4b4cf3b1309923214a3c0d032037",
    "bfffe6897879ef0bff89719c392a3b19361687d326263bb02f6717638ace9467",
    "2efa3d725b0e518f35d82ded8a3753719fe32171e356c64807f5fd0b390fa7b7",
    "b2909d5c6d6c2736ed94d72772a978189f1827bffd0b5fb267fbd8f003c20f60",
);
