//! Identify data structures (4096 bytes each) built at their NVMe base
//! spec 2.0 / NVMe-oF 1.1 offsets: controller (CNS 01h), namespace (00h),
//! active namespace list (02h), namespace identification descriptors
//! (03h), the NVM command-set specific structures (05h/06h) and the
//! command-set independent namespace structure (08h).
//!
//! Owns layouts and the values the host keys its behaviour on; which CNS is
//! allowed when is the controller's business.

use crate::bytes::{put, put_str, put_u8, put_u16, put_u32, put_u64};
use crate::config::{Limits, Namespace};

/// Size of every Identify data structure.
pub const IDENTIFY_LEN: usize = 4096;
/// Version reported in VS and Identify VER: NVMe 1.3.0. Linux 6.1 uses the
/// descriptor list (CNS 03h) from 1.3 and needs nothing newer.
pub const VERSION: u32 = 0x0001_0300;
/// Keep Alive Support granularity in 100 ms units (KAS): 1 s.
pub const KAS: u16 = 10;
/// Abort Command Limit, 0's based (4 concurrent Aborts).
pub const ACL: u8 = 3;
/// Asynchronous Event Request Limit, 0's based (4 outstanding).
pub const AERL: u8 = 3;
/// Warning composite temperature threshold (Kelvin) reported in WCTEMP.
pub const WCTEMP_K: u16 = 343;
/// Critical composite temperature threshold (Kelvin) reported in CCTEMP.
pub const CCTEMP_K: u16 = 373;

/// OAES bit: Namespace Attribute Notices.
pub const OAES_NS_ATTR: u32 = 1 << 8;
/// OAES bit: Discovery Log Page Change Notices.
pub const OAES_DISCOVERY: u32 = 1 << 31;

/// ONCS: Dataset Management.
pub const ONCS_DSM: u16 = 1 << 2;
/// ONCS: Write Zeroes.
pub const ONCS_WRITE_ZEROES: u16 = 1 << 3;

/// SGLS: SGLs supported, no alignment requirement.
pub const SGLS_SUPPORTED: u32 = 1 << 0;
/// SGLS: Address field may be an offset (in-capsule data).
pub const SGLS_OFFSET: u32 = 1 << 20;
/// SGLS: Transport SGL Data Block descriptor supported.
pub const SGLS_TRANSPORT: u32 = 1 << 21;

/// What the Identify Controller structure reports.
#[derive(Debug, Clone, Copy)]
pub struct ControllerIdentity<'a> {
    /// Controller ID.
    pub cntlid: u16,
    /// Subsystem NQN (the discovery NQN for a discovery controller).
    pub subnqn: &'a str,
    /// Serial number.
    pub serial: &'a str,
    /// Model number.
    pub model: &'a str,
    /// Firmware revision.
    pub firmware_rev: &'a str,
    /// Discovery controller (no I/O, no namespaces).
    pub discovery: bool,
    /// Any namespace supports deallocate.
    pub dsm: bool,
    /// Any namespace supports Write Zeroes.
    pub write_zeroes: bool,
    /// Any namespace has a volatile write cache.
    pub vwc: bool,
}

