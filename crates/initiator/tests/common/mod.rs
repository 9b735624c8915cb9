//! Helpers the initiator's integration tests share.
#![allow(dead_code, clippy::unwrap_used)]

use ff_initiator::{IoCompletion, IoGroup};
use std::time::{Duration, Instant};

/// Polls `g` until `n` completions arrived (at most 10 s).
pub fn wait(g: &mut IoGroup, n: usize) -> Vec<IoCompletion> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} completions", out.len());
        g.poll(Some(Duration::from_millis(20)), &mut out).unwrap();
    }
    out
}
