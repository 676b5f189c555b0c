//! The operators' console at `GET /`: one HTML page, one script and one
//! style sheet, embedded in the binary with `include_str!` (no build step).
//! The page is public; every data call it makes carries the operator's
//! token, so it shows nothing without one when authentication is on. This
//! module serves files only: the page reads the same `/v1` API as anyone.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The page has no errors of its own; the enum keeps the house convention.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

/// Security headers for every console file: no framing, no outside code.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

/// `GET /`.
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
}

/// `GET /console.js`.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
}

/// `GET /console.css`.
pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
}
