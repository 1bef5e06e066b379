//! The fetcher against a real HTTP server on loopback: every attack the guard must refuse, with
//! the server seeing no request, and every limit a fetch runs under.

mod support;

use std::time::{Duration, Instant};

use opossum_fetch::{
    FetchError, FetchLimits, Fetcher, Guard, HostPattern, Hosts, Origin, Revalidated, Url,
    Validators,
};
use support::{TestServer, image_bytes, raw_server};

const MAX: u64 = 1 << 20;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

/// URL ids as the secure default has them, with these hosts allowed.
fn user_fetcher(hosts: &[&str]) -> Fetcher {
    let guard = Guard {
        hosts: Hosts::Only(
            hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
        ),
        ports: vec![80, 443],
        ..Guard::none_allowed()
    };
    Fetcher::new(guard, FetchLimits::default()).unwrap()
}

/// The operator's loopback server, every host and port allowed, private addresses too.
fn private_fetcher(limits: FetchLimits) -> Fetcher {
    let guard = Guard {
        hosts: Hosts::Any,
        ports: (1..=u16::MAX).collect(),
        allow_private: true,
        ..Guard::none_allowed()
    };
    Fetcher::new(guard, limits).unwrap()
}

fn refusal(result: Result<opossum_fetch::Fetched, FetchError>) -> String {
    match result {
        Err(FetchError::Refused(refused)) => refused.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn loopback_in_every_spelling_is_refused_and_the_server_sees_nothing() {
    let server = TestServer::start("127.0.0.1").await;
    let port = server.addr.port();
    let spellings = [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "0x7f000001",
        "2130706433",
        "127.1",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "0.0.0.0",
    ];
    // Every spelling is on the allow-list and its port allowed: only the address check stands
    // between the URL and the server.
    let guard = Guard {
        hosts: Hosts::Only(
            spellings
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .chain([
                    HostPattern::parse("127.0.0.1").unwrap(),
                    HostPattern::parse("::1").unwrap(),
                    HostPattern::parse("[::1]").unwrap(),
                    HostPattern::parse("[::ffff:7f00:1]").unwrap(),
                ])
                .collect(),
        ),
        ports: vec![port],
        ..Guard::none_allowed()
    };
    let fetcher = Fetcher::new(guard, FetchLimits::default()).unwrap();
    for host in spellings {
        let target = format!("http://{host}:{port}/img.png");
        let reason = refusal(fetcher.fetch(&url(&target), MAX).await);
        assert!(
            reason.contains("loopback")
                || reason.contains("link-local")
                || reason.contains("unspecified")
                || reason.contains("IPv4 address written as IPv6"),
            "{target}: {reason}"
        );
    }
    assert_eq!(server.requests(), 0, "the loopback server was reached");
    // A name refused at resolution is reported with the URL asked for and the name.
    let target = format!("http://localhost:{port}/img.png");
    let error = fetcher.fetch(&url(&target), MAX).await.unwrap_err();
    assert!(
        error.to_string().starts_with(&format!(
            "refused to fetch `{target}`: `localhost` resolves to"
        )),
        "{error}"
    );
    // `localhost` was resolved (and its addresses refused); no literal was.
    assert_eq!(fetcher.lookups(), 2);
}

#[tokio::test]
async fn a_host_not_on_the_allow_list_is_refused_without_a_lookup() {
    let fetcher = user_fetcher(&["images.example.com"]);
    for target in [
        "http://localhost/img.png",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://evil.example.org/a.jpg",
        "http://images.example.com.evil.org/a.jpg",
    ] {
        let reason = refusal(fetcher.fetch(&url(target), MAX).await);
        assert!(reason.contains("allowed_hosts"), "{target}: {reason}");
    }
    // The default allows no host at all.
    let none = Fetcher::new(Guard::none_allowed(), FetchLimits::default()).unwrap();
    let reason = refusal(
        none.fetch(&url("https://images.example.com/a.jpg"), MAX)
            .await,
    );
    assert!(reason.contains("allowed_hosts"), "{reason}");
    assert_eq!(fetcher.lookups() + none.lookups(), 0);
}

#[tokio::test]
async fn schemes_credentials_and_ports_are_refused_before_anything_is_sent() {
    let server = TestServer::start("127.0.0.1").await;
    let fetcher = private_fetcher(FetchLimits::default());
    let with_credentials = format!("http://user:secret@{}/img.png", server.addr);
    let reason = refusal(fetcher.fetch(&url(&with_credentials), MAX).await);
    assert!(reason.contains("credentials"), "{reason}");
    let reason = refusal(fetcher.fetch(&url("file:///etc/passwd"), MAX).await);
    assert!(reason.contains("scheme"), "{reason}");
    let ports = user_fetcher(&["127.0.0.1"]);
    let reason = refusal(ports.fetch(&url(&server.url("/img.png")), MAX).await);
    assert!(
        reason.contains(&format!("port {}", server.addr.port())),
        "{reason}"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn a_redirect_from_an_allowed_host_to_loopback_is_refused() {
    // The allowed host lives on 127.0.0.2, let through by `allowed_networks`; loopback
    // elsewhere is still refused, so the redirect's target is checked, not just the first URL.
    let allowed = TestServer::start("127.0.0.2").await;
    let victim = TestServer::start("127.0.0.1").await;
    let guard = Guard {
        hosts: Hosts::Only(vec![
            HostPattern::parse("127.0.0.2").unwrap(),
            HostPattern::parse("127.0.0.1").unwrap(),
            HostPattern::parse("localhost").unwrap(),
        ]),
        ports: vec![allowed.addr.port(), victim.addr.port()],
        allowed_networks: vec!["127.0.0.2/32".parse().unwrap()],
        ..Guard::none_allowed()
    };
    let fetcher = Fetcher::new(guard, FetchLimits::default()).unwrap();
    // The allowed host itself is fetched.
    let fetched = fetcher
        .fetch(&url(&allowed.url("/img.png")), MAX)
        .await
        .unwrap();
    assert_eq!(fetched.body, image_bytes());
    for target in [
        victim.url("/img.png"),
        format!("http://localhost:{}/img.png", victim.addr.port()),
        format!("http://2130706433:{}/img.png", victim.addr.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let redirect = format!("{}?u={target}", allowed.url("/to"));
        let reason = refusal(fetcher.fetch(&url(&redirect), MAX).await);
        assert!(
            reason.contains("loopback")
                || reason.contains("allowed_hosts")
                || reason.contains("port"),
            "{target}: {reason}"
        );
    }
    assert_eq!(victim.requests(), 0, "the redirect reached loopback");
    // A redirect to another scheme is refused too.
    let redirect = format!("{}?u=ftp://127.0.0.2/x", allowed.url("/to"));
    assert!(refusal(fetcher.fetch(&url(&redirect), MAX).await).contains("scheme"));
}

#[tokio::test]
async fn the_operators_base_is_trusted_but_its_redirects_are_not() {
    let base_server = TestServer::start("127.0.0.1").await;
    let elsewhere = TestServer::start("127.0.0.1").await;
    let base = url(&base_server.url("/"));
    let guard = Guard {
        trusted: Origin::of(&base),
        ..Guard::none_allowed()
    };
    let fetcher = Fetcher::new(guard, FetchLimits::default()).unwrap();
    let fetched = fetcher
        .fetch(&url(&base_server.url("/img.png")), MAX)
        .await
        .unwrap();
    assert_eq!(fetched.body, image_bytes());
    // Redirects within the base are followed; one leaving it is checked like a user URL.
    let chain = fetcher
        .fetch(&url(&base_server.url("/redirect/2")), MAX)
        .await
        .unwrap();
    assert_eq!(chain.body, image_bytes());
    let away = format!("{}?u={}", base_server.url("/to"), elsewhere.url("/img.png"));
    let reason = refusal(fetcher.fetch(&url(&away), MAX).await);
    assert!(reason.contains("allowed_hosts"), "{reason}");
    assert_eq!(elsewhere.requests(), 0);
}

#[tokio::test]
async fn at_most_three_redirects_are_followed() {
    let server = TestServer::start("127.0.0.1").await;
    let fetcher = private_fetcher(FetchLimits::default());
    let three = fetcher
        .fetch(&url(&server.url("/redirect/2")), MAX)
        .await
        .unwrap();
    assert_eq!(three.body, image_bytes());
    let four = fetcher
        .fetch(&url(&server.url("/redirect/3")), MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(four, FetchError::TooManyRedirects { max: 3, .. }),
        "{four}"
    );
    assert!(four.is_permanent());
}

#[tokio::test]
async fn statuses_are_permanent_or_transient_as_they_deserve() {
    let server = TestServer::start("127.0.0.1").await;
    let fetcher = private_fetcher(FetchLimits::default());
    let fetch = |path: &str| {
        let target = url(&server.url(path));
        let fetcher = fetcher.clone();
        async move { fetcher.fetch(&target, MAX).await.unwrap_err() }
    };
    let missing = fetch("/status/404").await;
    assert!(
        matches!(missing, FetchError::NotFound { status: 404, .. }),
        "{missing}"
    );
    assert!(missing.is_permanent());
    let gone = fetch("/status/410").await;
    assert!(gone.is_permanent(), "{gone}");
    let forbidden = fetch("/status/403").await;
    assert!(forbidden.is_permanent(), "{forbidden}");
    for transient in ["/status/500", "/status/503", "/status/429"] {
        let error = fetch(transient).await;
        assert!(!error.is_permanent(), "{transient}: {error}");
    }
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let server = TestServer::start("127.0.0.1").await;
    let fetcher = private_fetcher(FetchLimits::default());
    let error = fetcher
        .fetch(&url(&server.url("/declared-large")), MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, FetchError::TooLarge { what, .. } if what.contains("Content-Length: 104857600")),
        "{error}"
    );
    assert!(error.is_permanent());
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_limit() {
    let server = TestServer::start("127.0.0.1").await;
    let fetcher = private_fetcher(FetchLimits::default());
    let error = fetcher
        .fetch(&url(&server.url("/endless")), 4 * MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, FetchError::TooLarge { limit, what, .. } if *limit == 4 * MAX && what.contains("more than")),
        "{error}"
    );
}

#[tokio::test]
async fn a_trickling_server_is_cut_off_at_the_minimum_rate() {
    let server = TestServer::start("127.0.0.1").await;
    let limits = FetchLimits {
        min_rate: 1024,
        rate_grace: Duration::from_millis(500),
        ..FetchLimits::default()
    };
    let fetcher = private_fetcher(limits);
    let started = Instant::now();
    let error = fetcher
        .fetch(&url(&server.url("/slow")), MAX)
        .await
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("a 10 B/s server against a 1024 B/s minimum: cut off after {took:?}: {error}");
    assert!(
        matches!(error, FetchError::TooSlow { min_rate: 1024, .. }),
        "{error}"
    );
    assert!(!error.is_permanent());
    // 10 bytes a second against a minimum of 1024: cut off right after the grace period, far
    // before the 30 s total timeout.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = TestServer::start("127.0.0.1").await;
    let limits = FetchLimits {
        total_timeout: Duration::from_millis(500),
        ..FetchLimits::default()
    };
    let error = private_fetcher(limits)
        .fetch(&url(&server.url("/hang")), MAX)
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Timeout { .. }), "{error}");
    assert!(!error.is_permanent());
}

#[tokio::test]
async fn a_body_shorter_than_its_length_is_a_transient_error() {
    let (addr, connections) = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: image/png\r\n\r\nonly this",
    )
    .await;
    let error = private_fetcher(FetchLimits::default())
        .fetch(&url(&format!("http://{addr}/img.png")), MAX)
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Network { .. }), "{error}");
    assert!(!error.is_permanent());
    assert!(connections.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn nothing_listening_is_a_transient_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = private_fetcher(FetchLimits::default())
        .fetch(&url(&format!("http://{addr}/img.png")), MAX)
        .await
        .unwrap_err();
    assert!(!error.is_permanent(), "{error}");
}

