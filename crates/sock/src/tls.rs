//! TLS on a socket of the group, after a handshake done elsewhere (the handshake and the record
//! cipher belong to the protocol's TLS crate; this module only moves protected bytes):
//!
//! - kernel TLS: [`ktls_install`] hands the record keys of both directions to the kernel (`TCP_ULP
//!   "tls"`), after which the socket carries plaintext for the group like any other, so batching, the
//!   receive pipe, io_uring and zero copy keep working;
//! - user-space records where kTLS is missing: [`crate::SockGroup::add_tls`] joins a socket with a
//!   [`RecordLayer`] that opens received records and seals queued writes (no zero copy then).
//!
//! With kTLS receive on, the kernel hands only application data to `recv`: a record of another type
//! (an alert such as close_notify, a KeyUpdate, a NewSessionTicket) makes the read fail with EIO. The
//! group reports that error like any other and the connection ends; a peer that needs key updates or
//! post-handshake messages must use the user-space path.

use crate::socket::TcpSock;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;

/// TLS 1.3 record protection of one connection, in user space (the sock layer owns the bytes, the
/// implementation owns the cipher, its keys and record sequence numbers).
pub trait RecordLayer: Send {
    /// Opens every whole record at the front of `input`, appending the plaintext of application-data
    /// records to `out`. Returns how many bytes of `input` it consumed (whole records only; a partial
    /// record at the end stays for the next call).
    fn open(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RecordError>;

    /// Seals the concatenation of `plain` into application-data records appended to `out`.
    fn seal(&mut self, plain: &[&[u8]], out: &mut Vec<u8>) -> Result<(), RecordError>;

    /// The record keys with the next sequence numbers of both directions, so the connection can move
    /// to kernel TLS from here (e.g. after setup messages ran in user space); `None` when it cannot
    /// (no keys exposed, a message half received, the stream ended).
    fn ktls_keys(&self) -> Option<KtlsKeys> {
        None
    }
}

/// Why a record stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The peer sent close_notify: an orderly end of stream.
    Closed,
    /// Anything else (bad record, failed authentication tag, fatal alert, unsupported message).
    Fatal(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Closed => f.write_str("TLS close_notify"),
            RecordError::Fatal(why) => write!(f, "TLS record error: {why}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// The TLS 1.3 AEAD of a connection, as the kernel names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtlsCipher {
    /// TLS_AES_128_GCM_SHA256: 16-byte key.
    Aes128Gcm,
    /// TLS_AES_256_GCM_SHA384: 32-byte key.
    Aes256Gcm,
}

/// One direction's record keys: the AEAD key, the 12-byte static IV and the next record's sequence
/// number.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectionKeys {
    /// The write key (16 or 32 bytes, as the cipher says).
    pub key: Vec<u8>,
    /// The TLS 1.3 static IV (12 bytes).
    pub iv: [u8; 12],
    /// Sequence number of the next record.
    pub seq: u64,
}

impl fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectionKeys").field("key", &"<secret>").field("seq", &self.seq).finish()
    }
}

/// The record keys of both directions of an established TLS 1.3 connection, for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtlsKeys {
    /// The AEAD.
    pub cipher: KtlsCipher,
    /// What this end sends with.
    pub tx: DirectionKeys,
    /// What this end receives with.
    pub rx: DirectionKeys,
}

/// The error [`ktls_install`] returns when the kernel has no TLS upper-layer protocol (the `tls`
/// module is not built or cannot be loaded): the caller falls back to user-space records with a
/// warning. Carried inside an `io::Error` of kind `Unsupported`; [`ktls_unavailable`] recognises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KtlsUnavailable;

impl fmt::Display for KtlsUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("kernel TLS unavailable (no tls module)")
    }
}

impl std::error::Error for KtlsUnavailable {}

/// True when `e` is the "no kernel TLS" error of [`ktls_install`] (fall back), not a failure of the
/// socket or of the keys.
pub fn ktls_unavailable(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<KtlsUnavailable>())
}

