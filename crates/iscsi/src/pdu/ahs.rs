//! Additional Header Segments (RFC 7143 section 11.2.2): the extended CDB and the expected
//! bidirectional read data length, the only two the RFC defines.
//!
//! Owns their parsing and encoding. A CDB of up to 16 bytes (every READ and WRITE) lives inline, so
//! commands and headers stay small to move; only an extended CDB (rare) takes one bounded allocation.

use crate::error::Error;

/// Longest CDB SCSI defines (a variable-length CDB): 16 bytes in the BHS, the rest in an AHS.
pub const MAX_CDB: usize = 260;
/// AHSType of an extended CDB.
pub const AHS_EXTENDED_CDB: u8 = 1;
/// AHSType of the expected bidirectional read data length.
pub const AHS_BIDI_READ_LEN: u8 = 2;

/// A whole CDB: the BHS's 16 bytes followed by any extended part.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cdb(CdbRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum CdbRepr {
    /// Up to 16 bytes, inline.
    Short([u8; 16], u8),
    /// Longer (an extended CDB), at most [`MAX_CDB`].
    Long(Box<[u8]>),
}

impl Cdb {
    /// A CDB from its bytes (at most [`MAX_CDB`]; longer input is cut).
    pub fn new(bytes: &[u8]) -> Self {
        let n = bytes.len().min(MAX_CDB);
        let bytes = bytes.get(..n).unwrap_or(&[]);
        if n <= 16 {
            let mut b = [0u8; 16];
            b[..n].copy_from_slice(bytes);
            Cdb(CdbRepr::Short(b, n as u8))
        } else {
            Cdb(CdbRepr::Long(bytes.into()))
        }
    }

    /// The CDB bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            CdbRepr::Short(b, n) => b.get(..usize::from(*n)).unwrap_or(&[]),
            CdbRepr::Long(b) => b,
        }
    }
}

impl core::fmt::Debug for Cdb {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Cdb({:02x?})", self.as_bytes())
    }
}

/// What a command's AHS carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Ahs {
    /// The CDB bytes past the BHS's 16 (an extended CDB), if any.
    ext: Option<Box<[u8]>>,
    /// Expected Bidirectional Read Data Length, when present.
    pub bidi_read_len: Option<u32>,
}

impl Ahs {
    /// The CDB bytes past the 16 in the BHS.
    pub fn cdb_extension(&self) -> &[u8] {
        self.ext.as_deref().unwrap_or(&[])
    }

    /// The whole CDB given the BHS part.
    pub fn cdb(&self, base: &[u8; 16]) -> Cdb {
        match &self.ext {
            None => Cdb(CdbRepr::Short(*base, 16)),
            Some(ext) => {
                let mut v = Vec::with_capacity(16 + ext.len());
                v.extend_from_slice(base);
                v.extend_from_slice(ext);
                Cdb(CdbRepr::Long(v.into()))
            }
        }
    }

    /// Parses a whole AHS area (TotalAHSLength * 4 bytes). Unknown types, repeated types, and
    /// lengths that do not fit are errors (offset 4: the TotalAHSLength field they belong to).
    pub fn parse(mut area: &[u8]) -> Result<Ahs, Error> {
        const BAD: fn(&'static str) -> Error = |what| Error::InvalidField { offset: 4, what };
        let mut out = Ahs::default();
        let mut seen_ext = false;
        while !area.is_empty() {
            let [l0, l1, ty, _reserved, ..] = *area else { return Err(BAD("AHS entry truncated")) };
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            // AHSLength counts the bytes after the type byte; entries are padded to 4 bytes.
            let total = (3 + len + 3) & !3;
            let body = area.get(4..3 + len).ok_or(BAD("AHS entry longer than the AHS"))?;
            match ty {
                AHS_EXTENDED_CDB => {
                    if seen_ext || len < 2 || body.len() > MAX_CDB - 16 {
                        return Err(BAD("bad extended CDB AHS"));
                    }
                    seen_ext = true;
                    out.ext = Some(body.into());
                }
                AHS_BIDI_READ_LEN => {
                    let Ok(v) = <[u8; 4]>::try_from(body) else { return Err(BAD("bad bidirectional length AHS")) };
                    if out.bidi_read_len.is_some() {
                        return Err(BAD("repeated bidirectional length AHS"));
                    }
                    out.bidi_read_len = Some(u32::from_be_bytes(v));
                }
                _ => return Err(BAD("unknown AHS type")),
            }
            area = area.get(total..).unwrap_or(&[]);
        }
        Ok(out)
    }
}

/// Appends the AHS that carries `cdb` beyond its first 16 bytes (nothing for 16 bytes or fewer).
pub fn encode_ext_cdb(cdb: &[u8], out: &mut Vec<u8>) {
    let Some(ext) = cdb.get(16..).filter(|e| !e.is_empty()) else { return };
    let len = (ext.len() + 1) as u16;
    out.extend_from_slice(&len.to_be_bytes());
    out.push(AHS_EXTENDED_CDB);
    out.push(0);
    out.extend_from_slice(ext);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Appends the Expected Bidirectional Read Data Length AHS.
pub fn encode_bidi_read_len(len: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&5u16.to_be_bytes());
    out.push(AHS_BIDI_READ_LEN);
    out.push(0);
    out.extend_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_cdb_round_trip() {
        let cdb: Vec<u8> = (0..32u8).collect();
        let mut a = Vec::new();
        encode_ext_cdb(&cdb, &mut a);
        encode_bidi_read_len(4096, &mut a);
        // 16 extra bytes + reserved = AHSLength 17; 3 + 17 = 20 bytes, already aligned; then 8.
        assert_eq!(&a[..4], &[0, 17, 1, 0]);
        assert_eq!(a.len(), 28);
        let p = Ahs::parse(&a).unwrap();
        assert_eq!(p.cdb(cdb[..16].try_into().unwrap()).as_bytes(), &cdb[..]);
        assert_eq!(p.bidi_read_len, Some(4096));
    }

    #[test]
    fn hostile_ahs_rejected() {
        assert!(Ahs::parse(&[0, 40, 1, 0]).is_err());
        assert!(Ahs::parse(&[0, 5, 9, 0, 0, 0, 0, 0]).is_err());
        assert!(Ahs::parse(&[0, 4, 2, 0, 0, 0, 0, 0]).is_err());
        let mut twice = Vec::new();
        encode_bidi_read_len(1, &mut twice);
        encode_bidi_read_len(2, &mut twice);
        assert!(Ahs::parse(&twice).is_err());
        assert!(Ahs::parse(&[0, 0]).is_err());
    }
}
