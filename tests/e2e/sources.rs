//! Originals over HTTP the ways users arrive: an `originals: http://…/base/` store and image ids
//! that are URLs (`sources.url_ids`), through `opossum process`, `opossum submit` and the
//! origin's `/v1/img/` (percent-encoded) and `/v1/url/` (base64url) paths, against a real HTTP
//! server in this test process that counts what it is asked. The refusals (loopback without
//! `allow_private`, hosts off the list, ids that are URLs while `url_ids` is off) must reach
//! no server; the source cache must answer a second variant without a request and revalidate
//! an expired original with `If-None-Match`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opossum_testkit::{TempDir, json_lines};

use crate::origin::{get as http_get, start_with_config};
use crate::support::{corpus, opossum_fails_in, opossum_in, process_args};

/// A request the image server saw: its path and the `If-None-Match` it sent.
type Request = (String, Option<String>);

/// What the image server saw.
#[derive(Clone, Default)]
struct Seen {
    /// every request: path and the `If-None-Match` it sent
    requests: Arc<Mutex<Vec<Request>>>,
    /// how many answered 304
    not_modified: Arc<AtomicUsize>,
    /// the `Cache-Control` its images carry
    cache_control: Arc<Mutex<String>>,
    dir: Arc<PathBuf>,
}

/// An HTTP server of the files in a directory under `/base/`, with an `ETag` and a
/// `Cache-Control` on each, answering `If-None-Match` with 304. A file whose name starts with
/// `flaky-` is answered 503 the first time it is asked for, as an overloaded origin would.
/// Runs on its own thread and runtime until the test ends.
struct ImageServer {
    addr: SocketAddr,
    seen: Seen,
    _dir: TempDir,
}

impl ImageServer {
    fn start() -> ImageServer {
        let dir = crate::origin::originals();
        let seen = Seen {
            cache_control: Arc::new(Mutex::new("public, max-age=600".into())),
            dir: Arc::new(dir.path().to_path_buf()),
            ..Seen::default()
        };
        let app = Router::new()
            .route("/base/{*path}", get(serve_file))
            .with_state(seen.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        ImageServer {
            addr,
            seen,
            _dir: dir,
        }
    }

    fn base(&self) -> String {
        format!("http://{}/base/", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.requests.lock().unwrap().clone()
    }

    fn set_cache_control(&self, value: &str) {
        *self.seen.cache_control.lock().unwrap() = value.to_string();
    }
}

async fn serve_file(
    State(seen): State<Seen>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .map(|v| v.to_str().unwrap().to_string());
    seen.requests
        .lock()
        .unwrap()
        .push((path.clone(), if_none_match.clone()));
    let Ok(bytes) = std::fs::read(seen.dir.join(&path)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let asked = seen
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| *p == path)
        .count();
    if path.starts_with("flaky-") && asked == 1 {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let etag = format!("\"{}\"", bytes.len());
    let cache_control = seen.cache_control.lock().unwrap().clone();
    if if_none_match.as_deref() == Some(etag.as_str()) {
        seen.not_modified.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)],
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "image/png".to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
        ],
        bytes,
    )
        .into_response()
}

/// A configuration file in its own directory.
fn config(yaml: &str) -> (TempDir, String) {
    let dir = TempDir::new("sources-config");
    let file = dir.join("opossum.yaml");
    std::fs::write(&file, yaml).unwrap();
    let path = file.to_str().unwrap().to_string();
    (dir, path)
}

/// URL ids allowed to reach `server` (on loopback, so `allow_private` too).
fn url_ids_yaml(server: &ImageServer, allow_private: bool) -> String {
    format!(
        "sources:\n  url_ids: true\n  allowed_hosts: [\"127.0.0.1\", \"localhost\"]\n  allowed_ports: [{}]\n  allow_private: {allow_private}\n",
        server.addr.port()
    )
}

/// Every byte but ASCII letters and digits percent-encoded: a URL as one path segment.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn base64url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn process_json(data: &TempDir, args: &[&str]) -> serde_json::Value {
    json_lines(&opossum_in(data, args)).remove(0)
}