/// Turns kernel TLS on for an established connection: `TCP_ULP "tls"`, then the TLS 1.3 record keys
/// of each direction (`SOL_TLS` / `TLS_TX` and `TLS_RX`). Afterwards the socket carries plaintext
/// for the group like any other (add it with [`crate::SockGroup::add`]), without zero copy (the
/// kernel's TLS send path refuses MSG_ZEROCOPY, so SO_ZEROCOPY is turned off).
///
/// Errors: [`KtlsUnavailable`] (see [`ktls_unavailable`]) when the kernel has no TLS ULP, the socket
/// untouched and still usable for user-space records; `InvalidInput` when a key's length does not
/// fit the cipher (nothing set). Any other error after the ULP went on leaves the socket half
/// configured: close it.
pub fn ktls_install(sock: &TcpSock, keys: &KtlsKeys) -> io::Result<()> {
    let want = match keys.cipher {
        KtlsCipher::Aes128Gcm => libc::TLS_CIPHER_AES_GCM_128_KEY_SIZE,
        KtlsCipher::Aes256Gcm => libc::TLS_CIPHER_AES_GCM_256_KEY_SIZE,
    };
    for (dir, k) in [("tx", &keys.tx), ("rx", &keys.rx)] {
        if k.key.len() != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("kTLS {dir} key is {} bytes, {:?} needs {want}", k.key.len(), keys.cipher),
            ));
        }
    }
    let fd = sock.as_raw_fd();
    set_ulp_tls(fd)?;
    set_direction(fd, libc::TLS_TX, keys.cipher, &keys.tx)
        .map_err(|e| io::Error::new(e.kind(), format!("kTLS TLS_TX: {e}")))?;
    set_direction(fd, libc::TLS_RX, keys.cipher, &keys.rx)
        .map_err(|e| io::Error::new(e.kind(), format!("kTLS TLS_RX: {e}")))?;
    // The kernel's software TLS send path refuses MSG_ZEROCOPY (EOPNOTSUPP): with SO_ZEROCOPY off the
    // group never asks for it on this socket (it reads the option when the socket joins).
    if sock.zerocopy_enabled() {
        sock.set_int(libc::SOL_SOCKET, libc::SO_ZEROCOPY, 0)
            .map_err(|e| io::Error::new(e.kind(), format!("kTLS: turning SO_ZEROCOPY off: {e}")))?;
    }
    Ok(())
}

/// True when the kernel accepts the TLS ULP. Probed once per process on a connected loopback TCP
/// pair (a ULP needs an established TCP socket: a socketpair or a listener cannot take one; the
/// `tcp_available_ulp` sysctl lists only modules already loaded, while the probe lets the kernel
/// load `tls` on demand).
pub fn ktls_available() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| match probe() {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("kTLS probe: {e}");
            false
        }
    })
}

fn probe() -> io::Result<()> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let c = std::net::TcpStream::connect(l.local_addr()?)?;
    // The kernel completes a loopback handshake before connect returns: `c` is established.
    set_ulp_tls(c.as_raw_fd())
}

/// `setsockopt(IPPROTO_TCP, TCP_ULP, "tls")`, with ENOENT (no such ULP) mapped to [`KtlsUnavailable`].
fn set_ulp_tls(fd: RawFd) -> io::Result<()> {
    const ULP: &[u8] = b"tls";
    // SAFETY: ULP is valid for reads of its length for the whole call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_ULP, ULP.as_ptr().cast(), ULP.len() as libc::socklen_t)
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        return Err(io::Error::new(io::ErrorKind::Unsupported, KtlsUnavailable));
    }
    Err(io::Error::new(e.kind(), format!("TCP_ULP tls: {e}")))
}

/// The kernel's TLS 1.3 split of the 12-byte static IV: the first 4 bytes are the `salt`, the last 8
/// the `iv`, and `rec_seq` is the next record's sequence number, big-endian (include/uapi/linux/tls.h,
/// Documentation/networking/tls.rst).
fn split_iv(k: &DirectionKeys) -> ([u8; 4], [u8; 8], [u8; 8]) {
    let mut salt = [0u8; 4];
    let mut iv = [0u8; 8];
    salt.copy_from_slice(&k.iv[..4]);
    iv.copy_from_slice(&k.iv[4..]);
    (salt, iv, k.seq.to_be_bytes())
}

