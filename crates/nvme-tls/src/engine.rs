//! The sans-IO TLS 1.3 PSK handshake: OpenSSL runs the handshake over an in-memory transport; the
//! caller feeds received bytes and sends what comes out. This module owns the OpenSSL contexts, the PSK
//! session callbacks (identity lookup and derivation on the target, identity and key on the host), the
//! capture of the application traffic secrets and the turn of those secrets into kTLS keys.

use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock};

use ff_sock::tls::{DirectionKeys, KtlsCipher, KtlsKeys};
use foreign_types::ForeignTypeRef;
use libc::{c_int, c_uchar, size_t};
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslRef, SslSessionCacheMode, SslStream, SslVersion,
};
use openssl_sys::{EVP_MD, SSL, SSL_SESSION};

use crate::psk::{self, ConfiguredPsk, PskHash, PskIdentity, Secret};
use crate::{ClientPsk, Established, PskLookup, TlsError, ffi, kdf};

/// A TLS record header: content type, legacy version, length.
pub const RECORD_HEADER: usize = 5;
/// The largest record body TLS 1.3 allows (2^14 plaintext + 256 of expansion).
pub const MAX_RECORD_BODY: usize = (1 << 14) + 256;

/// In-memory transport under the `SslStream`: reads return WouldBlock when no input is queued, so
/// OpenSSL asks for more (WANT_READ) instead of blocking.
#[derive(Default, Debug)]
pub(crate) struct MemIo {
    input: Vec<u8>,
    pos: usize,
    pub(crate) output: Vec<u8>,
}

impl MemIo {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    fn unread(&self) -> &[u8] {
        &self.input[self.pos..]
    }
}

impl Read for MemIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.unread();
        if avail.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What one end is: the target looks PSKs up by identity, the host brings its one identity and key.
enum Side {
    Server { lookup: PskLookup },
    Client { identity: PskIdentity, wire: Vec<u8>, tls_psk: Secret },
}

/// What the callbacks learn during the handshake.
#[derive(Default)]
struct Outcome {
    identity: Option<PskIdentity>,
    refused: Option<String>,
    client_secret: Option<Secret>,
    server_secret: Option<Secret>,
}

/// Per-connection state the OpenSSL callbacks reach through the SSL's ex_data.
struct ConnState {
    side: Side,
    outcome: Mutex<Outcome>,
}

impl ConnState {
    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        // A poisoned lock only means a callback panicked (caught); the data is still usable.
        self.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn state_index() -> Result<Index<Ssl, ConnState>, TlsError> {
    static IDX: OnceLock<Result<Index<Ssl, ConnState>, String>> = OnceLock::new();
    IDX.get_or_init(|| Ssl::new_ex_index::<ConnState>().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| TlsError::Handshake(format!("OpenSSL ex_data index: {e}")))
}

fn ossl(what: &str) -> impl Fn(ErrorStack) -> TlsError + '_ {
    move |e| TlsError::Handshake(format!("OpenSSL {what}: {e}"))
}

/// One context per role (and ticket count): TLS 1.3 only, the PSK callback, the keylog hook.
fn build_context(server: bool, tickets: usize) -> Result<SslContext, ErrorStack> {
    let mut b = SslContextBuilder::new(if server { SslMethod::tls_server() } else { SslMethod::tls_client() })?;
    b.set_min_proto_version(Some(SslVersion::TLS1_3))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))?;
    // The target offers both suites (as SPDK's listener does); the host offers only its key's suite.
    b.set_ciphersuites("TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256")?;
    // No tickets: nothing travels after the Finished, so both application sequence numbers start at
    // 0 when the keys are handed on. psk_dhe_ke stays (SSL_OP_ALLOW_NO_DHE_KEX unset): SPDK and the
    // Linux tlshd both do PSK with (EC)DHE, and an OpenSSL peer without that option refuses psk_ke.
    b.set_num_tickets(tickets)?;
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    b.set_keylog_callback(|ssl: &SslRef, line: &str| {
        if let Ok(idx) = state_index()
            && let Some(st) = ssl.ex_data(idx)
        {
            record_secret(st, line);
        }
    });
    if server {
        // SAFETY: the builder owns a valid SSL_CTX; the callback has the signature OpenSSL expects.
        unsafe { ffi::SSL_CTX_set_psk_find_session_callback(b.as_ptr(), Some(find_session_cb)) };
    } else {
        // SAFETY: as above, for the client callback.
        unsafe { ffi::SSL_CTX_set_psk_use_session_callback(b.as_ptr(), Some(use_session_cb)) };
    }
    Ok(b.build())
}

