//! Choosing a backend from configuration: [`BackendSpec`] parses from `null`, `ram` or `file:PATH`
//! (command line) or deserializes from a TOML/serde table, and [`open`] turns it into an [`OpenedBackend`].

use crate::{BlockDev, BlockDevFactory, DEFAULT_SIZE, DevInfo, FileDev, FileOpts, NullDev, OpenError, RamDisk};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

/// Which backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// [`NullDev`]: reads return zeroes.
    Null,
    /// [`NullDev::no_fill`]: reads leave the buffer as it is (like SPDK's null bdev), for benchmarks.
    NullNoFill,
    /// [`RamDisk`].
    Ram,
    /// [`FileDev`] on this regular file or block device.
    File(PathBuf),
}

/// A malformed backend specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad backend spec {0:?}: expected null, null-nofill, ram or file:PATH, sizes like 4096, 64M, 1G, 2TiB")]
pub struct SpecError(pub String);

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendKind::Null => f.write_str("null"),
            BackendKind::NullNoFill => f.write_str("null-nofill"),
            BackendKind::Ram => f.write_str("ram"),
            BackendKind::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl Serialize for BackendSpec {
    /// As it parses back: the kind alone (`"ram"`), or a table when a size or block size is set.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.size.is_none() && self.block_size.is_none() {
            return s.serialize_str(&self.kind.to_string());
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", &self.kind.to_string())?;
        if let Some(n) = self.size {
            m.serialize_entry("size", &n)?;
        }
        if let Some(b) = self.block_size {
            m.serialize_entry("block_size", &b)?;
        }
        m.end()
    }
}

impl FromStr for BackendKind {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "null" => Ok(BackendKind::Null),
            "null-nofill" => Ok(BackendKind::NullNoFill),
            "ram" => Ok(BackendKind::Ram),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Ok(BackendKind::File(PathBuf::from(p))),
                _ => Err(SpecError(s.to_string())),
            },
        }
    }
}

/// Parses a byte size: a number with an optional binary suffix K, M, G, T (also KB/KiB, ...).
pub fn parse_size(s: &str) -> Result<u64, SpecError> {
    let bad = || SpecError(s.to_string());
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// A backend and its geometry, as configured.
///
/// From a string: `null`, `ram`, `file:/dev/nvme0n1` (size and block size left to defaults). From
/// TOML, either that string or a table: `{ kind = "file:/srv/disk.img", size = "10G", block_size = 4096 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SpecRepr")]
pub struct BackendSpec {
    /// Which backend.
    pub kind: BackendKind,
    /// Bytes: null/RAM size (default 1 GiB); for a file, create/extend to this size.
    pub size: Option<u64>,
    /// Block size, 512 or 4096 (default 512, or a block device's logical block size).
    pub block_size: Option<u32>,
}

impl BackendSpec {
    /// A spec of `kind` with default geometry.
    pub fn new(kind: BackendKind) -> BackendSpec {
        BackendSpec { kind, size: None, block_size: None }
    }
}

impl FromStr for BackendSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        s.parse().map(BackendSpec::new)
    }
}

/// A size in a config: a number of bytes or a string with a suffix.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Bytes(u64),
    Text(String),
}

/// What serde reads before validation.
#[derive(Deserialize)]
#[serde(untagged)]
enum SpecRepr {
    Kind(String),
    Table {
        kind: String,
        #[serde(default)]
        size: Option<SizeRepr>,
        #[serde(default)]
        block_size: Option<u32>,
    },
}

impl TryFrom<SpecRepr> for BackendSpec {
    type Error = SpecError;
    fn try_from(r: SpecRepr) -> Result<Self, SpecError> {
        match r {
            SpecRepr::Kind(k) => k.parse(),
            SpecRepr::Table { kind, size, block_size } => {
                let size = match size {
                    None => None,
                    Some(SizeRepr::Bytes(n)) => Some(n),
                    Some(SizeRepr::Text(t)) => Some(parse_size(&t)?),
                };
                Ok(BackendSpec { kind: kind.parse()?, size, block_size })
            }
        }
    }
}

/// An opened backend: the factory every reactor opens its handle from.
#[derive(Debug, Clone)]
pub enum OpenedBackend {
    /// A null device.
    Null(NullDev),
    /// A RAM disk.
    Ram(RamDisk),
    /// A file or block device.
    File(FileDev),
}

impl BlockDevFactory for OpenedBackend {
    fn info(&self) -> DevInfo {
        match self {
            OpenedBackend::Null(d) => d.info(),
            OpenedBackend::Ram(d) => d.info(),
            OpenedBackend::File(d) => d.info(),
        }
    }
    fn open_handle(&self) -> Result<Box<dyn BlockDev>, OpenError> {
        match self {
            OpenedBackend::Null(d) => d.open_handle(),
            OpenedBackend::Ram(d) => d.open_handle(),
            OpenedBackend::File(d) => d.open_handle(),
        }
    }
}

impl OpenedBackend {
    /// The same backend at `size` bytes, for a namespace resize; the data below the smaller size is
    /// kept (see each backend's `resized`).
    pub fn resized(&self, size: u64) -> Result<OpenedBackend, OpenError> {
        Ok(match self {
            OpenedBackend::Null(d) => OpenedBackend::Null(d.resized(size)?),
            OpenedBackend::Ram(d) => OpenedBackend::Ram(d.resized(size)?),
            OpenedBackend::File(d) => OpenedBackend::File(d.resized(size)?),
        })
    }
}

