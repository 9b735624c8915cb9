//! In-memory handshakes between our host and target engines, and proof that the extracted keys are
//! OpenSSL's own: what OpenSSL writes our record layer opens and what our layer seals OpenSSL reads.

use std::io::{Read, Write};
use std::sync::Arc;

use ff_sock::tls::{RecordError, RecordLayer};

use crate::psk::{ConfiguredPsk, PskHash, PskIdentity};
use crate::record::{GcmRecords, MAX_PLAINTEXT};
use crate::{ClientPsk, Established, Handshake, Progress, PskLookup, TlsError};

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:host-a";
const SUB: &str = "nqn.2016-06.io.ferrofabric:sub1";

fn lookup_for(psk: &ConfiguredPsk) -> PskLookup {
    let psk = psk.clone();
    Arc::new(move |id: &PskIdentity| (id.hostnqn == HOST && id.subnqn == SUB).then(|| psk.clone()))
}

fn client_for(psk: &ConfiguredPsk) -> Handshake {
    Handshake::client(&ClientPsk { hostnqn: HOST.into(), subnqn: SUB.into(), psk: psk.clone() }).unwrap()
}

/// Shuttles bytes between the two engines until both finish or one fails (then the other is given
/// the failing side's alert and run once more).
fn run(c: &mut Handshake, s: &mut Handshake) -> (Result<Established, TlsError>, Result<Established, TlsError>) {
    let (mut cr, mut sr) = (None, None);
    for _ in 0..20 {
        if cr.is_none() {
            match c.step() {
                Ok(Progress::Done(e)) => cr = Some(Ok(e)),
                Ok(Progress::NeedInput) => {}
                Err(e) => cr = Some(Err(e)),
            }
        }
        let out = c.take_output();
        s.feed(&out);
        if sr.is_none() {
            match s.step() {
                Ok(Progress::Done(e)) => sr = Some(Ok(e)),
                Ok(Progress::NeedInput) => {}
                Err(e) => sr = Some(Err(e)),
            }
        }
        let out = s.take_output();
        c.feed(&out);
        if cr.is_some() && sr.is_some() {
            break;
        }
    }
    (cr.expect("client finished"), sr.expect("server finished"))
}

fn established(hash: PskHash) -> (Handshake, Handshake, Established, Established) {
    let psk = ConfiguredPsk::generate(hash);
    let mut c = client_for(&psk);
    let mut s = Handshake::server(&lookup_for(&psk)).unwrap();
    let (ce, se) = run(&mut c, &mut s);
    (c, s, ce.unwrap(), se.unwrap())
}

#[test]
fn handshake_both_suites() {
    for (hash, suite) in [(PskHash::Sha256, "TLS_AES_128_GCM_SHA256"), (PskHash::Sha384, "TLS_AES_256_GCM_SHA384")] {
        let (c, s, ce, se) = established(hash);
        assert_eq!(ce.cipher_suite(), suite);
        assert_eq!(se.cipher_suite(), suite);
        let id = PskIdentity::v0(hash, HOST, SUB);
        assert_eq!(ce.identity, id);
        assert_eq!(se.identity, id);
        assert_eq!(ce.keys.tx, se.keys.rx);
        assert_eq!(ce.keys.rx, se.keys.tx);
        assert_ne!(ce.keys.tx, ce.keys.rx);
        assert_eq!(ce.keys.tx.key.len(), if hash == PskHash::Sha256 { 16 } else { 32 });
        assert_eq!((ce.keys.tx.seq, ce.keys.rx.seq, se.keys.tx.seq, se.keys.rx.seq), (0, 0, 0, 0));
        assert!(c.unread().is_empty() && s.unread().is_empty());
    }
}

#[test]
fn hash_00_key_uses_length_suite() {
    let key = ConfiguredPsk::generate(PskHash::Sha384);
    let raw = ConfiguredPsk::from_key(None, key.key()).unwrap();
    let mut c = client_for(&raw);
    let mut s = Handshake::server(&lookup_for(&raw)).unwrap();
    let (ce, se) = run(&mut c, &mut s);
    assert_eq!(ce.unwrap().cipher_suite(), "TLS_AES_256_GCM_SHA384");
    assert_eq!(se.unwrap().identity.hash, PskHash::Sha384);
}

