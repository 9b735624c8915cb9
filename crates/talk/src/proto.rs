//! The one tiny request/response protocol every server and the load generator speak, shaped like a
//! storage protocol (the talk's "small commands interleaved with 4 KiB-multiple data"):
//!
//! - a 64-byte [`Command`]: magic, opcode, tag, data length (a multiple of 4 KiB, may be 0), the data's
//!   CRC32C (WRITE) and a header CRC32C;
//! - WRITE data follows its command; READ asks the server for `len` bytes;
//! - a 64-byte [`Response`] with a [`Status`], followed for a successful READ by `len` bytes of the
//!   deterministic [`fill_pattern`] of (tag, offset), so a client verifies every byte without state.
//!
//! This module owns the wire format and its validation: decoding never panics, bad input is an error.

/// Bytes of a command header.
pub const CMD_LEN: usize = 64;
/// Bytes of a response header.
pub const RESP_LEN: usize = 64;
/// Data lengths are multiples of this (a storage block).
pub const BLOCK: u32 = 4096;
/// Largest data length a command may carry or ask for.
pub const MAX_DATA: u32 = 1 << 20;
/// Magic of a command ("FFTC", little endian).
pub const CMD_MAGIC: u32 = u32::from_le_bytes(*b"FFTC");
/// Magic of a response ("FFTR", little endian).
pub const RESP_MAGIC: u32 = u32::from_le_bytes(*b"FFTR");

/// Offset of the header CRC (the last 4 bytes; it covers everything before it).
const HCRC_AT: usize = 60;

/// What a command asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum Opcode {
    /// Send `len` bytes of the pattern back.
    Read = 1,
    /// `len` bytes of data follow; check their CRC.
    Write = 2,
}

/// How the server answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Done (READ data follows the response).
    Ok = 0,
    /// The command could not be decoded (magic, opcode or header CRC); the server closes after it.
    BadCommand = 1,
    /// The length is not a multiple of [`BLOCK`] or above [`MAX_DATA`]; the server closes after it.
    BadLength = 2,
    /// WRITE data did not match its CRC; the stream is still in sync, so the connection stays up.
    BadDataCrc = 3,
}

impl Status {
    fn from_u8(v: u8) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::BadCommand,
            2 => Status::BadLength,
            3 => Status::BadDataCrc,
            _ => return None,
        })
    }
}

/// Why bytes are not a valid header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// Fewer than 64 bytes.
    #[error("header too short: {0} bytes")]
    Short(usize),
    /// Wrong magic.
    #[error("bad magic {0:#010x}")]
    BadMagic(u32),
    /// Unknown opcode or status.
    #[error("unknown opcode/status {0}")]
    BadCode(u8),
    /// Header CRC mismatch.
    #[error("header checksum mismatch")]
    BadHeaderCrc,
    /// Length not a block multiple or too large.
    #[error("bad data length {0}")]
    BadLength(u32),
}

impl ProtoError {
    /// The status a server answers this error with.
    pub fn status(&self) -> Status {
        match self {
            ProtoError::BadLength(_) => Status::BadLength,
            _ => Status::BadCommand,
        }
    }
}

fn check_len(len: u32) -> Result<(), ProtoError> {
    if !len.is_multiple_of(BLOCK) || len > MAX_DATA { Err(ProtoError::BadLength(len)) } else { Ok(()) }
}

fn header(magic: u32, code: u8, tag: u64, len: u32, data_crc: u32) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..4].copy_from_slice(&magic.to_le_bytes());
    b[4] = code;
    b[8..16].copy_from_slice(&tag.to_le_bytes());
    b[16..20].copy_from_slice(&len.to_le_bytes());
    b[20..24].copy_from_slice(&data_crc.to_le_bytes());
    let crc = crc32c::crc32c(&b[..HCRC_AT]);
    b[HCRC_AT..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Fields of a checked header: (code, tag, len, data_crc).
fn parse(b: &[u8], magic: u32) -> Result<(u8, u64, u32, u32), ProtoError> {
    let b: &[u8; 64] = b.get(..64).and_then(|s| s.try_into().ok()).ok_or(ProtoError::Short(b.len()))?;
    let m = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if m != magic {
        return Err(ProtoError::BadMagic(m));
    }
    let crc = u32::from_le_bytes([b[60], b[61], b[62], b[63]]);
    if crc != crc32c::crc32c(&b[..HCRC_AT]) {
        return Err(ProtoError::BadHeaderCrc);
    }
    let tag = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes"));
    let dcrc = u32::from_le_bytes(b[20..24].try_into().expect("4 bytes"));
    Ok((b[4], tag, len, dcrc))
}

/// A request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// READ or WRITE.
    pub opcode: Opcode,
    /// The client's identifier, echoed in the response and seeding the READ pattern.
    pub tag: u64,
    /// Data bytes (WRITE: following the command; READ: asked for).
    pub len: u32,
    /// CRC32C of the WRITE data (0 for READ).
    pub data_crc: u32,
}

