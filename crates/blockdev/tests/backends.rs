//! Read-after-write, range errors, zeroing, deallocation and durability counters on every backend;
//! the RAM disk shared by threads; the file backend on a disk filesystem, tmpfs and ramfs (which
//! refuses O_DIRECT, exercising the buffered fallback).

mod common;

use common::{TempPath, exercise, pattern, read, run, write};
use ff_blockdev::{
    BlockDev, BlockDevFactory, FileDev, FileOpts, IoBuf, IoReq, NullDev, OpenError, RamDisk, SubmitError,
};
use std::process::Command;

#[test]
fn null_zero_fills_and_checks_ranges() {
    let dev = NullDev::new(1 << 20, 512).unwrap();
    let mut h = dev.open_handle().unwrap();
    let info = h.info();
    assert_eq!((info.block_size, info.num_blocks), (512, 2048));
    assert!(!info.volatile_write_cache);
    let mut b = IoBuf::new(1024);
    b.fill(0xaa);
    let d = run(h.as_mut(), IoReq::read(1, 5, 2, b));
    d.result.unwrap();
    assert!(d.buf.unwrap().iter().all(|&x| x == 0));
    write(h.as_mut(), 0, pattern(512, 2, 1), true);
    assert!(run(h.as_mut(), IoReq::read(2, 2048, 1, IoBuf::new(512))).result.is_err());
    assert!(run(h.as_mut(), IoReq::write(2, 0, 1, IoBuf::new(4096), false)).result.is_err());
    run(h.as_mut(), IoReq::flush(3)).result.unwrap();
    assert_eq!(h.stats().errors, 2);

    // no_fill: the buffer is left as it was.
    let mut h = dev.clone().no_fill().handle();
    let mut b = IoBuf::new(512);
    b.fill(0xaa);
    let d = run(&mut h, IoReq::read(1, 0, 1, b));
    assert!(d.buf.unwrap().iter().all(|&x| x == 0xaa));
}

