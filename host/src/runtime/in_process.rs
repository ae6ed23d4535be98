//! Guests' requests to the host's own internal API, served in-process.
//!
//! Components reach the host (search, UGC intake, revocations) over HTTP at their
//! `internal_api_url`, because that is what works under Spin too. Inside `cinema up` the
//! host behind that URL is this very process, so a request to the address the internal
//! API listens on is handed straight to its router: no TCP connection per request (the
//! WASI HTTP client opens a fresh one for every request), no HTTP encoding and parsing
//! both ways. Nothing else changes: the request has already passed the component's
//! `allowed_outbound_hosts`, and the router applies the same middleware (the internal
//! credential) and handlers as for a request from the network.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use http_body_util::BodyExt;
use tower::ServiceExt;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The internal API, once the host has bound it (set once at start; requests made before
/// go over the network).
#[derive(Clone, Default)]
pub struct InProcessApi(Arc<OnceLock<Served>>);

struct Served {
    listening_on: SocketAddr,
    router: axum::Router,
}

impl std::fmt::Debug for InProcessApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InProcessApi")
            .field(&self.0.get().map(|served| served.listening_on))
            .finish()
    }
}

impl InProcessApi {
    /// Serves requests for `listening_on` with `router` from now on. A second call is
    /// ignored: the internal API is bound once per process.
    pub fn serve(&self, listening_on: SocketAddr, router: axum::Router) {
        let _ = self.0.set(Served {
            listening_on,
            router,
        });
    }

    /// The router, when a request for `scheme://host:port` (as the outbound policy read
    /// it from the URI) is meant for this host's internal API: plain HTTP to the port it
    /// listens on, at its address or, when it listens on loopback or every address, at
    /// any loopback name.
    pub fn router_for(&self, scheme: &str, host: &str, port: Option<u16>) -> Option<&axum::Router> {
        let served = self.0.get()?;
        if scheme != "http" || port.unwrap_or(80) != served.listening_on.port() {
            return None;
        }
        let bound = served.listening_on.ip();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let local_name = bound.is_loopback() || bound.is_unspecified();
        let same = match host.parse::<IpAddr>() {
            Ok(ip) => ip == bound || (local_name && ip.is_loopback()),
            Err(_) => local_name && host.eq_ignore_ascii_case("localhost"),
        };
        same.then_some(&served.router)
    }

    /// Answers `request` with `router` (from [`InProcessApi::router_for`]).
    pub async fn answer(
        router: axum::Router,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let response = router
            .oneshot(request.map(axum::body::Body::new))
            .await
            .unwrap_or_else(|never| match never {});
        Ok(response.map(|body| {
            body.map_err(|error| HttpError::InternalError(Some(error.to_string())))
                .boxed_unsync()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only plain HTTP to the internal API's own port and address is taken in-process.
    #[test]
    fn only_the_internal_api_address_is_served_in_process() {
        let cases = [
            ("127.0.0.1:3001", "http", "127.0.0.1", Some(3001), true),
            ("127.0.0.1:3001", "http", "localhost", Some(3001), true),
            ("127.0.0.1:3001", "http", "[::1]", Some(3001), true),
            ("127.0.0.1:3001", "https", "127.0.0.1", Some(3001), false),
            ("127.0.0.1:3001", "http", "127.0.0.1", Some(3002), false),
            ("127.0.0.1:3001", "http", "127.0.0.1", None, false),
            ("127.0.0.1:3001", "http", "10.0.0.5", Some(3001), false),
            ("127.0.0.1:3001", "http", "example.com", Some(3001), false),
            ("10.0.0.5:3001", "http", "10.0.0.5", Some(3001), true),
            ("10.0.0.5:3001", "http", "127.0.0.1", Some(3001), false),
            ("10.0.0.5:3001", "http", "localhost", Some(3001), false),
            ("0.0.0.0:80", "http", "127.0.0.1", None, true),
        ];
        for (bound, scheme, host, port, served) in cases {
            let api = InProcessApi::default();
            api.serve(bound.parse().expect("address"), axum::Router::new());
            assert_eq!(
                api.router_for(scheme, host, port).is_some(),
                served,
                "bound to {bound}: {scheme}://{host}:{port:?}"
            );
        }
        let unset = InProcessApi::default();
        assert!(unset.router_for("http", "127.0.0.1", Some(3001)).is_none());
    }
}
