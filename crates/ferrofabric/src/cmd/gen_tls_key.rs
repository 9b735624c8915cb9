//! `ferrofabric gen-tls-key`: a new random NVMe/TCP TLS pre-shared key in the interchange format
//! (`NVMeTLSkey-1:01:<base64 key + CRC-32>:`), as `nvme gen-tls-key` prints it: give the same string
//! to the target (`--psk HOSTNQN=...` or `[[subsystem.host]] psk`) and to the host (`--psk`).

use anyhow::{Result, bail};
use clap::Args;
use ff_nvme_tls::psk::{ConfiguredPsk, PskHash};

/// Arguments of `ferrofabric gen-tls-key`.
#[derive(Args, Debug)]
pub struct GenTlsKeyArgs {
    /// The PSK hash: sha256 (32-byte key, TLS_AES_128_GCM_SHA256) or sha384 (48-byte key,
    /// TLS_AES_256_GCM_SHA384).
    #[arg(long, default_value = "sha256")]
    hash: String,
}

/// Prints one new key.
pub fn run(a: GenTlsKeyArgs) -> Result<()> {
    let hash = match a.hash.as_str() {
        "sha256" | "1" | "01" => PskHash::Sha256,
        "sha384" | "2" | "02" => PskHash::Sha384,
        other => bail!("--hash takes sha256 or sha384, not {other}"),
    };
    println!("{}", ConfiguredPsk::generate(hash).encode());
    Ok(())
}
