//! Property tests: no SQE, however malformed, panics a handler.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use ff_nvme::nvme::{SQE_LEN, Sqe};
use ff_nvmf::io::IoLimits;
use ff_nvmf::{Connected, Limits, parse_dsm_ranges, validate};
use proptest::prelude::*;

fn sqe_from(bytes: &[u8]) -> Sqe {
    let mut b = [0u8; SQE_LEN];
    b.copy_from_slice(&bytes[..SQE_LEN]);
    Sqe::decode(&b)
}

/// Bias toward interesting opcodes so the deep paths get exercised.
fn biased_sqe() -> impl Strategy<Value = Sqe> {
    (
        proptest::collection::vec(any::<u8>(), SQE_LEN),
        prop_oneof![
            Just(0x02u8),
            Just(0x06),
            Just(0x08),
            Just(0x09),
            Just(0x0A),
            Just(0x0C),
            Just(0x18),
            Just(0x7F),
            Just(0x00),
            Just(0x01),
            Just(0x08),
            any::<u8>()
        ],
        prop_oneof![Just(0x40u8), any::<u8>()],
        prop_oneof![Just(0u32), Just(1), Just(4), Just(5), any::<u32>()],
    )
        .prop_map(|(bytes, op, flags, nsid)| Sqe { opcode: op, flags, nsid, ..sqe_from(&bytes) })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn admin_handler_never_panics(sqes in proptest::collection::vec(biased_sqe(), 1..12)) {
        let t = target();
        let now = Instant::now();
        let mut c = connect_admin(&t, now);
        enable(&mut c);
        for (i, s) in sqes.iter().enumerate() {
            let _ = c.handle_admin(s, now + Duration::from_millis(i as u64));
            while c.poll_async().is_some() {}
        }
        let _ = c.keep_alive_expired(now);
    }

    #[test]
    fn discovery_admin_never_panics(sqes in proptest::collection::vec(biased_sqe(), 1..8)) {
        let t = target();
        let mut c = connect_admin_to(&t, ff_nvmf::DISCOVERY_NQN, 0, Instant::now());
        enable(&mut c);
        for s in &sqes {
            let _ = c.handle_admin(s, Instant::now());
        }
    }

    #[test]
    fn io_validate_never_panics(s in biased_sqe(), mdts in proptest::option::of(0u64..(1 << 24)), icd in any::<u32>()) {
        let t = target();
        let mut c = connect_admin(&t, Instant::now());
        enable(&mut c);
        let mut q = connect_io(&t, c.cntlid(), 1, 31).unwrap();
        let _ = q.validate(&s);
        let _ = q.handle_fabrics(&s);
        let table: ff_nvmf::NamespaceTable = Default::default();
        let _ = validate(&s, &table, &IoLimits { mdts_bytes: mdts, icd_bytes: icd });
    }

    #[test]
    fn connect_never_panics(s in biased_sqe(), data in proptest::collection::vec(any::<u8>(), 0..1100), qid in 0u16..4) {
        let t = target_with(Limits { max_connections: 8, ..Limits::default() });
        let mut s = s;
        s.opcode = 0x7F;
        s.nsid = 1;
        s.cdw10 = (s.cdw10 & 0xFFFF) | (u32::from(qid) << 16);
        let _ = t.connect(&s, &data, Instant::now());
        // And a well-formed one with random fields.
        let d = connect_data(SUB, HOST, (s.cdw13 & 0xFFFF) as u16, HOSTID);
        if let Connected::Admin { controller, .. } = t.connect(&s, &d, Instant::now()) {
            drop(controller);
        }
    }

    #[test]
    fn dsm_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4200), count in any::<u16>(), blocks in any::<u64>()) {
        let _ = parse_dsm_ranges(&data, count, blocks);
    }
}
