//! The fuzz body shared by the cargo-fuzz target `tls_input` and the stable property test: every
//! parser and state machine here that meets network or configuration bytes. Feature `fuzzing` only.
//!
//! Input layout: byte 0 selects the target (modulo 6), the rest is its input:
//! 0. `ConfiguredPsk::parse` (lossy UTF-8): an accepted string re-encodes to itself;
//! 1. `PskIdentity::parse`: an accepted identity displays as the same bytes;
//! 2. the record layer opening arbitrary bytes (fixed keys), in two chunks split at byte 1;
//! 3. the record layer opening one record whose inner plaintext (content, type, padding) is the rest,
//!    so the content-type, alert and post-handshake paths are reached past the AEAD;
//! 4. a target handshake fed the rest as if it came from a host;
//! 5. a host handshake (after its ClientHello) fed the rest as if it came from a target.
//!
//! Besides "never panics": a failing record layer stays failed, and a handshake fed garbage never
//! reports an established channel.

use std::sync::Arc;

use ff_sock::tls::{DirectionKeys, KtlsCipher, KtlsKeys, RecordLayer};

use crate::psk::{ConfiguredPsk, PskHash, PskIdentity};
use crate::record::GcmRecords;
use crate::{ClientPsk, Handshake, Progress, PskLookup};

fn keys(cipher: KtlsCipher) -> KtlsKeys {
    let len = if cipher == KtlsCipher::Aes128Gcm { 16 } else { 32 };
    let d = DirectionKeys { key: vec![7; len], iv: [9; 12], seq: 0 };
    KtlsKeys { cipher, tx: d.clone(), rx: d }
}

/// Runs one fuzz input (see the module doc for the layout).
pub fn tls_input(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else { return };
    match sel % 6 {
        0 => {
            let s = String::from_utf8_lossy(rest);
            if let Ok(p) = ConfiguredPsk::parse(&s) {
                assert_eq!(p.encode(), s, "an accepted PSK re-encodes to itself");
            }
        }
        1 => {
            if let Ok(id) = PskIdentity::parse(rest) {
                assert_eq!(id.to_string().as_bytes(), rest, "an accepted identity displays as itself");
            }
        }
        2 => {
            let cipher = if sel & 0x80 == 0 { KtlsCipher::Aes128Gcm } else { KtlsCipher::Aes256Gcm };
            let Ok(mut l) = GcmRecords::new(&keys(cipher)) else { return };
            let cut = rest.first().map_or(0, |&b| b as usize).min(rest.len());
            let mut out = Vec::new();
            match l.open(&rest[..cut], &mut out) {
                Ok(used) => {
                    assert!(used <= cut, "consumed only whole records of its input");
                    let _ = l.open(&rest[used..], &mut out);
                }
                Err(_) => assert!(l.open(&rest[cut..], &mut out).is_err(), "a failed layer stays failed"),
            }
        }
        3 => {
            let k = keys(KtlsCipher::Aes256Gcm);
            let (Ok(mut a), Ok(mut b)) = (GcmRecords::new(&k), GcmRecords::new(&k)) else { return };
            let mut wire = Vec::new();
            if rest.len() <= (1 << 14) + 1 && a.seal_raw(rest, &mut wire).is_ok() {
                let mut out = Vec::new();
                if b.open(&wire, &mut out).is_ok() {
                    assert!(out.len() < rest.len(), "the content type byte is never content");
                }
            }
        }
        4 => {
            let lookup: PskLookup = Arc::new(|_: &PskIdentity| ConfiguredPsk::from_key(None, &[3; 32]).ok());
            let Ok(mut hs) = Handshake::server(&lookup) else { return };
            hs.feed(rest);
            assert!(!matches!(hs.step(), Ok(Progress::Done(_))), "garbage does not establish");
        }
        _ => {
            let Ok(psk) = ConfiguredPsk::from_key(Some(PskHash::Sha256), &[5; 32]) else { return };
            let cp = ClientPsk { hostnqn: "nqn.h".into(), subnqn: "nqn.s".into(), psk };
            let Ok(mut hs) = Handshake::client(&cp) else { return };
            let _ = hs.step();
            let _ = hs.take_output();
            hs.feed(rest);
            assert!(!matches!(hs.step(), Ok(Progress::Done(_))), "garbage does not establish");
        }
    }
}
