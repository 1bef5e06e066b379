//! How a request fails over HTTP: one status per kind of failure, decided here and nowhere
//! else, and the JSON error body every failure gets.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opossum_pipeline::ErrorKind;

/// A failed request: its status and message, and the kind of failure when the request
/// reached the pipeline (the origin's own refusals, busy or unsigned, have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status
    pub status: StatusCode,
    /// the message (the body's `error`)
    pub message: String,
    /// what kind of failure the pipeline or the fleet reported
    pub kind: Option<ErrorKind>,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            kind: None,
        }
    }

    /// A failure the pipeline or a worker reported: its status from its kind, in one place.
    pub(crate) fn of_kind(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            status: status_of(kind),
            message: message.into(),
            kind: Some(kind),
        }
    }
}

/// The HTTP status of each kind of failure.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::BadImage => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Transient => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub(crate) fn failure_response(failure: &Failure) -> Response {
    let body = serde_json::json!({ "error": failure.message }).to_string();
    let mut response = (failure.status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if failure.status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
