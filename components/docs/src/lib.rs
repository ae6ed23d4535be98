//! The browsable API docs at `/api/docs`: Swagger UI showing the auth, catalog and ugc
//! OpenAPI documents (a picker in its top bar), with "Try it out" sending requests to
//! this same origin.
//!
//! Everything this component answers is static and embedded at build time: its own page
//! and initializer (`static/`), and Swagger UI's files from the npm package
//! `swagger-ui-dist` (vendored by `scripts/vendor-swagger-ui.sh`, pinned by version and
//! sha256). Swagger UI's files live under a path that names their version, so browsers
//! keep them for a year and an upgrade is a new path. No inline script or style: the
//! page keeps a strict Content-Security-Policy (this origin only, never framed).

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

use cinema_domain::error::ErrorBody;
use cinema_edge::reply::{self, Reply};

/// Version of the vendored `swagger-ui-dist` (from `vendor/VERSION`, by `build.rs`).
pub const SWAGGER_UI_VERSION: &str = env!("SWAGGER_UI_VERSION");

/// Where the page lives.
pub const DOCS_PATH: &str = "/api/docs";

/// Content-Security-Policy of the page: scripts, styles, documents and "Try it out"
/// requests from this origin only (no inline script), images also as data: URLs
/// (Swagger UI draws icons so), never framed.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                   form-action 'self'; base-uri 'none'; object-src 'none'";

const PAGE: &str = include_str!("../static/index.html");
const INITIALIZER: &str = include_str!("../static/docs.js");
const BUNDLE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/vendor/swagger-ui-bundle.js"
));
const PRESET: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/vendor/swagger-ui-standalone-preset.js"
));
const STYLES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/vendor/swagger-ui.css"
));
const FAVICON: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/vendor/favicon-32x32.png"
));

/// What a path under `/api/docs` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asset {
    /// The page itself (`/api/docs`, `/api/docs/`).
    Page,
    /// The script that starts Swagger UI on the page with the three documents.
    Initializer,
    /// A file of Swagger UI, under `/api/docs/swagger-ui/{version}/`.
    SwaggerUi(&'static str),
}

impl Asset {
    fn find(path: &str) -> Option<Self> {
        let rest = path.strip_prefix(DOCS_PATH)?;
        match rest {
            "" | "/" | "/index.html" => return Some(Self::Page),
            "/docs.js" => return Some(Self::Initializer),
            _ => {}
        }
        let file = rest
            .strip_prefix("/swagger-ui/")?
            .strip_prefix(SWAGGER_UI_VERSION)?
            .strip_prefix('/')?;
        [
            "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js",
            "swagger-ui.css",
            "favicon-32x32.png",
        ]
        .into_iter()
        .find(|known| *known == file)
        .map(Self::SwaggerUi)
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Page => "text/html; charset=utf-8",
            Self::Initializer => "text/javascript; charset=utf-8",
            Self::SwaggerUi(file) if file.ends_with(".js") => "text/javascript; charset=utf-8",
            Self::SwaggerUi(file) if file.ends_with(".css") => "text/css; charset=utf-8",
            Self::SwaggerUi(_) => "image/png",
        }
    }

    fn body(self) -> Bytes {
        match self {
            Self::Page => Bytes::from(PAGE.replace("{{version}}", SWAGGER_UI_VERSION)),
            Self::Initializer => Bytes::from_static(INITIALIZER.as_bytes()),
            Self::SwaggerUi("swagger-ui-bundle.js") => Bytes::from_static(BUNDLE),
            Self::SwaggerUi("swagger-ui-standalone-preset.js") => Bytes::from_static(PRESET),
            Self::SwaggerUi("swagger-ui.css") => Bytes::from_static(STYLES),
            Self::SwaggerUi(_) => Bytes::from_static(FAVICON),
        }
    }

    /// Swagger UI's files never change under their versioned path; the page and its
    /// initializer change with this component, so browsers check them each time.
    fn cache_control(self) -> &'static str {
        match self {
            Self::SwaggerUi(_) => "public, max-age=31536000, immutable",
            Self::Page | Self::Initializer => "no-cache",
        }
    }
}

