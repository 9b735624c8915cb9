//! Shared test helpers: one-request round trips, a pattern generator, temp paths and the generic
//! read/write/zero/deallocate/range-error exercise every backend must pass.
#![allow(dead_code)]

use ff_blockdev::{BlockDev, IoBuf, IoDone, IoError, IoReq, LbaRange};
use std::path::PathBuf;

/// Submits one request and polls its completion.
pub fn run(dev: &mut dyn BlockDev, req: IoReq) -> IoDone {
    let tag = req.tag;
    dev.submit(req).expect("submit");
    let mut out = Vec::new();
    while out.is_empty() {
        dev.poll(&mut out);
    }
    assert_eq!(out.len(), 1);
    let d = out.pop().unwrap();
    assert_eq!(d.tag, tag);
    assert_eq!(dev.pending(), 0);
    d
}

/// A buffer of `blocks` blocks filled with a pattern derived from `seed`.
pub fn pattern(bs: u32, blocks: u32, seed: u8) -> IoBuf {
    let mut b = IoBuf::new((bs * blocks) as usize);
    for (i, x) in b.iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(31).wrapping_add(seed) | 1;
    }
    b
}

/// Reads `blocks` at `lba`, asserting success.
pub fn read(dev: &mut dyn BlockDev, lba: u64, blocks: u32) -> IoBuf {
    let bs = dev.info().block_size;
    let d = run(dev, IoReq::read(1, lba, blocks, IoBuf::new((bs * blocks) as usize)));
    d.result.expect("read");
    d.buf.expect("buffer handed back")
}

/// Writes `buf` at `lba`, asserting success.
pub fn write(dev: &mut dyn BlockDev, lba: u64, buf: IoBuf, fua: bool) {
    let blocks = (buf.len() / dev.info().block_size as usize) as u32;
    let d = run(dev, IoReq::write(2, lba, blocks, buf, fua));
    d.result.expect("write");
    assert!(d.buf.is_some());
}

/// A fresh temp path under `dir`, removed on drop.
pub struct TempPath(pub PathBuf);
impl TempPath {
    pub fn new(dir: &str, name: &str) -> TempPath {
        let p = PathBuf::from(dir).join(format!("ff-blockdev-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }
}
impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The behaviour every backend that stores data must show.
pub fn exercise(dev: &mut dyn BlockDev) {
    let info = dev.info();
    let bs = info.block_size;
    let n = info.num_blocks;
    assert!(n >= 64, "device too small for the exercise");

    // Read after write, plain and FUA, at the start, middle and end.
    for (lba, seed, fua) in [(0, 1, false), (8, 2, true), (n - 4, 3, false)] {
        write(dev, lba, pattern(bs, 4, seed), fua);
        assert!(read(dev, lba, 4)[..] == pattern(bs, 4, seed)[..], "read after write at lba {lba}");
    }
    // Partial overwrite keeps the neighbours.
    write(dev, 9, pattern(bs, 1, 9), false);
    let r = read(dev, 8, 3);
    let bsu = bs as usize;
    assert_eq!(&r[..bsu], &pattern(bs, 4, 2)[..bsu]);
    assert_eq!(&r[bsu..2 * bsu], &pattern(bs, 1, 9)[..]);
    assert_eq!(&r[2 * bsu..], &pattern(bs, 4, 2)[2 * bsu..3 * bsu]);
    run(dev, IoReq::flush(5)).result.expect("flush");

    // Range errors complete with an error, never panic, and hand the buffer back.
    let cases: Vec<(IoReq, IoError)> = vec![
        (IoReq::read(10, n, 1, IoBuf::new(bsu)), IoError::OutOfRange { lba: n, blocks: 1 }),
        (IoReq::read(11, n - 1, 2, IoBuf::new(2 * bsu)), IoError::OutOfRange { lba: n - 1, blocks: 2 }),
        (IoReq::write(12, u64::MAX, 2, IoBuf::new(2 * bsu), false), IoError::OutOfRange { lba: u64::MAX, blocks: 2 }),
        (IoReq::write(13, 0, 2, IoBuf::new(bsu), true), IoError::BufferLength { expected: 2 * bs as u64, actual: bsu }),
        (IoReq::read(14, 0, 1, IoBuf::new(bsu + 1)), IoError::BufferLength { expected: bs as u64, actual: bsu + 1 }),
        (IoReq::write_zeroes(15, n - 1, 2, false), IoError::OutOfRange { lba: n - 1, blocks: 2 }),
        (
            IoReq::deallocate(16, vec![LbaRange { lba: 0, blocks: 1 }, LbaRange { lba: u64::MAX - 1, blocks: 5 }]),
            IoError::OutOfRange { lba: u64::MAX - 1, blocks: 5 },
        ),
    ];
    for (req, want) in cases {
        let has_buf = matches!(req.op, ff_blockdev::IoOp::Read { .. } | ff_blockdev::IoOp::Write { .. });
        let d = run(dev, req);
        assert_eq!(d.result, Err(want));
        assert_eq!(d.buf.is_some(), has_buf);
    }
    // The rejected deallocate touched nothing (all ranges are checked first).
    assert!(read(dev, 0, 4)[..] == pattern(bs, 4, 1)[..], "rejected deallocate changed data");

    // WriteZeroes and Deallocate read back as zeroes; neighbours untouched.
    write(dev, 16, pattern(bs, 32, 5), false);
    run(dev, IoReq::write_zeroes(20, 17, 2, false)).result.expect("write zeroes");
    run(dev, IoReq::write_zeroes(21, 19, 1, true)).result.expect("write zeroes fua");
    let r = read(dev, 16, 32);
    assert_eq!(&r[..bsu], &pattern(bs, 32, 5)[..bsu]);
    assert!(r[bsu..4 * bsu].iter().all(|&x| x == 0));
    assert_eq!(&r[4 * bsu..], &pattern(bs, 32, 5)[4 * bsu..]);
    assert!(info.deallocate_reads_zeroes);
    // Ranges include whole pages (4 KiB+) and sub-page pieces.
    run(
        dev,
        IoReq::deallocate(
            22,
            vec![LbaRange { lba: 24, blocks: 1 }, LbaRange { lba: 32, blocks: 16 }, LbaRange { lba: 0, blocks: 0 }],
        ),
    )
    .result
    .expect("deallocate");
    let r = read(dev, 16, 32);
    assert!(r[8 * bsu..9 * bsu].iter().all(|&x| x == 0));
    assert!(r[16 * bsu..].iter().all(|&x| x == 0));
    assert_eq!(&r[9 * bsu..16 * bsu], &pattern(bs, 32, 5)[9 * bsu..16 * bsu]);
    assert_eq!(&r[4 * bsu..8 * bsu], &pattern(bs, 32, 5)[4 * bsu..8 * bsu]);

    let s = dev.stats();
    assert_eq!(s.errors, 7);
    assert!(s.reads >= 6 && s.writes >= 5 && s.flushes == 1 && s.write_zeroes == 2 && s.deallocates == 1);
}