/// Identify Controller (CNS 01h).
pub fn controller(id: &ControllerIdentity<'_>, limits: &Limits) -> Vec<u8> {
    let mut b = vec![0u8; IDENTIFY_LEN];
    // VID/SSVID stay 0: there is no PCI vendor behind a fabrics target.
    put_str(&mut b, 4, 20, id.serial, b' ');
    put_str(&mut b, 24, 40, id.model, b' ');
    put_str(&mut b, 64, 8, id.firmware_rev, b' ');
    put_u8(&mut b, 72, 6); // RAB
    // CMIC bit 1: several controllers may share the subsystem, so Linux
    // multipath accepts a second connection from the same host.
    put_u8(&mut b, 76, if id.discovery { 0 } else { 0x02 });
    put_u8(&mut b, 77, if id.discovery { 0 } else { limits.mdts });
    put_u16(&mut b, 78, id.cntlid);
    put_u32(&mut b, 80, VERSION);
    put_u32(&mut b, 92, if id.discovery { OAES_DISCOVERY } else { OAES_NS_ATTR });
    put_u32(&mut b, 96, 1); // CTRATT: 128-bit host identifier
    put_u8(&mut b, 111, if id.discovery { 2 } else { 1 }); // CNTRLTYPE
    put_u16(&mut b, 256, 0); // OACS: no optional admin commands
    put_u8(&mut b, 258, ACL);
    put_u8(&mut b, 259, AERL);
    if !id.discovery {
        put_u8(&mut b, 260, 0x03); // FRMW: one slot, slot 1 read-only
    }
    // LPA: command effects log (bit 1) and extended data / offsets (bit 2).
    put_u8(&mut b, 261, if id.discovery { 0x04 } else { 0x06 });
    put_u8(&mut b, 262, 0); // ELPE: one error log entry
    put_u8(&mut b, 263, 0); // NPSS: one power state
    if !id.discovery {
        put_u16(&mut b, 266, WCTEMP_K);
        put_u16(&mut b, 268, CCTEMP_K);
    }
    put_u16(&mut b, 320, KAS);
    if !id.discovery {
        put_u8(&mut b, 512, 0x66); // SQES: 64 bytes
        put_u8(&mut b, 513, 0x44); // CQES: 16 bytes
    }
    let maxcmd = u16::try_from(limits.max_queue_depth).unwrap_or(u16::MAX);
    put_u16(&mut b, 514, maxcmd);
    put_u32(&mut b, 516, if id.discovery { 0 } else { limits.max_namespaces });
    let mut oncs = 0;
    if id.dsm {
        oncs |= ONCS_DSM;
    }
    if id.write_zeroes {
        oncs |= ONCS_WRITE_ZEROES;
    }
    put_u16(&mut b, 520, oncs);
    put_u16(&mut b, 522, 0); // FUSES: no fused operations
    // VWC: present, and Flush with NSID FFFFFFFFh supported (bits 2:1 = 11b).
    put_u8(&mut b, 525, if id.vwc { 0x07 } else { 0 });
    put_u8(&mut b, 530, 1); // NVSCC
    // In-capsule (offset) descriptors are always usable: NVMe/TCP gives the
    // admin queue 8 KiB of in-capsule data whatever IOCCSZ says.
    put_u32(&mut b, 536, SGLS_SUPPORTED | SGLS_OFFSET | SGLS_TRANSPORT);
    put_str(&mut b, 768, 256, id.subnqn, 0);
    // Fabrics area.
    put_u32(&mut b, 1792, if id.discovery { 4 } else { limits.ioccsz() });
    put_u32(&mut b, 1796, 1); // IORCSZ: 16-byte response capsules
    put_u16(&mut b, 1800, 0); // ICDOFF: data right after the SQE (Linux requires 0)
    put_u8(&mut b, 1802, 0); // FCATT: dynamic controller model
    put_u8(&mut b, 1803, 1); // MSDBD: one SGL data block descriptor
    put_u16(&mut b, 1804, if id.discovery { 0 } else { 1 }); // OFCS: Disconnect supported
    // PSD0: report a nominal max power so tools print something sane.
    put_u16(&mut b, 2048, 0x09C4); // 25.00 W in 0.01 W units
    b
}

/// Identify Namespace (CNS 00h) for an active namespace (always shared: NMIC bit 0).
pub fn namespace(ns: &Namespace) -> Vec<u8> {
    let mut b = vec![0u8; IDENTIFY_LEN];
    put_u64(&mut b, 0, ns.blocks); // NSZE
    put_u64(&mut b, 8, ns.blocks); // NCAP
    put_u64(&mut b, 16, ns.blocks); // NUSE
    // NSFEAT bit 0: thin provisioning, which is what deallocate means here.
    put_u8(&mut b, 24, u8::from(ns.deallocate));
    put_u8(&mut b, 25, 0); // NLBAF: one format
    put_u8(&mut b, 26, 0); // FLBAS: format 0, no metadata
    put_u8(&mut b, 30, 1); // NMIC: may be attached to several controllers
    put(&mut b, 104, &ns.nguid);
    // LBAF0: MS = 0, LBADS, RP = 0 (best).
    put_u8(&mut b, 128 + 2, ns.lba_shift);
    b
}

/// Command-set independent Identify Namespace (CNS 08h).
pub fn namespace_independent(ns: &Namespace) -> Vec<u8> {
    let mut b = vec![0u8; IDENTIFY_LEN];
    put_u8(&mut b, 0, u8::from(ns.deallocate)); // NSFEAT
    put_u8(&mut b, 1, 1); // NMIC
    put_u8(&mut b, 14, u8::from(ns.ready)); // NSTAT: namespace ready
    b
}

/// Active Namespace ID list (CNS 02h): IDs greater than `after`, ascending.
pub fn active_list(nsids: impl Iterator<Item = u32>, after: u32) -> Vec<u8> {
    let mut b = vec![0u8; IDENTIFY_LEN];
    for (i, nsid) in nsids.filter(|&n| n > after).take(IDENTIFY_LEN / 4).enumerate() {
        put_u32(&mut b, i * 4, nsid);
    }
    b
}