/// `setsockopt(SOL_TLS, dir, tls12_crypto_info_aes_gcm_{128,256})` (the kernel names the TLS 1.3
/// layout "tls12" too: `info.version` says 1.3). The key material on the stack is cleared after.
fn set_direction(fd: RawFd, dir: libc::c_int, cipher: KtlsCipher, k: &DirectionKeys) -> io::Result<()> {
    let (salt, iv, rec_seq) = split_iv(k);
    match cipher {
        KtlsCipher::Aes128Gcm => {
            let mut info = libc::tls12_crypto_info_aes_gcm_128 {
                info: libc::tls_crypto_info {
                    version: libc::TLS_1_3_VERSION,
                    cipher_type: libc::TLS_CIPHER_AES_GCM_128,
                },
                iv,
                key: [0; libc::TLS_CIPHER_AES_GCM_128_KEY_SIZE],
                salt,
                rec_seq,
            };
            info.key.copy_from_slice(&k.key);
            let r = set_bytes(fd, dir, &info);
            wipe(&mut info);
            r
        }
        KtlsCipher::Aes256Gcm => {
            let mut info = libc::tls12_crypto_info_aes_gcm_256 {
                info: libc::tls_crypto_info {
                    version: libc::TLS_1_3_VERSION,
                    cipher_type: libc::TLS_CIPHER_AES_GCM_256,
                },
                iv,
                key: [0; libc::TLS_CIPHER_AES_GCM_256_KEY_SIZE],
                salt,
                rec_seq,
            };
            info.key.copy_from_slice(&k.key);
            let r = set_bytes(fd, dir, &info);
            wipe(&mut info);
            r
        }
    }
}

/// setsockopt(SOL_TLS) of a plain-old-data kernel struct.
fn set_bytes<T: Copy>(fd: RawFd, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` is a live `T` (a #[repr(C)] libc struct of bytes and u16s, no padding) valid for
    // reads of size_of::<T>() during the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_TLS, name, (val as *const T).cast(), size_of::<T>() as libc::socklen_t)
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Overwrites the key material of a crypto-info struct so it does not linger on the stack.
fn wipe<T: Copy>(val: &mut T) {
    let p = (val as *mut T).cast::<u8>();
    for i in 0..size_of::<T>() {
        // SAFETY: `p + i` stays inside `*val` (i < size_of::<T>()), which we borrow mutably; every
        // byte pattern is a valid value of these integer-array structs. Volatile so the store is kept.
        unsafe { p.add(i).write_volatile(0) };
    }
}

/// Warned once per process that kernel TLS is missing.
static KTLS_MISSING_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Moves a connection whose records run in user space (`records`, at a record boundary) to kernel
/// TLS with the keys and sequence numbers the layer reached: `Ok(None)` then. Where the kernel has
/// no TLS (warned once per process) or the layer cannot hand its keys over, the layer comes back and
/// the connection stays in user space. An error leaves kernel TLS half set up: close the socket.
pub fn move_to_kernel(sock: &TcpSock, records: Box<dyn RecordLayer>) -> io::Result<Option<Box<dyn RecordLayer>>> {
    let Some(keys) = records.ktls_keys() else { return Ok(Some(records)) };
    match ktls_install(sock, &keys) {
        Ok(()) => Ok(None),
        Err(e) if ktls_unavailable(&e) => {
            if !KTLS_MISSING_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!("kernel TLS unavailable ({e}): TLS records are sealed and opened in user space");
            }
            Ok(Some(records))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls13_iv_splits_into_salt_iv_and_big_endian_sequence() {
        let k = DirectionKeys { key: vec![0; 16], iv: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], seq: 0x0102 };
        let (salt, iv, seq) = split_iv(&k);
        assert_eq!(salt, [1, 2, 3, 4]);
        assert_eq!(iv, [5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(seq, [0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn kernel_struct_layouts_match_the_uapi_header() {
        // include/uapi/linux/tls.h: {u16 version, u16 cipher_type}, iv[8], key[16|32], salt[4], rec_seq[8].
        assert_eq!(size_of::<libc::tls12_crypto_info_aes_gcm_128>(), 4 + 8 + 16 + 4 + 8);
        assert_eq!(size_of::<libc::tls12_crypto_info_aes_gcm_256>(), 4 + 8 + 32 + 4 + 8);
        assert_eq!(libc::TLS_1_3_VERSION, 0x0304);
        assert_eq!((libc::TLS_CIPHER_AES_GCM_128, libc::TLS_CIPHER_AES_GCM_256), (51, 52));
        assert_eq!((libc::SOL_TLS, libc::TLS_TX, libc::TLS_RX, libc::TCP_ULP), (282, 1, 2, 31));
    }

    #[test]
    fn unavailable_error_is_recognised_and_says_why() {
        let e = io::Error::new(io::ErrorKind::Unsupported, KtlsUnavailable);
        assert!(ktls_unavailable(&e));
        assert_eq!(e.to_string(), "kernel TLS unavailable (no tls module)");
        assert!(!ktls_unavailable(&io::Error::from(io::ErrorKind::Unsupported)));
    }
}
