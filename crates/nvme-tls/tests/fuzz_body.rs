//! The fuzz body (`fuzzing::tls_input`) on random and on mutated valid inputs: a stable stand-in for
//! the cargo-fuzz target `tls_input`, so "no panic on network input" is checked by `cargo test`.

use ff_nvme_tls::fuzzing::tls_input;
use ff_nvme_tls::psk::{ConfiguredPsk, PskHash};
use ff_nvme_tls::{ClientPsk, Handshake};
use proptest::prelude::*;

/// A real ClientHello record from our host engine.
fn client_hello() -> Vec<u8> {
    let psk = ConfiguredPsk::from_key(Some(PskHash::Sha256), &[5; 32]).unwrap();
    let mut hs = Handshake::client(&ClientPsk { hostnqn: "nqn.h".into(), subnqn: "nqn.s".into(), psk }).unwrap();
    let _ = hs.step();
    hs.take_output()
}

fn with(sel: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![sel];
    v.extend_from_slice(body);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        tls_input(&data);
    }

    #[test]
    fn mutated_psk_strings(at in 0usize..100, byte in any::<u8>()) {
        let mut s = ConfiguredPsk::generate(PskHash::Sha384).encode().into_bytes();
        let i = at % s.len();
        s[i] = byte;
        tls_input(&with(0, &s));
    }

    #[test]
    fn mutated_identities(at in 0usize..40, byte in any::<u8>()) {
        let mut s = b"NVMe1R02 nqn.host nqn.sub abcd".to_vec();
        let i = at % s.len();
        s[i] = byte;
        tls_input(&with(1, &s));
    }

    #[test]
    fn inner_plaintexts(inner in proptest::collection::vec(prop_oneof![Just(0u8), Just(4), Just(21), Just(22), Just(23), Just(24), any::<u8>()], 0..64)) {
        tls_input(&with(3, &inner));
    }

    #[test]
    fn mutated_client_hellos(at in 0usize..2000, byte in any::<u8>(), cut in 0usize..2000) {
        let mut ch = client_hello();
        let i = at % ch.len();
        ch[i] = byte;
        ch.truncate(cut.max(1).min(ch.len()));
        tls_input(&with(4, &ch));
    }
}
