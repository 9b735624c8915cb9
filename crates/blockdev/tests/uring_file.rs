//! The file backend on a socket group's io_uring ring: a reactor-like loop drives a
//! `SockGroup<Vec<u8>>` on `Backend::Uring` plus an attached file handle, moving the handle's SQEs onto
//! the group's ring and its CQE results back. Read-after-write, FUA, flush, range errors, short I/O
//! (provoked by rewriting results, and by a file shrunk behind our back), RWF_DSYNC refusal, errors, and
//! 64 requests of 4K-128K in flight with data verified. Skips loudly where io_uring is unavailable.

mod common;

use common::{TempPath, pattern};
use ff_blockdev::{BlockDev, FileDev, FileHandle, FileOpts, IoBuf, IoDone, IoError, IoReq, UringSqe};
use ff_sock::{Backend, GroupOptions, SockGroup};
use std::time::{Duration, Instant};

const BS: u32 = 4096;

/// A reactor in miniature: one uring group, one attached file handle, and a hook that may rewrite a
/// CQE result before the handle sees it (to provoke short transfers and errors).
struct Rig {
    group: SockGroup<Vec<u8>>,
    h: FileHandle,
    sqes: Vec<(UringSqe, u64)>,
    cqes: Vec<(u64, i32)>,
    /// Most foreign requests seen in flight at once.
    max_in_flight: usize,
    /// (token, result) -> result the handle gets.
    hook: Box<dyn FnMut(i32) -> i32>,
    _file: TempPath,
}

impl Rig {
    /// None (after a SKIP line) when io_uring is unavailable here.
    fn new(name: &str, size: u64) -> Option<(Rig, FileDev)> {
        let group =
            SockGroup::<Vec<u8>>::new(GroupOptions { backend: Backend::Uring, ..Default::default() }).expect("group");
        if group.backend() != Backend::Uring {
            eprintln!("SKIP: {name}: io_uring unavailable: {:?}", group.backend_fallback());
            return None;
        }
        let file = TempPath::new("/tmp", name);
        let dev = FileDev::open(&file.0, FileOpts { size: Some(size), block_size: Some(BS) }).expect("open");
        let mut h = dev.handle();
        assert!(h.attach_uring(), "the file handle attaches to a ring");
        let rig =
            Rig { group, h, sqes: Vec::new(), cqes: Vec::new(), max_in_flight: 0, hook: Box::new(|r| r), _file: file };
        Some((rig, dev))
    }

    /// One loop iteration: SQEs onto the ring, one poll (one enter), results back, completions out.
    fn turn(&mut self, out: &mut Vec<IoDone>) {
        self.h.take_sqes(&mut self.sqes);
        for (e, tok) in self.sqes.drain(..) {
            // SAFETY: the entry points at a buffer the handle owns and keeps until `complete(tok)`, called
            // below only after the group handed the CQE out; the handle leaks it if dropped earlier, and
            // the group (declared first in Rig) is dropped, waiting for its ring, before the handle.
            unsafe { self.group.push_foreign(e, tok) }.expect("push_foreign");
        }
        self.max_in_flight = self.max_in_flight.max(self.group.foreign_in_flight());
        let mut events = Vec::new();
        self.group.poll(Some(Duration::from_millis(100)), &mut events).expect("poll");
        assert!(events.is_empty(), "no socket, no event");
        self.group.take_foreign_completions(&mut self.cqes);
        for (tok, res) in self.cqes.drain(..) {
            let res = (self.hook)(res);
            self.h.complete(tok, res);
        }
        self.h.poll(out);
    }

    /// Submits `reqs` together and drives until every one completed; completions in tag order.
    fn run_all(&mut self, reqs: Vec<IoReq>) -> Vec<IoDone> {
        let n = reqs.len();
        for r in reqs {
            self.h.submit(r).expect("submit");
        }
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while out.len() < n {
            assert!(Instant::now() < deadline, "I/O on the ring did not complete");
            self.turn(&mut out);
        }
        assert_eq!(self.h.pending(), 0);
        assert_eq!(self.group.foreign_in_flight(), 0);
        out.sort_by_key(|d| d.tag);
        out
    }

    fn run(&mut self, req: IoReq) -> IoDone {
        self.run_all(vec![req]).pop().unwrap()
    }

    fn write(&mut self, lba: u64, buf: IoBuf, fua: bool) {
        let blocks = (buf.len() / BS as usize) as u32;
        let d = self.run(IoReq::write(1, lba, blocks, buf, fua));
        d.result.expect("write");
        assert!(d.buf.is_some(), "write buffer handed back");
    }

