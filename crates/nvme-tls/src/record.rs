//! The user-space TLS 1.3 record layer (for sockets without kernel TLS): AES-GCM through OpenSSL's
//! EVP contexts (AES-NI, and faster here than the pure-Rust AEADs), record framing, padding, alerts
//! and the post-handshake messages a host may meet.

use ff_sock::tls::{DirectionKeys, KtlsCipher, KtlsKeys, RecordError, RecordLayer};
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;

/// The largest plaintext per record (2^14).
pub const MAX_PLAINTEXT: usize = 1 << 14;
const TAG: usize = 16;
const HDR: usize = 5;
const APPLICATION_DATA: u8 = 23;
const HANDSHAKE: u8 = 22;
const ALERT: u8 = 21;
/// Largest post-handshake message kept while it arrives in pieces.
const MAX_HS_MESSAGE: usize = 1 << 16;

struct Direction {
    ctx: CipherCtx,
    iv: [u8; 12],
    seq: u64,
}

impl Direction {
    fn new(cipher: KtlsCipher, k: &DirectionKeys, encrypt: bool) -> Result<Self, ErrorStack> {
        let c = match cipher {
            KtlsCipher::Aes128Gcm => Cipher::aes_128_gcm(),
            KtlsCipher::Aes256Gcm => Cipher::aes_256_gcm(),
        };
        let mut ctx = CipherCtx::new()?;
        if k.key.len() != c.key_length() {
            // The key comes from our own derivation; a mismatch is a bug, reported, not a panic.
            return Err(ErrorStack::get());
        }
        if encrypt {
            ctx.encrypt_init(Some(c), Some(&k.key), None)?;
        } else {
            ctx.decrypt_init(Some(c), Some(&k.key), None)?;
        }
        Ok(Direction { ctx, iv: k.iv, seq: k.seq })
    }

    /// The per-record nonce: the static IV XOR the big-endian sequence number.
    fn nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    fn advance(&mut self) -> Result<(), RecordError> {
        self.seq = self.seq.checked_add(1).ok_or_else(|| fatal("record sequence numbers exhausted"))?;
        Ok(())
    }
}

fn fatal(why: impl Into<String>) -> RecordError {
    RecordError::Fatal(why.into())
}

fn crypto(what: &str) -> impl Fn(ErrorStack) -> RecordError + '_ {
    move |e| fatal(format!("{what}: {e}"))
}

/// TLS 1.3 AES-GCM records with one connection's keys and sequence numbers.
pub struct GcmRecords {
    tx: Direction,
    rx: Direction,
    hs: Vec<u8>,
    dead: Option<RecordError>,
}

impl GcmRecords {
    /// A record layer continuing from `keys` (sequence numbers included).
    pub fn new(keys: &KtlsKeys) -> Result<Self, ErrorStack> {
        Ok(GcmRecords {
            tx: Direction::new(keys.cipher, &keys.tx, true)?,
            rx: Direction::new(keys.cipher, &keys.rx, false)?,
            hs: Vec::new(),
            dead: None,
        })
    }

    /// Sequence numbers of the next record sent and received.
    pub fn seqs(&self) -> (u64, u64) {
        (self.tx.seq, self.rx.seq)
    }

    /// Seals `n` bytes from `skip` into the concatenation of `plain`, then `trailer` (the inner content
    /// type, and padding if any), as one record.
    fn seal_record(
        &mut self,
        plain: &[&[u8]],
        skip: usize,
        n: usize,
        trailer: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let body = n + trailer.len() + TAG;
        let hdr = [APPLICATION_DATA, 3, 3, (body >> 8) as u8, body as u8];
        out.reserve(HDR + body);
        out.extend_from_slice(&hdr);
        let nonce = self.tx.nonce();
        let ctx = &mut self.tx.ctx;
        ctx.encrypt_init(None, None, Some(&nonce)).map_err(crypto("seal"))?;
        ctx.cipher_update(&hdr, None).map_err(crypto("seal"))?;
        // Gather `n` bytes starting `skip` bytes into the concatenation of `plain`.
        let (mut skip, mut left) = (skip, n);
        for p in plain {
            if left == 0 {
                break;
            }
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            let take = (p.len() - skip).min(left);
            ctx.cipher_update_vec(&p[skip..skip + take], out).map_err(crypto("seal"))?;
            left -= take;
            skip = 0;
        }
        ctx.cipher_update_vec(trailer, out).map_err(crypto("seal"))?;
        ctx.cipher_final_vec(out).map_err(crypto("seal"))?;
        let mut tag = [0u8; TAG];
        ctx.tag(&mut tag).map_err(crypto("seal"))?;
        out.extend_from_slice(&tag);
        self.tx.advance()
    }

    /// Handles decrypted handshake bytes: NewSessionTickets are skipped (we never resume), KeyUpdate and
    /// anything else end the connection.
    fn handshake_bytes(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        self.hs.extend_from_slice(bytes);
        while self.hs.len() >= 4 {
            let len = u32::from_be_bytes([0, self.hs[1], self.hs[2], self.hs[3]]) as usize;
            if len > MAX_HS_MESSAGE {
                return Err(fatal(format!("post-handshake message of {len} bytes")));
            }
            match self.hs[0] {
                4 => {}
                24 => return Err(fatal("peer sent KeyUpdate: rekeying is not supported")),
                t => return Err(fatal(format!("unexpected post-handshake message type {t}"))),
            }
            if self.hs.len() < 4 + len {
                break;
            }
            self.hs.drain(..4 + len);
        }
        Ok(())
    }

