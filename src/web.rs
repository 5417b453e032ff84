//! The analysts' console (`GET /`) and the GraphiQL playground
//! (`GET /graphql`), served from files embedded in the binary: they work on
//! a network with no internet access, and the `Content-Security-Policy` on
//! every page lets them load nothing from any other origin and run no
//! inline script (analysts paste admin tokens into these pages).
//!
//! The files live in `web/` and are listed here one by one, so a file that
//! is not listed is never served and no request path reaches the file
//! system. Each is served with a strong `ETag` (SHA-256 of its bytes) and,
//! to clients that accept it, gzip-compressed once on first use. Vendored
//! files sit under versioned paths and may be cached for a year; the pages
//! and the console's own modules are revalidated on every load (`no-cache`
//! with the ETag, so a new binary is seen at once and an unchanged file
//! costs a 304).

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Every HTML page's policy: scripts, styles, fonts and connections from
/// this origin only (`'self'` covers the same host's `ws:`/`wss:` socket),
/// images also as `data:` URLs (GraphiQL's icons), no plugins, no framing,
/// no `<base>` rewriting.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; \
     object-src 'none'";

/// One embedded file, by its path under `web/`.
struct File {
    path: &'static str,
    bytes: &'static [u8],
}

macro_rules! files {
    ($($path:literal),* $(,)?) => {
        &[$(File {
            path: $path,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)),
        }),*]
    };
}

static FILES: &[File] = files![
    "playground/index.html",
    "playground/init.js",
    "playground/playground.css",
    "console/index.html",
    "console/app.js",
    "console/api.js",
    "console/style.css",
    "vendor/README.md",
    "vendor/graphiql-3.9.0/graphiql.min.js",
    "vendor/graphiql-3.9.0/graphiql.min.css",
    "vendor/graphiql-3.9.0/LICENSE",
    "vendor/react-18.3.1/react.production.min.js",
    "vendor/react-18.3.1/LICENSE",
    "vendor/react-dom-18.3.1/react-dom.production.min.js",
    "vendor/react-dom-18.3.1/LICENSE",
    "vendor/htm-3.1.1/standalone.module.js",
    "vendor/htm-3.1.1/LICENSE",
    "vendor/htm-3.1.1/LICENSE-preact",
    "vendor/graphql-ws-5.16.2/client.mjs",
    "vendor/graphql-ws-5.16.2/common.mjs",
    "vendor/graphql-ws-5.16.2/utils.mjs",
    "vendor/graphql-ws-5.16.2/LICENSE.md",
];

/// A file ready to serve: its headers' values and, when compressing it
/// saves bytes, its gzip body.
struct Prepared {
    bytes: &'static [u8],
    gzip: Option<Bytes>,
    content_type: &'static str,
    etag: String,
    etag_gzip: String,
    immutable: bool,
    html: bool,
}

static PREPARED: OnceLock<HashMap<&'static str, Prepared>> = OnceLock::new();

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    }
}

fn prepare() -> HashMap<&'static str, Prepared> {
    FILES
        .iter()
        .map(|f| {
            let hash = Sha256::digest(f.bytes);
            let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
            let ty = content_type(f.path);
            let gzip = if ty.starts_with("image/") {
                None
            } else {
                gzip(f.bytes)
                    .filter(|z| z.len() < f.bytes.len())
                    .map(Bytes::from)
            };
            let prepared = Prepared {
                bytes: f.bytes,
                gzip,
                content_type: ty,
                etag: format!("\"{hex}\""),
                etag_gzip: format!("\"{hex}-gz\""),
                immutable: f.path.starts_with("vendor/") && f.path != "vendor/README.md",
                html: ty.starts_with("text/html"),
            };
            (f.path, prepared)
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).ok()?;
    enc.finish().ok()
}

/// The table, compressed on a blocking thread the first time (a second's
/// work for the megabyte of GraphiQL in a debug build).
async fn table() -> &'static HashMap<&'static str, Prepared> {
    if let Some(t) = PREPARED.get() {
        return t;
    }
    let built = tokio::task::spawn_blocking(prepare).await;
    match built {
        Ok(t) => PREPARED.get_or_init(|| t),
        // Only a panic in `prepare` gets here; build it on this thread.
        Err(_) => PREPARED.get_or_init(prepare),
    }
}

/// Whether the client takes gzip: listed in `Accept-Encoding` without
/// `q=0` (or `*` without `q=0`). Anything unparsable means no.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            if !(coding.eq_ignore_ascii_case("gzip") || coding == "*") {
                return false;
            }
            !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            })
        })
}

/// Whether `If-None-Match` names this file's current bytes in either
/// encoding (or is `*`).
fn not_modified(headers: &HeaderMap, file: &Prepared) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == file.etag || t == file.etag_gzip)
}

fn respond(headers: &HeaderMap, path: &str, file: Option<&Prepared>) -> Response {
    let Some(file) = file else {
        tracing::debug!(path, "no such embedded file");
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let gzip = file.gzip.as_ref().filter(|_| accepts_gzip(headers));
    let etag = if gzip.is_some() {
        &file.etag_gzip
    } else {
        &file.etag
    };
    let mut builder = Response::builder()
        .header(header::ETAG, etag.as_str())
        .header(header::VARY, "Accept-Encoding")
        .header(
            header::CACHE_CONTROL,
            if file.immutable {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            },
        );
    if file.html {
        builder = builder.header(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    if not_modified(headers, file) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    builder = builder.header(header::CONTENT_TYPE, file.content_type);
    let body = match gzip {
        Some(z) => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            Body::from(z.clone())
        }
        None => Body::from(file.bytes),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `GET /`: the console's page.
pub async fn console(headers: HeaderMap) -> Response {
    let path = "console/index.html";
    respond(&headers, path, table().await.get(path))
}

/// `GET /graphql`: the playground's page.
pub async fn playground(headers: HeaderMap) -> Response {
    let path = "playground/index.html";
    respond(&headers, path, table().await.get(path))
}

/// `GET /assets/{*path}`: any embedded file by its path under `web/`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    respond(&headers, &path, table().await.get(path.as_str()))
}
