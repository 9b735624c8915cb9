//! DHHC-1 secrets: parsing (valid, bad CRC, bad length, bad hash id), formatting, generation
//! and the per-NQN transformation, against vectors produced outside this crate.

use ff_nvme_auth::secret::KEY_LENGTHS;
use ff_nvme_auth::{HashId, Secret, SecretError, SeededRandom};

/// The example secret printed in the NVMe specification (quoted in the kernel's
/// "nvme-auth: ..." patch discussion as accepted with any hh).
const SPEC_EXAMPLE: &str = "DHHC-1:00:ia6zGodOr4SEG0Zzaw398rpY0wqipUWj4jWjUh4HWUz6aQ2n:";
/// Its key, hex (base64 body minus the trailing 4-byte CRC, decoded with Python's base64).
const SPEC_EXAMPLE_KEY: &str = "89aeb31a874eaf84841b46736b0dfdf2ba58d30aa2a545a3e235a3521e07594c";
/// Secrets written by `nvme gen-dhchap-key` (found in public configuration files).
const NVME_CLI_01: &str = "DHHC-1:01:C7XNT6VDFTFfbGtrSimOlLFg7BAdH+UwUgkLTuSA5gcd+7/H:";
const NVME_CLI_02: &str = "DHHC-1:02:Hi9ha9idssh3FgURRbfMUvOY7NlHiApDCmHhmIRCdhdlNQwebHEt/7DHoag3SmCHFvei/Q==:";

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:6b0b6f5e-ffab-4a0c-9a8f-2b53a9e1d1c7";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn parses_external_secrets_and_formats_them_back() {
    let s = Secret::parse(SPEC_EXAMPLE).unwrap();
    assert_eq!(s.hash(), None);
    assert_eq!(s.key_len(), 32);
    assert_eq!(hex(s.transform("any").as_bytes()), SPEC_EXAMPLE_KEY);
    assert_eq!(s.to_dhhc_string(), SPEC_EXAMPLE);

    let s = Secret::parse(NVME_CLI_01).unwrap();
    assert_eq!((s.hash(), s.key_len()), (Some(HashId::Sha256), 32));
    assert_eq!(s.to_dhhc_string(), NVME_CLI_01);

    let s = Secret::parse(NVME_CLI_02).unwrap();
    assert_eq!((s.hash(), s.key_len()), (Some(HashId::Sha384), 48));
    assert_eq!(s.to_dhhc_string(), NVME_CLI_02);
}

#[test]
fn tolerates_what_the_kernel_tolerates() {
    // No final ':' and a trailing newline from a key file.
    let body = SPEC_EXAMPLE.trim_end_matches(':');
    assert!(Secret::parse(body).is_ok());
    assert!(Secret::parse(&format!("{SPEC_EXAMPLE}\n")).is_ok());
    // Unpadded base64 of a 52-byte blob.
    let unpadded = NVME_CLI_02.replace("==", "");
    assert_eq!(Secret::parse(&unpadded).unwrap().key_len(), 48);
    // Any hh with any allowed key length.
    let s = Secret::parse(&SPEC_EXAMPLE.replace(":00:", ":03:")).unwrap();
    assert_eq!((s.hash(), s.key_len()), (Some(HashId::Sha512), 32));
}

