//! The public HTTP front door of `cinema up`: routes requests to component instances.
//!
//! Every response carries `x-request-id` (the client's, when it sent a sane one, else a
//! new UUID), which is also passed to the guest and used in every log line about the
//! request. Guests see Spin's request headers (`spin-full-url`, `spin-path-info`, ...).
//! When the runtime itself fails a request (trap, deadline), the client gets a 500 with
//! a JSON body `{"error": {"code", "message"}}` and the error is logged once with the
//! component id and request id; when no instance can be had (the component's share is
//! full past the queue timeout, or instantiation fails), a 503 with `Retry-After`.
//!
//! Connections are accepted on the caller's runtime and served on the serving threads
//! ([`serve`]), each a single-threaded runtime with its own instances.

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
        .unwrap_or_else(new_request_id)
}

/// A random (version 4) UUID from a per-thread generator seeded once: request ids must
/// be unique, not unguessable, and a system call per request costs more than the id.
fn new_request_id() -> Arc<str> {
    let bytes = fastrand::u128(..).to_le_bytes();
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    Arc::from(
        &*id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    )
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
        let handler = &self.lanes[current_lane().min(self.lanes.len() - 1)][index];
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
        let share = &self.shares[index];
        let permit = match share.try_acquire() {
            Ok(permit) => Some(permit),
            // Only a full share arms a timer.
            Err(_) => tokio::time::timeout(self.queue_timeout, share.acquire())
                .await
                .ok()
                .and_then(Result::ok),
        };
        let Some(_permit) = permit else {
            self.metrics
                .request_failed(&component_id, &route, RequestErrorKind::Busy);
            let response = failure_response(RequestErrorKind::Busy, &request_id);
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
                failure_response(kind, &request_id)
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

/// The answer to a request the runtime itself failed: 503 with `Retry-After` when no
/// instance could be had (the share stayed full, or instantiation failed: pool or
/// memory exhausted), since one may be had later; 500 otherwise. A JSON error body
/// with a stable code either way.
fn failure_response(kind: RequestErrorKind, request_id: &str) -> Response<ResponseBody> {
    let (code, message) = match kind {
        RequestErrorKind::Deadline => (
            "component_deadline_exceeded",
            "the request took longer than its deadline",
        ),
        RequestErrorKind::Instantiation => (
            "component_unavailable",
            "the component could not be started; retry shortly",
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
    let retry_later = matches!(
        kind,
        RequestErrorKind::Instantiation | RequestErrorKind::Busy
    );
    let status = if retry_later {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut response = json_response(status, &ErrorBody::new(code, message), request_id);
    if retry_later {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
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

thread_local! {
    /// The serving thread this is (0 outside them).
    static LANE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn current_lane() -> usize {
    LANE.with(std::cell::Cell::get)
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

/// One accepted connection on its way to a serving thread.
struct Accepted {
    stream: std::net::TcpStream,
    client: SocketAddr,
    /// Holds one of `max_connections` until the connection ends.
    permit: tokio::sync::OwnedSemaphorePermit,
    graceful: hyper_util::server::graceful::Watcher,
}

/// The threads that serve connections: each runs its own single-threaded runtime and
/// its own instances (the app's lanes), and serves every request of a connection from
/// start to end, guest included, so a request costs no cross-thread wake-up. Accepted
/// connections are handed out in turn.
struct ServingThreads {
    senders: Vec<tokio::sync::mpsc::UnboundedSender<Accepted>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    next: usize,
}

impl ServingThreads {
    fn start(app: &Arc<App>, limits: ListenerLimits) -> std::io::Result<Self> {
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for lane in 0..app.serving_threads() {
            let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let app = app.clone();
            let thread = std::thread::Builder::new()
                .name(format!("cinema-serve-{lane}"))
                .spawn(move || {
                    LANE.with(|current| current.set(lane));
                    runtime.block_on(async move {
                        while let Some(accepted) = receiver.recv().await {
                            tokio::spawn(serve_connection(app.clone(), accepted, limits));
                        }
                    });
                    // Dropping the runtime ends what is left: shutdown has drained
                    // the connections or given up on them.
                })?;
            senders.push(sender);
            threads.push(thread);
        }
        Ok(Self {
            senders,
            threads,
            next: 0,
        })
    }

    fn dispatch(&mut self, accepted: Accepted) {
        let lane = self.next % self.senders.len();
        self.next = self.next.wrapping_add(1);
        if self.senders[lane].send(accepted).is_err() {
            tracing::error!(lane, "a serving thread has stopped; connection dropped");
        }
    }

    /// Stops every thread and waits for them.
    fn stop(self) {
        drop(self.senders);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

async fn serve_connection(app: Arc<App>, accepted: Accepted, limits: ListenerLimits) {
    let Accepted {
        stream,
        client,
        permit,
        graceful,
    } = accepted;
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(error = %error, "failed to serve an accepted connection");
            return;
        }
    };
    let service = hyper::service::service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.handle(request, client).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = graceful.watch(connection).await {
        tracing::debug!(error = %error, "connection ended with an error");
    }
    drop(permit);
}

/// Accepts connections until `shutdown` resolves and hands them to the serving
/// threads, then lets in-flight requests finish for at most `limits.drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut threads = ServingThreads::start(&app, limits)?;
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
        // Leaves this runtime's reactor; the serving thread registers it with its own.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(error = %error, "failed to hand over a connection");
                continue;
            }
        };
        threads.dispatch(Accepted {
            stream,
            client,
            permit,
            graceful: graceful.watcher(),
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_timeout_ms = limits.drain_timeout.as_millis() as u64,
            "shutdown: requests still in flight after the drain timeout are dropped"
        );
    }
    // Joining blocks: let the runtime keep other tasks going meanwhile.
    tokio::task::spawn_blocking(move || threads.stop())
        .await
        .map_err(std::io::Error::other)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn code_of(response: Response<ResponseBody>) -> String {
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a JSON body")
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        body["error"]["code"].as_str().expect("a code").to_owned()
    }

    /// An instance that could not be created is told apart from a trap and answered
    /// 503 with `Retry-After` (like a full share), never 500.
    #[tokio::test]
    async fn an_instantiation_failure_is_a_503_to_retry() {
        let request = http::Request::new(
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        let error = wasmtime::Error::new(InstantiationError {
            request_data: RequestData {
                request_id: Arc::from("r-1"),
            },
            request: std::sync::Mutex::new(request),
            error: Arc::new(wasmtime::format_err!("no free instance slot")),
        });
        let kind = classify(&error, false);
        assert_eq!(kind, RequestErrorKind::Instantiation);
        let response = failure_response(kind, "r-1");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "r-1");
        assert_eq!(code_of(response).await, "component_unavailable");
    }

    /// Failures of the guest itself stay 500s without `Retry-After`.
    #[tokio::test]
    async fn traps_and_deadlines_are_500s() {
        for (kind, code) in [
            (RequestErrorKind::Trap, "component_trapped"),
            (RequestErrorKind::Deadline, "component_deadline_exceeded"),
            (RequestErrorKind::GuestError, "component_error"),
        ] {
            let response = failure_response(kind, "r-2");
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert!(!response.headers().contains_key(http::header::RETRY_AFTER));
            assert_eq!(code_of(response).await, code);
        }
        assert_eq!(
            failure_response(RequestErrorKind::Busy, "r-3").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