#[test]
fn an_http_base_store_serves_process_and_the_source_cache_spares_the_second_variant() {
    let server = ImageServer::start();
    let data = TempDir::new("sources-base-data");
    let base = server.base();
    let out = data.join("out");
    let out = out.to_str().unwrap();
    let process = |image: &str, ops: &str| {
        process_json(&data, &process_args(image, &base, ops, out, &["--json"]))
    };
    let first = process("a.png", "resize:100:100");
    assert_eq!(first["source"], "computed", "{first}");
    assert_eq!(
        (first["width"].as_u64(), first["height"].as_u64()),
        (Some(100), Some(67))
    );
    // A second variant of the same original: computed, from the kept copy.
    let second = process("a.png", "thumbnail:40,format:webp");
    assert_eq!(second["source"], "computed", "{second}");
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    // `submit` (an embedded worker over the same data directory) reads the same kept copy.
    let event = json_lines(&opossum_in(
        &data,
        &[
            "submit",
            "a.png",
            "--originals",
            &base,
            "--ops",
            "thumbnail:20",
        ],
    ))
    .remove(0);
    assert_eq!(event["status"], "ok", "{event}");
    assert!(event["bytes"].as_u64() > Some(0), "{event}");
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    // Ids with spaces and directories reach the server percent-encoded, as object names.
    process("photos/b c.png", "resize:50:50");
    assert_eq!(server.requests()[1].0, "photos/b c.png");
    // `cache invalidate` drops the kept original with the variants.
    opossum_in(&data, &["cache", "invalidate", "a.png"]);
    process("a.png", "resize:100:100");
    assert_eq!(server.requests().len(), 3);
    // A missing original is a clear error naming it, and remembered: asked once.
    let missing = opossum_fails_in(
        &data,
        &process_args("nope.png", &base, "resize:10:10", out, &[]),
    );
    assert!(
        missing.contains("404") && missing.contains("nope.png"),
        "{missing}"
    );
    opossum_fails_in(
        &data,
        &process_args("nope.png", &base, "thumbnail:10", out, &[]),
    );
    let asked: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|(path, _)| path == "nope.png")
        .collect();
    assert_eq!(asked.len(), 1, "the 404 was not remembered");
}

#[test]
fn an_expired_original_is_revalidated_with_its_etag() {
    let server = ImageServer::start();
    server.set_cache_control("max-age=0");
    let data = TempDir::new("sources-revalidate-data");
    let (_config, file) = config("sources:\n  cache_min_ttl: 0s\n");
    let base = server.base();
    let out = data.join("out");
    let out = out.to_str().unwrap();
    for ops in ["resize:64:64", "resize:32:32"] {
        process_json(
            &data,
            &process_args("a.png", &base, ops, out, &["--config", &file, "--json"]),
        );
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].1, None);
    let etag = format!(
        "\"{}\"",
        std::fs::metadata(corpus().join("photos/kodim23.png"))
            .unwrap()
            .len()
    );
    assert_eq!(
        requests[1].1.as_deref(),
        Some(etag.as_str()),
        "no If-None-Match"
    );
    assert_eq!(server.seen.not_modified.load(Ordering::SeqCst), 1);
}

