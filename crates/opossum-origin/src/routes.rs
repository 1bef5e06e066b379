//! The HTTP side of the origin: routes, the request checks (path length, signature), CDN
//! headers on success (`Cache-Control`, `ETag` and `304`, `Surrogate-Key`, `Vary`), and the
//! per-request metrics and span.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use opossum_cache::{Entry, unix_millis};
use opossum_pipeline::Provenance;

use crate::counters::counters;
use crate::failure::{Failure, failure_response};
use crate::sign::verify;
use crate::{Origin, RecentRequest, status};

pub(crate) struct Served {
    pub(crate) entry: Arc<Entry>,
    pub(crate) provenance: Provenance,
    pub(crate) etag: String,
    pub(crate) surrogate_key: String,
    pub(crate) negotiated: bool,
    pub(crate) chain: String,
}

fn success_response(answer: &Served, request_headers: &HeaderMap) -> Response {
    let max_age = answer
        .entry
        .remaining(unix_millis())
        .map_or(0, |d| d.as_secs());
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == answer.etag || tag.trim() == "*")
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(answer.entry.body.clone()));
        if let Ok(value) = HeaderValue::from_str(&answer.entry.media_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Ok(value) = HeaderValue::from_str(&answer.etag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&answer.surrogate_key) {
        headers.insert("surrogate-key", value);
    }
    if answer.negotiated {
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    headers.insert(
        "x-opossum-source",
        HeaderValue::from_static(answer.provenance.name()),
    );
    response
}

type Shared = State<Arc<Origin>>;

fn check_request(origin: &Origin, uri: &Uri, query: Option<&str>) -> Result<(), Failure> {
    if uri.path().len() > origin.config.max_path_bytes {
        return Err(Failure::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "the path is {} bytes, more than the limit of {}",
                uri.path().len(),
                origin.config.max_path_bytes
            ),
        ));
    }
    if origin.config.signing_keys.is_empty() {
        return Ok(());
    }
    let signature = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("sig="));
    match signature {
        Some(sig) if verify(&origin.config.signing_keys, uri.path(), sig) => Ok(()),
        Some(_) => Err(Failure::new(StatusCode::FORBIDDEN, "invalid signature")),
        None => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "this origin requires signed URLs (?sig=)",
        )),
    }
}

async fn serve(
    origin: &Origin,
    uri: &Uri,
    query: Option<&str>,
    headers: &HeaderMap,
    chain: &str,
    image_id: &str,
) -> Response {
    let started = Instant::now();
    let result = match check_request(origin, uri, query) {
        Ok(()) => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            origin.answer(chain, image_id, accept).await
        }
        Err(failure) => Err(failure),
    };
    let (response, status, source, served_chain) = match &result {
        Ok(answer) => {
            let response = success_response(answer, headers);
            if response.status() == StatusCode::NOT_MODIFIED {
                counters().not_modified.inc();
            }
            let status = response.status().as_u16();
            (
                response,
                status,
                answer.provenance.name(),
                answer.chain.clone(),
            )
        }
        Err(failure) => (
            failure_response(failure),
            failure.status.as_u16(),
            "error",
            chain.to_string(),
        ),
    };
    let route = if uri.path().starts_with("/v1/info/") {
        "info"
    } else {
        "img"
    };
    opossum_telemetry::metrics().http(route, status, started.elapsed().as_secs_f64());
    tracing::Span::current().record("status", status);
    origin.note(RecentRequest {
        image_id: image_id.chars().take(200).collect(),
        chain: served_chain.chars().take(200).collect(),
        status,
        source,
        ms: started.elapsed().as_secs_f64() * 1000.0,
    });
    response
}

pub(crate) async fn image(
    State(origin): Shared,
    Path((chain, image_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    use tracing::Instrument;
    let span =
        tracing::debug_span!("request", route = "img", %chain, status = tracing::field::Empty);
    serve(&origin, &uri, query.as_deref(), &headers, &chain, &image_id)
        .instrument(span)
        .await
}

/// `/v1/url/{chain}/{base64url}`: an image id that is a URL, base64url-encoded (padding
/// optional), as imgproxy's encoded source URLs are: nothing in it needs escaping in a path,
/// and no proxy or CDN normalises it. The plain form is the URL percent-encoded in
/// `/v1/img/{chain}/{id}`.
pub(crate) async fn image_by_url(
    State(origin): Shared,
    Path((chain, encoded)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let image_id = match decode_url_id(&encoded) {
        Ok(id) => id,
        Err(message) => {
            return failure_response(&Failure::new(StatusCode::BAD_REQUEST, message));
        }
    };
    image(
        State(origin),
        Path((chain, image_id)),
        RawQuery(query),
        uri,
        headers,
    )
    .await
}

/// The URL in a `/v1/url/` path segment.
fn decode_url_id(encoded: &str) -> Result<String, String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|e| format!("the image URL is not base64url: {e}"))?;
    let url = String::from_utf8(bytes).map_err(|_| "the image URL is not UTF-8".to_string())?;
    if !opossum_fleet::is_url_id(&url) {
        return Err("the encoded image id is not an http:// or https:// URL".into());
    }
    Ok(url)
}

pub(crate) async fn info(
    State(origin): Shared,
    Path(image_id): Path<String>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(
        &origin,
        &uri,
        query.as_deref(),
        &headers,
        "analyze",
        &image_id,
    )
    .await
}

pub(crate) async fn metrics(State(origin): Shared) -> Response {
    let text = status::metrics(&origin).await;
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(opossum_telemetry::CONTENT_TYPE),
    );
    response
}

pub(crate) async fn status_page(State(origin): Shared) -> Response {
    let html = status::page(&origin).await;
    let mut response = Response::new(Body::from(html));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Serves `origin` on `listener` until `shutdown` resolves.
pub async fn serve_on(
    origin: Arc<Origin>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, origin.router())
        .with_graceful_shutdown(shutdown)
        .await
}
