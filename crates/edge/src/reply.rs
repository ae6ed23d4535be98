//! Finished HTTP responses of edge components: JSON and empty replies.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;

/// A finished response.
pub type Reply = http::Response<Full<Bytes>>;

/// A response with a JSON body (already serialized).
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut reply = http::Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
}

/// A response without a body (304, 204).
pub fn empty(status: StatusCode) -> Reply {
    let mut reply = http::Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    reply
}
