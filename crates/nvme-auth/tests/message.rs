//! Message layouts: exact bytes of each message (checked field by field against the kernel's
//! `struct nvmf_auth_dhchap_*_data` and SPDK's `spdk_nvmf_dhchap_*` layouts), round trips, and a
//! specific error for every malformed field.

use ff_nvme_auth::message::{Challenge, Failure, MessageKind, Negotiate, ProtocolDescriptor, Reply, Success1};
use ff_nvme_auth::{AuthMessage, DecodeError, DhGroup, FailureReason, HashId};

fn round_trip(m: &AuthMessage) -> Vec<u8> {
    let b = m.encode();
    assert_eq!(&AuthMessage::decode(&b).unwrap(), m);
    let mut padded = b.clone();
    padded.extend_from_slice(&[0; 40]);
    assert_eq!(AuthMessage::decode_prefix(&padded).unwrap(), (m.clone(), b.len()));
    b
}

#[test]
fn negotiate_layout() {
    let m = AuthMessage::Negotiate(Negotiate {
        t_id: 0x1234,
        sc_c: 0,
        protocols: vec![ProtocolDescriptor {
            auth_id: 1,
            hash_ids: vec![1, 2, 3],
            dh_group_ids: vec![0, 1, 2, 3, 4, 5],
        }],
    });
    let b = round_trip(&m);
    assert_eq!(b.len(), 8 + 64);
    assert_eq!(&b[..8], &[0x00, 0x00, 0, 0, 0x34, 0x12, 0x00, 0x01]);
    assert_eq!(&b[8..12], &[0x01, 0, 3, 6]);
    assert_eq!(&b[12..15], &[1, 2, 3]);
    assert!(b[15..42].iter().all(|&x| x == 0));
    assert_eq!(&b[42..48], &[0, 1, 2, 3, 4, 5]);
    assert!(b[48..].iter().all(|&x| x == 0));
}

#[test]
fn challenge_layout() {
    let m = AuthMessage::Challenge(Challenge {
        t_id: 7,
        hash: HashId::Sha384,
        dh_group: DhGroup::Ffdhe2048,
        seqnum: 0xAABB_CCDD,
        challenge: vec![0x11; 48],
        dh_value: vec![0x22; 256],
    });
    let b = round_trip(&m);
    assert_eq!(b.len(), 16 + 48 + 256);
    assert_eq!(&b[..16], &[1, 1, 0, 0, 7, 0, 48, 0, 2, 1, 0x00, 0x01, 0xDD, 0xCC, 0xBB, 0xAA]);
    assert!(b[16..64].iter().all(|&x| x == 0x11));
    assert!(b[64..].iter().all(|&x| x == 0x22));
}

#[test]
fn reply_layout_with_and_without_controller_challenge() {
    let m = AuthMessage::Reply(Reply {
        t_id: 9,
        response: vec![0x33; 32],
        controller_challenge: Some(vec![0x44; 32]),
        seqnum: 5,
        dh_value: vec![],
    });
    let b = round_trip(&m);
    assert_eq!(b.len(), 16 + 64);
    assert_eq!(&b[..16], &[1, 2, 0, 0, 9, 0, 32, 0, 1, 0, 0, 0, 5, 0, 0, 0]);
    assert!(b[16..48].iter().all(|&x| x == 0x33));
    assert!(b[48..80].iter().all(|&x| x == 0x44));

    // CVALID 0: the C field is still there (zeroed), as the spec and both peers require.
    let m = AuthMessage::Reply(Reply {
        t_id: 9,
        response: vec![0x33; 64],
        controller_challenge: None,
        seqnum: 0,
        dh_value: vec![0x55; 8],
    });
    let b = round_trip(&m);
    assert_eq!(b.len(), 16 + 128 + 8);
    assert_eq!(&b[6..12], &[64, 0, 0, 0, 8, 0]);
    assert!(b[80..144].iter().all(|&x| x == 0));
}

