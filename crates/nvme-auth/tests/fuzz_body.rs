//! The cargo-fuzz body (`fuzzing::auth_message`) on stable: every valid message of real
//! exchanges, then deterministic mutations of them (bit flips, overwritten bytes, truncation,
//! extension) fed to the decoder and to the side that would receive them.

use ff_nvme_auth::fuzzing::{Target, auth_message, frame, valid_exchange};

/// Which side receives message `i` of an exchange, and in which state.
fn receiver(i: usize) -> Target {
    match i {
        0 => Target::FreshController,
        1 => Target::HostAwaitingChallenge,
        2 => Target::ControllerAwaitingReply,
        3 => Target::HostAwaitingSuccess1,
        // Success2 goes to the controller; from a fresh one it is out of order.
        _ => Target::FreshController,
    }
}

fn mutations(msg: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![msg.to_vec()];
    // Header and fixed fields byte by byte; the long tails (challenge, DH value) sparsely.
    let positions: Vec<usize> = (0..msg.len()).filter(|&i| i < 20 || i % 37 == 0 || i + 1 == msg.len()).collect();
    for &i in &positions {
        for v in [msg[i] ^ 0x01, msg[i] ^ 0x80, 0x00, 0xFF] {
            let mut m = msg.to_vec();
            m[i] = v;
            out.push(m);
        }
    }
    for len in [0, 1, 5, 6, 7, 8, 15, 16, 17, msg.len() / 2, msg.len().saturating_sub(1)] {
        out.push(msg[..len.min(msg.len())].to_vec());
    }
    let mut longer = msg.to_vec();
    longer.extend_from_slice(&[0xAB; 9]);
    out.push(longer);
    out
}

#[test]
fn fuzz_body_survives_mutated_valid_messages() {
    let mut runs = 0;
    for (dh, bidi) in [(false, false), (false, true), (true, true)] {
        let exchange = valid_exchange(dh, bidi);
        assert_eq!(exchange.len(), if bidi { 5 } else { 4 });
        for (i, msg) in exchange.iter().enumerate() {
            for m in mutations(msg) {
                auth_message(&frame(Target::Decoder.selector(dh, bidi), &[&m]));
                // DH makes every state-machine run a key generation: sample those.
                if !dh || runs % 8 == 0 {
                    auth_message(&frame(receiver(i).selector(dh, bidi), &[&m]));
                }
                runs += 1;
            }
        }
        // The whole valid sequence replayed to each receiver, and garbage framing.
        for t in [
            Target::FreshController,
            Target::ControllerAwaitingReply,
            Target::HostAwaitingChallenge,
            Target::HostAwaitingSuccess1,
        ] {
            let all: Vec<&[u8]> = exchange.iter().map(Vec::as_slice).collect();
            auth_message(&frame(t.selector(dh, bidi), &all));
        }
    }
    auth_message(&[]);
    auth_message(&[0xFF]);
    auth_message(&[0x02, 0xFF, 0xFF, 1, 2, 3]);
    assert!(runs > 1000, "{runs}");
}
