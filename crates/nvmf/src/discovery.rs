//! The Discovery Log Page (LID 0x70): [`Port`]s (NVM subsystem ports: the
//! transport addresses the target accepts connections on) times the subsystems a host may see,
//! plus one entry per listener for the current discovery subsystem.
//!
//! Owns the byte layout only; which subsystems are visible and the
//! generation counter come from the registry.

use serde::Deserialize;

use crate::bytes::{put_str, put_u8, put_u16, put_u64};
use crate::config::DISCOVERY_NQN;

/// Size of the log header and of each entry.
pub const DISC_ENTRY_LEN: usize = 1024;
/// Transport type: TCP.
pub const TRTYPE_TCP: u8 = 3;
/// Subsystem type: NVM subsystem.
pub const SUBTYPE_NVME: u8 = 2;
/// Subsystem type: current discovery subsystem (entry describes the
/// discovery controller being talked to).
pub const SUBTYPE_CURRENT_DISCOVERY: u8 = 3;
/// TREQ: secure channel required (a TLS listener).
pub const TREQ_SECURE_REQUIRED: u8 = 0x01;
/// TREQ: secure channel not required.
pub const TREQ_SECURE_NOT_REQUIRED: u8 = 0x02;
/// TREQ: the two secure-channel bits.
const TREQ_SECURE_MASK: u8 = 0x03;
/// TCP TSAS SECTYPE: no security.
pub const SECTYPE_NONE: u8 = 0;
/// TCP TSAS SECTYPE: TLS 1.3.
pub const SECTYPE_TLS13: u8 = 2;
/// TREQ: the controller supports the host disabling SQ flow control.
pub const TREQ_SQFLOW_DISABLE_OK: u8 = 0x04;
/// Admin queue size advertised (ASQSZ): the host's admin queue depth.
pub const ASQSZ: u16 = 32;

/// Address family of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddrFamily {
    /// IPv4 (ADRFAM 1).
    Ipv4,
    /// IPv6 (ADRFAM 2).
    Ipv6,
}

impl AddrFamily {
    /// ADRFAM code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Ipv4 => 1,
            Self::Ipv6 => 2,
        }
    }
}

/// An NVM subsystem port: a transport address the target listens on (always TCP here) and its port
/// ID, as a discovery log entry describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Address family.
    pub adrfam: AddrFamily,
    /// Address as text, e.g. "192.0.2.1" (TRADDR).
    pub traddr: String,
    /// Service (port) as text, e.g. "4420" (TRSVCID).
    pub trsvcid: String,
    /// NVM subsystem port ID (PORTID).
    pub portid: u16,
    /// Whether the port takes TLS 1.3 (TSAS names it) and requires it (TREQ says so).
    #[serde(default)]
    pub secure_channel: SecureChannel,
}

/// A port's secure channel, as its discovery entries describe it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureChannel {
    /// Plain text only: TREQ "not required", SECTYPE none.
    #[default]
    None,
    /// TLS 1.3 if the host starts one, else plain text: TREQ "not required", SECTYPE TLS 1.3.
    Optional,
    /// TLS 1.3 only: TREQ "required", SECTYPE TLS 1.3.
    Required,
}

/// One visible subsystem for the log.
#[derive(Debug, Clone, Copy)]
pub struct Visible<'a> {
    /// Subsystem NQN.
    pub nqn: &'a str,
}