    fn read(&mut self, lba: u64, blocks: u32) -> IoBuf {
        let d = self.run(IoReq::read(2, lba, blocks, IoBuf::new((BS * blocks) as usize)));
        d.result.expect("read");
        d.buf.expect("read buffer handed back")
    }
}

#[test]
fn uring_file_read_after_write_fua_flush_and_ranges() {
    let Some((mut r, dev)) = Rig::new("uring-raw", 8 << 20) else { return };
    let n = r.h.info().num_blocks;
    for (lba, seed, fua) in [(0, 1, false), (8, 2, true), (n - 4, 3, false)] {
        r.write(lba, pattern(BS, 4, seed), fua);
        assert!(r.read(lba, 4)[..] == pattern(BS, 4, seed)[..], "read after write at lba {lba}");
    }
    let s = r.h.stats();
    assert_eq!((s.reads, s.writes, s.dsync_writes, s.errors), (3, 3, 1, 0));
    // FUA: RWF_DSYNC on the write SQE itself, no separate sync.
    assert_eq!(s.fsyncs, 0);
    // The FUA data is in the file (read through another descriptor).
    let bytes = std::fs::read(&r._file.0).unwrap();
    assert!(bytes[8 * BS as usize..12 * BS as usize] == pattern(BS, 4, 2)[..]);

    // Flush is FSYNC(DATASYNC) on the ring.
    r.run(IoReq::flush(3)).result.expect("flush");
    let s = r.h.stats();
    assert_eq!((s.flushes, s.fsyncs), (1, 1));

    // Range and length errors complete at once, without touching the ring.
    let sqes_before = r.h.stats().uring_sqes;
    let d = r.run(IoReq::read(4, n - 1, 2, IoBuf::new(2 * BS as usize)));
    assert_eq!(d.result, Err(IoError::OutOfRange { lba: n - 1, blocks: 2 }));
    assert!(d.buf.is_some());
    let d = r.run(IoReq::write(5, u64::MAX, 1, IoBuf::new(BS as usize), true));
    assert!(matches!(d.result, Err(IoError::OutOfRange { .. })));
    let d = r.run(IoReq::write(6, 0, 2, IoBuf::new(BS as usize), false));
    assert!(matches!(d.result, Err(IoError::BufferLength { expected: 8192, actual: 4096 })));
    assert_eq!(r.h.stats().uring_sqes, sqes_before);

    // WriteZeroes and Deallocate stay synchronous and still work beside the ring.
    r.run(IoReq::write_zeroes(7, 0, 4, true)).result.expect("write zeroes");
    assert!(r.read(0, 4).iter().all(|&x| x == 0));

    let s = r.h.stats();
    assert_eq!(s.errors, 3);
    // Every read, write and flush went through the ring, one SQE each, and the group carried them.
    assert_eq!(s.uring_ios, s.reads + s.writes + s.flushes);
    assert_eq!(s.uring_sqes, s.uring_ios);
    let fc = r.group.foreign_counts();
    assert_eq!((fc.sqes, fc.cqes), (s.uring_sqes, s.uring_sqes));
    eprintln!("uring file: {s:?}, group foreign {fc:?}, enters {}", r.group.counters().uring_enters);
    drop(dev);
}

#[test]
fn uring_file_64_in_flight_4k_to_128k_verified() {
    let Some((mut r, _dev)) = Rig::new("uring-many", 16 << 20) else { return };
    // 64 requests of 4K..128K (1..32 blocks) at disjoint places.
    let mut layout = Vec::new();
    let mut lba = 0u64;
    for i in 0..64u32 {
        let blocks = 1 + (i * 7 + 3) % 32;
        layout.push((lba, blocks, i as u8));
        lba += u64::from(blocks) + (i % 3) as u64;
    }
    assert!(lba <= r.h.info().num_blocks);
    let enters0 = r.group.counters().uring_enters;
    let writes = layout
        .iter()
        .enumerate()
        .map(|(i, &(lba, blocks, seed))| IoReq::write(i as u64, lba, blocks, pattern(BS, blocks, seed), i % 5 == 0))
        .collect();
    for d in r.run_all(writes) {
        d.result.expect("write");
    }
    let reads = layout
        .iter()
        .enumerate()
        .map(|(i, &(lba, blocks, _))| IoReq::read(i as u64, lba, blocks, IoBuf::new((BS * blocks) as usize)))
        .collect();
    for (d, &(_, blocks, seed)) in r.run_all(reads).into_iter().zip(&layout) {
        d.result.expect("read");
        assert!(d.buf.unwrap()[..] == pattern(BS, blocks, seed)[..], "data of request {}", d.tag);
    }
    let s = r.h.stats();
    assert_eq!((s.writes, s.reads, s.uring_ios, s.errors), (64, 64, 128, 0));
    assert_eq!(r.max_in_flight, 64, "all 64 requests were on the ring together");
    // Batched: all 64 were on the ring together (asserted above). How many enters the waiting took
    // depends on scheduling, so it is reported, not asserted.
    let enters = r.group.counters().uring_enters - enters0;
    eprintln!("{enters} io_uring_enter calls for 128 requests");
    eprintln!("64 in flight: {s:?}, {enters} enters");
}