#[test]
fn wrong_psk_fails_on_both_ends() {
    for hash in [PskHash::Sha256, PskHash::Sha384] {
        let mut c = client_for(&ConfiguredPsk::generate(hash));
        let mut s = Handshake::server(&lookup_for(&ConfiguredPsk::generate(hash))).unwrap();
        let (ce, se) = run(&mut c, &mut s);
        let (ce, se) = (ce.unwrap_err(), se.unwrap_err());
        assert!(matches!(se, TlsError::Handshake(_)), "{se}");
        assert!(se.to_string().contains("different PSKs"), "{se}");
        assert!(se.to_string().contains(HOST), "{se}");
        assert!(matches!(ce, TlsError::Handshake(_)), "{ce}");
        assert!(ce.to_string().contains("different PSKs"), "{ce}");
    }
}

#[test]
fn unknown_identity_fails() {
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let mut c =
        Handshake::client(&ClientPsk { hostnqn: "nqn.other".into(), subnqn: SUB.into(), psk: psk.clone() }).unwrap();
    let mut s = Handshake::server(&lookup_for(&psk)).unwrap();
    let (ce, se) = run(&mut c, &mut s);
    let se = se.unwrap_err();
    assert!(matches!(&se, TlsError::UnknownIdentity(m) if m.contains("NVMe0R01 nqn.other")), "{se}");
    let ce = ce.unwrap_err();
    assert!(matches!(ce, TlsError::Handshake(_)), "{ce}");
}

#[test]
fn identity_hash_must_match_key_length() {
    // The host holds a SHA-384 key, the target a SHA-256 key for the same host and subsystem.
    let mut c = client_for(&ConfiguredPsk::generate(PskHash::Sha384));
    let mut s = Handshake::server(&lookup_for(&ConfiguredPsk::generate(PskHash::Sha256))).unwrap();
    let (_, se) = run(&mut c, &mut s);
    assert!(matches!(&se, Err(TlsError::UnknownIdentity(m)) if m.contains("hash 02")), "{se:?}");
}

#[test]
fn plaintext_icreq_is_not_tls() {
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let mut s = Handshake::server(&lookup_for(&psk)).unwrap();
    let mut icreq = vec![0u8; 128];
    icreq[2] = 128;
    icreq[4] = 128;
    s.feed(&icreq);
    let e = s.step().unwrap_err();
    assert!(matches!(&e, TlsError::NotTls(m) if m.contains("ICReq")), "{e}");
    // A host that gets a plaintext ICResp back.
    let mut c = client_for(&psk);
    assert!(matches!(c.step(), Ok(Progress::NeedInput)));
    c.feed(&[1, 0, 128, 0, 128, 0, 0, 0]);
    assert!(matches!(c.step(), Err(TlsError::NotTls(_))));
}

#[test]
fn looks_like_tls_cases() {
    assert!(crate::looks_like_tls(&[0x16, 3, 1, 0, 200, 1]));
    assert!(crate::looks_like_tls(&[0x16, 3, 3]));
    assert!(!crate::looks_like_tls(&[0, 0, 128, 0, 128, 0, 0, 0]));
    assert!(!crate::looks_like_tls(&[0x16, 3, 1, 0, 200, 2]));
    assert!(!crate::looks_like_tls(&[0x16, 2]));
    assert!(!crate::looks_like_tls(&[]));
}

/// Everything OpenSSL wrote after the handshake, opened by our layer.
fn open_all(layer: &mut dyn RecordLayer, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let used = layer.open(bytes, &mut out).unwrap();
    assert_eq!(used, bytes.len());
    out
}

fn ssl_read_all(h: &mut Handshake, want: usize) -> Vec<u8> {
    let mut got = vec![0u8; want];
    let mut n = 0;
    while n < want {
        n += h.stream().read(&mut got[n..]).unwrap();
    }
    got
}

#[test]
fn extracted_keys_are_openssls_both_directions_both_suites() {
    for hash in [PskHash::Sha256, PskHash::Sha384] {
        let (mut c, mut s, ce, se) = established(hash);
        let (mut c_layer, mut s_layer) = (ce.record_layer(), se.record_layer());
        for round in 0..3 {
            let msg = format!("round {round} host->target").into_bytes();
            // OpenSSL (host) -> ours (target).
            c.stream().write_all(&msg).unwrap();
            let wire = c.take_output();
            assert_eq!(open_all(s_layer.as_mut(), &wire), msg);
            // OpenSSL (target) -> ours (host).
            s.stream().write_all(b"target->host").unwrap();
            let wire = s.take_output();
            assert_eq!(open_all(c_layer.as_mut(), &wire), b"target->host");
            // Ours (target) -> OpenSSL (host).
            let mut wire = Vec::new();
            s_layer.seal(&[b"sealed ", b"by us"], &mut wire).unwrap();
            c.feed(&wire);
            assert_eq!(ssl_read_all(&mut c, 12), b"sealed by us");
            // Ours (host) -> OpenSSL (target), a large write over several records.
            let big: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
            let mut wire = Vec::new();
            c_layer.seal(&[&big[..100], &big[100..]], &mut wire).unwrap();
            s.feed(&wire);
            assert_eq!(ssl_read_all(&mut s, big.len()), big);
        }
    }
}

