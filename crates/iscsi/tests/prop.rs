//! Property tests: random bytes into the decoder and the connection core never panic and never
//! depend on how the stream is cut; typed headers round-trip; random write shapes reassemble.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

mod common;
use common::*;
use ff_iscsi::conn::{ConnConfig, TargetConn};
use ff_iscsi::decoder::{Decoder, DecoderConfig, Need};
use ff_iscsi::pdu::{DataIn, Pdu, R2t, Residual, ScsiCommand, SeqNums};
use ff_iscsi::{Digests, Limits};
use proptest::prelude::*;

/// Every finished frame (header bytes and data digest verdict) or the fatal error.
fn frames(bytes: &[u8], cfg: DecoderConfig, chunks: &[usize]) -> Vec<String> {
    let mut dec = Decoder::new(cfg);
    let mut out = Vec::new();
    let (mut off, mut i) = (0, 0);
    loop {
        match dec.next_need() {
            Need::Done => {
                let f = dec.finish().unwrap();
                out.push(format!("{:?} {:?}", f.header.pdu, f.data_digest));
            }
            Need::Closed => {
                out.push(format!("closed {:?}", dec.error()));
                return out;
            }
            _ => {
                if off >= bytes.len() {
                    return out;
                }
                let n = chunks[i % chunks.len()].min(bytes.len() - off);
                i += 1;
                match dec.feed(&bytes[off..off + n]) {
                    Ok(u) => off += u,
                    Err(e) => {
                        assert!(e.is_fatal());
                        out.push(format!("closed {:?}", Some(e)));
                        return out;
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoder_is_cut_independent(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        hd in any::<bool>(), dd in any::<bool>(),
        chunks in proptest::collection::vec(1usize..300, 1..8),
    ) {
        let cfg = DecoderConfig { max_data_len: 1024, header_digest: hd, data_digest: dd };
        let whole = frames(&bytes, cfg, &[usize::MAX]);
        let cut = frames(&bytes, cfg, &chunks);
        prop_assert_eq!(whole, cut);
    }

    #[test]
    fn random_bytes_into_a_new_connection(bytes in proptest::collection::vec(any::<u8>(), 0..3000), chunk in 1usize..600) {
        let mut c: TargetConn<Vec<u8>> = TargetConn::new(ConnConfig::new(portal_with(Limits::default())));
        drive_with(&mut c, &bytes, chunk, &mut Heap);
        if c.is_closed() {
            prop_assert_eq!(c.feed(&[0; 48], &mut Heap), 0);
        }
    }

    #[test]
    fn random_pdus_into_full_feature_phase(
        seeds in proptest::collection::vec((0u8..0x40, any::<[u8; 47]>(), 0usize..600), 1..6),
        chunk in 1usize..700,
    ) {
        // Headers with random fields but a plausible opcode and length, so they get past framing.
        let mut bytes = Vec::new();
        for (op, rest, dlen) in seeds {
            let mut h = vec![op];
            h.extend_from_slice(&rest);
            h[4] = 0;
            h[5] = 0;
            h[6] = (dlen >> 8) as u8;
            h[7] = dlen as u8;
            bytes.extend_from_slice(&h);
            bytes.extend(std::iter::repeat_n(0xa5, (dlen + 3) & !3));
        }
        let mut c = ffp(portal_with(Limits::default()), &[("InitialR2T", "No")]);
        let outs = drive_with(&mut c, &bytes, chunk, &mut Heap);
        for o in outs {
            if let ff_iscsi::TargetOutput::Command(cmd) = o {
                c.complete(cmd.itt, ff_iscsi::Completion::with_data(vec![1; 100]));
            }
        }
        drain(&mut c);
    }

    #[test]
    fn typed_headers_round_trip(
        itt in any::<u32>(), sn in any::<(u32, u32, u32)>(), off in any::<u32>(), len in any::<u32>(),
        flags in any::<(bool, bool, bool)>(), res in 0u8..3, count in any::<u32>(), cdb in any::<[u8; 16]>(),
    ) {
        let sn = SeqNums { stat_sn: sn.0, exp_cmd_sn: sn.1, max_cmd_sn: sn.2 };
        let residual = match res { 0 => Residual::None, 1 => Residual::Overflow(count), _ => Residual::Underflow(count) };
        let pdus = [
            Pdu::ScsiCommand(ScsiCommand {
                immediate: flags.0, final_bit: flags.1, read: flags.2, write: !flags.2, attr: 2, lun: u64::from(off) << 16,
                itt, edtl: len, cmd_sn: sn.stat_sn, exp_stat_sn: sn.exp_cmd_sn, cdb,
            }),
            Pdu::DataIn(DataIn {
                final_bit: true, ack: false, status: flags.0.then_some(2), residual: if flags.0 { residual } else { Residual::None },
                lun: 0, itt, ttt: len, sn, data_sn: off, offset: len,
            }),
            Pdu::R2t(R2t { lun: 1, itt, ttt: len, sn, r2t_sn: off, offset: off, desired_len: len }),
        ];
        for p in pdus {
            let dlen = if matches!(p, Pdu::R2t(_)) { 0 } else { len & 0xff_ffff };
            let b = p.encode(0, dlen).unwrap();
            prop_assert_eq!(Pdu::decode(&b).unwrap(), p);
        }
    }

    #[test]
    fn writes_reassemble(
        edtl in 1u32..70_000, imm in 0u32..20_000, burst in 512u32..20_000, seg in 512u32..9000,
        r2ts in 1u16..4, unsolicited in any::<bool>(), chunk in 1usize..5000,
    ) {
        let fbl = 16_384u32;
        let mbl = burst.max(fbl);
        let pairs = [
            ("InitialR2T", if unsolicited { "No" } else { "Yes" }),
            ("FirstBurstLength", "16384"),
            ("MaxBurstLength", &mbl.to_string()),
            ("MaxOutstandingR2T", &r2ts.to_string()),
        ];
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, &**v)).collect();
        let mut c = ffp(portal_with(Limits::default()), &pairs);
        let data = pattern(edtl as usize, 11);
        let mut ini = Ini::new(Digests::default());
        let imm = imm.min(edtl).min(fbl).min(8192);
        let unsol_end = if unsolicited { fbl.min(edtl) } else { imm };
        let more_unsol = unsolicited && imm < unsol_end;
        let mut bytes = ini.cmd(1, false, true, edtl, !more_unsol, &data[..imm as usize]);
        if more_unsol {
            let (mut off, mut dsn) = (imm, 0);
            while off < unsol_end {
                let n = seg.min(8192).min(unsol_end - off);
                bytes.extend(ini.data_out(1, u32::MAX, dsn, off, off + n == unsol_end, &data[off as usize..(off + n) as usize]));
                off += n;
                dsn += 1;
            }
        }
        let mut outs = drive_with(&mut c, &bytes, chunk, &mut Heap);
        let mut cmds = Vec::new();
        let mut guard = 0;
        loop {
            let pending: Vec<R2t> = sent(&outs).into_iter().filter_map(|s| match s.pdu { Pdu::R2t(r) => Some(r), _ => None }).collect();
            cmds.extend(commands(std::mem::take(&mut outs)));
            if pending.is_empty() {
                break;
            }
            prop_assert!(pending.len() <= usize::from(r2ts));
            for r in pending {
                prop_assert!(r.desired_len <= mbl);
                let (mut off, mut dsn) = (r.offset, 0);
                let end = r.offset + r.desired_len;
                let mut b = Vec::new();
                while off < end {
                    let n = seg.min(8192).min(end - off);
                    b.extend(ini.data_out(1, r.ttt, dsn, off, off + n == end, &data[off as usize..(off + n) as usize]));
                    off += n;
                    dsn += 1;
                }
                outs.extend(drive_with(&mut c, &b, chunk, &mut Heap));
            }
            guard += 1;
            prop_assert!(guard < 1000);
        }
        prop_assert_eq!(cmds.len(), 1);
        prop_assert_eq!(cmds[0].data.as_deref(), Some(&data[..]));
    }
}