    fn open_inner(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RecordError> {
        let mut pos = 0;
        let produced_before = out.len();
        while input.len() - pos >= HDR {
            let hdr: [u8; HDR] = [input[pos], input[pos + 1], input[pos + 2], input[pos + 3], input[pos + 4]];
            let len = u16::from_be_bytes([hdr[3], hdr[4]]) as usize;
            if hdr[0] != APPLICATION_DATA {
                return Err(fatal(format!("unexpected outer record type {} after the handshake", hdr[0])));
            }
            if hdr[1..3] != [3, 3] {
                return Err(fatal(format!("record version {:02x}{:02x}, not 0303", hdr[1], hdr[2])));
            }
            if len > MAX_PLAINTEXT + 256 {
                return Err(fatal(format!("record of {len} bytes exceeds 2^14 + 256")));
            }
            if len < 1 + TAG {
                return Err(fatal(format!("record of {len} bytes is too short for a tag and a content type")));
            }
            if input.len() - pos < HDR + len {
                break;
            }
            let ct = &input[pos + HDR..pos + HDR + len - TAG];
            let tag = &input[pos + HDR + len - TAG..pos + HDR + len];
            let start = out.len();
            let nonce = self.rx.nonce();
            let ctx = &mut self.rx.ctx;
            let opened = (|| -> Result<(), ErrorStack> {
                ctx.decrypt_init(None, None, Some(&nonce))?;
                ctx.cipher_update(&hdr, None)?;
                ctx.cipher_update_vec(ct, out)?;
                ctx.set_tag(tag)?;
                ctx.cipher_final_vec(out)?;
                Ok(())
            })();
            if opened.is_err() {
                out.truncate(start);
                return Err(fatal(format!(
                    "record {} failed authentication (corrupted, or keys/sequence out of step)",
                    self.rx.seq
                )));
            }
            if out.len() - start > MAX_PLAINTEXT + 1 {
                out.truncate(start);
                return Err(fatal("record plaintext exceeds 2^14 + 1 bytes (record_overflow)"));
            }
            // Strip the zero padding; the last non-zero byte is the real content type.
            let Some(at) = out[start..].iter().rposition(|&b| b != 0) else {
                out.truncate(start);
                return Err(fatal("record has no content type (all padding)"));
            };
            let ctype = out[start + at];
            out.truncate(start + at);
            match ctype {
                APPLICATION_DATA => {}
                HANDSHAKE => {
                    let msg = out.split_off(start);
                    self.handshake_bytes(&msg)?;
                }
                ALERT => {
                    let alert = out.split_off(start);
                    if out.len() > produced_before {
                        // Hand over the data before the alert first; the alert is opened again next call.
                        return Ok(pos);
                    }
                    self.rx.advance()?;
                    return Err(match alert.as_slice() {
                        [_, 0] => RecordError::Closed,
                        [level, desc] => fatal(format!("peer sent alert {desc} (level {level})")),
                        _ => fatal(format!("malformed alert of {} bytes", alert.len())),
                    });
                }
                t => {
                    out.truncate(start);
                    return Err(fatal(format!("unexpected inner content type {t}")));
                }
            }
            self.rx.advance()?;
            pos += HDR + len;
        }
        Ok(pos)
    }
}

impl RecordLayer for GcmRecords {
    fn open(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RecordError> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        self.open_inner(input, out).inspect_err(|e| self.dead = Some(e.clone()))
    }

    fn seal(&mut self, plain: &[&[u8]], out: &mut Vec<u8>) -> Result<(), RecordError> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        // Full 16 KiB records: many small writes become one record (and one tag).
        let total: usize = plain.iter().map(|p| p.len()).sum();
        let mut done = 0;
        while done < total {
            let n = (total - done).min(MAX_PLAINTEXT);
            self.seal_record(plain, done, n, &[APPLICATION_DATA], out).inspect_err(|e| self.dead = Some(e.clone()))?;
            done += n;
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl GcmRecords {
    /// Seals one record of `content` with inner type `ctype` (tests: alerts, handshake messages).
    #[cfg(test)]
    pub(crate) fn seal_typed(&mut self, ctype: u8, content: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        self.seal_record(&[content], 0, content.len(), &[ctype], out)
    }

    /// Seals one record whose inner plaintext is exactly `inner` (content, type, padding).
    pub(crate) fn seal_raw(&mut self, inner: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        self.seal_record(&[inner], 0, inner.len(), &[], out)
    }
}

/// A record layer whose cipher could not be set up: every call reports why.
pub(crate) struct Broken(pub(crate) String);

impl RecordLayer for Broken {
    fn open(&mut self, _: &[u8], _: &mut Vec<u8>) -> Result<usize, RecordError> {
        Err(fatal(self.0.clone()))
    }
    fn seal(&mut self, _: &[&[u8]], _: &mut Vec<u8>) -> Result<(), RecordError> {
        Err(fatal(self.0.clone()))
    }
}
