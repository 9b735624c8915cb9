//! A bounded cargo-fuzz run of `auth_message` (coverage feedback, AddressSanitizer) for CI.
//!
//! It builds the whole standalone fuzz package, so outside CI it only runs when asked
//! (`FF_FUZZ_SMOKE=1`); in CI (`CI` set) cargo-fuzz must be installed (.ci/run does that).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn fuzz_auth_message_briefly() {
    let in_ci = std::env::var_os("CI").is_some();
    if !in_ci && std::env::var_os("FF_FUZZ_SMOKE").is_none() {
        eprintln!("SKIP: fuzz_smoke auth_message: set FF_FUZZ_SMOKE=1 to build and run it here");
        return;
    }
    let have = Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !have {
        assert!(!in_ci, "cargo-fuzz is missing in CI (.ci/run installs it)");
        eprintln!("SKIP: fuzz_smoke auth_message: cargo-fuzz not installed");
        return;
    }
    let out = Command::new("cargo")
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz"))
        // cargo-fuzz passes -Z flags; the stable toolchain accepts them this way.
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .args(["fuzz", "run", "auth_message", "--", "-max_total_time=20", "-rss_limit_mb=2048"])
        .output()
        .expect("cargo fuzz runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let done: Vec<&str> = err.lines().filter(|l| l.starts_with("Done ")).collect();
    eprintln!("fuzz auth_message: {done:?}");
    assert!(out.status.success(), "fuzz target auth_message failed:\n{err}");
}
