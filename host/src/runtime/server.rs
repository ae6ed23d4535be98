//! The public HTTP front door of `cinema up`: routes requests to component instances.
//!
//! Every response carries `x-request-id` (the client's, when it sent a sane one, else a
//! new UUID), which is also passed to the guest and used in every log line about the
//! request. Guests see Spin's request headers (`spin-full-url`, `spin-path-info`, ...).
//! When the runtime itself fails a request (trap, deadline, instantiation), the client
//! gets a 500 with a JSON body `{"error": {"code", "message"}}` and the error is logged
//! once with the component id and request id.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, TrapOrPanicError};

use super::App;
use super::handler::{DeadlineExceeded, RequestData};
use super::metrics::RequestErrorKind;
use cinema_domain::error::ErrorBody;

/// Header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Response body type of the front door.
pub type ResponseBody = WasiBody;

fn json_response(status: StatusCode, body: &ErrorBody, request_id: &str) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(
        Full::new(Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// A request id from the client is kept only if it is short and printable.
fn request_id_of(request: &Request<Incoming>) -> Arc<str> {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::new_v4().to_string()))
}

impl App {
    /// Serves one request.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let request_id = request_id_of(&request);
        let path = request.uri().path().to_owned();
        let Some((&index, matched)) = self.router.route(&path) else {
            return json_response(
                StatusCode::NOT_FOUND,
                &ErrorBody::new("route_not_found", format!("no component serves {path}")),
                &request_id,
            );
        };
        let handler = &self.components[index];
        let component_id = handler.state().component.id.clone();
        let route = matched.route.to_owned();

        let (mut parts, body) = request.into_parts();
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_owned();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let full_url = format!("http://{host}{path_and_query}");
        if let Ok(uri) = full_url.parse() {
            parts.uri = uri;
        }
        let spin_headers = [
            ("spin-full-url", full_url.clone()),
            ("spin-path-info", matched.path_info.clone()),
            ("spin-matched-route", matched.route.to_owned()),
            ("spin-raw-component-route", matched.route.to_owned()),
            ("spin-component-route", matched.component_route.clone()),
            ("spin-base-path", "/".to_owned()),
            ("spin-client-addr", client.to_string()),
            (REQUEST_ID_HEADER, request_id.to_string()),
        ];
        for (name, value) in spin_headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                parts.headers.insert(name, value);
            }
        }
        for (name, value) in &matched.params {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::try_from(format!("spin-path-match-{name}")),
                HeaderValue::from_str(value),
            ) {
                parts.headers.insert(name, value);
            }
        }
        let body = body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync();
        // The component's share of the instance pool: a request waits for it at most
        // `queue_timeout`, then is told to come back (other components are unaffected).
        let Ok(Ok(_permit)) =
            tokio::time::timeout(self.queue_timeout, self.shares[index].acquire()).await
        else {
            self.metrics
                .request_failed(&component_id, &route, RequestErrorKind::Busy);
            let mut response = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &ErrorBody::new(
                    "component_busy",
                    "the component is serving as many requests as it may; retry shortly",
                ),
                &request_id,
            );
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            self.metrics.request_served(
                &component_id,
                &route,
                response.status(),
                started.elapsed().as_secs_f64(),
            );
            return response;
        };
        let outcome = handler
            .handle(
                RequestData {
                    request_id: request_id.clone(),
                },
                Request::from_parts(parts, body),
            )
            .await;

        let deadline = handler.state().settings.request_deadline;
        let mut response = match outcome {
            Ok(response) => response,
            Err(error) => {
                let kind = classify(&error, started.elapsed() >= deadline);
                self.metrics.request_failed(&component_id, &route, kind);
                // A trap's cause (with the wasm backtrace) is logged once, when its
                // instance is discarded; this line ties the request to it.
                tracing::warn!(
                    component = %component_id,
                    request_id = %request_id,
                    kind = ?kind,
                    error = format!("{error:#}"),
                    "request failed in the component runtime"
                );
                let (code, message) = match kind {
                    RequestErrorKind::Deadline => (
                        "component_deadline_exceeded",
                        "the request took longer than its deadline",
                    ),
                    RequestErrorKind::Instantiation => (
                        "component_unavailable",
                        "the component could not be started",
                    ),
                    RequestErrorKind::Trap => (
                        "component_trapped",
                        "the component failed while handling the request",
                    ),
                    RequestErrorKind::Busy => (
                        "component_busy",
                        "the component is serving as many requests as it may; retry shortly",
                    ),
                    RequestErrorKind::GuestError => (
                        "component_error",
                        "the component returned an error instead of a response",
                    ),
                };
                json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &ErrorBody::new(code, message),
                    &request_id,
                )
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        self.metrics.request_served(
            &component_id,
            &route,
            response.status(),
            started.elapsed().as_secs_f64(),
        );
        response
    }
}

fn classify(error: &wasmtime::Error, past_deadline: bool) -> RequestErrorKind {
    if error.is::<ExpirationError>() || error.chain().any(|e| e.is::<DeadlineExceeded>()) {
        RequestErrorKind::Deadline
    } else if error.is::<InstantiationError<RequestData>>() {
        RequestErrorKind::Instantiation
    } else if error.is::<TrapOrPanicError>() || error.downcast_ref::<wasmtime::Trap>().is_some() {
        if past_deadline {
            RequestErrorKind::Deadline
        } else {
            RequestErrorKind::Trap
        }
    } else if past_deadline {
        RequestErrorKind::Deadline
    } else {
        RequestErrorKind::GuestError
    }
}

/// Limits of the public listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Connections open at once; more wait in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (slow clients holding
    /// connections open are cut off).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests before it gives up on them.
    pub drain_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests finish
/// for at most `limits.drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free connection slot first: at the cap, new clients wait in the backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %error, "failed to accept a connection");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(request, client).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_timeout_ms = limits.drain_timeout.as_millis() as u64,
            "shutdown: requests still in flight after the drain timeout are dropped"
        );
    }
    Ok(())
}
