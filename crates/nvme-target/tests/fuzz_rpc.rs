//! The cargo-fuzz `rpc_request` body on stable: valid management requests with random byte mutations,
//! so many reach the methods and many are malformed in every way. Nothing may panic, and the target's
//! management must still answer afterwards.

use ff_target::fuzzing::rpc_request;

use ff_testkit::XorShift;

const SEEDS: &[&str] = &[
    r#"{"jsonrpc":"2.0","method":"nvmf_create_subsystem","params":{"nqn":"nqn.2026-12.io.f:a","allow_any_host":true,"max_namespaces":4},"id":1}"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_subsystem_add_ns","params":{"nqn":"nqn.2026-12.io.f:a","namespace":{"nsid":1,"backend":"ram","size":"1M","block_size":4096,"uuid":"6a1f8d2e-3b4c-4d5e-8f60-718293a4b5c6"}},"id":2}"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_subsystem_add_ns","params":{"nqn":"nqn.2026-12.io.f:a","namespace":{"backend":"null","size":1048576}},"id":3}"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_subsystem_resize_ns","params":{"nqn":"nqn.2026-12.io.f:a","nsid":1,"size":"2M"},"id":4}"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_subsystem_remove_ns","params":{"nqn":"nqn.2026-12.io.f:a","nsid":2},"id":5}"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_subsystem_add_host","params":{"nqn":"nqn.2026-12.io.f:a","host":"nqn.2014-08.org.nvmexpress:uuid:x"},"id":6}"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_subsystem_remove_host","params":{"nqn":"nqn.2026-12.io.f:a","host":"nqn.2014-08.org.nvmexpress:uuid:x"},"id":7}"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_subsystem_allow_any_host","params":{"nqn":"nqn.2026-12.io.f:a","allow_any_host":false},"id":8}"#,
    r#"[{"jsonrpc":"2.0","method":"nvmf_get_subsystems","id":9},{"jsonrpc":"2.0","method":"nvmf_get_stats"},{"method":"rpc_get_methods","id":"x"}]"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_subsystem_get_controllers","params":{"nqn":"nqn.2026-12.io.f:a"},"id":10}"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_disconnect_controller","params":{"cntlid":1},"id":11}"#,
    r#"{"jsonrpc":"2.0","method":"nvmf_delete_subsystem","params":{"nqn":"nqn.2026-12.io.f:a"},"id":12}"#,
];

#[test]
fn rpc_request_survives_mutated_requests() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut executed = 0;
    for seed in SEEDS {
        executed += rpc_request(seed.as_bytes());
    }
    assert_eq!(executed, SEEDS.len() + 2, "every seed is a request the fuzz body runs (the batch holds three)");
    for _ in 0..4000 {
        let mut b = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
        for _ in 0..=rng.below(4) {
            if b.is_empty() {
                break;
            }
            let at = rng.below(b.len());
            match rng.below(4) {
                0 => b[at] = rng.next_u64() as u8,
                1 => b.truncate(at),
                2 => b.insert(at, b"{}[]\",:0123456789-.eE\\u"[rng.below(22)]),
                _ => {
                    let end = (at + rng.below(16)).min(b.len());
                    let piece = b[at..end].to_vec();
                    let to = rng.below(b.len());
                    b.splice(to..to, piece);
                }
            }
        }
        rpc_request(&b);
    }
    // Management still answers a well-formed request.
    assert_eq!(rpc_request(SEEDS[8].as_bytes()), 3);
}
