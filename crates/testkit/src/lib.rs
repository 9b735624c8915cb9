//! Test support shared by the crates whose tests boot a Linux guest (`shared/tools/linux-nvme-vm`):
//! where the VM tool is, and why a test must skip here (it skips loudly, never passes silently); and
//! [`tgt`], a Linux tgt iSCSI target per test.

use std::path::PathBuf;

pub mod tgt;

/// Finds `run-vm`: `$FF_LINUX_NVME_VM`, or `shared/tools/linux-nvme-vm/run-vm` in a folder above
/// `start` (a crate's `CARGO_MANIFEST_DIR`).
pub fn run_vm(start: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var("FF_LINUX_NVME_VM") {
        return Some(PathBuf::from(p));
    }
    let mut dir = PathBuf::from(start);
    loop {
        let cand = dir.join("shared/tools/linux-nvme-vm/run-vm");
        if cand.exists() {
            return Some(cand);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Why a VM test cannot run here (not root, or no VM tool above `start`); `None` when it can.
pub fn vm_skip_reason(start: &str) -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (the VM tool installs QEMU and boots a kernel)".into());
    }
    if run_vm(start).is_none() {
        return Some("shared/tools/linux-nvme-vm/run-vm not found beside the repository".into());
    }
    None
}

/// A small deterministic generator for the stable fuzz-body tests (reproducible from its seed).
pub struct XorShift(pub u64);

impl XorShift {
    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