impl Command {
    /// A READ of `len` bytes.
    pub fn read(tag: u64, len: u32) -> Command {
        Command { opcode: Opcode::Read, tag, len, data_crc: 0 }
    }

    /// A WRITE of `data`.
    pub fn write(tag: u64, data: &[u8]) -> Command {
        Command { opcode: Opcode::Write, tag, len: data.len() as u32, data_crc: crc32c::crc32c(data) }
    }

    /// The 64 wire bytes.
    pub fn encode(&self) -> [u8; CMD_LEN] {
        header(CMD_MAGIC, self.opcode as u8, self.tag, self.len, self.data_crc)
    }

    /// Decodes and validates the first 64 bytes of `b`.
    pub fn decode(b: &[u8]) -> Result<Command, ProtoError> {
        let (code, tag, len, data_crc) = parse(b, CMD_MAGIC)?;
        let opcode = match code {
            1 => Opcode::Read,
            2 => Opcode::Write,
            c => return Err(ProtoError::BadCode(c)),
        };
        check_len(len)?;
        Ok(Command { opcode, tag, len, data_crc })
    }

    /// Data bytes that follow this command on the wire (WRITE only).
    pub fn inbound_len(&self) -> usize {
        if self.opcode == Opcode::Write { self.len as usize } else { 0 }
    }
}

/// A reply header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The outcome.
    pub status: Status,
    /// The command's tag (best effort from the raw bytes when the command was undecodable).
    pub tag: u64,
    /// Data bytes that follow (a successful READ's length, else 0).
    pub len: u32,
}

impl Response {
    /// The 64 wire bytes.
    pub fn encode(&self) -> [u8; RESP_LEN] {
        header(RESP_MAGIC, self.status as u8, self.tag, self.len, 0)
    }

    /// Decodes and validates the first 64 bytes of `b`.
    pub fn decode(b: &[u8]) -> Result<Response, ProtoError> {
        let (code, tag, len, _) = parse(b, RESP_MAGIC)?;
        let status = Status::from_u8(code).ok_or(ProtoError::BadCode(code))?;
        check_len(len)?;
        Ok(Response { status, tag, len })
    }
}

/// The tag bytes of a (possibly invalid) command, so an error response can still name it.
pub fn raw_tag(b: &[u8]) -> u64 {
    b.get(8..16).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0)
}

/// What a server answers to one command whose WRITE data (if any) is `data`: the response and, for a
/// successful READ, the bytes to send after it (written into `out`, which is resized to fit).
pub fn execute(cmd: &Command, data: &[u8], out: &mut Vec<u8>) -> Response {
    match cmd.opcode {
        Opcode::Read => {
            out.resize(cmd.len as usize, 0);
            fill_pattern(cmd.tag, 0, out);
            Response { status: Status::Ok, tag: cmd.tag, len: cmd.len }
        }
        Opcode::Write => {
            out.clear();
            let status = if crc32c::crc32c(data) == cmd.data_crc { Status::Ok } else { Status::BadDataCrc };
            Response { status, tag: cmd.tag, len: 0 }
        }
    }
}

fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser: cheap, and every (tag, word) gives unrelated bytes.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pattern_word(tag: u64, word: u64) -> u64 {
    mix(tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ word)
}

/// Fills `buf` with the pattern of `tag` starting at byte `offset` (multiple of 8 for speed; any works).
pub fn fill_pattern(tag: u64, offset: u64, buf: &mut [u8]) {
    if !offset.is_multiple_of(8) {
        return fill_bytes(tag, offset, buf);
    }
    let done = buf.len() / 8 * 8;
    let (words, rest) = buf.split_at_mut(done);
    for (w, c) in words.chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&pattern_word(tag, offset / 8 + w as u64).to_le_bytes());
    }
    fill_bytes(tag, offset + done as u64, rest);
}

fn fill_bytes(tag: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        *b = pattern_word(tag, pos / 8).to_le_bytes()[(pos % 8) as usize];
    }
}

