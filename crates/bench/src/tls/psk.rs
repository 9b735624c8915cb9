//! The bench's throwaway TLS PSK in the NVMe interchange format `NVMeTLSkey-1:01:<base64(key || crc)>:`
//! (SHA-256, a 32-byte configured key, CRC-32/IEEE of the key appended little-endian, standard base64
//! with padding), as SPDK's `nvme_tcp_parse_interchange_psk` and Linux's `nvme_auth_extract_key` read it,
//! and its key file as SPDK's file keyring wants it (mode 0600, no trailing newline).

use anyhow::{Context, Result};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// CRC-32/IEEE (zlib's `crc32`), bit by bit: it runs once per bench.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Standard base64 (`+/`, `=` padding).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The interchange string of a 32-byte configured PSK, hash SHA-256 (`01`).
pub fn interchange(key: &[u8; 32]) -> String {
    let mut b = key.to_vec();
    b.extend_from_slice(&crc32(key).to_le_bytes());
    format!("NVMeTLSkey-1:01:{}:", base64(&b))
}

/// 32 random bytes from the kernel.
pub fn random_key() -> Result<[u8; 32]> {
    let mut k = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut k)).context("reading /dev/urandom")?;
    Ok(k)
}

/// Writes `psk` to `path` as SPDK's file keyring and `spdk_nvme_perf --psk-path` read it: created with
/// mode 0600 (they refuse group or other bits), no trailing newline (it would make the key invalid).
pub fn write_key_file(path: &Path, psk: &str) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(psk.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn crc_and_base64_match_the_references() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn interchange_string_matches_spdks_test_vector() {
        // SPDK's test/nvmf/target/tls.sh key, as /tmp/tls-facts.md section 1 computed it with Python.
        let key: &[u8; 32] = b"00112233445566778899aabbccddeeff";
        assert_eq!(interchange(key), "NVMeTLSkey-1:01:MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmZwJEiQ:");
        let r = interchange(&random_key().unwrap());
        // 36 bytes of base64 are 48 characters without padding.
        assert_eq!(r.len(), "NVMeTLSkey-1:01:".len() + 48 + 1);
    }

    #[test]
    fn key_file_is_private_and_has_no_newline() {
        let p = std::env::temp_dir().join(format!("ff-bench-psk-test-{}", std::process::id()));
        write_key_file(&p, "NVMeTLSkey-1:01:x:").unwrap();
        write_key_file(&p, "NVMeTLSkey-1:01:y:").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"NVMeTLSkey-1:01:y:");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_file(&p).unwrap();
    }
}
