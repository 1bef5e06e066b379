//! The fetcher: one HTTP client whose every connection, redirect and body read is checked.
//!
//! Built on reqwest (hyper underneath, rustls for `https`), with three of its hooks taken:
//!
//! - the DNS resolver: [`GuardedResolver`] resolves a name once, checks every address and
//!   hands exactly those to the connector, so the address checked is the address connected
//!   to. IP literals never reach a resolver; [`Guard::check_url`] checks them first.
//! - the redirect policy: each target is checked like the first URL, at most
//!   [`FetchLimits::max_redirects`] are followed.
//! - proxies are off: an `HTTP_PROXY` in the environment would otherwise send requests
//!   around the resolver's check.
//!
//! The body is read chunk by chunk and given up as soon as it passes the byte limit (a
//! declared `Content-Length` over the limit is refused before the first chunk), or as soon as
//! it falls behind the minimum transfer rate: after a grace period, `bytes / elapsed` must stay
//! at or above [`FetchLimits::min_rate`], so a server trickling a byte a second is cut off in
//! seconds, not at the total timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, redirect};
use url::Url;

use crate::guard::{Guard, Refused, shown};

/// The limits every fetch runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// longest wait for a TCP (and TLS) connection
    pub connect_timeout: Duration,
    /// longest a whole fetch may take, redirects and body included
    pub total_timeout: Duration,
    /// slowest body accepted after `rate_grace`, in bytes per second (0: no minimum)
    pub min_rate: u64,
    /// how long a body may take before the minimum rate applies
    pub rate_grace: Duration,
    /// redirects followed at most
    pub max_redirects: usize,
}

impl Default for FetchLimits {
    fn default() -> FetchLimits {
        FetchLimits {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(30),
            min_rate: 32 * 1024,
            rate_grace: Duration::from_secs(2),
            max_redirects: 3,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL, a redirect or an address was refused by the guard. Permanent.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The server answered 404 or 410. Permanent.
    #[error("`{url}` answered {status}: no such image")]
    NotFound {
        /// what was asked
        url: String,
        /// the status
        status: u16,
    },
    /// Another status that is not a success: permanent for 4xx (but 408 and 429), transient
    /// for 5xx.
    #[error("`{url}` answered {status}")]
    Status {
        /// what was asked
        url: String,
        /// the status
        status: u16,
    },
    /// The body is larger than the limit. Permanent.
    #[error("`{url}` is larger than the limit of {limit} bytes ({what})")]
    TooLarge {
        /// what was asked
        url: String,
        /// the limit
        limit: u64,
        /// how it was found out (declared `Content-Length` or bytes read)
        what: String,
    },
    /// More redirects than allowed. Permanent.
    #[error("`{url}` redirected more than {max} times")]
    TooManyRedirects {
        /// what was asked first
        url: String,
        /// the most allowed
        max: usize,
    },
    /// The connection, the answer or the whole fetch took too long. Transient.
    #[error("`{url}`: {what} timed out")]
    Timeout {
        /// what was asked
        url: String,
        /// which phase
        what: &'static str,
    },
    /// The body arrived slower than the minimum rate. Transient.
    #[error(
        "`{url}` sent {bytes} bytes in {elapsed_ms} ms, slower than the minimum of {min_rate} bytes/s"
    )]
    TooSlow {
        /// what was asked
        url: String,
        /// bytes received when cut off
        bytes: u64,
        /// time spent on the body
        elapsed_ms: u64,
        /// the minimum
        min_rate: u64,
    },
    /// No connection, a reset, a truncated body, a failed lookup. Transient.
    #[error("`{url}`: {message}")]
    Network {
        /// what was asked
        url: String,
        /// what failed
        message: String,
    },
    /// The client could not be built (TLS roots). A configuration error.
    #[error("HTTP client: {0}")]
    Client(String),
}