/// Namespace Identification Descriptor list (CNS 03h): NGUID, UUID, CSI.
pub fn descriptors(ns: &Namespace) -> Vec<u8> {
    let mut b = vec![0u8; IDENTIFY_LEN];
    let mut off = 0;
    for (nidt, id) in [(2u8, &ns.nguid[..]), (3u8, &ns.uuid[..]), (4u8, &[0u8][..])] {
        put_u8(&mut b, off, nidt);
        put_u8(&mut b, off + 1, id.len() as u8);
        put(&mut b, off + 4, id);
        off += 4 + id.len();
    }
    b
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::bytes::{u16_at, u32_at, u64_at};

    fn ns() -> Namespace {
        Namespace {
            nsid: 1,
            block_size: 4096,
            lba_shift: 12,
            blocks: 1000,
            nguid: [0xAA; 16],
            uuid: [0xBB; 16],
            vwc: true,
            deallocate: true,
            write_zeroes: true,
            ready: true,
        }
    }

    #[test]
    fn controller_offsets() {
        let id = ControllerIdentity {
            cntlid: 0x42,
            subnqn: "nqn.2026-01.io.ff:sub",
            serial: "SER1",
            model: "MODEL",
            firmware_rev: "0.1",
            discovery: false,
            dsm: true,
            write_zeroes: true,
            vwc: true,
        };
        let l = Limits::default();
        let b = controller(&id, &l);
        assert_eq!(b.len(), 4096);
        assert_eq!(&b[4..8], b"SER1");
        assert_eq!(b[8], b' ');
        assert_eq!(b[23], b' ');
        assert_eq!(&b[24..29], b"MODEL");
        assert_eq!(&b[64..67], b"0.1");
        assert_eq!(b[76], 2);
        assert_eq!(b[77], 5);
        assert_eq!(u16_at(&b, 78), 0x42);
        assert_eq!(u32_at(&b, 80), 0x0001_0300);
        assert_eq!(u32_at(&b, 92), 1 << 8);
        assert_eq!(b[111], 1);
        assert_eq!(b[258], 3);
        assert_eq!(b[259], 3);
        assert_eq!(b[261], 0x06);
        assert_eq!(u16_at(&b, 320), 10);
        assert_eq!(b[512], 0x66);
        assert_eq!(b[513], 0x44);
        assert_eq!(u16_at(&b, 514), 128);
        assert_eq!(u32_at(&b, 516), 1024);
        assert_eq!(u16_at(&b, 520), 0x0C);
        assert_eq!(u16_at(&b, 522), 0);
        assert_eq!(b[525], 0x07);
        assert_eq!(u32_at(&b, 536), 1 | (1 << 20) | (1 << 21));
        assert_eq!(&b[768..768 + 21], b"nqn.2026-01.io.ff:sub");
        assert_eq!(b[768 + 21], 0);
        assert_eq!(u32_at(&b, 1792), (64 + 8192) / 16);
        assert_eq!(u32_at(&b, 1796), 1);
        assert_eq!(u16_at(&b, 1800), 0);
        assert_eq!(b[1802], 0);
        assert_eq!(b[1803], 1);
    }

    #[test]
    fn discovery_controller_differs() {
        let id = ControllerIdentity {
            cntlid: 1,
            subnqn: crate::config::DISCOVERY_NQN,
            serial: "S",
            model: "M",
            firmware_rev: "F",
            discovery: true,
            dsm: false,
            write_zeroes: false,
            vwc: false,
        };
        let b = controller(&id, &Limits::default());
        assert_eq!(b[111], 2);
        assert_eq!(u32_at(&b, 516), 0);
        assert_eq!(u32_at(&b, 92), 1 << 31);
        assert_eq!(u32_at(&b, 536), 1 | (1 << 20) | (1 << 21));
        assert_eq!(u16_at(&b, 320), 10);
    }

    #[test]
    fn namespace_offsets() {
        let b = namespace(&ns());
        assert_eq!(u64_at(&b, 0), 1000);
        assert_eq!(u64_at(&b, 8), 1000);
        assert_eq!(u64_at(&b, 16), 1000);
        assert_eq!(b[24], 1);
        assert_eq!(b[25], 0);
        assert_eq!(b[26], 0);
        assert_eq!(b[30], 1);
        assert_eq!(&b[104..120], &[0xAA; 16]);
        assert_eq!(&b[120..128], &[0; 8]);
        assert_eq!(u16_at(&b, 128), 0);
        assert_eq!(b[130], 12);
    }

    #[test]
    fn lists() {
        let b = active_list([1u32, 3, 9].into_iter(), 1);
        assert_eq!(u32_at(&b, 0), 3);
        assert_eq!(u32_at(&b, 4), 9);
        assert_eq!(u32_at(&b, 8), 0);
        let d = descriptors(&ns());
        assert_eq!((d[0], d[1]), (2, 16));
        assert_eq!(&d[4..20], &[0xAA; 16]);
        assert_eq!((d[20], d[21]), (3, 16));
        assert_eq!(&d[24..40], &[0xBB; 16]);
        assert_eq!((d[40], d[41], d[44]), (4, 1, 0));
        assert_eq!(d[45], 0);
    }
}
