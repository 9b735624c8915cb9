//! NVMe spec types shared by every layer that speaks NVMe, whatever the transport.
//!
//! - [`nvme`]: submission/completion queue entries, SGL descriptors, opcodes, status codes.
//! - [`wire`]: panic-free little-endian field access shared by every fixed-layout structure.
//!
//! The NVMe/TCP codec (`ff-nvme-tcp`) carries these entries in its capsules; the NVMe-oF controller
//! core (`ff-nvmf`) interprets them. Neither depends on the other for them. Nothing here performs I/O,
//! allocates, or panics on peer input.

pub mod nvme;
pub mod wire;

/// A buffer shorter than the structure read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer too short: need {need} bytes, have {have}")]
pub struct Truncated {
    /// Bytes required.
    pub need: usize,
    /// Bytes available.
    pub have: usize,
}