#[test]
fn host_skips_new_session_tickets() {
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let mut c = client_for(&psk);
    let mut s = Handshake::server_with_tickets(&lookup_for(&psk), 2).unwrap();
    let (ce, se) = run(&mut c, &mut s);
    let (ce, se) = (ce.unwrap(), se.unwrap());
    // OpenSSL 3.0 sends both tickets in one record, so the target's next record is number 1.
    assert_eq!(se.keys.tx.seq, 1, "the tickets' record took sequence number 0");
    // The tickets reached the host: run() delivered the target's last output.
    assert!(!c.unread().is_empty());
    let tickets = c.unread().to_vec();
    let mut layer = ce.record_layer();
    s.stream().write_all(b"after tickets").unwrap();
    let mut wire = tickets;
    wire.extend(s.take_output());
    assert_eq!(open_all(layer.as_mut(), &wire), b"after tickets");
    // A target layer built from the keys seals its first record as number 1, after the tickets (as
    // OpenSSL's own write above did): a fresh host layer expecting record 1 opens it.
    let mut s_layer = se.record_layer();
    let mut wire = Vec::new();
    s_layer.seal(&[b"x"], &mut wire).unwrap();
    let mut c_layer2 = GcmRecords::new(&{
        let mut k = ce.keys.clone();
        k.rx.seq = 1;
        k
    })
    .unwrap();
    assert_eq!(open_all(&mut c_layer2, &wire), b"x");
}

fn layers(hash: PskHash) -> (GcmRecords, GcmRecords) {
    let (_, _, ce, se) = established(hash);
    (GcmRecords::new(&ce.keys).unwrap(), GcmRecords::new(&se.keys).unwrap())
}

#[test]
fn small_writes_fill_one_record_and_big_ones_split_at_16k() {
    let (mut a, mut b) = layers(PskHash::Sha256);
    let pieces: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 10]).collect();
    let refs: Vec<&[u8]> = pieces.iter().map(|p| p.as_slice()).collect();
    let mut wire = Vec::new();
    a.seal(&refs, &mut wire).unwrap();
    assert_eq!(wire.len(), 5 + 1000 + 1 + 16);
    assert_eq!(a.seqs().0, 1);
    assert_eq!(open_all(&mut b, &wire), pieces.concat());
    let big = vec![7u8; 40_000];
    let mut wire = Vec::new();
    a.seal(&[&big], &mut wire).unwrap();
    assert_eq!(wire.len(), 3 * (5 + 1 + 16) + 40_000);
    assert_eq!(u16::from_be_bytes([wire[3], wire[4]]) as usize, 16384 + 17);
    assert_eq!(open_all(&mut b, &wire), big);
    assert_eq!(b.seqs().1, 4);
    let mut none = Vec::new();
    a.seal(&[], &mut none).unwrap();
    assert!(none.is_empty());
}

#[test]
fn partial_records_wait_and_corrupted_ones_are_refused() {
    let (mut a, mut b) = layers(PskHash::Sha384);
    let mut wire = Vec::new();
    a.seal(&[b"hello"], &mut wire).unwrap();
    a.seal(&[b"world"], &mut wire).unwrap();
    let one = wire.len() / 2;
    let mut out = Vec::new();
    // Every strict prefix of the first record opens nothing and consumes nothing.
    for cut in 0..one {
        assert_eq!(b.open(&wire[..cut], &mut out).unwrap(), 0);
    }
    assert_eq!(b.open(&wire[..one + 3], &mut out).unwrap(), one);
    assert_eq!(out, b"hello");
    // A flipped ciphertext bit: authentication fails, and the layer stays failed.
    let mut bad = wire[one..].to_vec();
    bad[7] ^= 0x40;
    let e = b.open(&bad, &mut out).unwrap_err();
    assert!(matches!(&e, RecordError::Fatal(m) if m.contains("authentication")), "{e}");
    assert_eq!(out, b"hello");
    assert!(b.open(&wire[one..], &mut out).is_err());
}

#[test]
fn bad_headers_are_refused() {
    for (hdr, what) in [
        ([23u8, 3, 3, 0x41, 0x01], "exceeds"),
        ([23, 3, 3, 0, 16], "too short"),
        ([22, 3, 3, 0, 40], "outer record type"),
        ([23, 3, 1, 0, 40], "version"),
    ] {
        let (_, mut b) = layers(PskHash::Sha256);
        let e = b.open(&hdr, &mut Vec::new()).unwrap_err();
        assert!(matches!(&e, RecordError::Fatal(m) if m.contains(what)), "{what}: {e}");
    }
}

