//! Finished HTTP responses of edge components: JSON and empty replies, and their
//! `Content-Length` ([`sized`]).

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

/// The reply with `Content-Length` set from its body, which a finished reply knows
/// (not on 1xx, 204 and 304, which carry no body). The runtime then sends the headers
/// and the whole body in one write; without it the body goes out chunked, its end often
/// in a second write, and the client is woken twice. Every component's `handle` passes
/// its reply through this.
pub fn sized(mut reply: Reply) -> Reply {
    let status = reply.status();
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return reply;
    }
    if let Some(length) = http_body::Body::size_hint(reply.body()).exact() {
        reply
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    reply
}

/// A response without a body (304, 204).
pub fn empty(status: StatusCode) -> Reply {
    let mut reply = http::Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply with a body says how long it is; replies that carry no body do not.
    #[test]
    fn sized_sets_content_length_except_on_bodiless_statuses() {
        let reply = sized(json(StatusCode::OK, "{\"a\":1}"));
        assert_eq!(reply.headers()[header::CONTENT_LENGTH], "7");
        let reply = sized(json(StatusCode::NOT_FOUND, Bytes::new()));
        assert_eq!(reply.headers()[header::CONTENT_LENGTH], "0");
        for status in [StatusCode::NOT_MODIFIED, StatusCode::NO_CONTENT] {
            let reply = sized(empty(status));
            assert!(
                !reply.headers().contains_key(header::CONTENT_LENGTH),
                "{status}"
            );
        }
    }
}
