//! Test support shared by the crates whose tests boot a Linux guest (`shared/tools/linux-nvme-vm`):
//! where the VM tool is, and why a test must skip here (it skips loudly, never passes silently).

use std::path::PathBuf;

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
