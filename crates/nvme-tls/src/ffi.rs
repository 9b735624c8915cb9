//! The OpenSSL 3 declarations `openssl-sys` lacks: the TLS 1.3 external-PSK session callbacks and the
//! `SSL_SESSION` setters that build a PSK session (the signatures of OpenSSL's ssl.h).

use libc::{c_int, c_uchar, size_t};
use openssl_sys::{EVP_MD, SSL, SSL_CIPHER, SSL_CTX, SSL_SESSION};

/// Server: called with the identity of the client's PSK; sets `*sess` (ownership passes to OpenSSL)
/// or leaves it NULL for "no such PSK"; returns 1, or 0 to abort the handshake.
pub(crate) type FindSessionCb = unsafe extern "C" fn(
    ssl: *mut SSL,
    identity: *const c_uchar,
    identity_len: size_t,
    sess: *mut *mut SSL_SESSION,
) -> c_int;

/// Client: sets the identity (which must outlive the handshake) and `*sess` (ownership passes to
/// OpenSSL); `md` is NULL for the first ClientHello; returns 1, or 0 to abort.
pub(crate) type UseSessionCb = unsafe extern "C" fn(
    ssl: *mut SSL,
    md: *const EVP_MD,
    id: *mut *const c_uchar,
    idlen: *mut size_t,
    sess: *mut *mut SSL_SESSION,
) -> c_int;

/// TLS1_3_VERSION of tls1.h.
pub(crate) const TLS1_3_VERSION: c_int = 0x0304;

unsafe extern "C" {
    pub(crate) fn SSL_CTX_set_psk_find_session_callback(ctx: *mut SSL_CTX, cb: Option<FindSessionCb>);
    pub(crate) fn SSL_CTX_set_psk_use_session_callback(ctx: *mut SSL_CTX, cb: Option<UseSessionCb>);
    pub(crate) fn SSL_SESSION_new() -> *mut SSL_SESSION;
    pub(crate) fn SSL_SESSION_set1_master_key(sess: *mut SSL_SESSION, key: *const c_uchar, len: size_t) -> c_int;
    pub(crate) fn SSL_SESSION_set_cipher(sess: *mut SSL_SESSION, cipher: *const SSL_CIPHER) -> c_int;
    pub(crate) fn SSL_SESSION_set_protocol_version(sess: *mut SSL_SESSION, version: c_int) -> c_int;
    pub(crate) fn SSL_CIPHER_find(ssl: *mut SSL, ptr: *const c_uchar) -> *const SSL_CIPHER;
}