/// True when `buf` holds the pattern of `tag` from `offset`.
pub fn check_pattern(tag: u64, offset: u64, buf: &[u8]) -> bool {
    if offset.is_multiple_of(8) {
        let mut chunks = buf.chunks_exact(8);
        for (w, c) in (&mut chunks).enumerate() {
            if c != pattern_word(tag, offset / 8 + w as u64).to_le_bytes() {
                return false;
            }
        }
        let done = buf.len() - chunks.remainder().len();
        return check_pattern_bytes(tag, offset + done as u64, chunks.remainder());
    }
    check_pattern_bytes(tag, offset, buf)
}

fn check_pattern_bytes(tag: u64, offset: u64, buf: &[u8]) -> bool {
    buf.iter().enumerate().all(|(i, &b)| {
        let pos = offset + i as u64;
        b == pattern_word(tag, pos / 8).to_le_bytes()[(pos % 8) as usize]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trips_and_layout_is_fixed() {
        let c = Command { opcode: Opcode::Write, tag: 0x1122_3344_5566_7788, len: 8192, data_crc: 0xdead_beef };
        let b = c.encode();
        assert_eq!(&b[0..4], b"FFTC");
        assert_eq!(b[4], 2);
        assert_eq!(&b[8..16], &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
        assert_eq!(&b[16..20], &[0, 0x20, 0, 0]);
        assert_eq!(&b[20..24], &[0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(Command::decode(&b), Ok(c));
        assert_eq!(raw_tag(&b), c.tag);
    }

    #[test]
    fn response_round_trips() {
        let r = Response { status: Status::BadDataCrc, tag: 7, len: 0 };
        let b = r.encode();
        assert_eq!(&b[0..4], b"FFTR");
        assert_eq!(Response::decode(&b), Ok(r));
        assert!(Command::decode(&b).is_err(), "a response is not a command");
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        assert_eq!(Command::decode(&[0u8; 10]), Err(ProtoError::Short(10)));
        assert_eq!(Command::decode(&[0xab; 64]), Err(ProtoError::BadMagic(0xabab_abab)));
        let mut b = Command::read(1, 4096).encode();
        b[30] ^= 1;
        assert_eq!(Command::decode(&b), Err(ProtoError::BadHeaderCrc));
        let odd = Command { opcode: Opcode::Read, tag: 1, len: 4095, data_crc: 0 }.encode();
        assert_eq!(Command::decode(&odd), Err(ProtoError::BadLength(4095)));
        let huge = Command { opcode: Opcode::Write, tag: 1, len: MAX_DATA + BLOCK, data_crc: 0 }.encode();
        assert_eq!(Command::decode(&huge).unwrap_err().status(), Status::BadLength);
        let mut bad_op = header(CMD_MAGIC, 9, 1, 0, 0);
        assert_eq!(Command::decode(&bad_op), Err(ProtoError::BadCode(9)));
        bad_op[4] = 1; // header CRC now stale
        assert_eq!(Command::decode(&bad_op), Err(ProtoError::BadHeaderCrc));
        assert_eq!(raw_tag(&[1, 2]), 0);
    }

    #[test]
    fn zero_length_commands_are_valid() {
        let c = Command::write(3, &[]);
        assert_eq!(Command::decode(&c.encode()).unwrap().inbound_len(), 0);
    }

    #[test]
    fn pattern_is_deterministic_and_checkable_from_any_offset() {
        let mut a = vec![0u8; 4096];
        fill_pattern(42, 0, &mut a);
        assert!(check_pattern(42, 0, &a));
        assert!(!check_pattern(43, 0, &a));
        assert!(check_pattern(42, 100, &a[100..]));
        assert!(check_pattern(42, 8, &a[8..17]));
        let mut b = vec![0u8; 5];
        fill_pattern(42, 3, &mut b);
        assert_eq!(&b, &a[3..8]);
        a[4000] ^= 0x10;
        assert!(!check_pattern(42, 0, &a));
    }

    #[test]
    fn execute_answers_read_with_pattern_and_checks_write_crc() {
        let mut out = Vec::new();
        let r = execute(&Command::read(9, 8192), &[], &mut out);
        assert_eq!((r.status, r.len, out.len()), (Status::Ok, 8192, 8192));
        assert!(check_pattern(9, 0, &out));
        let data = vec![5u8; 4096];
        let w = Command::write(10, &data);
        assert_eq!(execute(&w, &data, &mut out).status, Status::Ok);
        assert!(out.is_empty());
        assert_eq!(execute(&w, &[6u8; 4096], &mut out).status, Status::BadDataCrc);
    }
}
