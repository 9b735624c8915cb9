//! Primary commands through the executor: INQUIRY and VPD, MODE SENSE,
//! READ CAPACITY, REPORT LUNS, REQUEST SENSE, TEST UNIT READY, REPORT
//! SUPPORTED OPERATION CODES, the no-LUN rules and the CDB-level checks.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ff_scsi::inquiry::designator;
use ff_scsi::{Nexus, Outcome, Sense, execute, execute_no_lun};

#[test]
fn test_unit_ready_and_no_op_commands() {
    assert_eq!(run(&[0; 6], &lu()), Outcome::Good);
    assert_eq!(run(&[0x1B, 0, 0, 0, 0x01, 0], &lu()), Outcome::Good);
    assert_eq!(run(&[0x1E, 0, 0, 0, 0x01, 0], &lu()), Outcome::Good);
}

#[test]
fn inquiry_standard_and_truncation() {
    let full = data(run(&inquiry(false, 0, 260), &lu()));
    assert_eq!(full.len(), 96);
    assert_eq!(full[4] as usize, full.len() - 5);
    assert_eq!(&full[8..16], b"FERROFAB");
    // libiscsi's AllocLength walk: every length from 5 gets exactly that much.
    for n in 1..=255u16 {
        let d = data(run(&inquiry(false, 0, n), &lu()));
        assert_eq!(d.len(), usize::from(n).min(96));
        assert_eq!(d[..], full[..d.len()]);
    }
    assert_eq!(run(&inquiry(false, 0, 0), &lu()), Outcome::Good);
    assert_eq!(data(run(&inquiry(false, 0, 511), &lu())), data(run(&inquiry(false, 0, 512), &lu())));
}

#[test]
fn inquiry_field_errors() {
    // A page code without EVPD.
    let s = sense(run(&inquiry(false, 1, 256), &lu()));
    assert_eq!((s.asc, s.field.map(|f| f.byte)), (0x24, Some(2)));
    // CMDDT.
    let s = sense(run(&[0x12, 0x02, 0, 0, 255, 0], &lu()));
    assert_eq!((s.asc, s.field.map(|f| (f.byte, f.bit))), (0x24, Some((1, Some(1)))));
    // Unknown VPD page.
    assert_eq!(code(run(&inquiry(true, 0x86, 255), &lu())), INVALID_CDB);
}

#[test]
fn every_listed_vpd_page_answers_with_its_length() {
    let pages = data(run(&inquiry(true, 0, 255), &lu()));
    assert_eq!(&pages[4..], &[0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]);
    for &p in &pages[4..] {
        let d = data(run(&inquiry(true, p, 1024), &lu()));
        assert_eq!((d[0], d[1]), (0, p));
        assert_eq!(u16::from_be_bytes([d[2], d[3]]) as usize, d.len() - 4, "page {p:02x}");
    }
    let bl = data(run(&inquiry(true, 0xB0, 255), &lu()));
    assert_eq!((bl.len(), bl[3]), (64, 0x3C));
    assert_eq!(&bl[8..12], &1024u32.to_be_bytes());
    // Truncated VPD pages keep the full page length.
    let d = data(run(&inquiry(true, 0x80, 6), &lu()));
    assert_eq!(d, vec![0, 0x80, 0, 8, b'S', b'E']);
}

#[test]
fn device_identification_carries_transport_designators() {
    let mut port = designator::relative_target_port(5, 2);
    port.extend(designator::scsi_name(5, "iqn.2026-01.io.ff:t1,t,0x0001", true));
    let n = Nexus { luns: &[0], port_designators: &port, pending_sense: None };
    let d = data(execute(&inquiry(true, 0x83, 1024), &lu(), &n));
    assert_eq!(&d[4..8], &[0x01, 0x03, 0x00, 0x10]);
    assert!(d.windows(port.len()).any(|w| w == port.as_slice()));
    assert!(d.ends_with(&port));
}

#[test]
fn thin_and_thick_provisioning_reports() {
    let thick = data(run(&inquiry(true, 0xB2, 255), &lu()));
    assert_eq!(thick[5], 0);
    let bl = data(run(&inquiry(true, 0xB0, 255), &lu()));
    assert_eq!(&bl[20..28], &[0; 8]);
    let t = data(run(&inquiry(true, 0xB2, 255), &thin()));
    assert_eq!((t[5], t[6]), (0xE4, 0x02));
    let bl = data(run(&inquiry(true, 0xB0, 255), &thin()));
    assert_eq!(&bl[20..24], &2048u32.to_be_bytes());
    assert_eq!(&bl[24..28], &8u32.to_be_bytes());
    assert_eq!(data(run(&rc16(32), &thin()))[14], 0xC0);
    assert_eq!(data(run(&rc16(32), &lu()))[14], 0x00);
}

