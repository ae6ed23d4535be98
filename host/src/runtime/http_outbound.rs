//! `wasi:http/client`: outgoing HTTP requests of guests, limited to the component's
//! `allowed_outbound_hosts`.
//!
//! A request to any other destination fails inside the guest with
//! `error-code.HTTP-request-denied`; it is logged once with the component id and never
//! reaches the network. Allowed requests go through wasmtime-wasi-http's client with
//! connect and first-byte timeouts, so a hung upstream cannot hold an instance forever;
//! allowed requests to the host's own internal API are answered in-process
//! ([`super::in_process`]).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::in_process::InProcessApi;
use super::outbound::OutboundPolicy;

/// Hooks given to wasmtime-wasi-http for one instance.
pub struct OutboundHttpHooks {
    pub component_id: Arc<str>,
    pub policy: Arc<OutboundPolicy>,
    /// The host's internal API, answered in-process.
    pub in_process: InProcessApi,
    /// Counts this component's requests answered in-process.
    pub in_process_served: prometheus_client::metrics::counter::Counter,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16();
        if !self.policy.allows(&scheme, &host, port) {
            tracing::warn!(
                component = %self.component_id,
                destination = %format!("{scheme}://{host}{}", port.map(|p| format!(":{p}")).unwrap_or_default()),
                "outgoing request denied: destination not in allowed_outbound_hosts"
            );
            return Box::new(std::future::ready(Err(HttpError::HttpRequestDenied)));
        }
        if let Some(router) = self.in_process.router_for(&scheme, &host, port).cloned() {
            self.in_process_served.inc();
            return Box::new(async move {
                Ok((
                    InProcessApi::answer(router, request).await?,
                    Box::new(std::future::ready(Ok(()))) as Box<dyn Future<Output = _> + Send>,
                ))
            });
        }
        let mut options = options.unwrap_or_default();
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.first_byte_timeout.get_or_insert(FIRST_BYTE_TIMEOUT);
        options
            .between_bytes_timeout
            .get_or_insert(BETWEEN_BYTES_TIMEOUT);
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