fn context(server: bool, tickets: usize) -> Result<SslContext, TlsError> {
    static SERVER: OnceLock<Result<SslContext, String>> = OnceLock::new();
    static CLIENT: OnceLock<Result<SslContext, String>> = OnceLock::new();
    let cached = match (server, tickets) {
        (true, 0) => &SERVER,
        (false, _) => &CLIENT,
        _ => return build_context(server, tickets).map_err(ossl("context")),
    };
    cached
        .get_or_init(|| build_context(server, tickets).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| TlsError::Handshake(format!("OpenSSL context: {e}")))
}

/// Keeps the application traffic secrets from OpenSSL's key log lines
/// (`<LABEL> <client_random hex> <secret hex>`).
fn record_secret(st: &ConnState, line: &str) {
    let mut it = line.split(' ');
    let (Some(label), Some(_random), Some(hex)) = (it.next(), it.next(), it.next()) else { return };
    let Some(secret) = unhex(hex) else { return };
    let mut o = st.outcome();
    match label {
        "CLIENT_TRAFFIC_SECRET_0" => o.client_secret = Some(secret),
        "SERVER_TRAFFIC_SECRET_0" => o.server_secret = Some(secret),
        _ => {}
    }
}

fn unhex(s: &str) -> Option<Secret> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let mut v = Secret::new(Vec::with_capacity(s.len() / 2));
    for i in (0..s.len()).step_by(2) {
        v.push(u8::from_str_radix(s.get(i..i + 2)?, 16).ok()?);
    }
    Some(v)
}

/// A TLS 1.3 PSK session for `key` with `hash`'s suite, owned by the caller (who hands it to OpenSSL).
fn make_session(ssl: *mut SSL, hash: PskHash, key: &[u8]) -> Option<*mut SSL_SESSION> {
    let suite: [c_uchar; 2] = match hash {
        PskHash::Sha256 => [0x13, 0x01],
        PskHash::Sha384 => [0x13, 0x02],
    };
    // SAFETY: `ssl` is the live SSL of the running callback; `suite` is the 2-byte IANA id
    // SSL_CIPHER_find reads.
    let cipher = unsafe { ffi::SSL_CIPHER_find(ssl, suite.as_ptr()) };
    if cipher.is_null() {
        return None;
    }
    // SAFETY: a fresh session (checked for NULL), configured with a valid cipher and a key slice that
    // OpenSSL copies; freed here on any failure so nothing leaks.
    unsafe {
        let sess = ffi::SSL_SESSION_new();
        if sess.is_null() {
            return None;
        }
        if ffi::SSL_SESSION_set1_master_key(sess, key.as_ptr(), key.len()) != 1
            || ffi::SSL_SESSION_set_cipher(sess, cipher) != 1
            || ffi::SSL_SESSION_set_protocol_version(sess, ffi::TLS1_3_VERSION) != 1
        {
            openssl_sys::SSL_SESSION_free(sess);
            return None;
        }
        Some(sess)
    }
}

/// Target: the client's identity -> a session with its TLS PSK, or none (recorded as refused).
fn server_session(ssl: &SslRef, id_bytes: &[u8]) -> Option<*mut SSL_SESSION> {
    let st = ssl.ex_data(state_index().ok()?)?;
    let Side::Server { lookup } = &st.side else { return None };
    let shown = String::from_utf8_lossy(id_bytes).into_owned();
    let refuse = |why: String| {
        st.outcome().refused = Some(why);
        None
    };
    let identity = match PskIdentity::parse(id_bytes) {
        Ok(i) => i,
        Err(e) => return refuse(format!("{shown:?}: {e}")),
    };
    let Some(psk) = lookup(&identity) else {
        return refuse(format!("no PSK configured for identity {identity}"));
    };
    if psk.cipher_hash() != identity.hash {
        return refuse(format!(
            "identity {identity} asks for hash {} but the configured PSK is {} bytes",
            identity.hash.id(),
            psk.key().len()
        ));
    }
    let tls = match derive_for(&psk, &identity) {
        Ok(k) => k,
        Err(e) => return refuse(format!("identity {identity}: {e}")),
    };
    let sess = make_session(ssl.as_ptr(), identity.hash, &tls)?;
    st.outcome().identity = Some(identity);
    Some(sess)
}

