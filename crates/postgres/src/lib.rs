//! Postgres connections of the host and its workers, with the URL's `sslmode` honoured
//! the way Spin's Postgres client honours it, so that one database URL means the same
//! thing under `cinema up` and under a real Spin:
//!
//! - `sslmode=disable`: no TLS at all;
//! - `sslmode=prefer` (the default when the URL says nothing): TLS when the server
//!   offers it, plain text only when it does not;
//! - `sslmode=require`: TLS or no connection.
//!
//! Whenever TLS is used the server's certificate is verified (chain and host name), as
//! Spin's `native-tls` client does: there is no "encrypted but unauthenticated" mode,
//! which would let anyone on the path read the credentials it carries. Trust roots come
//! from the system store (`/etc/ssl/certs`), or only from the PEM file named by
//! `SSL_CERT_FILE` when that is set (OpenSSL's rule), which is how an operator trusts a
//! private CA. A local Postgres with a self-signed certificate (Debian's default) is
//! therefore reached with `sslmode=disable`, which is what every local default says.
//!
//! Everything here is built once per process: the trust roots are read at the first
//! connection and shared by every connection after it.

use std::sync::{Arc, LazyLock};

use tokio_postgres::Socket;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector every Postgres connection of this process uses; `sslmode` in the
/// URL decides whether it is used at all.
pub type Tls = MakeRustlsConnect;

/// The stream a connection made with [`tls`] runs over (TLS or plain text).
pub type TlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// A connection's I/O half, to be spawned (or polled for notifications).
pub type Connection = tokio_postgres::Connection<Socket, TlsStream>;

static TLS: LazyLock<MakeRustlsConnect> = LazyLock::new(|| {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| {
            builder
                .with_root_certificates(trust_roots())
                .with_no_client_auth()
        });
    match config {
        Ok(config) => MakeRustlsConnect::new(config),
        // Unreachable with ring's provider, which supports every safe version; should it
        // ever happen, no root means every TLS connection fails verification (never
        // succeeds unverified).
        Err(error) => {
            tracing::error!(%error, "postgres tls: no usable protocol versions; tls connections will fail");
            MakeRustlsConnect::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    }
});

/// The trust roots for Postgres servers: the system store, or `SSL_CERT_FILE` alone.
fn trust_roots() -> rustls::RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "postgres tls: could not read some trust roots");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(
            ignored,
            "postgres tls: some trust roots are not valid certificates"
        );
    }
    tracing::debug!(added, "postgres tls: trust roots loaded");
    roots
}

/// The process-wide TLS connector, for `tokio_postgres::Config::connect` and pools.
pub fn tls() -> Tls {
    TLS.clone()
}

/// Connects to the database at `url` (a `postgres://` URL or a key=value string),
/// with TLS as its `sslmode` says. The connection half must be spawned or polled.
pub async fn connect(
    url: &str,
) -> Result<(tokio_postgres::Client, Connection), tokio_postgres::Error> {
    tokio_postgres::connect(url, tls()).await
}

/// An error with its causes, `: `-separated: tokio-postgres shows only "db error" or
/// "error performing TLS handshake" and keeps what the server or TLS said (a
/// `pg_hba.conf` refusal, an unknown certificate issuer) in its source.
pub fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