#[test]
fn uring_file_short_transfers_are_resubmitted() {
    let Some((mut r, _dev)) = Rig::new("uring-short", 4 << 20) else { return };
    // The first completion of each request claims half its bytes: the handle must send the rest.
    let mut first = true;
    r.hook = Box::new(move |res| if res > 0 && std::mem::take(&mut first) { res / 2 } else { res });
    r.write(16, pattern(BS, 8, 5), false);
    assert_eq!(r.h.stats().short_ios, 1);
    let mut first = true;
    r.hook = Box::new(move |res| if res > 0 && std::mem::take(&mut first) { 4096 } else { res });
    assert!(r.read(16, 8)[..] == pattern(BS, 8, 5)[..]);
    let s = r.h.stats();
    assert_eq!((s.short_ios, s.uring_ios, s.errors), (2, 2, 0));
    assert_eq!(s.uring_sqes, 4, "one resubmission each");

    // A file shrunk behind our back: the read comes back short, then empty: EIO, clearly.
    r.hook = Box::new(|res| res);
    std::fs::OpenOptions::new().write(true).open(&r._file.0).unwrap().set_len(2 << 20).unwrap();
    let lba = (2 << 20) / u64::from(BS) - 2;
    let d = r.run(IoReq::read(9, lba, 4, IoBuf::new(4 * BS as usize)));
    assert_eq!(d.result, Err(IoError::Io(libc::EIO)));
    assert!(d.buf.is_some());
    assert_eq!(r.h.stats().short_ios, 3);
}

#[test]
fn uring_file_errors_and_rwf_dsync_refusal() {
    let Some((mut r, _dev)) = Rig::new("uring-err", 4 << 20) else { return };
    // A device error maps to IoError::Io with its errno; the buffer comes back.
    r.hook = Box::new(|_| -libc::EIO);
    let d = r.run(IoReq::write(1, 0, 1, pattern(BS, 1, 1), false));
    assert_eq!(d.result, Err(IoError::Io(libc::EIO)));
    assert!(d.buf.is_some());
    let d = r.run(IoReq::flush(2));
    assert_eq!(d.result, Err(IoError::Io(libc::EIO)));
    assert_eq!(r.h.stats().errors, 2);

    // EINTR is retried.
    let mut once = true;
    r.hook = Box::new(move |res| if std::mem::take(&mut once) { -libc::EINTR } else { res });
    r.write(2, pattern(BS, 2, 2), false);

    // A kernel that refuses RWF_DSYNC: FUA becomes write + FSYNC(DATASYNC), completed after the sync.
    let mut once = true;
    r.hook = Box::new(move |res| if std::mem::take(&mut once) { -libc::EOPNOTSUPP } else { res });
    let before = r.h.stats();
    r.write(4, pattern(BS, 2, 3), true);
    let s = r.h.stats();
    assert_eq!((s.fsyncs - before.fsyncs, s.dsync_writes - before.dsync_writes), (1, 0));
    // Learned: the next FUA write syncs separately at once.
    r.hook = Box::new(|res| res);
    r.write(6, pattern(BS, 2, 4), true);
    assert_eq!(r.h.stats().fsyncs - before.fsyncs, 2);
    assert!(r.read(2, 6)[..2 * BS as usize] == pattern(BS, 2, 2)[..]);
}

#[test]
fn file_handle_without_a_ring_stays_synchronous() {
    // An epoll group carries no foreign request; an unattached handle never prepares one.
    let mut g = SockGroup::<Vec<u8>>::new(GroupOptions { backend: Backend::Epoll, ..Default::default() }).unwrap();
    let e = io_uring::opcode::Nop::new().build();
    // SAFETY: a no-op points at no memory.
    let err = unsafe { g.push_foreign(e, 1) }.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    let file = TempPath::new("/tmp", "uring-sync");
    let dev = FileDev::open(&file.0, FileOpts { size: Some(1 << 20), block_size: Some(BS) }).unwrap();
    let mut h = dev.handle();
    h.submit(IoReq::write(1, 0, 1, pattern(BS, 1, 7), true)).unwrap();
    let mut sqes = Vec::new();
    assert_eq!(h.take_sqes(&mut sqes), 0);
    let mut out = Vec::new();
    assert_eq!(h.poll(&mut out), 1);
    out[0].result.unwrap();
    assert_eq!(h.stats().uring_ios, 0);
    assert_eq!(h.in_ring(), 0);
}