#[test]
fn url_ids_through_process_and_submit_and_their_refusals() {
    let server = ImageServer::start();
    let url = format!("{}a.png", server.base());
    let store = TempDir::new("sources-empty-store");
    let store = store.path().to_str().unwrap().to_string();
    let out_dir = TempDir::new("sources-url-out");
    let out = out_dir.join("out");
    let out = out.to_str().unwrap();

    // Off by default: a clear error, no request.
    let data = TempDir::new("sources-url-off");
    let off = opossum_fails_in(&data, &process_args(&url, &store, "resize:10:10", out, &[]));
    assert!(off.contains("sources.url_ids"), "{off}");

    // On, with the loopback server allowed.
    let (_allowed, allowed) = config(&url_ids_yaml(&server, true));
    let data = TempDir::new("sources-url-on");
    let report = process_json(
        &data,
        &process_args(
            &url,
            &store,
            "resize:100:100",
            out,
            &["--config", &allowed, "--json"],
        ),
    );
    assert_eq!(report["width"], 100, "{report}");
    let event = json_lines(&opossum_in(
        &data,
        &[
            "submit",
            &url,
            "--config",
            &allowed,
            "--originals",
            &store,
            "--ops",
            "thumbnail:30",
        ],
    ))
    .remove(0);
    assert_eq!(event["status"], "ok", "{event}");
    assert_eq!(
        server.requests().len(),
        1,
        "the second variant fetched again"
    );
    let no_cache = process_json(
        &data,
        &process_args(
            &url,
            &store,
            "resize:20:20",
            out,
            &["--config", &allowed, "--json", "--no-cache"],
        ),
    );
    assert_eq!(no_cache["width"], 20);
    assert_eq!(server.requests().len(), 2, "--no-cache fetches");

    // The secure default for addresses: loopback in any spelling is refused, and the server
    // sees nothing.
    let (_denied, denied) = config(&url_ids_yaml(&server, false));
    let port = server.addr.port();
    let before = server.requests().len();
    let data = TempDir::new("sources-url-denied");
    for host in [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f000001",
        "127.1",
    ] {
        let target = format!("http://{host}:{port}/base/a.png");
        let refused = opossum_fails_in(
            &data,
            &process_args(&target, &store, "resize:10:10", out, &["--config", &denied]),
        );
        assert!(
            refused.contains("refused to fetch") && refused.contains("loopback"),
            "{host}: {refused}"
        );
        let event = json_lines(&crate::support::run_in(
            &data,
            &[
                "submit",
                &target,
                "--config",
                &denied,
                "--originals",
                &store,
                "--ops",
                "resize:10:10",
            ],
        ))
        .remove(0);
        assert_eq!(event["status"], "error", "{event}");
        assert_eq!(event["error"]["kind"], "bad_request", "{event}");
    }
    // A host off the list.
    let elsewhere = format!("http://[::1]:{port}/base/a.png");
    let refused = opossum_fails_in(
        &data,
        &process_args(
            &elsewhere,
            &store,
            "resize:10:10",
            out,
            &["--config", &denied],
        ),
    );
    assert!(refused.contains("allowed_hosts"), "{refused}");
    assert_eq!(
        server.requests().len(),
        before,
        "a refused URL reached the server"
    );
}

#[test]
fn the_origin_serves_url_ids_plain_and_base64_and_an_http_base() {
    let server = ImageServer::start();
    let url = format!("{}a.png", server.base());
    let origin = start_with_config(&url_ids_yaml(&server, true));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let plain = http_get(
            &format!(
                "{}/v1/img/resize:100:100/{}",
                origin.base,
                percent_encoded(&url)
            ),
            &[],
        )
        .await;
        assert_eq!(plain.status(), 200);
        let png = plain.bytes().await.unwrap();
        assert_eq!(image::load_from_memory(&png).unwrap().width(), 100);
        let encoded = http_get(
            &format!(
                "{}/v1/url/thumbnail:30,format:webp/{}",
                origin.base,
                base64url(&url)
            ),
            &[],
        )
        .await;
        assert_eq!(encoded.status(), 200);
        assert_eq!(encoded.headers()["content-type"], "image/webp");
        assert_eq!(
            server.requests().len(),
            1,
            "the second variant fetched again"
        );
        let info = http_get(
            &format!("{}/v1/info/{}", origin.base, percent_encoded(&url)),
            &[],
        )
        .await;
        assert_eq!(info.status(), 200);
        let missing = http_get(
            &format!(
                "{}/v1/url/resize:10:10/{}",
                origin.base,
                base64url(&format!("{}nope.png", server.base()))
            ),
            &[],
        )
        .await;
        assert_eq!(missing.status(), 404);
        let garbage = http_get(&format!("{}/v1/url/resize:10:10/%%%", origin.base), &[]).await;
        assert_eq!(garbage.status(), 400);
        let not_a_url = http_get(
            &format!("{}/v1/url/resize:10:10/{}", origin.base, base64url("a.png")),
            &[],
        )
        .await;
        assert_eq!(not_a_url.status(), 400);
    });
    drop(origin);

    // The same origin with the secure default: loopback refused with a 400 that says why.
    let denied = start_with_config(&url_ids_yaml(&server, false));
    let before = server.requests().len();
    runtime.block_on(async {
        for target in [
            url.clone(),
            url.replace("127.0.0.1", "localhost"),
            url.replace("127.0.0.1", "2130706433"),
        ] {
            let response = http_get(
                &format!("{}/v1/url/resize:10:10/{}", denied.base, base64url(&target)),
                &[],
            )
            .await;
            assert_eq!(response.status(), 400, "{target}");
            let body = response.text().await.unwrap();
            assert!(body.contains("loopback"), "{target}: {body}");
        }
    });
    assert_eq!(server.requests().len(), before);
    drop(denied);

    // An origin whose originals are the HTTP base.
    let based =
        crate::origin::start_over(TempDir::new("sources-unused"), &server.base(), &[], None);
    runtime.block_on(async {
        let response = http_get(&format!("{}/v1/img/resize:60:60/a.png", based.base), &[]).await;
        assert_eq!(response.status(), 200);
        let escape = http_get(
            &format!("{}/v1/img/resize:60:60/..%2Fsecret", based.base),
            &[],
        )
        .await;
        assert_eq!(escape.status(), 400);
    });
}