impl FetchError {
    /// True when asking again cannot help: refusals, missing images, client errors, limits.
    pub fn is_permanent(&self) -> bool {
        match self {
            FetchError::Refused(_)
            | FetchError::NotFound { .. }
            | FetchError::TooLarge { .. }
            | FetchError::TooManyRedirects { .. }
            | FetchError::Client(_) => true,
            FetchError::Status { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            FetchError::Timeout { .. }
            | FetchError::TooSlow { .. }
            | FetchError::Network { .. } => false,
        }
    }
}

/// What makes a stored copy revalidatable: the origin's `ETag` and `Last-Modified`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    /// the `ETag`, as sent
    pub etag: Option<String>,
    /// the `Last-Modified`, as sent
    pub last_modified: Option<String>,
}

impl Validators {
    fn of(headers: &HeaderMap) -> Validators {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        Validators {
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED),
        }
    }

    /// True when there is something to revalidate with.
    pub fn any(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// How long the origin says its answer may be kept, from `Cache-Control`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    /// `s-maxage`, else `max-age` (`no-cache` counts as 0: keep, but revalidate each time)
    pub max_age: Option<Duration>,
    /// `no-store`: do not keep it at all
    pub no_store: bool,
}

impl Freshness {
    /// Reads the `Cache-Control` headers of an answer.
    pub fn of(headers: &HeaderMap) -> Freshness {
        let mut freshness = Freshness::default();
        let mut shared = None;
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let directive = directive.trim().to_ascii_lowercase();
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => {
                        (name.trim(), Some(argument.trim().trim_matches('"')))
                    }
                    None => (directive.as_str(), None),
                };
                let seconds = argument
                    .and_then(|a| a.parse::<u64>().ok())
                    .map(Duration::from_secs);
                match name {
                    "no-store" => freshness.no_store = true,
                    "no-cache" => freshness.max_age = Some(Duration::ZERO),
                    "max-age" if freshness.max_age.is_none() => freshness.max_age = seconds,
                    "s-maxage" => shared = seconds,
                    _ => {}
                }
            }
        }
        if shared.is_some() && freshness.max_age != Some(Duration::ZERO) {
            freshness.max_age = shared;
        }
        freshness
    }
}

/// A body fetched, with what its answer said about caching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// the whole body, at most the limit asked for
    pub body: Vec<u8>,
    /// the answer's `ETag` and `Last-Modified`
    pub validators: Validators,
    /// the answer's `Cache-Control`
    pub freshness: Freshness,
}

/// What a conditional request ([`Fetcher::revalidate`]) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revalidated {
    /// the resource changed (or the server ignored the condition): a new body
    Changed(Fetched),
    /// 304: the caller's copy still holds. A 304 may send new validators; when it sends none,
    /// the caller keeps its own.
    NotModified {
        /// the 304's `ETag` and `Last-Modified`, if it sent any
        validators: Validators,
        /// the 304's `Cache-Control`
        freshness: Freshness,
    },
}

/// The resolver that checks what it resolves: every address of a name must pass the guard,
/// and the connector gets exactly the addresses checked.
struct GuardedResolver {
    guard: Arc<Guard>,
    lookups: Arc<AtomicU64>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let lookups = self.lookups.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let refuse = |reason: String| -> Box<dyn std::error::Error + Send + Sync> {
                Box::new(Refused {
                    url: host.clone(),
                    reason,
                })
            };
            let trusted = guard.trusts_host(&host);
            if !trusted && !guard.host_allowed(&host) {
                return Err(refuse(format!(
                    "host `{host}` is not in sources.allowed_hosts"
                )));
            }
            lookups.fetch_add(1, Ordering::Relaxed);
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses.is_empty() {
                return Err(format!("`{host}` resolves to no address").into());
            }
            if !trusted {
                for address in &addresses {
                    if let Err(what) = guard.check_address(address.ip()) {
                        return Err(refuse(format!(
                            "`{host}` resolves to {}, {what}",
                            address.ip()
                        )));
                    }
                }
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Raised by the redirect policy when there were too many.
#[derive(Debug, thiserror::Error)]
#[error("too many redirects")]
struct RedirectLimit;

/// A guarded HTTP client. Cheap to clone; connections are pooled.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    guard: Arc<Guard>,
    limits: FetchLimits,
    lookups: Arc<AtomicU64>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("guard", &self.guard)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Fetcher {
    /// A fetcher following `guard` under `limits`.
    pub fn new(guard: Guard, limits: FetchLimits) -> Result<Fetcher, FetchError> {
        let guard = Arc::new(guard);
        let lookups = Arc::new(AtomicU64::new(0));
        let policy_guard = guard.clone();
        let max_redirects = limits.max_redirects;
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error(RedirectLimit);
            }
            match policy_guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(policy)
            .dns_resolver(Arc::new(GuardedResolver {
                guard: guard.clone(),
                lookups: lookups.clone(),
            }))
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.total_timeout)
            .user_agent(concat!("opossum/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Fetcher {
            client,
            guard,
            limits,
            lookups,
        })
    }