#[test]
fn queue_full_hands_the_request_back() {
    let mut h = NullDev::new(1 << 20, 4096).unwrap().handle();
    h.set_queue_depth(2);
    h.submit(IoReq::flush(1)).unwrap();
    h.submit(IoReq::read(2, 0, 1, IoBuf::new(4096))).unwrap();
    assert_eq!(h.pending(), 2);
    let refused = h.submit(IoReq::read(3, 0, 1, IoBuf::new(4096))).unwrap_err();
    assert!(matches!(refused, SubmitError::QueueFull(_)));
    let req = refused.into_req();
    assert_eq!(req.tag, 3);
    let mut out = Vec::new();
    assert_eq!(h.poll(&mut out), 2);
    assert_eq!(out.iter().map(|d| d.tag).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(h.pending(), 0);
    h.submit(req).unwrap();
    assert_eq!(h.poll(&mut out), 1);
}

#[test]
fn ram_read_after_write() {
    for bs in [512, 4096] {
        let disk = RamDisk::new(8 << 20, bs).unwrap();
        let info = disk.info();
        assert_eq!(info.size_bytes(), 8 << 20);
        assert!(!info.volatile_write_cache);
        let mut h = disk.open_handle().unwrap();
        // Untouched blocks read as zeroes.
        assert!(read(h.as_mut(), 100, 8).iter().all(|&x| x == 0));
        exercise(h.as_mut());
    }
}

#[test]
fn ram_default_is_lazy() {
    // 1 GiB reserved, nothing touched: must succeed without committing memory.
    let disk = RamDisk::new(ff_blockdev::DEFAULT_SIZE, 512).unwrap();
    assert_eq!(disk.info().num_blocks, 2 << 20);
    let mut h = disk.handle();
    write(&mut h, 2_000_000, pattern(512, 8, 4), false);
    assert_eq!(&read(&mut h, 2_000_000, 8)[..], &pattern(512, 8, 4)[..]);
}

#[test]
fn ram_shared_by_two_threads() {
    let disk = RamDisk::new(16 << 20, 4096).unwrap();
    let region = 1024u64; // blocks per thread
    let workers: Vec<_> = (0..2u8)
        .map(|t| {
            let disk = disk.clone();
            std::thread::spawn(move || {
                let mut h = disk.open_handle().unwrap();
                for i in 0..region / 8 {
                    let lba = u64::from(t) * region + i * 8;
                    write(h.as_mut(), lba, pattern(4096, 8, t.wrapping_add(i as u8)), false);
                }
                for i in 0..region / 8 {
                    let lba = u64::from(t) * region + i * 8;
                    assert_eq!(&read(h.as_mut(), lba, 8)[..], &pattern(4096, 8, t.wrapping_add(i as u8))[..]);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Each region seen from a third handle.
    let mut h = disk.handle();
    assert_eq!(&read(&mut h, region + 8, 8)[..], &pattern(4096, 8, 1 + 1)[..]);
    assert_eq!(&read(&mut h, 0, 8)[..], &pattern(4096, 8, 0)[..]);
}

/// Opens a file backend at `path`, runs the exercise and checks the durable paths were taken.
fn file_exercise(path: &std::path::Path, bs: u32) -> FileDev {
    let dev = FileDev::open(path, FileOpts { size: Some(4 << 20), block_size: Some(bs) }).unwrap();
    let info = dev.info();
    assert_eq!((info.block_size, info.size_bytes()), (bs, 4 << 20));
    assert!(info.volatile_write_cache, "file backend must ask hosts for Flush");
    let mut h = dev.handle();
    exercise(&mut h);
    let s = h.stats();
    // One FUA write in the exercise; the FUA write zeroes and the Flush each fdatasync.
    assert_eq!(s.dsync_writes, 1, "FUA write must use RWF_DSYNC: {s:?}");
    assert!(s.fsyncs >= 2, "Flush and FUA write zeroes must fdatasync: {s:?}");
    let before = h.stats().fsyncs;
    run(&mut h, IoReq::flush(9)).result.unwrap();
    assert_eq!(h.stats().fsyncs, before + 1);
    // Data is in the file itself (read through std, not the backend).
    let raw = std::fs::read(path).unwrap();
    assert_eq!(&raw[..4 * bs as usize], &pattern(bs, 4, 1)[..]);
    eprintln!("{}: bs {bs} direct {} stats {s:?}", path.display(), dev.direct());
    dev
}

#[test]
fn file_on_disk_filesystem() {
    let t = TempPath::new("/tmp", "disk");
    let dev = file_exercise(&t.0, 512);
    let t4 = TempPath::new("/tmp", "disk4k");
    let dev4 = file_exercise(&t4.0, 4096);
    assert!(dev4.direct(), "ext4/xfs accept O_DIRECT at 4 KiB");
    drop(dev);

    // Reopen without size: the file's size; a larger size extends, never truncates.
    let d = FileDev::open(&t4.0, FileOpts::default()).unwrap();
    assert_eq!(d.info().size_bytes(), 4 << 20);
    assert_eq!(d.info().block_size, 512);
    let d = FileDev::open(&t4.0, FileOpts { size: Some(8 << 20), block_size: Some(4096) }).unwrap();
    assert_eq!(d.info().num_blocks, 2048);
    assert_eq!(std::fs::metadata(&t4.0).unwrap().len(), 8 << 20);
    let mut h = d.handle();
    assert_eq!(&read(&mut h, 0, 4)[..], &pattern(4096, 4, 1)[..]);
}

#[test]
fn file_open_errors() {
    let t = TempPath::new("/tmp", "missing");
    assert!(matches!(FileDev::open(&t.0, FileOpts::default()), Err(OpenError::Io { .. })));
    assert!(matches!(FileDev::open(&t.0, FileOpts { size: Some(0), block_size: None }), Err(OpenError::Empty)));
    assert!(matches!(
        FileDev::open(&t.0, FileOpts { size: Some(1 << 20), block_size: Some(2048) }),
        Err(OpenError::BlockSize(2048))
    ));
}

#[test]
fn file_on_tmpfs() {
    let t = TempPath::new("/dev/shm", "tmpfs");
    if !std::path::Path::new("/dev/shm").is_dir() {
        eprintln!("SKIP: file_on_tmpfs: no /dev/shm");
        return;
    }
    // tmpfs accepts O_DIRECT since Linux 6.6 and refuses ZERO_RANGE (hand-written zeroes) on some
    // kernels; either way the data must round-trip.
    file_exercise(&t.0, 512);
}

/// A ramfs mount, which refuses O_DIRECT at open; unmounted on drop.
struct RamFs(std::path::PathBuf);
impl Drop for RamFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn file_falls_back_to_buffered_without_o_direct() {
    let dir = std::env::temp_dir().join(format!("ff-blockdev-ramfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = Command::new("mount").args(["-t", "ramfs", "none"]).arg(&dir).status().is_ok_and(|s| s.success());
    if !ok {
        let _ = std::fs::remove_dir(&dir);
        eprintln!("SKIP: file_falls_back_to_buffered_without_o_direct: cannot mount ramfs (needs root)");
        return;
    }
    let m = RamFs(dir);
    let path = m.0.join("img");
    let dev = file_exercise(&path, 512);
    assert!(!dev.direct(), "ramfs refuses O_DIRECT: must have fallen back");
}
