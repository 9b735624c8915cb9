//! Linux tgt (`tgtd`) as an iSCSI target for tests: each [`Tgt`] runs its own tgtd on a free portal and
//! its own control port (never another user's), with one target and one file-backed LUN, and kills and
//! reaps exactly that process when dropped.
#![allow(clippy::unwrap_used, clippy::panic, reason = "test support: a broken environment should fail loudly")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TGTD: &str = "/usr/sbin/tgtd";
const TGTADM: &str = "/usr/sbin/tgtadm";
/// The target every [`Tgt`] serves (LUN 1).
pub const IQN: &str = "iqn.2026-12.io.ferrofabric:tgt-test";
const T: Duration = Duration::from_secs(10);

/// One tgtd of ours; dropping it kills and reaps exactly this process and removes its backing file.
pub struct Tgt {
    child: Child,
    control: u16,
    /// The iSCSI portal.
    pub addr: SocketAddr,
    file: PathBuf,
}

impl Drop for Tgt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Tgt {
    /// Starts tgtd serving [`IQN`] with LUN 1 of `lun_bytes` (a sparse file), bound to every initiator;
    /// `None`, after a `SKIP: <test>: ...` line, when tgtd is not installed.
    pub fn start(test: &str, lun_bytes: u64) -> Option<Tgt> {
        if !Path::new(TGTD).exists() || !Path::new(TGTADM).exists() {
            println!("SKIP: {test}: {TGTD} is not installed");
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        // Parallel tests may be handed the same free port, and another tgtd may own a control port (one
        // may serve another user on control port 0): a tgtd that does not come up lost such a race, and
        // the next attempt takes another portal and control port (tgtd takes control ports up to 32767).
        for _ in 0..8 {
            let port = free_port();
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let control = 20000 + ((std::process::id() as u16).wrapping_mul(31).wrapping_add(n * 131)) % 12000;
            if adm_ok(control, &["--op", "show", "--mode", "target"]) {
                continue;
            }
            let file = std::env::temp_dir().join(format!("ff-ini-{}-{n}.img", std::process::id()));
            std::fs::File::create(&file).unwrap().set_len(lun_bytes).unwrap();
            let child = Command::new(TGTD)
                .args(["-f", "-C", &control.to_string(), "--iscsi", &format!("portal=127.0.0.1:{port}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut t = Tgt { child, control, addr: SocketAddr::from(([127, 0, 0, 1], port)), file };
            let deadline = Instant::now() + T;
            while Instant::now() < deadline {
                if adm_ok(control, &["--op", "show", "--mode", "target"]) {
                    return Some(t.configured());
                }
                if t.child.try_wait().ok().flatten().is_some() {
                    let mut err = String::new();
                    if let Some(mut e) = t.child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    println!("tgtd on 127.0.0.1:{port} control {control} exited: {err}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("no tgtd came up");
    }

    fn configured(self) -> Tgt {
        let t = self;
        let deadline = Instant::now() + T;
        t.adm(&["--op", "new", "--mode", "target", "--tid", "1", "-T", IQN]);
        t.adm(&["--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", t.file.to_str().unwrap()]);
        t.adm(&["--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"]);
        while TcpStream::connect(t.addr).is_err() {
            assert!(Instant::now() < deadline, "tgtd does not listen on {}", t.addr);
            std::thread::sleep(Duration::from_millis(50));
        }
        t
    }

    /// Runs `tgtadm --lld iscsi ARGS` on this tgtd; panics when it fails.
    pub fn adm(&self, args: &[&str]) {
        assert!(adm_ok(self.control, args), "tgtadm {args:?} failed");
    }
}

fn adm_ok(control: u16, args: &[&str]) -> bool {
    Command::new(TGTADM)
        .args(["-C", &control.to_string(), "--lld", "iscsi"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