/// Registered buffers: a pool carved from an arena registered with the group's ring. Arena buffers go
/// out as READ_FIXED / WRITE_FIXED, heap buffers (mixed in the same batch) as plain READ / WRITE; data
/// is verified both ways; buffers dropped anywhere go back to the arena, which the group keeps mapped.
#[test]
fn uring_file_fixed_buffers_from_a_registered_arena() {
    use ff_blockdev::{Arena, BufPool};
    use std::sync::Arc;
    let Some((mut r, _dev)) = Rig::new("uring-fixed", 8 << 20) else { return };
    let arena = Arena::new(1 << 20).expect("arena");
    arena.register(&mut r.group).expect("IORING_REGISTER_BUFFERS");
    assert_eq!(arena.index(), Some(0));
    assert!(r.h.use_fixed_buffers(&arena));
    assert!(Arc::strong_count(&arena) >= 2, "the group keeps the arena alive");
    let mut pool = BufPool::with_arena(Arc::clone(&arena));

    // 16 writes of 4K..64K in flight together, every other one from the arena.
    let sizes = |i: u64| (1 + i % 16) as u32;
    let mut lba = 0;
    let mut reqs = Vec::new();
    let mut layout = Vec::new();
    for i in 0..16u64 {
        let blocks = sizes(i);
        let data = pattern(BS, blocks, (100 + i) as u8);
        let mut buf = if i % 2 == 0 { pool.get(data.len()) } else { IoBuf::new(data.len()) };
        assert_eq!(buf.fixed().is_some(), i % 2 == 0, "arena buffers carry their index");
        buf.copy_from_slice(&data);
        reqs.push(IoReq::write(i, lba, blocks, buf, i == 3));
        layout.push((lba, blocks));
        lba += u64::from(blocks);
    }
    for d in r.run_all(reqs) {
        d.result.expect("write");
        pool.put(d.buf.expect("buffer back"));
    }
    let s = r.h.stats();
    assert_eq!((s.writes, s.errors, s.short_ios), (16, 0, 0));
    assert_eq!(s.uring_fixed_sqes, 8, "WRITE_FIXED for the arena buffers only: {s:?}");

    // Read back, the other way round: odd ones from the arena this time.
    let reqs = (0..16u64)
        .map(|i| {
            let (lba, blocks) = layout[i as usize];
            let len = (BS * blocks) as usize;
            let buf = if i % 2 == 1 { pool.get(len) } else { IoBuf::new(len) };
            IoReq::read(100 + i, lba, blocks, buf)
        })
        .collect();
    for d in r.run_all(reqs) {
        let i = d.tag - 100;
        d.result.expect("read");
        let b = d.buf.expect("buffer back");
        assert!(b[..] == pattern(BS, sizes(i), (100 + i) as u8)[..], "request {i}: data intact");
        assert_eq!(b.fixed().is_some(), i % 2 == 1);
        drop(b); // an arena buffer dropped outside the pool goes back to the arena
    }
    let s = r.h.stats();
    assert_eq!((s.reads, s.errors), (16, 0));
    assert_eq!(s.uring_fixed_sqes, 16, "READ_FIXED for the arena buffers only: {s:?}");
    // The data went to the file: read it through another descriptor.
    let bytes = std::fs::read(&r._file.0).unwrap();
    let (l, b) = layout[5];
    let at = (l * u64::from(BS)) as usize;
    assert!(bytes[at..at + (b * BS) as usize] == pattern(BS, b, 105)[..]);

    // Freed arena buffers are reused (hits), and a full arena falls back to the heap.
    let hits = pool.hits();
    let again = pool.get(4096);
    assert!(again.fixed().is_some() && pool.hits() > hits, "recycled from the arena");
    let big: Vec<IoBuf> = (0..20).map(|_| pool.get(64 << 10)).collect();
    assert!(big.iter().any(|b| b.fixed().is_none()), "1 MiB arena exhausted: heap buffers");
    // Dropping the pool and every buffer leaves the arena to the group's registration.
    drop((big, again, pool));
    assert_eq!(Arc::strong_count(&arena), 2, "only the group and this test hold it");
}