    /// The rules this fetcher follows.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Names resolved so far (a refused name is never resolved; tests count on it).
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Fetches `url`, at most `max_bytes` of body.
    pub async fn fetch(&self, url: &Url, max_bytes: u64) -> Result<Fetched, FetchError> {
        match self.request(url, max_bytes, None).await? {
            Revalidated::Changed(fetched) => Ok(fetched),
            // `request` answers NotModified only to a conditional request; a 304 to this one
            // is an error status like any other.
            Revalidated::NotModified { .. } => Err(FetchError::Status {
                url: shown(url),
                status: 304,
            }),
        }
    }

    /// Fetches `url` unless it still matches the `known` validators (`If-None-Match`,
    /// `If-Modified-Since`), at most `max_bytes` of body.
    pub async fn revalidate(
        &self,
        url: &Url,
        max_bytes: u64,
        known: &Validators,
    ) -> Result<Revalidated, FetchError> {
        self.request(url, max_bytes, Some(known)).await
    }

    /// The one GET behind [`Fetcher::fetch`] and [`Fetcher::revalidate`]: conditional when
    /// `known` is given, and only then is a 304 [`Revalidated::NotModified`].
    async fn request(
        &self,
        url: &Url,
        max_bytes: u64,
        known: Option<&Validators>,
    ) -> Result<Revalidated, FetchError> {
        self.guard.check_url(url)?;
        let shown_url = shown(url);
        let mut request = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, "image/*, */*;q=0.5");
        if let Some(known) = known {
            if let Some(etag) = &known.etag {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(date) = &known.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, date);
            }
        }
        let started = Instant::now();
        let mut response = request
            .send()
            .await
            .map_err(|e| self.classify(&shown_url, e, "the request"))?;
        let status = response.status();
        let validators = Validators::of(response.headers());
        let freshness = Freshness::of(response.headers());
        if status == StatusCode::NOT_MODIFIED && known.is_some() {
            return Ok(Revalidated::NotModified {
                validators,
                freshness,
            });
        }
        if !status.is_success() {
            let status = status.as_u16();
            return Err(if status == 404 || status == 410 {
                FetchError::NotFound {
                    url: shown_url,
                    status,
                }
            } else {
                FetchError::Status {
                    url: shown_url,
                    status,
                }
            });
        }
        if let Some(declared) = response.content_length()
            && declared > max_bytes
        {
            return Err(FetchError::TooLarge {
                url: shown_url,
                limit: max_bytes,
                what: format!("Content-Length: {declared}"),
            });
        }
        let capacity = response.content_length().unwrap_or(0).min(max_bytes) as usize;
        let mut body = Vec::with_capacity(capacity);
        let body_started = tokio::time::Instant::now();
        loop {
            let deadline = if self.limits.min_rate == 0 {
                body_started + self.limits.total_timeout
            } else {
                body_started
                    + self.limits.rate_grace
                    + Duration::from_secs_f64(body.len() as f64 / self.limits.min_rate as f64)
            };
            let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
                Err(_) => {
                    return Err(FetchError::TooSlow {
                        url: shown_url,
                        bytes: body.len() as u64,
                        elapsed_ms: body_started.elapsed().as_millis() as u64,
                        min_rate: self.limits.min_rate,
                    });
                }
                Ok(Err(e)) => return Err(self.classify(&shown_url, e, "the body")),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(FetchError::TooLarge {
                    url: shown_url,
                    limit: max_bytes,
                    what: format!("more than {max_bytes} bytes sent"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(
            url = %shown_url,
            bytes = body.len(),
            ms = started.elapsed().as_millis() as u64,
            "fetched"
        );
        Ok(Revalidated::Changed(Fetched {
            body,
            validators,
            freshness,
        }))
    }

    /// Turns reqwest's error into ours, finding the guard's refusal or the redirect limit in
    /// its chain of causes.
    fn classify(&self, url: &str, error: reqwest::Error, phase: &'static str) -> FetchError {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(current) = cause {
            if let Some(refused) = current.downcast_ref::<Refused>() {
                let mut refused = refused.clone();
                // The resolver knows only the name (its reason says which); the error names
                // the URL asked for. A redirect hop's refusal keeps the hop's URL.
                if !refused.url.contains("://") {
                    refused.url = url.to_string();
                }
                return FetchError::Refused(refused);
            }
            if current.downcast_ref::<RedirectLimit>().is_some() {
                return FetchError::TooManyRedirects {
                    url: url.to_string(),
                    max: self.limits.max_redirects,
                };
            }
            cause = current.source();
        }
        if error.is_timeout() {
            let what = if error.is_connect() {
                "connecting"
            } else {
                phase
            };
            return FetchError::Timeout {
                url: url.to_string(),
                what,
            };
        }
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            source = inner.source();
        }
        FetchError::Network {
            url: url.to_string(),
            message,
        }
    }
}

