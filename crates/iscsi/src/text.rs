//! Text key=value lists (RFC 7143 sections 6.1 and 6.6): parsing with the RFC's limits, encoding, and
//! the multi-PDU exchanges (the C bit) in both directions.
//!
//! Owns the byte format only; what each key means and how it is negotiated is [`crate::keys`].

/// Longest key name.
pub const MAX_KEY_LEN: usize = 63;
/// Longest value of a key that does not allow more.
pub const MAX_VALUE_LEN: usize = 255;
/// Longest value of the keys that carry large binary values (CHAP challenges and responses).
pub const MAX_LARGE_VALUE_LEN: usize = 4096;
/// Most text one exchange may accumulate across continued PDUs; past it the peer is misbehaving.
pub const MAX_TEXT: usize = 64 * 1024;

/// Why a text list is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// An entry without `=`, an empty or badly spelled key, or a value that is not UTF-8.
    #[error("malformed key=value entry")]
    Malformed,
    /// A key name over 63 bytes.
    #[error("key name longer than 63 bytes")]
    KeyTooLong,
    /// A value over the key's limit.
    #[error("value of {0} too long")]
    ValueTooLong(String),
    /// The same key twice.
    #[error("key {0} repeated")]
    Repeated(String),
    /// More text than [`MAX_TEXT`].
    #[error("text exchange larger than {MAX_TEXT} bytes")]
    TooLarge,
}

/// The value limit of `key`: CHAP's binary values may be long, everything else 255 bytes.
pub fn value_limit(key: &str) -> usize {
    match key {
        "CHAP_C" | "CHAP_R" => MAX_LARGE_VALUE_LEN,
        _ => MAX_VALUE_LEN,
    }
}

fn key_char_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'@' | b'_')
}

/// Parses a NUL-separated list of `key=value` pairs. Trailing NULs (padding) are ignored; a key may
/// appear once.
pub fn parse(data: &[u8]) -> Result<Vec<(&str, &str)>, TextError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for entry in data.split(|&b| b == 0) {
        if entry.is_empty() {
            continue;
        }
        let eq = entry.iter().position(|&b| b == b'=').ok_or(TextError::Malformed)?;
        let (k, v) = (entry.get(..eq).unwrap_or(&[]), entry.get(eq + 1..).unwrap_or(&[]));
        if k.is_empty() || !k.iter().all(|&c| key_char_ok(c)) {
            return Err(TextError::Malformed);
        }
        if k.len() > MAX_KEY_LEN {
            return Err(TextError::KeyTooLong);
        }
        let key = std::str::from_utf8(k).map_err(|_| TextError::Malformed)?;
        let value = std::str::from_utf8(v).map_err(|_| TextError::Malformed)?;
        if value.len() > value_limit(key) {
            return Err(TextError::ValueTooLong(key.to_owned()));
        }
        if out.iter().any(|(seen, _)| *seen == key) {
            return Err(TextError::Repeated(key.to_owned()));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Builds a text list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextWriter {
    buf: Vec<u8>,
}

impl TextWriter {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key=value\0`.
    pub fn push(&mut self, key: &str, value: &str) {
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(b'=');
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded list.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The encoded list so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Text received over several PDUs with the C bit set, joined before it is parsed (a pair may be
/// split anywhere).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextAccum {
    buf: Vec<u8>,
}

impl TextAccum {
    /// Appends one PDU's data segment.
    pub fn push(&mut self, data: &[u8]) -> Result<(), TextError> {
        if self.buf.len() + data.len() > MAX_TEXT {
            return Err(TextError::TooLarge);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Takes the joined text, leaving the accumulator empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// A response text too long for one PDU, handed out a chunk per PDU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextOut {
    buf: Vec<u8>,
    sent: usize,
}

impl TextOut {
    /// Text to send.
    pub fn new(buf: Vec<u8>) -> Self {
        TextOut { buf, sent: 0 }
    }

    /// The next chunk of at most `max` bytes, and whether more follows (the C bit).
    pub fn next_chunk(&mut self, max: usize) -> (Vec<u8>, bool) {
        let end = self.buf.len().min(self.sent + max.max(1));
        let chunk = self.buf.get(self.sent..end).unwrap_or(&[]).to_vec();
        self.sent = end;
        (chunk, self.sent < self.buf.len())
    }

    /// Whether chunks remain.
    pub fn pending(&self) -> bool {
        self.sent < self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_write() {
        let mut w = TextWriter::new();
        w.push("HeaderDigest", "CRC32C,None");
        w.push("X-com.example.Foo", "bar=baz");
        let mut b = w.into_bytes();
        b.extend_from_slice(&[0, 0]);
        let kv = parse(&b).unwrap();
        assert_eq!(kv, vec![("HeaderDigest", "CRC32C,None"), ("X-com.example.Foo", "bar=baz")]);
    }

    #[test]
    fn limits() {
        let long_key = format!("{}=1\0", "K".repeat(64));
        assert_eq!(parse(long_key.as_bytes()), Err(TextError::KeyTooLong));
        let ok_key = format!("{}=1\0", "K".repeat(63));
        assert!(parse(ok_key.as_bytes()).is_ok());
        let long_val = format!("TargetAlias={}\0", "v".repeat(256));
        assert_eq!(parse(long_val.as_bytes()), Err(TextError::ValueTooLong("TargetAlias".into())));
        let chap = format!("CHAP_R=0x{}\0", "ab".repeat(300));
        assert!(parse(chap.as_bytes()).is_ok());
        assert_eq!(parse(b"A=1\0A=2\0"), Err(TextError::Repeated("A".into())));
        assert_eq!(parse(b"novalue\0"), Err(TextError::Malformed));
        assert_eq!(parse(b"=x\0"), Err(TextError::Malformed));
        assert_eq!(parse(b"a b=x\0"), Err(TextError::Malformed));
        assert_eq!(parse(b"A=\xff\0"), Err(TextError::Malformed));
    }

    #[test]
    fn chunks() {
        let mut o = TextOut::new(vec![1; 10]);
        assert_eq!(o.next_chunk(4), (vec![1; 4], true));
        assert_eq!(o.next_chunk(4), (vec![1; 4], true));
        assert_eq!(o.next_chunk(4), (vec![1; 2], false));
        assert!(!o.pending());
        let mut a = TextAccum::default();
        a.push(b"Key=va").unwrap();
        a.push(b"lue\0").unwrap();
        assert_eq!(parse(&a.take()).unwrap(), vec![("Key", "value")]);
        assert!(a.push(&vec![0; MAX_TEXT + 1]).is_err());
    }
}