#[test]
fn alerts_and_post_handshake_messages() {
    let (mut a, mut b) = layers(PskHash::Sha256);
    // Data then close_notify in one read: the data first, Closed on the next call.
    let mut wire = Vec::new();
    a.seal(&[b"last words"], &mut wire).unwrap();
    a.seal_typed(21, &[1, 0], &mut wire).unwrap();
    let mut out = Vec::new();
    let used = b.open(&wire, &mut out).unwrap();
    assert_eq!(out, b"last words");
    assert_eq!(b.open(&wire[used..], &mut out), Err(RecordError::Closed));

    let (mut a, mut b) = layers(PskHash::Sha256);
    let mut wire = Vec::new();
    a.seal_typed(21, &[2, 20], &mut wire).unwrap();
    assert!(matches!(b.open(&wire, &mut Vec::new()), Err(RecordError::Fatal(m)) if m.contains("alert 20")));

    // A NewSessionTicket split over two records is skipped; a KeyUpdate is refused.
    let (mut a, mut b) = layers(PskHash::Sha384);
    let nst = [4u8, 0, 0, 6, 1, 2, 3, 4, 5, 6];
    let mut wire = Vec::new();
    a.seal_typed(22, &nst[..3], &mut wire).unwrap();
    a.seal_typed(22, &nst[3..], &mut wire).unwrap();
    a.seal(&[b"data"], &mut wire).unwrap();
    let mut out = Vec::new();
    assert_eq!(b.open(&wire, &mut out).unwrap(), wire.len());
    assert_eq!(out, b"data");
    let mut wire = Vec::new();
    a.seal_typed(22, &[24, 0, 0, 1, 0], &mut wire).unwrap();
    assert!(matches!(b.open(&wire, &mut out), Err(RecordError::Fatal(m)) if m.contains("KeyUpdate")));

    // Padding is stripped; an all-padding record is refused.
    let (mut a, mut b) = layers(PskHash::Sha256);
    let mut wire = Vec::new();
    a.seal_raw(b"pad\x17\0\0\0", &mut wire).unwrap();
    let mut out = Vec::new();
    b.open(&wire, &mut out).unwrap();
    assert_eq!(out, b"pad");
    let mut wire = Vec::new();
    a.seal_raw(&[0, 0, 0], &mut wire).unwrap();
    assert!(matches!(b.open(&wire, &mut out), Err(RecordError::Fatal(m)) if m.contains("padding")));

    // Content, type and padding together may not pass 2^14 + 1 bytes, though the record fits.
    let (mut a, mut b) = layers(PskHash::Sha256);
    let mut inner = vec![1u8; MAX_PLAINTEXT];
    inner.extend_from_slice(&[23, 0]);
    let mut wire = Vec::new();
    a.seal_raw(&inner, &mut wire).unwrap();
    assert!(matches!(b.open(&wire, &mut Vec::new()), Err(RecordError::Fatal(m)) if m.contains("overflow")));
    let (mut a, mut b) = layers(PskHash::Sha256);
    inner.pop();
    let mut wire = Vec::new();
    a.seal_raw(&inner, &mut wire).unwrap();
    let mut out = Vec::new();
    b.open(&wire, &mut out).unwrap();
    assert_eq!(out.len(), MAX_PLAINTEXT);
}

#[test]
fn handshake_fed_one_byte_at_a_time() {
    let psk = ConfiguredPsk::generate(PskHash::Sha384);
    let mut c = client_for(&psk);
    let mut s = Handshake::server(&lookup_for(&psk)).unwrap();
    let (mut cd, mut sd) = (None, None);
    for _ in 0..10 {
        if cd.is_none()
            && let Progress::Done(e) = c.step().unwrap()
        {
            cd = Some(e);
        }
        for b in c.take_output() {
            s.feed(&[b]);
            if sd.is_none()
                && let Progress::Done(e) = s.step().unwrap()
            {
                sd = Some(e);
            }
        }
        for b in s.take_output() {
            c.feed(&[b]);
            if cd.is_none()
                && let Progress::Done(e) = c.step().unwrap()
            {
                cd = Some(e);
            }
        }
    }
    let (cd, sd) = (cd.expect("host done"), sd.expect("target done"));
    assert_eq!(cd.keys.tx, sd.keys.rx);
    assert!(c.unread().is_empty() && s.unread().is_empty());
}
