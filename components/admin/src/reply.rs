//! The console's responses: pages with the security headers every page carries,
//! redirects after a form (303), cookies, static assets.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;

pub use cinema_edge::reply::Reply;

/// Content-Security-Policy of every page: only this origin's scripts, styles and
/// forms; never framed.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                   form-action 'self'; base-uri 'none'";

fn with_page_headers(mut reply: Reply) -> Reply {
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

/// An HTML page.
pub fn html(status: StatusCode, page: maud::Markup) -> Reply {
    let mut reply = http::Response::new(Full::new(Bytes::from(page.into_string())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    with_page_headers(reply)
}

/// 303 See Other to `location` (a path of this console).
pub fn redirect(location: &str) -> Reply {
    let mut reply = cinema_edge::reply::empty(StatusCode::SEE_OTHER);
    if let Ok(value) = HeaderValue::from_str(location) {
        reply.headers_mut().insert(header::LOCATION, value);
    }
    with_page_headers(reply)
}

/// A static asset, cacheable for an hour.
pub fn asset(content_type: &'static str, body: &'static str) -> Reply {
    let mut reply = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    reply
}

/// JSON with `no-store`.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut reply = cinema_edge::reply::json(status, serde_json::to_vec(value).unwrap_or_default());
    reply
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

/// Adds a `Set-Cookie` header.
pub fn set_cookie(reply: &mut Reply, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        reply.headers_mut().append(header::SET_COOKIE, value);
    }
}