/// `base` with `id`'s segments appended, each percent-encoded (an id is an object name:
/// segments separated by `/`, already checked to hold no empty, `.` or `..` segment).
pub fn join_id(base: &Url, id: &str) -> Result<Url, String> {
    let mut url = base.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| format!("`{base}` cannot take a path"))?;
        segments.pop_if_empty();
        for segment in id.split('/') {
            segments.push(segment);
        }
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_join_the_base_percent_encoded() {
        let base = Url::parse("https://images.example.com/base/").unwrap();
        let join = |id| join_id(&base, id).unwrap().to_string();
        assert_eq!(join("a/b.jpg"), "https://images.example.com/base/a/b.jpg");
        assert_eq!(
            join("a b/c?d#e.jpg"),
            "https://images.example.com/base/a%20b/c%3Fd%23e.jpg"
        );
        assert_eq!(
            join("%2e%2e/x"),
            "https://images.example.com/base/%252e%252e/x"
        );
        let bare = Url::parse("http://h:8080").unwrap();
        assert_eq!(
            join_id(&bare, "x.png").unwrap().as_str(),
            "http://h:8080/x.png"
        );
        let no_slash = Url::parse("http://h/base").unwrap();
        assert_eq!(
            join_id(&no_slash, "x.png").unwrap().as_str(),
            "http://h/base/x.png"
        );
    }

    #[test]
    fn cache_control() {
        let read = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::CACHE_CONTROL, value.parse().unwrap());
            }
            Freshness::of(&headers)
        };
        assert_eq!(read(&[]), Freshness::default());
        assert_eq!(
            read(&["public, max-age=600"]).max_age,
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            read(&["max-age=600, s-maxage=60"]).max_age,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            read(&["max-age=600", "no-cache"]).max_age,
            Some(Duration::ZERO)
        );
        assert!(read(&["No-Store"]).no_store);
        assert_eq!(
            read(&["max-age=\"30\""]).max_age,
            Some(Duration::from_secs(30))
        );
        assert_eq!(read(&["max-age=soon"]).max_age, None);
    }

    #[test]
    fn which_failures_are_permanent() {
        let status = |status| FetchError::Status {
            url: "u".into(),
            status,
        };
        assert!(status(403).is_permanent());
        assert!(!status(429).is_permanent());
        assert!(!status(408).is_permanent());
        assert!(!status(500).is_permanent());
        assert!(!status(503).is_permanent());
        assert!(
            FetchError::NotFound {
                url: "u".into(),
                status: 404
            }
            .is_permanent()
        );
    }
}