#[tokio::test]
async fn validators_make_a_conditional_request() {
    let server = TestServer::start("127.0.0.1").await;
    let fetcher = private_fetcher(FetchLimits::default());
    let target = url(&server.url("/img.png"));
    let first = fetcher.fetch(&target, MAX).await.unwrap();
    assert_eq!(first.validators.etag.as_deref(), Some("\"v1\""));
    assert_eq!(first.freshness.max_age, Some(Duration::from_secs(60)));
    let again = fetcher
        .revalidate(&target, MAX, &first.validators)
        .await
        .unwrap();
    let Revalidated::NotModified { freshness, .. } = again else {
        panic!("a 304 has no body, got {again:?}");
    };
    assert_eq!(freshness.max_age, Some(Duration::from_secs(120)));
    let headers = server.headers();
    assert_eq!(headers.len(), 2);
    assert_eq!(
        headers[1].1.get("if-none-match").unwrap().as_bytes(),
        b"\"v1\""
    );
    assert!(headers[0].1.get("if-none-match").is_none());
    // Changed validators fetch the body again.
    let stale = Validators {
        etag: Some("\"v0\"".into()),
        last_modified: None,
    };
    let changed = fetcher.revalidate(&target, MAX, &stale).await.unwrap();
    let Revalidated::Changed(changed) = changed else {
        panic!("changed validators answered {changed:?}");
    };
    assert_eq!(changed.body, image_bytes());
}

#[tokio::test]
async fn ids_are_sent_percent_encoded() {
    let server = TestServer::start("127.0.0.1").await;
    let base = url(&server.url("/base/"));
    let fetcher = private_fetcher(FetchLimits::default());
    let joined = opossum_fetch::join_id(&base, "a b/c?d.png").unwrap();
    let fetched = fetcher.fetch(&joined, MAX).await.unwrap();
    assert_eq!(fetched.body, b"path:base/a b/c?d.png");
    assert_eq!(server.headers()[0].0, "/base/a%20b/c%3Fd.png");
}