#[test]
fn read_capacity() {
    let d = data(run(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &lu()));
    assert_eq!(d, vec![0, 0, 0x27, 0x0F, 0, 0, 2, 0]);
    // PMI 0 with an LBA is invalid; PMI 1 is fine.
    assert_eq!(code(run(&[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0], &lu())), INVALID_CDB);
    assert!(matches!(run(&[0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0], &lu()), Outcome::Data(_)));
    let mut big = lu();
    big.num_blocks = 1 << 33;
    assert_eq!(&data(run(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &big))[..4], &[0xFF; 4]);
    let d = data(run(&rc16(32), &big));
    assert_eq!(&d[..8], &((1u64 << 33) - 1).to_be_bytes());
    // Allocation lengths 0..=16 are all GOOD and truncate.
    assert_eq!(run(&rc16(0), &lu()), Outcome::Good);
    for n in 1..=40u32 {
        assert_eq!(data(run(&rc16(n), &lu())).len(), n.min(32) as usize);
    }
    // Another SERVICE ACTION IN action: INVALID FIELD pointing at byte 1,
    // which libiscsi reads as "not implemented".
    let mut c = rc16(32);
    c[1] = 0x13;
    let s = sense(run(&c, &lu()));
    assert_eq!((s.asc, s.field.map(|f| f.byte)), (0x24, Some(1)));
}

#[test]
fn mode_sense_six_and_ten() {
    let d = data(run(&mode_sense6(false, 0, 0x3F, 0, 255), &lu()));
    assert_eq!(d[0] as usize, d.len() - 1);
    assert_eq!((d[2], d[3]), (0x10, 8));
    let d4 = data(run(&mode_sense6(false, 0, 0x3F, 0, 4), &lu()));
    assert_eq!(d4[..], d[..4]);
    let mut ro = lu();
    ro.read_only = true;
    assert_eq!(data(run(&mode_sense6(true, 0, 0x08, 0, 255), &ro))[2], 0x90);
    let c = data(run(&mode_sense6(true, 0, 0x0A, 0, 255), &lu()));
    assert_eq!(&c[..6], &[15, 0, 0x10, 0, 0x0A, 0x0A]);
    let d = data(run(&mode_sense10(true, false, 0, 0x08, 1000), &lu()));
    assert_eq!((d[4], d[7]), (1, 16));
    assert_eq!(&d[8..16], &BLOCKS.to_be_bytes());
    assert_eq!(&d[24..27], &[0x08, 0x12, 0x04]);
}

#[test]
fn mode_sense_errors() {
    let s = sense(run(&mode_sense6(false, 3, 0x08, 0, 255), &lu()));
    assert_eq!((s.key as u8, s.asc, s.ascq), (0x05, 0x39, 0x00));
    assert_eq!(code(run(&mode_sense6(false, 0, 0x02, 0, 255), &lu())), INVALID_CDB);
    assert_eq!(code(run(&mode_sense6(false, 0, 0x08, 0x01, 255), &lu())), INVALID_CDB);
    assert_eq!(code(run(&mode_sense10(false, false, 3, 0x3F, 255), &lu())).1, 0x39);
}

#[test]
fn request_sense() {
    let d = data(run(&[0x03, 0, 0, 0, 252, 0], &lu()));
    assert_eq!(d.len(), 18);
    assert_eq!((d[0], d[2], d[7], d[12]), (0x70, 0, 10, 0));
    let d = data(run(&[0x03, 1, 0, 0, 252, 0], &lu()));
    assert_eq!(d, vec![0x72, 0, 0, 0, 0, 0, 0, 0]);
    let n = Nexus { pending_sense: Some(Sense::write_error(9)), ..nexus() };
    let d = data(execute(&[0x03, 0, 0, 0, 8, 0], &lu(), &n));
    assert_eq!(d, vec![0xF0, 0, 0x03, 0, 0, 0, 9, 10]);
}

#[test]
fn report_luns_and_select() {
    let d = data(run(&report_luns(0, 512), &lu()));
    assert_eq!(&d[..4], &24u32.to_be_bytes());
    assert_eq!(&d[8..10], &[0, 0]);
    assert_eq!(&d[16..18], &[0, 1]);
    assert_eq!(&d[24..26], &[0, 5]);
    assert_eq!(data(run(&report_luns(0, 16), &lu())).len(), 16);
    assert_eq!(code(run(&report_luns(0, 15), &lu())), INVALID_CDB);
    assert_eq!(code(run(&report_luns(0x10, 64), &lu())), INVALID_CDB);
    assert_eq!(data(run(&report_luns(1, 64), &lu())), vec![0; 8]);
}

