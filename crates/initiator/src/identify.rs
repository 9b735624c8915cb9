//! Parsing of the pages a host reads: Identify Controller, Identify Namespace, the active namespace list
//! and the discovery log page. Field offsets follow the NVMe base and NVMe-oF specifications; short or
//! malformed pages parse as zeros, never panic.

fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2).and_then(|s| s.try_into().ok()).map(u16::from_le_bytes).unwrap_or(0)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes).unwrap_or(0)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0)
}

/// A text field: up to the first NUL, trailing spaces trimmed.
fn text(b: &[u8], off: usize, len: usize) -> String {
    let f = b.get(off..off + len).unwrap_or(&[]);
    let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
    String::from_utf8_lossy(f.get(..end).unwrap_or(&[])).trim_end().to_string()
}

/// The Identify Controller fields a host uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentifyController {
    /// Serial number.
    pub serial: String,
    /// Model number.
    pub model: String,
    /// Firmware revision.
    pub firmware: String,
    /// Maximum data transfer size as a power of two of the minimum page size (0: no limit).
    pub mdts: u8,
    /// Controller ID.
    pub cntlid: u16,
    /// Version.
    pub ver: u32,
    /// Controller type (1 I/O, 2 discovery, 3 administrative).
    pub cntrltype: u8,
    /// Keep Alive Support granularity in 100 ms units.
    pub kas: u16,
    /// Maximum outstanding commands.
    pub maxcmd: u16,
    /// Number of namespaces.
    pub nn: u32,
    /// Optional NVM command support (bit 2 DSM, bit 3 Write Zeroes).
    pub oncs: u16,
    /// Volatile write cache.
    pub vwc: u8,
    /// SGL support.
    pub sgls: u32,
    /// Subsystem NQN.
    pub subnqn: String,
    /// I/O queue command capsule size in 16-byte units.
    pub ioccsz: u32,
    /// I/O queue response capsule size in 16-byte units.
    pub iorcsz: u32,
    /// In-capsule data offset in 16-byte units.
    pub icdoff: u16,
}

impl IdentifyController {
    /// Parses a 4096-byte Identify Controller page.
    pub fn parse(b: &[u8]) -> IdentifyController {
        IdentifyController {
            serial: text(b, 4, 20),
            model: text(b, 24, 40),
            firmware: text(b, 64, 8),
            mdts: u8_at(b, 77),
            cntlid: u16_at(b, 78),
            ver: u32_at(b, 80),
            cntrltype: u8_at(b, 111),
            kas: u16_at(b, 320),
            maxcmd: u16_at(b, 514),
            nn: u32_at(b, 516),
            oncs: u16_at(b, 520),
            vwc: u8_at(b, 525),
            sgls: u32_at(b, 536),
            subnqn: text(b, 768, 256),
            ioccsz: u32_at(b, 1792),
            iorcsz: u32_at(b, 1796),
            icdoff: u16_at(b, 1800),
        }
    }

    /// In-capsule data an I/O command may carry: IOCCSZ * 16 - 64 (the SQE), 0 when not advertised.
    pub fn in_capsule_bytes(&self) -> u32 {
        self.ioccsz.saturating_mul(16).saturating_sub(64)
    }
}

/// The Identify Namespace fields a host uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentifyNamespace {
    /// Namespace size in blocks.
    pub nsze: u64,
    /// Capacity in blocks.
    pub ncap: u64,
    /// Blocks in use.
    pub nuse: u64,
    /// Namespace features.
    pub nsfeat: u8,
    /// Formatted LBA size: format index in bits 3:0.
    pub flbas: u8,
    /// Logical block size in bytes of the current format.
    pub block_size: u32,
    /// Metadata bytes per block of the current format.
    pub metadata_size: u16,
}

impl IdentifyNamespace {
    /// Parses a 4096-byte Identify Namespace page.
    pub fn parse(b: &[u8]) -> IdentifyNamespace {
        let flbas = u8_at(b, 26);
        let lbaf = 128 + 4 * usize::from(flbas & 0xF);
        let lbads = u8_at(b, lbaf + 2);
        IdentifyNamespace {
            nsze: u64_at(b, 0),
            ncap: u64_at(b, 8),
            nuse: u64_at(b, 16),
            nsfeat: u8_at(b, 24),
            flbas,
            block_size: if (9..32).contains(&lbads) { 1 << lbads } else { 0 },
            metadata_size: u16_at(b, lbaf),
        }
    }
}

/// Parses an active namespace ID list (CNS 02h): the IDs before the first zero.
pub fn parse_ns_list(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).take_while(|&n| n != 0).collect()
}

/// One discovery log page entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryEntry {
    /// Transport type (3: TCP).
    pub trtype: u8,
    /// Address family (1: IPv4, 2: IPv6).
    pub adrfam: u8,
    /// Subsystem type (1 referral, 2 NVM, 3 current discovery).
    pub subtype: u8,
    /// Transport requirements.
    pub treq: u8,
    /// Port ID.
    pub portid: u16,
    /// Controller ID (0xFFFF: dynamic).
    pub cntlid: u16,
    /// Admin max SQ size.
    pub asqsz: u16,
    /// Transport service identifier (the port, for TCP).
    pub trsvcid: String,
    /// Subsystem NQN.
    pub subnqn: String,
    /// Transport address.
    pub traddr: String,
    /// TCP TSAS SECTYPE: 0 none, 1 TLS 1.2, 2 TLS 1.3.
    pub tsas_sectype: u8,
}

/// Size of the discovery log header and of each entry.
pub const DISC_ENTRY_LEN: usize = 1024;

impl DiscoveryEntry {
    /// Parses one 1024-byte entry.
    pub fn parse(e: &[u8]) -> DiscoveryEntry {
        DiscoveryEntry {
            trtype: u8_at(e, 0),
            adrfam: u8_at(e, 1),
            subtype: u8_at(e, 2),
            treq: u8_at(e, 3),
            portid: u16_at(e, 4),
            cntlid: u16_at(e, 6),
            asqsz: u16_at(e, 8),
            trsvcid: text(e, 32, 32),
            subnqn: text(e, 256, 256),
            traddr: text(e, 512, 256),
            tsas_sectype: u8_at(e, 768),
        }
    }

    /// The port requires a secure channel (TREQ says "required").
    pub fn requires_tls(&self) -> bool {
        self.treq & 0x03 == 0x01
    }

    /// The entry's address, when it is TCP over IPv4/IPv6 with a numeric address and port.
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let ip: std::net::IpAddr = self.traddr.trim().parse().ok()?;
        let port: u16 = self.trsvcid.trim().parse().ok()?;
        Some(std::net::SocketAddr::new(ip, port))
    }
}

/// Discovery log header: generation counter and number of records.
pub fn parse_disc_header(b: &[u8]) -> (u64, u64) {
    (u64_at(b, 0), u64_at(b, 8))
}