/// The TLS PSK of `psk` for `identity`; a version 1 identity's digest must be the one the key gives.
fn derive_for(psk: &ConfiguredPsk, identity: &PskIdentity) -> Result<Secret, String> {
    let retained = psk::retained_psk(psk, &identity.hostnqn).map_err(|e| e.to_string())?;
    if let Some(d) = &identity.digest {
        let want = psk::psk_digest(identity.hash, &retained, &identity.hostnqn, &identity.subnqn);
        if *d != want {
            return Err("its PSK digest does not match the configured PSK".into());
        }
    }
    psk::tls_psk(&retained, identity).map_err(|e| e.to_string())
}

unsafe extern "C" fn find_session_cb(
    ssl: *mut SSL,
    identity: *const c_uchar,
    identity_len: size_t,
    sess: *mut *mut SSL_SESSION,
) -> c_int {
    // SAFETY: OpenSSL passes a valid out pointer for the session.
    unsafe { *sess = std::ptr::null_mut() };
    let id: &[u8] = if identity.is_null() || identity_len == 0 {
        &[]
    } else {
        // SAFETY: OpenSSL passes the identity bytes, valid for this call.
        unsafe { std::slice::from_raw_parts(identity, identity_len) }
    };
    // SAFETY: `ssl` is the live SSL running this handshake, valid for this call.
    let ssl_ref = unsafe { SslRef::from_ptr_mut(ssl) };
    // A panic must not unwind into C: it aborts the handshake instead.
    match catch_unwind(AssertUnwindSafe(|| server_session(ssl_ref, id))) {
        Ok(Some(s)) => {
            // SAFETY: as above; ownership of the session passes to OpenSSL.
            unsafe { *sess = s };
            1
        }
        // No PSK: OpenSSL goes on without one and fails the handshake (no certificate to fall back on).
        Ok(None) => 1,
        Err(_) => 0,
    }
}

unsafe extern "C" fn use_session_cb(
    ssl: *mut SSL,
    _md: *const EVP_MD,
    id: *mut *const c_uchar,
    idlen: *mut size_t,
    sess: *mut *mut SSL_SESSION,
) -> c_int {
    // SAFETY: OpenSSL passes valid out pointers.
    unsafe {
        *sess = std::ptr::null_mut();
        *id = std::ptr::null();
        *idlen = 0;
    }
    // SAFETY: `ssl` is the live SSL running this handshake, valid for this call.
    let ssl_ref = unsafe { SslRef::from_ptr_mut(ssl) };
    let made = catch_unwind(AssertUnwindSafe(|| {
        let st = ssl_ref.ex_data(state_index().ok()?)?;
        let Side::Client { identity, wire, tls_psk } = &st.side else { return None };
        // The identity bytes live in the SSL's ex_data, so they outlive the handshake as OpenSSL needs.
        Some((make_session(ssl, identity.hash, tls_psk)?, wire.as_ptr(), wire.len()))
    }));
    match made {
        Ok(Some((s, p, n))) => {
            // SAFETY: as above; ownership of the session passes to OpenSSL.
            unsafe {
                *sess = s;
                *id = p;
                *idlen = n;
            }
            1
        }
        _ => 0,
    }
}

/// What the handshake needs next.
#[derive(Debug)]
pub enum Progress {
    /// Send [`Handshake::take_output`] (if any), then feed at least one more record.
    NeedInput,
    /// The handshake is complete: the keys and the peer's identity. Send any remaining output first.
    Done(Established),
}

/// A TLS 1.3 PSK handshake in progress, independent of any socket.
pub struct Handshake {
    stream: SslStream<MemIo>,
    server: bool,
    /// Records the target sent under its application keys while finishing (session tickets).
    app_records_sent: u64,
    seen_input: bool,
    done: bool,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake").field("server", &self.server).field("done", &self.done).finish()
    }
}

impl Handshake {
    /// A target-side handshake that finds PSKs through `lookup`, sending no session tickets.
    pub fn server(lookup: &PskLookup) -> Result<Self, TlsError> {
        Self::server_with_tickets(lookup, 0)
    }

    /// A target-side handshake that sends `tickets` NewSessionTickets after the handshake, as a default
    /// OpenSSL server (SPDK's target) does: for tests of hosts that must skip them.
    pub fn server_with_tickets(lookup: &PskLookup, tickets: usize) -> Result<Self, TlsError> {
        let st = ConnState { side: Side::Server { lookup: lookup.clone() }, outcome: Mutex::default() };
        Self::new(true, tickets, st)
    }

