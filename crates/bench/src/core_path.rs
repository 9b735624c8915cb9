//! `core`: the target's command path with no socket, in nanoseconds per command. N 4K read capsules go
//! through the transport core, the session and a null namespace that leaves buffers untouched, driven
//! by the socket-less driver the fuzz targets use ([`ff_target::fuzzing::io_queue_path`]), fed two ways:
//! step by step (exactly the bytes each header asks for, as a reactor without a pipe) and in place
//! (a queue depth's worth of capsules at a time, what one pipe fill holds, as `recv_in_place` does).
//!
//! At 4K QD32 on loopback the target and the host run in lock step, so this per-command user-space
//! cost sits on the critical path; unlike an end-to-end run it does not depend on TCP's timing, so
//! it is much steadier, though a shared machine still moves it between runs: compare interleaved pairs.

use crate::plain::COMMAND_BYTES;
use crate::report::{Report, Table};
use crate::stats::median;
use anyhow::{Result, ensure};
use ff_nvme::nvme::{SglDescriptor, Sqe, opcode};
use ff_nvme_tcp::{CapsuleCmd, Framing, Pdu};
use ff_target::fuzzing::{NSID_NULL_NOFILL, io_queue_path};
use serde::Serialize;
use serde_json::json;
use std::time::Instant;

/// Command ids cycle through a queue of this depth.
const QD: usize = 32;

/// Benchmark options.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Repeats per feeding style (medians over them).
    pub repeats: usize,
    /// Read commands per repeat.
    pub commands: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { repeats: 5, commands: 400_000 }
    }
}

impl Config {
    /// A smoke run.
    pub fn quick() -> Config {
        Config { repeats: 2, commands: 50_000 }
    }
}

/// `commands` 4K read capsules to the null-nofill namespace, command ids cycling through [`QD`].
pub fn read_stream(commands: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(commands * COMMAND_BYTES);
    let mut buf = [0u8; 128];
    for i in 0..commands {
        let sqe = Sqe {
            opcode: opcode::IO_READ,
            flags: 0x40,
            cid: (i % QD) as u16,
            nsid: NSID_NULL_NOFILL,
            dptr: SglDescriptor::transport(4096),
            cdw10: ((i * 8) % 2048) as u32,
            cdw12: 7,
            ..Sqe::default()
        };
        if let Ok(n) = Pdu::CapsuleCmd(CapsuleCmd { sqe }).encode_with_data(&Framing::default(), &[], &mut buf) {
            v.extend_from_slice(&buf[..n]);
        }
    }
    v
}

/// Runs the benchmark and returns its report.
pub fn run(cfg: &Config) -> Result<Report> {
    ensure!(cfg.repeats >= 1 && cfg.commands >= 1, "at least one repeat of one command");
    // In place: a host keeps at most QD capsules in flight, so a pipe fill holds at most QD of them.
    let styles = [("step by step", 0), ("in place", QD * COMMAND_BYTES)];
    let stream = read_stream(cfg.commands);
    let mut rows = Table::new(&["rep", "feeding", "commands", "ns_per_command", "reads_ok"]);
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); styles.len()];
    for rep in 0..cfg.repeats {
        for (i, &(name, window)) in styles.iter().enumerate() {
            let t = Instant::now();
            let st = io_queue_path(&stream, window);
            let per = t.elapsed().as_nanos() as f64 / cfg.commands as f64;
            // The driver's prefix adds one Connect: every read must have reached the device and succeeded.
            ensure!(
                st.device_ios == cfg.commands as u64 && st.successes == cfg.commands as u64 + 1,
                "{name}: not every read completed: {st:?}"
            );
            ns[i].push(per);
            rows.push(vec![rep.into(), name.into(), cfg.commands.into(), per.into(), st.device_ios.into()]);
        }
    }
    let mut rep = Report::new(
        "core",
        json!({"config": cfg, "path": "TargetConn + Session + null-nofill namespace, 4K reads, no socket", "qd": QD}),
    );
    let mut t = Table::new(&["feeding", "ns_per_command", "commands_per_s", "vs_step_by_step"]);
    let base = median(&ns[0]);
    let mut summary = Vec::new();
    for (i, (name, _)) in styles.iter().enumerate() {
        let m = median(&ns[i]);
        t.push(vec![(*name).into(), m.into(), (1e9 / m).into(), (base / m).into()]);
        summary.push(json!({"feeding": name, "ns_per_command": m}));
    }
    rep.medians = t;
    rep.rows = rows;
    rep.summary = json!({"medians": summary});
    rep.notes.push(
        "ns_per_command: wall time of one pass over the stream divided by its commands (median of the repeats), \
         on one thread. Includes the driver's per-step drain of outputs and device completions, as a reactor's \
         pump. vs_step_by_step: speed-up over feeding each header separately."
            .into(),
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_completes_in_both_feeding_styles() {
        let r = run(&Config { repeats: 1, commands: 200 }).unwrap();
        assert_eq!(r.medians.rows.len(), 2);
        assert_eq!(r.rows.rows.len(), 2);
    }
}
