//! A short, bounded cargo-fuzz run of each fuzz target (`pdu_decode`, `command_path`, `rpc_request`,
//! `iscsi_pdu`, `iscsi_login`, `auth_message`, `tls_input`) with
//! coverage feedback and AddressSanitizer. CI installs cargo-fuzz (.ci/run) and must run this; on a
//! machine without cargo-fuzz it skips loudly.

use std::path::PathBuf;
use std::process::Command;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn have_cargo_fuzz() -> bool {
    Command::new("cargo").args(["fuzz", "--version"]).output().map(|o| o.status.success()).unwrap_or(false)
}

fn run(target: &str, seconds: u32) {
    if !have_cargo_fuzz() {
        assert!(std::env::var_os("CI").is_none(), "cargo-fuzz is missing in CI (.ci/run installs it)");
        eprintln!("SKIP: fuzz_smoke {target}: cargo-fuzz not installed (cargo install cargo-fuzz)");
        return;
    }
    let out = Command::new("cargo")
        .current_dir(fuzz_dir())
        .env("RUSTC_BOOTSTRAP", "1") // cargo-fuzz passes -Z flags; stable accepts them this way
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .args(["fuzz", "run", target, "--", &format!("-max_total_time={seconds}"), "-rss_limit_mb=2048"])
        .output()
        .expect("cargo fuzz runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let summary: Vec<&str> = err.lines().filter(|l| l.starts_with("Done ") || l.contains("#")).rev().take(2).collect();
    eprintln!("fuzz {target}: {summary:?}");
    assert!(out.status.success(), "fuzz target {target} failed:\n{err}");
}

#[test]
fn fuzz_pdu_decode_briefly() {
    run("pdu_decode", 20);
}

#[test]
fn fuzz_command_path_briefly() {
    run("command_path", 30);
}

#[test]
fn fuzz_rpc_request_briefly() {
    run("rpc_request", 20);
}

#[test]
fn fuzz_iscsi_pdu_briefly() {
    run("iscsi_pdu", 20);
}

#[test]
fn fuzz_iscsi_login_briefly() {
    run("iscsi_login", 20);
}

#[test]
fn fuzz_auth_message_briefly() {
    run("auth_message", 20);
}

#[test]
fn fuzz_tls_input_briefly() {
    run("tls_input", 20);
}