    /// A host-side handshake offering the version 0 identity of `psk` (what SPDK targets accept) and the
    /// TLS PSK derived from it.
    pub fn client(psk: &ClientPsk) -> Result<Self, TlsError> {
        let hash = psk.psk.cipher_hash();
        let identity = PskIdentity::v0(hash, &psk.hostnqn, &psk.subnqn);
        let bad = |e: psk::PskError| TlsError::Handshake(format!("deriving the TLS PSK for {identity}: {e}"));
        let retained = psk::retained_psk(&psk.psk, &psk.hostnqn).map_err(bad)?;
        let tls_psk = psk::tls_psk(&retained, &identity).map_err(bad)?;
        let wire = identity.to_string().into_bytes();
        let st = ConnState { side: Side::Client { identity, wire, tls_psk }, outcome: Mutex::default() };
        Self::new(false, 0, st)
    }

    fn new(server: bool, tickets: usize, st: ConnState) -> Result<Self, TlsError> {
        let suite = match &st.side {
            Side::Client { identity, .. } => Some(identity.hash.cipher_suite()),
            Side::Server { .. } => None,
        };
        let ctx = context(server, tickets)?;
        let mut ssl = Ssl::new(&ctx).map_err(ossl("SSL"))?;
        if let Some(s) = suite {
            ssl.set_ciphersuites(s).map_err(ossl("cipher suite"))?;
        }
        ssl.set_ex_data(state_index()?, st);
        if server {
            ssl.set_accept_state();
        } else {
            ssl.set_connect_state();
        }
        let stream = SslStream::new(ssl, MemIo::default()).map_err(ossl("stream"))?;
        Ok(Handshake { stream, server, app_records_sent: 0, seen_input: false, done: false })
    }

    /// Queues bytes received from the peer (whole records, so nothing past the handshake is consumed).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.stream.get_mut().push(bytes);
    }

    /// Takes the bytes to send to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stream.get_mut().output)
    }

    /// Fed bytes OpenSSL has not read: after [`Progress::Done`] these belong to the record layer (and
    /// were protected with sequence numbers from 0).
    pub fn unread(&self) -> &[u8] {
        self.stream.get_ref().unread()
    }

    /// True on the target side.
    pub fn is_server(&self) -> bool {
        self.server
    }

    /// Runs the handshake as far as the fed bytes allow.
    pub fn step(&mut self) -> Result<Progress, TlsError> {
        if !self.seen_input && !self.stream.get_ref().unread().is_empty() {
            self.seen_input = true;
            check_first(self.server, self.stream.get_ref().unread())?;
        }
        if !self.done {
            let mark = self.stream.get_ref().output.len();
            match self.stream.do_handshake() {
                Ok(()) => {
                    self.done = true;
                    if self.server {
                        // The target finishes on the client's Finished; whatever it wrote in that same
                        // call (session tickets) went out under the application keys, one per record.
                        self.app_records_sent = count_records(&self.stream.get_ref().output[mark..]);
                    }
                }
                Err(e) if e.code() == ErrorCode::WANT_READ => return Ok(Progress::NeedInput),
                Err(e) => return Err(self.failure(e)),
            }
        }
        self.established().map(Progress::Done)
    }

    fn state(&self) -> Option<&ConnState> {
        self.stream.ssl().ex_data(state_index().ok()?)
    }

    fn failure(&self, e: openssl::ssl::Error) -> TlsError {
        if let Some(why) = self.state().and_then(|s| s.outcome().refused.clone()) {
            return TlsError::UnknownIdentity(why);
        }
        let detail = match e.ssl_error() {
            Some(stack) => stack.to_string(),
            None => e.to_string(),
        };
        let hint = if detail.contains("binder") || detail.contains("decrypt error") || detail.contains("bad record mac")
        {
            " (the two ends hold different PSKs)"
        } else if !self.server && detail.contains("illegal parameter") {
            // OpenSSL targets answer a binder that does not verify with illegal_parameter.
            " (the target refused the PSK binder: the two ends hold different PSKs)"
        } else if !self.server && detail.contains("handshake failure") {
            " (the target has no PSK for this host and subsystem, or no common cipher suite)"
        } else {
            ""
        };
        let who = match (self.server, self.state().and_then(|s| s.outcome().identity.clone())) {
            (true, Some(id)) => format!("handshake with identity {id} failed"),
            (true, None) => "handshake failed".to_string(),
            (false, _) => match self.state().map(|s| &s.side) {
                Some(Side::Client { identity, .. }) => format!("handshake as {identity} failed"),
                _ => "handshake failed".to_string(),
            },
        };
        TlsError::Handshake(format!("{who}: {detail}{hint}"))
    }

    fn established(&self) -> Result<Established, TlsError> {
        let st = self.state().ok_or_else(|| TlsError::Handshake("connection state missing".into()))?;
        let name = self.stream.ssl().current_cipher().map(|c| c.standard_name().unwrap_or(c.name()));
        let (cipher, hash, key_len) = match name {
            Some("TLS_AES_128_GCM_SHA256") => (KtlsCipher::Aes128Gcm, PskHash::Sha256, 16),
            Some("TLS_AES_256_GCM_SHA384") => (KtlsCipher::Aes256Gcm, PskHash::Sha384, 32),
            other => return Err(TlsError::Handshake(format!("unexpected cipher suite {other:?}"))),
        };
        let identity = match &st.side {
            Side::Client { identity, .. } => identity.clone(),
            Side::Server { .. } => st.outcome().identity.clone().ok_or_else(|| {
                TlsError::Handshake("the handshake finished without the PSK (no identity was accepted)".into())
            })?,
        };
        let o = st.outcome();
        let (Some(cs), Some(ss)) = (&o.client_secret, &o.server_secret) else {
            return Err(TlsError::Handshake("OpenSSL did not report the application traffic secrets".into()));
        };
        let dir = |secret: &[u8]| -> Result<DirectionKeys, TlsError> {
            let bad = |e: psk::PskError| TlsError::Handshake(format!("traffic key derivation: {e}"));
            let key = kdf::expand_label(hash, secret, "key", b"", key_len).map_err(bad)?;
            let iv = kdf::expand_label(hash, secret, "iv", b"", 12).map_err(bad)?;
            let mut ivb = [0u8; 12];
            ivb.copy_from_slice(&iv);
            Ok(DirectionKeys { key: key.to_vec(), iv: ivb, seq: 0 })
        };
        let (mut tx, rx) = if self.server { (dir(ss)?, dir(cs)?) } else { (dir(cs)?, dir(ss)?) };
        if self.server {
            tx.seq = self.app_records_sent;
        }
        Ok(Established { identity, keys: KtlsKeys { cipher, tx, rx } })
    }

    /// The OpenSSL stream, for tests that keep talking TLS through OpenSSL after the handshake.
    #[cfg(test)]
    pub(crate) fn stream(&mut self) -> &mut SslStream<MemIo> {
        &mut self.stream
    }
}

