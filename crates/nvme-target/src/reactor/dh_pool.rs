//! The DH-HMAC-CHAP workers: a few `ff-auth-dh` threads that run the Diffie-Hellman
//! exponentiations of authentication transactions (up to tens of milliseconds each for
//! ffdhe8192 in a release build, hundreds in a debug one), so the reactor that owns the queue
//! keeps serving its other connections meanwhile.
//!
//! One pool per process, started by the first job (every target in the process shares it: the work
//! is CPU-bound, more threads would only compete with the reactors). A reactor hands a job with
//! [`DhPool::submit`], which never blocks: the queue is bounded, and a full one refuses the job
//! (the caller fails that authentication). The worker hands the result to the job's reply
//! (the owning reactor's inbox and waker); a reply to a reactor or connection that is gone is
//! dropped there.

use ff_nvmf::auth::{DhDone, DhJob};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

/// Worker threads of the process-wide pool.
pub(crate) const DH_THREADS: usize = 2;
/// Jobs waiting for a worker, at most (about 2 s of ffdhe8192 work per worker in a release build;
/// beyond it authentications fail rather than wait past their timeout).
pub(crate) const DH_QUEUE: usize = 256;

/// Where a worker delivers a result.
type Reply = Box<dyn FnOnce(DhDone) + Send>;

struct Task {
    job: DhJob,
    reply: Reply,
}

/// A bounded queue of DH jobs and the threads that run them.
pub(crate) struct DhPool {
    tx: SyncSender<Task>,
}

impl DhPool {
    /// A pool of `threads` workers taking at most `capacity` waiting jobs.
    pub(crate) fn new(threads: usize, capacity: usize) -> std::io::Result<DhPool> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Task>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new().name(format!("ff-auth-dh-{i}")).spawn(move || worker(&rx))?;
        }
        Ok(DhPool { tx })
    }

    /// The process-wide pool ([`DH_THREADS`] workers, [`DH_QUEUE`] waiting jobs); `None` when
    /// its threads could not be started (then every DH authentication fails, logged).
    pub(crate) fn global() -> Option<&'static DhPool> {
        static POOL: OnceLock<Option<DhPool>> = OnceLock::new();
        POOL.get_or_init(|| match DhPool::new(DH_THREADS, DH_QUEUE) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!("cannot start the DH-HMAC-CHAP worker threads: {e}");
                None
            }
        })
        .as_ref()
    }

    /// Queues `job`; a worker runs it and calls `reply` with the result. Never blocks: with the
    /// queue full (or the workers gone) the job comes back.
    pub(crate) fn submit(&self, job: DhJob, reply: impl FnOnce(DhDone) + Send + 'static) -> Result<(), DhJob> {
        match self.tx.try_send(Task { job, reply: Box::new(reply) }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(t) | TrySendError::Disconnected(t)) => Err(t.job),
        }
    }
}

fn worker(rx: &Mutex<Receiver<Task>>) {
    loop {
        // Only workers take this lock (the reactors' side is the channel's lock-free try_send).
        let task = match rx.lock() {
            Ok(g) => g.recv(),
            Err(_) => return,
        };
        let Ok(Task { job, reply }) = task else { return };
        let group = job.group();
        let t0 = std::time::Instant::now();
        let done = job.compute();
        tracing::debug!(%group, us = t0.elapsed().as_micros() as u64, "DH computation done");
        reply(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_nvme_auth::{
        ControllerAuth, ControllerConfig, DhGroup, HashId, HostAuth, HostConfig, HostCredentials, Progress, Secret,
        SeededRandom,
    };
    use std::sync::mpsc::channel;

    const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000d1";
    const SUB: &str = "nqn.2026-12.io.ferrofabric:dhpool";

    /// A controller that has just been sent an ffdhe2048 Negotiate: its DH job.
    fn job(seed: u64) -> (ControllerAuth<SeededRandom>, DhJob) {
        let secret = Secret::generate(None, None, &mut SeededRandom::new(seed)).unwrap();
        let mut hc = HostConfig::new(HOST, SUB, Secret::parse(&secret.to_dhhc_string()).unwrap());
        hc.hashes = vec![HashId::Sha256];
        hc.dh_groups = vec![DhGroup::Ffdhe2048];
        let negotiate = HostAuth::new(Arc::new(hc), SeededRandom::new(seed)).start(1);
        let creds = HostCredentials { hostnqn: HOST.into(), secret: Some(secret), controller_secret: None };
        let mut ctrl = ControllerAuth::new(Arc::new(ControllerConfig::new(SUB)), creds, SeededRandom::new(seed));
        let Ok(Progress::Compute(j)) = ctrl.begin_message(&negotiate) else { panic!("a DH job") };
        (ctrl, j)
    }

    #[test]
    fn a_full_queue_refuses_without_blocking_and_results_come_back() {
        // No worker takes anything until the gate opens: capacity 1 holds one job, the next is refused.
        let (gate_tx, gate_rx) = channel::<()>();
        let pool = DhPool::new(1, 1).unwrap();
        let (done_tx, done_rx) = channel();
        let (mut c1, j1) = job(1);
        let (_c2, j2) = job(2);
        let (_c3, j3) = job(3);
        // The first job occupies the worker (its reply waits for the gate), the second the queue.
        let d = done_tx.clone();
        pool.submit(j1, move |r| {
            gate_rx.recv().unwrap();
            d.send(r).unwrap();
        })
        .unwrap();
        // Wait until the worker holds the first job, so the queue's one slot is free.
        let mut j2 = Some(j2);
        let d2 = done_tx.clone();
        while let Some(j) = j2.take() {
            let d = d2.clone();
            if let Err(back) = pool.submit(j, move |r| d.send(r).unwrap()) {
                j2 = Some(back);
                std::thread::yield_now();
            }
        }
        assert!(pool.submit(j3, |_| {}).is_err(), "a full queue hands the job back");
        gate_tx.send(()).unwrap();
        let first = done_rx.recv().unwrap();
        assert!(matches!(c1.finish_dh(first), Some(Ok(ff_nvme_auth::Step::Send(_)))));
        done_rx.recv().unwrap();
    }
}