/// The answer to a request for `path` with `method`: 200 with the asset (no body for
/// HEAD), 404 `route_not_found`, 405 `method_not_allowed` with `Allow`.
fn answer(method: &Method, path: &str) -> Reply {
    let Some(asset) = Asset::find(path) else {
        return error(StatusCode::NOT_FOUND, "route_not_found", "no such route");
    };
    if method != Method::GET && method != Method::HEAD {
        let mut reply = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the API docs answer GET and HEAD",
        );
        reply
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    let body = asset.body();
    let length = body.len();
    let mut reply = http::Response::new(Full::new(if method == Method::HEAD {
        Bytes::new()
    } else {
        body
    }));
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type()),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(asset.cache_control()),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset == Asset::Page {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    reply
}

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
    reply::sized(reply::json(status, body))
}

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    answer(request.method(), request.uri().path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Reply {
        answer(&Method::GET, path)
    }

    fn versioned(file: &str) -> String {
        format!("{DOCS_PATH}/swagger-ui/{SWAGGER_UI_VERSION}/{file}")
    }

    /// The page names Swagger UI's files by their versioned paths, each of which is
    /// served with its type, and only the page carries the CSP.
    #[test]
    fn the_page_and_every_file_it_names_are_served_with_their_types() {
        for path in ["/api/docs", "/api/docs/", "/api/docs/index.html"] {
            let page = get(path);
            assert_eq!(page.status(), StatusCode::OK, "{path}");
            assert!(
                page.headers()[header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap_or_default()
                    .starts_with("default-src 'self'")
            );
        }
        let page = Asset::Page.body();
        let page = std::str::from_utf8(&page).expect("utf-8 page");
        assert!(!page.contains("{{version}}"), "{page}");
        for (file, content_type) in [
            ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
            (
                "swagger-ui-standalone-preset.js",
                "text/javascript; charset=utf-8",
            ),
            ("swagger-ui.css", "text/css; charset=utf-8"),
            ("favicon-32x32.png", "image/png"),
        ] {
            let path = versioned(file);
            assert!(
                page.contains(&format!("\"{path}\"")),
                "{path} not on the page"
            );
            let reply = get(&path);
            assert_eq!(reply.status(), StatusCode::OK, "{path}");
            assert_eq!(reply.headers()[header::CONTENT_TYPE], content_type);
            assert!(
                reply.headers()[header::CACHE_CONTROL]
                    .to_str()
                    .unwrap_or_default()
                    .contains("immutable")
            );
            assert!(
                !reply
                    .headers()
                    .contains_key(header::CONTENT_SECURITY_POLICY)
            );
        }
        assert!(page.contains("\"/api/docs/docs.js\""));
        assert_eq!(get("/api/docs/docs.js").status(), StatusCode::OK);
    }

    /// Unknown files, other versions and paths outside the docs are 404 (JSON, the
    /// platform's error body); writes are 405 with `Allow`; HEAD has the length, no body.
    #[test]
    fn unknown_paths_and_methods_get_the_platform_errors() {
        for path in [
            "/api/docs/missing.js",
            "/api/docs/swagger-ui/0.0.1/swagger-ui.css",
            "/api/docs/swagger-ui/swagger-ui.css",
            "/api/docsx",
            "/api/docs/../v1/openapi.json",
            "/elsewhere",
        ] {
            let reply = get(path);
            assert_eq!(reply.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(reply.headers()[header::CONTENT_TYPE], "application/json");
        }
        let refused = answer(&Method::POST, "/api/docs");
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(refused.headers()[header::ALLOW], "GET, HEAD");
        let head = answer(&Method::HEAD, &versioned("swagger-ui.css"));
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(
            head.headers()[header::CONTENT_LENGTH],
            STYLES.len().to_string()
        );
        assert_eq!(http_body::Body::size_hint(head.body()).exact(), Some(0));
    }
}