/// Builds the whole log: header then `listeners × (discovery + visible)`
/// entries. `treq` is the TREQ byte for every entry, whose secure-channel bits a TLS port overrides.
pub fn build_log(genctr: u64, listeners: &[Port], visible: &[Visible<'_>], treq: u8) -> Vec<u8> {
    let per_listener = 1 + visible.len();
    let numrec = listeners.len() * per_listener;
    let mut log = vec![0u8; DISC_ENTRY_LEN * (1 + numrec)];
    put_u64(&mut log, 0, genctr);
    put_u64(&mut log, 8, numrec as u64);
    put_u16(&mut log, 16, 0); // RECFMT 0
    let mut idx = 1;
    for l in listeners {
        let subs = std::iter::once((SUBTYPE_CURRENT_DISCOVERY, DISCOVERY_NQN))
            .chain(visible.iter().map(|v| (SUBTYPE_NVME, v.nqn)));
        for (subtype, nqn) in subs {
            write_entry(&mut log, idx * DISC_ENTRY_LEN, l, subtype, nqn, treq);
            idx += 1;
        }
    }
    log
}

fn write_entry(log: &mut [u8], off: usize, l: &Port, subtype: u8, nqn: &str, treq: u8) {
    put_u8(log, off, TRTYPE_TCP);
    put_u8(log, off + 1, l.adrfam.code());
    put_u8(log, off + 2, subtype);
    let treq = match l.secure_channel {
        SecureChannel::Required => (treq & !TREQ_SECURE_MASK) | TREQ_SECURE_REQUIRED,
        SecureChannel::None | SecureChannel::Optional => treq,
    };
    put_u8(log, off + 3, treq);
    put_u16(log, off + 4, l.portid);
    put_u16(log, off + 6, 0xFFFF); // dynamic controller model
    put_u16(log, off + 8, ASQSZ);
    put_str(log, off + 32, 32, &l.trsvcid, b' ');
    put_str(log, off + 256, 256, nqn, 0);
    put_str(log, off + 512, 256, &l.traddr, b' ');
    // TSAS for TCP: SECTYPE (byte 0); the rest is reserved.
    let sectype = if l.secure_channel == SecureChannel::None { SECTYPE_NONE } else { SECTYPE_TLS13 };
    put_u8(log, off + 768, sectype);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::bytes::{u16_at, u64_at};

    #[test]
    fn layout() {
        let l = Port {
            adrfam: AddrFamily::Ipv4,
            traddr: "10.0.0.1".into(),
            trsvcid: "4420".into(),
            portid: 7,
            secure_channel: SecureChannel::None,
        };
        let log = build_log(5, &[l], &[Visible { nqn: "nqn.a" }], 0x06);
        assert_eq!(log.len(), 3 * 1024);
        assert_eq!(u64_at(&log, 0), 5);
        assert_eq!(u64_at(&log, 8), 2);
        let e = &log[1024..2048];
        assert_eq!(e[0], 3);
        assert_eq!(e[1], 1);
        assert_eq!(e[2], SUBTYPE_CURRENT_DISCOVERY);
        assert_eq!(&e[256..256 + DISCOVERY_NQN.len()], DISCOVERY_NQN.as_bytes());
        let e = &log[2048..];
        assert_eq!(e[2], SUBTYPE_NVME);
        assert_eq!(e[3], 0x06);
        assert_eq!(u16_at(e, 4), 7);
        assert_eq!(u16_at(e, 6), 0xFFFF);
        assert_eq!(u16_at(e, 8), 32);
        assert_eq!(&e[32..36], b"4420");
        assert_eq!(e[36], b' ');
        assert_eq!(&e[256..261], b"nqn.a");
        assert_eq!(e[261], 0);
        assert_eq!(&e[512..520], b"10.0.0.1");
        assert_eq!(e[520], b' ');
        assert_eq!(e[768], 0);
    }

    #[test]
    fn tls_ports_name_tls13_and_a_required_one_says_so() {
        let plain = Port {
            adrfam: AddrFamily::Ipv4,
            traddr: "10.0.0.1".into(),
            trsvcid: "4420".into(),
            portid: 1,
            secure_channel: SecureChannel::None,
        };
        let tls = Port { trsvcid: "4421".into(), portid: 2, secure_channel: SecureChannel::Required, ..plain.clone() };
        let opt = Port { trsvcid: "4422".into(), portid: 3, secure_channel: SecureChannel::Optional, ..plain.clone() };
        let treq = TREQ_SECURE_NOT_REQUIRED | TREQ_SQFLOW_DISABLE_OK;
        let log = build_log(1, &[plain, tls, opt], &[Visible { nqn: "nqn.a" }], treq);
        let want = [(0x06, 0), (0x06, 0), (0x05, 2), (0x05, 2), (0x06, 2), (0x06, 2)];
        for (i, (treq, sectype)) in want.into_iter().enumerate() {
            let e = &log[(i + 1) * 1024..(i + 2) * 1024];
            assert_eq!((e[3], e[768]), (treq, sectype), "entry {i}");
        }
    }
}
