//! [`run`] over iSCSI: a setup session waits for the logical unit (TEST UNIT READY), learns its size
//! (READ CAPACITY(16)) and logs out; then every thread logs in one session per queue it drives, each
//! with its own ISID, and the load runs as for NVMe/TCP.

use crate::config::{IscsiTarget, PerfConfig};
use crate::worker::QueueSet;
use crate::{PerfError, PerfReport, Unit, launch};
use ff_initiator::iscsi::{IscsiHost, IscsiOptions, random_isid};
use ff_sock::Backend;

/// The session options of this run (a fresh ISID each call).
fn options(cfg: &PerfConfig, t: &IscsiTarget) -> IscsiOptions {
    IscsiOptions {
        initiator_name: t.initiator.clone(),
        target_name: Some(t.target.clone()),
        isid: random_isid(),
        chap: t.chap.clone(),
        header_digest: cfg.hdgst,
        data_digest: cfg.ddgst,
        ..IscsiOptions::default()
    }
}

pub(crate) fn run(cfg: &PerfConfig, t: &IscsiTarget) -> Result<PerfReport, PerfError> {
    let mut setup_group = cfg.group.clone();
    if setup_group.backend == Backend::Uring {
        setup_group.backend = Backend::Epoll;
    }
    let mut h = IscsiHost::connect_with(cfg.addr, options(cfg, t), &setup_group, cfg.command_timeout)?;
    h.wait_ready(t.lun)?;
    let cap = h.read_capacity(t.lun)?;
    if let Err(e) = h.logout() {
        tracing::warn!("setup session logout: {e}");
    }
    let bs = cap.block_size as usize;
    if !cfg.io_size.is_multiple_of(bs) || u32::try_from(cfg.io_size / bs).is_err() {
        return Err(PerfError::Invalid(format!(
            "I/O size {} is not a whole number of LUN {}'s {bs} B blocks",
            cfg.io_size, t.lun
        )));
    }
    let range = cfg.size.map_or(cap.bytes(), |s| s.min(cap.bytes()));
    let slots = range / cfg.io_size as u64;
    let nq = usize::from(cfg.queues);
    let cores = cfg.cores.min(nq);
    if slots < cores as u64 {
        return Err(PerfError::Invalid(format!(
            "{range} bytes hold {slots} I/Os of {} B: fewer than the {cores} threads",
            cfg.io_size
        )));
    }
    // Thread `i` logs in a contiguous run of sessions, numbered from 1 over the whole run.
    let sets = (0..cores)
        .map(|i| {
            let (lo, hi) = (nq * i / cores, nq * (i + 1) / cores);
            QueueSet::Iscsi {
                addr: cfg.addr,
                sessions: (lo..hi).map(|_| options(cfg, t)).collect(),
                first_qid: lo as u16 + 1,
            }
        })
        .collect();
    let unit =
        Unit { transport: "iscsi", name: t.target.clone(), id: u32::from(t.lun), block_size: bs, slots, queues: nq };
    launch(cfg, &unit, sets)
}