#[test]
fn refuses_malformed_secrets() {
    // Flip one base64 character of the key: the CRC no longer matches.
    let bad_crc = SPEC_EXAMPLE.replacen("ia6z", "ja6z", 1);
    assert!(matches!(Secret::parse(&bad_crc), Err(SecretError::Crc { .. })));
    // 20-byte key (+4 CRC = 24 bytes = 32 base64 chars).
    let short = "DHHC-1:00:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:";
    assert_eq!(Secret::parse(short), Err(SecretError::KeyLength(20)));
    assert_eq!(Secret::parse(&SPEC_EXAMPLE.replace(":00:", ":04:")), Err(SecretError::UnknownHash(4)));
    assert_eq!(Secret::parse(&SPEC_EXAMPLE.replace(":00:", ":0x:")), Err(SecretError::HashField));
    assert_eq!(Secret::parse(&SPEC_EXAMPLE.replace("DHHC-1", "DHHC-2")), Err(SecretError::Prefix));
    assert_eq!(Secret::parse(&SPEC_EXAMPLE.replace("ia6z", "ia6*")), Err(SecretError::Base64));
    assert_eq!(Secret::parse(&format!("{SPEC_EXAMPLE}junk")), Err(SecretError::Trailing));
    for s in ["", "DHHC-1:", "DHHC-1:0", "DHHC-1:00", "DHHC-1:00:", "DHHC-1:é0:x:"] {
        assert!(Secret::parse(s).is_err(), "{s:?}");
    }
}

/// Expected values computed with Python:
/// `hmac.new(key, HOSTNQN.encode() + b"NVMe-over-Fabrics", hashlib.sha256/384/512).hexdigest()`
/// with `key` the spec example's 32 bytes.
#[test]
fn transformation_known_answers() {
    let key = Secret::parse(SPEC_EXAMPLE).unwrap();
    let raw: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&SPEC_EXAMPLE_KEY[2 * i..2 * i + 2], 16).unwrap()).collect();
    assert_eq!(hex(key.transform(HOSTNQN).as_bytes()), SPEC_EXAMPLE_KEY);
    let expected = [
        (HashId::Sha256, "3f900e5f69a981ffea27e5c682e31d331b7285da6ea404cd6ba90eb6b3b94a8e"),
        (
            HashId::Sha384,
            "2b6cef194f437d2d31414cea02f5f82f8b64f0b37fac709f743e2b7683e0dfa1\
             400edcc92b9ba81b44ee14e55b345ec2",
        ),
        (
            HashId::Sha512,
            "582cd860d5cfe3225b8bbabf2722ecf3078b236ac00b241c65f301f87f5b2420\
             282580c36bac0ab954d1ce901bb1c4d5a38341153528a13c8c06c54329f60803",
        ),
    ];
    for (h, want) in expected {
        let s = Secret::from_key(Some(h), &raw).unwrap();
        assert_eq!(hex(s.transform(HOSTNQN).as_bytes()), want, "{h}");
    }
}

#[test]
fn generator_follows_nvme_cli_rules() {
    let mut rng = SeededRandom::new(1);
    for (hash, len) in [(None, 32), (Some(HashId::Sha256), 32), (Some(HashId::Sha384), 48), (Some(HashId::Sha512), 64)]
    {
        let s = Secret::generate(hash, None, &mut rng).unwrap();
        assert_eq!((s.hash(), s.key_len()), (hash, len));
        assert_eq!(Secret::parse(&s.to_dhhc_string()).unwrap(), s);
    }
    for len in KEY_LENGTHS {
        assert_eq!(Secret::generate(None, Some(len), &mut rng).unwrap().key_len(), len);
    }
    assert_eq!(
        Secret::generate(Some(HashId::Sha256), Some(64), &mut rng),
        Err(SecretError::LengthForHash { hash: HashId::Sha256, len: 64 })
    );
    assert_eq!(Secret::generate(None, Some(16), &mut rng), Err(SecretError::KeyLength(16)));
    // Two draws differ.
    let a = Secret::generate(None, None, &mut rng).unwrap();
    let b = Secret::generate(None, None, &mut rng).unwrap();
    assert_ne!(a, b);
}

#[test]
fn debug_never_shows_key_bytes() {
    let s = Secret::parse(SPEC_EXAMPLE).unwrap();
    let dbg = format!("{s:?} {:?}", s.transform(HOSTNQN));
    assert!(!dbg.contains("89ae") && !dbg.contains("137") && !dbg.contains("ia6z"), "{dbg}");
    assert!(dbg.contains("key_len: 32"), "{dbg}");
}