/// Opens the backend `spec` describes.
pub fn open(spec: &BackendSpec) -> Result<OpenedBackend, OpenError> {
    let bs = spec.block_size.unwrap_or(512);
    Ok(match &spec.kind {
        BackendKind::Null => OpenedBackend::Null(NullDev::new(spec.size.unwrap_or(DEFAULT_SIZE), bs)?),
        BackendKind::NullNoFill => OpenedBackend::Null(NullDev::new(spec.size.unwrap_or(DEFAULT_SIZE), bs)?.no_fill()),
        BackendKind::Ram => OpenedBackend::Ram(RamDisk::new(spec.size.unwrap_or(DEFAULT_SIZE), bs)?),
        BackendKind::File(p) => {
            OpenedBackend::File(FileDev::open(p, FileOpts { size: spec.size, block_size: spec.block_size })?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strings() {
        assert_eq!("null".parse::<BackendSpec>().unwrap().kind, BackendKind::Null);
        assert_eq!("null-nofill".parse::<BackendSpec>().unwrap().kind, BackendKind::NullNoFill);
        assert_eq!("ram".parse::<BackendSpec>().unwrap(), BackendSpec::new(BackendKind::Ram));
        assert_eq!("file:/dev/sdb".parse::<BackendKind>().unwrap(), BackendKind::File("/dev/sdb".into()));
        assert!("file:".parse::<BackendKind>().is_err());
        assert!("disk".parse::<BackendKind>().is_err());
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2t").unwrap(), 2 << 40);
        assert!(parse_size("1Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn serializes_as_it_parses() {
        for text in [r#""ram""#, r#""file:/srv/d.img""#, r#"{"kind":"null","size":1048576,"block_size":4096}"#] {
            let s: BackendSpec = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&s).unwrap(), text);
        }
    }

    #[test]
    fn resizes_keep_the_data_below_the_smaller_size() {
        let ram =
            open(&BackendSpec { size: Some(1 << 20), block_size: Some(4096), ..BackendSpec::new(BackendKind::Ram) })
                .unwrap();
        let mut h = ram.open_handle().unwrap();
        let mut buf = crate::IoBuf::new(4096);
        buf.fill(7);
        h.submit(crate::IoReq::write(1, 255, 1, buf, false)).unwrap();
        let mut done = Vec::new();
        h.poll(&mut done);
        assert!(done[0].result.is_ok());
        let bigger = ram.resized(4 << 20).unwrap();
        assert_eq!(bigger.info().num_blocks, 1024);
        let mut h2 = bigger.open_handle().unwrap();
        h2.submit(crate::IoReq::read(2, 255, 1, crate::IoBuf::new(4096))).unwrap();
        done.clear();
        h2.poll(&mut done);
        let buf = done[0].buf.as_ref().unwrap();
        assert!(buf.iter().all(|&b| b == 7), "the block written before the grow reads back");
        // Shrink below it, grow again: the block now reads zeroes.
        let smaller = bigger.resized(512 << 10).unwrap();
        assert_eq!(smaller.info().num_blocks, 128);
        let again = smaller.resized(2 << 20).unwrap();
        let mut h3 = again.open_handle().unwrap();
        h3.submit(crate::IoReq::read(3, 255, 1, crate::IoBuf::new(4096))).unwrap();
        done.clear();
        h3.poll(&mut done);
        assert!(done[0].buf.as_ref().unwrap().iter().all(|&b| b == 0));
        let null = open(&"null".parse().unwrap()).unwrap().resized(8 << 20).unwrap();
        assert_eq!(null.info().num_blocks, (8 << 20) / 512);
    }

    #[test]
    fn deserializes() {
        let s: BackendSpec = serde_json::from_str(r#""ram""#).unwrap();
        assert_eq!(s, BackendSpec::new(BackendKind::Ram));
        let s: BackendSpec =
            serde_json::from_str(r#"{"kind":"file:/srv/d.img","size":"10G","block_size":4096}"#).unwrap();
        assert_eq!(s.kind, BackendKind::File("/srv/d.img".into()));
        assert_eq!((s.size, s.block_size), (Some(10 << 30), Some(4096)));
        let s: BackendSpec = serde_json::from_str(r#"{"kind":"null","size":1048576}"#).unwrap();
        assert_eq!(s.size, Some(1 << 20));
        assert!(serde_json::from_str::<BackendSpec>(r#"{"kind":"tape"}"#).is_err());
        assert!(serde_json::from_str::<BackendSpec>(r#"{"kind":"ram","size":"lots"}"#).is_err());
    }

    #[test]
    fn opens_null_and_ram() {
        let spec = BackendSpec { kind: BackendKind::Ram, size: Some(1 << 20), block_size: Some(4096) };
        let b = open(&spec).unwrap();
        assert_eq!(b.info().num_blocks, 256);
        assert!(b.open_handle().is_ok());
        let b = open(&BackendSpec::new(BackendKind::Null)).unwrap();
        assert_eq!(b.info().size_bytes(), DEFAULT_SIZE);
        assert!(open(&BackendSpec { block_size: Some(1000), ..BackendSpec::new(BackendKind::Null) }).is_err());
    }
}