/// Real `opossum-worker` processes over a real Redis: an HTTP base store and URL ids, a 503
/// retried as a transient failure, and the refusals as final `bad_request` events; a second round of the same variants is answered by
/// the cache without asking the image server again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_workers_reads_an_http_base_and_url_ids() {
    use opossum_fleet::{ErrorKind, Job, Priority, Provenance, Status};
    use std::time::Duration;

    let server = ImageServer::start();
    let redis = opossum_testkit::RedisServer::start();
    let (_config, file) = config(&url_ids_yaml(&server, true));
    let fleet = crate::fleet::fleet(&redis.url()).await;
    let base = server.base();
    let _workers: Vec<_> = (0..2)
        .map(|_| {
            crate::fleet::Worker::start_with(
                &redis.url(),
                std::path::Path::new(&base),
                &fleet.prefix,
                |command| {
                    command.arg("--config").arg(&file);
                },
            )
        })
        .collect();
    std::fs::copy(
        corpus().join("photos/kodim23.png"),
        server.seen.dir.join("flaky-a.png"),
    )
    .unwrap();
    let url = format!("{base}a.png");
    let round = || {
        vec![
            Job::new("a.png", "thumbnail:64", Priority::User),
            Job::new("photos/b c.png", "resize:50:50", Priority::User),
            Job::new(url.as_str(), "thumbnail:32,format:webp", Priority::User),
            // 503 on the first request: a transient failure, retried, then done
            Job::new("flaky-a.png", "thumbnail:48", Priority::User),
        ]
    };
    let refused = vec![
        Job::new("http://example.com/a.png", "thumbnail:32", Priority::User),
        Job::new(
            "http://127.0.0.1:1/base/a.png",
            "thumbnail:32",
            Priority::User,
        ),
        Job::new("file:///etc/passwd", "thumbnail:32", Priority::User),
        Job::new(
            url.replace("http://", "http://user:secret@").as_str(),
            "thumbnail:32",
            Priority::User,
        ),
    ];
    let run = |jobs: Vec<Job>| {
        let fleet = &fleet;
        async move {
            let start = fleet.events.last_id().await.unwrap();
            let ids: Vec<String> = jobs.iter().map(|job| job.job_id.clone()).collect();
            fleet.queues.submit(jobs).await.unwrap();
            let seen =
                crate::fleet::collect(&fleet.events, &ids, &start, Duration::from_secs(60), |_| {
                    false
                })
                .await;
            ids.iter()
                .map(|id| {
                    seen.get(id)
                        .unwrap_or_else(|| panic!("no event for job {id}"))[0]
                        .clone()
                })
                .collect::<Vec<_>>()
        }
    };
    for event in run(round()).await {
        assert_eq!(event.status, Status::Ok, "{event:?}");
        assert_eq!(event.source, Some(Provenance::Computed), "{event:?}");
    }
    let asked = server.requests().len();
    assert!((5..=8).contains(&asked), "{:?}", server.requests());
    let flaky = server
        .requests()
        .iter()
        .filter(|(path, _)| path == "flaky-a.png")
        .count();
    assert_eq!(
        flaky,
        2,
        "the 503 was not retried once: {:?}",
        server.requests()
    );
    for event in run(round()).await {
        assert_eq!(event.status, Status::Ok, "{event:?}");
        assert!(
            matches!(event.source, Some(Provenance::Tier(_))),
            "{event:?}"
        );
    }
    assert_eq!(
        server.requests().len(),
        asked,
        "a cached variant fetched again"
    );

    let events = run(refused).await;
    for (event, names) in events.iter().zip([
        "allowed_hosts",
        "allowed_ports",
        "scheme `file` is not http or https",
        "credentials",
    ]) {
        assert_eq!(event.status, Status::Error, "{event:?}");
        assert_eq!(
            event.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::BadRequest),
            "{event:?}"
        );
        assert!(event.error_message().contains(names), "{names}: {event:?}");
    }
    assert_eq!(server.requests().len(), asked);
}
