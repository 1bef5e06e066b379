//! A real HTTP server on loopback for the fetcher's tests: images, redirects, slow, endless and
//! short bodies, statuses, conditional answers. Every request is counted, so a test can say
//! the server saw none.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

/// The image the server serves: any bytes do, the fetcher does not decode.
pub fn image_bytes() -> Vec<u8> {
    (0..5000u32).map(|i| (i % 251) as u8).collect()
}

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

/// A server running until dropped.
pub struct TestServer {
    /// where it listens
    pub addr: SocketAddr,
    seen: Seen,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts on `ip` (a loopback address: 127.0.0.1, 127.0.0.2, ::1) and a free port.
    pub async fn start(ip: &str) -> TestServer {
        let seen = Seen::default();
        let app = Router::new()
            .route("/img.png", get(image))
            .route("/redirect/{n}", get(redirect_chain))
            .route("/to", get(redirect_to))
            .route("/status/{code}", get(status))
            .route("/slow", get(slow))
            .route("/endless", get(endless))
            .route("/declared-large", get(declared_large))
            .route("/hang", get(hang))
            .route("/{*rest}", get(echo_path))
            .layer(axum::middleware::from_fn_with_state(seen.clone(), count))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {ip}: {e}"));
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            addr,
            seen,
            stop: Some(stop),
        }
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests seen so far.
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }

    /// The headers of every request seen, with its path.
    pub fn headers(&self) -> Vec<(String, HeaderMap)> {
        self.seen.headers.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn count(
    State(seen): State<Seen>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    seen.headers
        .lock()
        .unwrap()
        .push((request.uri().path().to_string(), request.headers().clone()));
    next.run(request).await
}

async fn image(headers: HeaderMap) -> Response {
    if headers.get(header::IF_NONE_MATCH).map(|v| v.as_bytes()) == Some(b"\"v1\"") {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::CACHE_CONTROL, "max-age=120")],
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::ETAG, "\"v1\""),
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::LAST_MODIFIED, "Tue, 01 Dec 2026 10:00:00 GMT"),
        ],
        image_bytes(),
    )
        .into_response()
}

async fn echo_path(Path(rest): Path<String>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain")],
        format!("path:{rest}"),
    )
        .into_response()
}

async fn redirect_chain(Path(n): Path<u32>) -> Response {
    let next = if n == 0 {
        "/img.png".to_string()
    } else {
        format!("/redirect/{}", n - 1)
    };
    (StatusCode::FOUND, [(header::LOCATION, next)]).into_response()
}

#[derive(serde::Deserialize)]
struct To {
    u: String,
}

async fn redirect_to(Query(to): Query<To>) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&to.u).unwrap());
    response
}

async fn status(Path(code): Path<u16>) -> Response {
    StatusCode::from_u16(code).unwrap().into_response()
}

/// One byte every 100 ms, forever.
async fn slow() -> Response {
    let stream = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), ()))
    });
    Body::from_stream(stream).into_response()
}

/// 64 KiB chunks as fast as they are taken, forever.
async fn endless() -> Response {
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    let stream = futures::stream::unfold(chunk, |chunk| async move {
        Some((Ok::<_, std::io::Error>(chunk.clone()), chunk))
    });
    Body::from_stream(stream).into_response()
}

/// Declares 100 MB (and would send it).
async fn declared_large() -> Response {
    let chunk = Bytes::from(vec![0u8; 1024 * 1024]);
    let stream =
        futures::stream::iter((0..100).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from_static("104857600"),
    );
    response
}

/// Never answers.
async fn hang() -> Response {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    StatusCode::OK.into_response()
}

/// A raw TCP server that answers every connection with `reply` and closes: for answers axum
/// will not write (a `Content-Length` longer than the body).
pub async fn raw_server(reply: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(reply).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (addr, connections)
}