/// Checks the first bytes a peer sent: a target expects a ClientHello record, a host a handshake or
/// alert record. Anything else is not TLS (e.g. a plaintext NVMe/TCP ICReq on a TLS listener).
pub(crate) fn check_first(server: bool, first: &[u8]) -> Result<(), TlsError> {
    let ok = if server {
        crate::looks_like_tls(first)
    } else {
        matches!(first.first(), Some(0x15 | 0x16)) && first.get(1).is_none_or(|&b| b == 3)
    };
    if ok {
        return Ok(());
    }
    let shown: Vec<String> = first.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let what = if first.len() >= 2 && first[0] == 0 && first[1] == 0 {
        " (a plaintext NVMe/TCP ICReq: the host did not start TLS)"
    } else if first.first() == Some(&1) {
        " (a plaintext NVMe/TCP ICResp: the target does not speak TLS)"
    } else {
        ""
    };
    Err(TlsError::NotTls(format!("first bytes {}{what}", shown.join(" "))))
}

/// How many whole records `bytes` holds.
fn count_records(mut bytes: &[u8]) -> u64 {
    let mut n = 0;
    while bytes.len() >= RECORD_HEADER {
        let len = RECORD_HEADER + u16::from_be_bytes([bytes[3], bytes[4]]) as usize;
        bytes = bytes.get(len..).unwrap_or(&[]);
        n += 1;
    }
    n
}

/// Validates a record header read during the handshake and returns its body length.
pub(crate) fn record_body_len(hdr: &[u8; RECORD_HEADER]) -> Result<usize, TlsError> {
    if !(20..=23).contains(&hdr[0]) || hdr[1] != 3 {
        return Err(TlsError::Handshake(format!("not a TLS record header: {hdr:02x?}")));
    }
    let len = u16::from_be_bytes([hdr[3], hdr[4]]) as usize;
    if len > MAX_RECORD_BODY {
        return Err(TlsError::Handshake(format!("record of {len} bytes exceeds the TLS limit")));
    }
    Ok(len)
}