#[test]
fn missing_lun_rules() {
    let n = nexus();
    let d = match execute_no_lun(&inquiry(false, 0, 255), &n) {
        Outcome::Data(d) => d,
        o => panic!("{o:?}"),
    };
    assert_eq!((d[0], d.len()), (0x7F, 36));
    assert_eq!(execute_no_lun(&inquiry(true, 0, 255), &n), Outcome::Data(vec![0x7F, 0, 0, 1, 0]));
    assert_eq!(code(execute_no_lun(&inquiry(true, 0x83, 255), &n)), INVALID_CDB);
    assert_eq!(code(execute_no_lun(&[0x12, 2, 0, 0, 255, 0], &n)), INVALID_CDB);
    assert!(matches!(execute_no_lun(&report_luns(0, 512), &n), Outcome::Data(d) if d.len() == 32));
    let d = match execute_no_lun(&[0x03, 0, 0, 0, 18, 0], &n) {
        Outcome::Data(d) => d,
        o => panic!("{o:?}"),
    };
    assert_eq!((d[2], d[12], d[13]), (0x05, 0x25, 0x00));
    assert_eq!(code(execute_no_lun(&[0; 6], &n)), LUN_NOT_SUPPORTED);
    assert_eq!(code(execute_no_lun(&cdb10(0x28, 0, 0, 1), &n)), LUN_NOT_SUPPORTED);
    assert_eq!(code(execute_no_lun(&[0xC0; 16], &n)), LUN_NOT_SUPPORTED);
}

#[test]
fn cdb_level_errors() {
    assert_eq!(code(run(&[0x7F; 32], &lu())), INVALID_OPCODE);
    assert_eq!(code(run(&[0x15, 0, 0, 0, 0, 0], &lu())), INVALID_OPCODE);
    assert_eq!(code(run(&[0xC5; 16], &lu())), INVALID_OPCODE);
    assert_eq!(code(run(&[], &lu())), INVALID_OPCODE);
    // A READ (10) cut short.
    assert_eq!(code(run(&[0x28, 0, 0, 0], &lu())), INVALID_OPCODE);
    // NACA and LINK in the control byte.
    let s = sense(run(&[0, 0, 0, 0, 0, 0x04], &lu()));
    assert_eq!((s.asc, s.field.map(|f| (f.byte, f.bit))), (0x24, Some((5, Some(2)))));
    let mut c = cdb16(0x88, 0, 0, 1);
    c[15] = 0x01;
    assert_eq!(sense(run(&c, &lu())).field.map(|f| (f.byte, f.bit)), Some((15, Some(0))));
    // Unsupported MAINTENANCE IN action.
    let mut c = rsoc(false, 0, 0, 0, 512);
    c[1] = 0x0A;
    assert_eq!(sense(run(&c, &lu())).field.map(|f| f.byte), Some(1));
    // Invalid opcode sense points at byte 0.
    let s = sense(run(&[0x15, 0, 0, 0, 0, 0], &lu()));
    assert_eq!(s.field.map(|f| (f.in_cdb, f.byte)), Some((true, 0)));
}

#[test]
fn report_supported_opcodes_matches_the_executor() {
    let all = data(run(&rsoc(false, 0, 0, 0, 65535), &thin()));
    let n = u32::from_be_bytes([all[0], all[1], all[2], all[3]]) as usize;
    assert_eq!(n, all.len() - 4);
    for d in all[4..].chunks(8) {
        let (op, sa, servactv) = (d[0], u16::from_be_bytes([d[2], d[3]]), d[5] & 1 != 0);
        let opts = if servactv { 2 } else { 1 };
        let one = data(run(&rsoc(false, opts, op, sa, 65535), &thin()));
        assert_eq!(one[1] & 0x07, 3, "{op:02x}");
        let len = u16::from_be_bytes([one[2], one[3]]) as usize;
        assert_eq!(one[4], op);
        assert_eq!(len, one.len() - 4);
        // The wrong form for this opcode is an invalid field.
        let wrong = if servactv { 1 } else { 2 };
        assert_eq!(code(run(&rsoc(false, wrong, op, sa, 65535), &thin())), INVALID_CDB);
        // A CDB with only the opcode (and service action) set must not be
        // an invalid opcode for any command that is listed.
        let mut cdb = vec![0u8; len];
        cdb[0] = op;
        if servactv {
            cdb[1] = sa as u8;
        }
        if let Outcome::Check(s) = run(&cdb, &thin()) {
            assert_ne!(s.asc, 0x20, "{op:02x} listed but rejected");
        }
    }
    // DPO/FUA usage bits are reported, as DPOFUA is set in MODE SENSE.
    let one = data(run(&rsoc(false, 1, 0x2A, 0, 64), &lu()));
    assert_eq!(one[5] & 0x18, 0x18);
    let one = data(run(&rsoc(false, 1, 0x2F, 0, 64), &lu()));
    assert_eq!(one[5] & 0x10, 0x10);
    // RCTD adds 12-byte timeouts descriptors with length 0Ah.
    let all = data(run(&rsoc(true, 0, 0, 0, 65535), &lu()));
    for d in all[4..].chunks(20) {
        assert_eq!(d[5] & 0x02, 0x02);
        assert_eq!(&d[8..10], &[0, 0x0A]);
    }
    assert_eq!(data(run(&rsoc(false, 0, 0, 0, 10), &lu())).len(), 10);
    assert_eq!(code(run(&rsoc(false, 5, 0, 0, 64), &lu())), INVALID_CDB);
}
