//! Random bytes never panic the decoders or either state machine, in any state.

use std::sync::Arc;

use ff_nvme_auth::fuzzing::{Target, auth_message, frame};
use ff_nvme_auth::{AuthMessage, Secret, SecretError};
use proptest::prelude::*;

/// Random bytes behind a valid header, so more inputs get past the first check.
fn framed_message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just((0u8, 0u8)), Just((0, 0xF0)), Just((0, 0xF1)), (1u8..2, 1u8..5)],
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|((ty, id), t_id, body)| {
            let mut b = vec![ty, id, 0, 0];
            b.extend_from_slice(&t_id.to_le_bytes());
            b.extend_from_slice(&body);
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1200)) {
        let _ = AuthMessage::decode(&bytes);
        let _ = AuthMessage::decode_prefix(&bytes);
        let _ = AuthMessage::peek_t_id(&bytes);
        auth_message(&frame(Target::Decoder.selector(false, false), &[&bytes]));
    }

    #[test]
    fn state_machines_never_panic(
        msg in prop_oneof![framed_message(), prop::collection::vec(any::<u8>(), 0..200)],
        target in 1u8..5,
        bidi in any::<bool>(),
    ) {
        // Null group keeps the case count affordable; ffdhe2048 paths are in fuzz_body.rs.
        auth_message(&frame(target | (u8::from(bidi) << 4), &[&msg, &msg]));
    }

    #[test]
    fn secret_parser_never_panics(s in "\\PC{0,120}", tail in "[A-Za-z0-9+/=:]{0,100}") {
        let _ = Secret::parse(&s);
        let r = Secret::parse(&format!("DHHC-1:01:{tail}"));
        if let Err(e) = r {
            prop_assert!(!matches!(e, SecretError::Prefix | SecretError::HashField));
        }
    }
}

#[test]
fn arc_configs_are_shareable() {
    // The configs are meant to be shared across queue threads.
    fn send_sync<T: Send + Sync>(_: &T) {}
    let cfg = Arc::new(ff_nvme_auth::ControllerConfig::new("nqn.x"));
    send_sync(&cfg);
}