#[test]
fn success_and_failure_layouts() {
    let m = AuthMessage::Success1(Success1 { t_id: 3, hash_len: 32, response: Some(vec![0x66; 32]) });
    let b = round_trip(&m);
    assert_eq!(&b[..16], &[1, 3, 0, 0, 3, 0, 32, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(b.len(), 48);

    let m = AuthMessage::Success1(Success1 { t_id: 3, hash_len: 32, response: None });
    let b = round_trip(&m);
    assert_eq!(b.len(), 48, "the R field is always sent, zeroed");
    // SPDK's shorter form (no R field when RVALID is 0) is accepted too.
    assert_eq!(AuthMessage::decode(&b[..16]).unwrap(), m);

    let b = round_trip(&AuthMessage::Success2 { t_id: 0xBEEF });
    assert_eq!(b, [1, 4, 0, 0, 0xEF, 0xBE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

    let f = Failure { t_id: 2, reason: FailureReason::Failed };
    assert_eq!(round_trip(&AuthMessage::Failure1(f)), [0, 0xF1, 0, 0, 2, 0, 1, 1]);
    let f = Failure { t_id: 2, reason: FailureReason::IncorrectProtocolMessage };
    assert_eq!(round_trip(&AuthMessage::Failure2(f)), [0, 0xF0, 0, 0, 2, 0, 1, 7]);
    assert_eq!(AuthMessage::Failure2(f).kind(), MessageKind::Failure2);
    assert_eq!(AuthMessage::Failure2(f).t_id(), 2);
}

fn challenge_bytes() -> Vec<u8> {
    AuthMessage::Challenge(Challenge {
        t_id: 1,
        hash: HashId::Sha256,
        dh_group: DhGroup::Null,
        seqnum: 1,
        challenge: vec![1; 32],
        dh_value: vec![],
    })
    .encode()
}

#[test]
fn every_malformed_field_has_its_error() {
    use DecodeError::*;
    let dec = |b: &[u8]| AuthMessage::decode(b).unwrap_err();

    assert_eq!(dec(&[]), Truncated { needed: 6, have: 0 });
    assert_eq!(dec(&[2, 0, 0, 0, 0, 0]), UnknownAuthType(2));
    assert_eq!(dec(&[1, 9, 0, 0, 0, 0]), UnknownMessageId { auth_type: 1, auth_id: 9 });
    assert_eq!(dec(&[0, 1, 0, 0, 0, 0]), UnknownMessageId { auth_type: 0, auth_id: 1 });

    let c = challenge_bytes();
    assert_eq!(dec(&c[..47]), Truncated { needed: 48, have: 47 });
    let mut extra = c.clone();
    extra.push(0);
    assert_eq!(dec(&extra), TrailingBytes { expected: 48, have: 49 });
    let mut b = c.clone();
    b[8] = 4;
    assert_eq!(dec(&b), UnknownHash(4));
    let mut b = c.clone();
    b[9] = 6;
    assert_eq!(dec(&b), UnknownDhGroup(6));
    let mut b = c.clone();
    b[6] = 48;
    assert_eq!(dec(&b), HashLength(48));
    let mut b = c.clone();
    b[10] = 4; // DH value with the null group
    assert!(matches!(dec(&b), DhValueLength { dhvlen: 4, .. }));
    let mut b = c.clone();
    b[9] = 1; // ffdhe2048 without a DH value
    assert!(matches!(dec(&b), DhValueLength { dhvlen: 0, .. }));
    b[10..12].copy_from_slice(&257u16.to_le_bytes()); // longer than the prime
    assert!(matches!(dec(&b), DhValueLength { dhvlen: 257, .. }));
    b[10..12].copy_from_slice(&256u16.to_le_bytes()); // declared but absent
    assert_eq!(dec(&b), Truncated { needed: 16 + 32 + 256, have: 48 });

    let reply = AuthMessage::Reply(Reply {
        t_id: 1,
        response: vec![0; 32],
        controller_challenge: None,
        seqnum: 0,
        dh_value: vec![],
    })
    .encode();
    let mut b = reply.clone();
    b[8] = 2;
    assert_eq!(dec(&b), Flag { field: "CVALID", value: 2 });
    let mut b = reply.clone();
    b[6] = 31;
    assert_eq!(dec(&b), HashLength(31));
    let mut b = reply.clone();
    b[10] = 1;
    assert_eq!(dec(&b), Truncated { needed: 81, have: 80 });

    let mut s1 = AuthMessage::Success1(Success1 { t_id: 1, hash_len: 32, response: Some(vec![0; 32]) }).encode();
    assert_eq!(dec(&s1[..40]), Truncated { needed: 48, have: 40 });
    s1[8] = 3;
    assert_eq!(dec(&s1), Flag { field: "RVALID", value: 3 });
    s1[8] = 1;
    s1[6] = 0;
    assert_eq!(dec(&s1), HashLength(0));
    assert_eq!(dec(&AuthMessage::Success2 { t_id: 1 }.encode()[..15]), Truncated { needed: 16, have: 15 });

    assert_eq!(dec(&[0, 0xF1, 0, 0, 0, 0, 2, 1]), UnknownReasonCode(2));
    assert_eq!(dec(&[0, 0xF1, 0, 0, 0, 0, 1, 8]), UnknownReasonExplanation(8));
    assert_eq!(dec(&[0, 0xF0, 0, 0, 0, 0, 1]), Truncated { needed: 8, have: 7 });

    let mut neg = AuthMessage::Negotiate(Negotiate {
        t_id: 1,
        sc_c: 0,
        protocols: vec![ProtocolDescriptor { auth_id: 1, hash_ids: vec![1], dh_group_ids: vec![0] }],
    })
    .encode();
    assert_eq!(dec(&neg[..71]), Truncated { needed: 72, have: 71 });
    neg[10] = 31;
    assert_eq!(dec(&neg), ListLength { field: "HALEN", len: 31 });
    neg[10] = 30;
    neg[11] = 200;
    assert_eq!(dec(&neg), ListLength { field: "DHLEN", len: 200 });
    neg[11] = 1;
    neg[7] = 2; // two descriptors declared, one present
    assert_eq!(dec(&neg), Truncated { needed: 136, have: 72 });
}

#[test]
fn unknown_ids_in_negotiate_lists_are_kept_not_refused() {
    let m = AuthMessage::Negotiate(Negotiate {
        t_id: 1,
        sc_c: 0,
        protocols: vec![
            ProtocolDescriptor { auth_id: 0x42, hash_ids: vec![], dh_group_ids: vec![] },
            ProtocolDescriptor { auth_id: 1, hash_ids: vec![0x99, 1], dh_group_ids: vec![0x77, 0] },
        ],
    });
    round_trip(&m);
}

#[test]
fn reserved_bytes_are_ignored_on_receipt() {
    let mut b = challenge_bytes();
    b[2] = 0xFF;
    b[3] = 0xFF;
    b[7] = 0xFF;
    assert!(AuthMessage::decode(&b).is_ok());
    let mut s2 = AuthMessage::Success2 { t_id: 1 }.encode();
    s2[15] = 0xFF;
    assert_eq!(AuthMessage::decode(&s2).unwrap(), AuthMessage::Success2 { t_id: 1 });
}
