//! The file backend on a real block device: a loop device (4096-byte logical blocks) over a temp file.
//! Needs root and losetup; otherwise skipped loudly.

mod common;

use common::{TempPath, exercise, pattern, read, run, write};
use ff_blockdev::{BlockDev, BlockDevFactory, FileDev, FileOpts, IoReq, OpenError};
use std::process::Command;

/// A loop device, detached on drop.
struct Loop(String);
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn loop_device_block_size_size_and_direct_io() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: loop_device_block_size_size_and_direct_io: not root");
        return;
    }
    let img = TempPath::new("/tmp", "loop.img");
    std::fs::write(&img.0, vec![0u8; 8 << 20]).unwrap();
    let out = Command::new("losetup").args(["-f", "--show", "-b", "4096"]).arg(&img.0).output();
    let dev_path = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => {
            eprintln!(
                "SKIP: loop_device_block_size_size_and_direct_io: losetup failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIP: loop_device_block_size_size_and_direct_io: losetup: {e}");
            return;
        }
    };
    let lo = Loop(dev_path);

    let dev = FileDev::open(&lo.0, FileOpts::default()).unwrap();
    assert!(dev.is_block_device());
    let info = dev.info();
    assert_eq!(info.block_size, 4096, "BLKSSZGET");
    assert_eq!(info.num_blocks, 2048, "size of an 8 MiB device");
    assert!(dev.direct(), "a loop device takes O_DIRECT");
    // A block size below the logical one, or a size beyond the device, is refused.
    assert!(matches!(
        FileDev::open(&lo.0, FileOpts { size: None, block_size: Some(512) }),
        Err(OpenError::BlockSize(512))
    ));
    assert!(matches!(
        FileDev::open(&lo.0, FileOpts { size: Some(16 << 20), block_size: None }),
        Err(OpenError::TooLarge { .. })
    ));

    let mut h = dev.handle();
    exercise(&mut h);
    let s = h.stats();
    assert_eq!(s.dsync_writes, 1, "{s:?}");
    assert!(s.fsyncs >= 2, "{s:?}");
    eprintln!("{}: direct {} stats {s:?}", lo.0, dev.direct());

    // A second handle (another reactor) sees the first one's writes.
    let mut h2 = dev.open_handle().unwrap();
    write(h2.as_mut(), 100, pattern(4096, 2, 7), true);
    run(h2.as_mut(), IoReq::flush(1)).result.unwrap();
    assert!(read(&mut h, 100, 2)[..] == pattern(4096, 2, 7)[..]);
    drop((h, h2, dev));

    // The data reached the backing file.
    let raw = std::fs::read(&img.0).unwrap();
    assert!(raw[100 * 4096..102 * 4096] == pattern(4096, 2, 7)[..]);
}
