//! The CDN in front of the origin, as the cache hierarchy's invalidation sees it.
//!
//! The CDN is the fourth tier of the design, but not a [`opossum_cache::Tier`]: it pulls from
//! the origin on its own misses and keeps what the origin's headers allow, so no process ever
//! reads from it or writes to it; what a process can do is drop an image from it. That is
//! this module: one `PURGE` request with `Surrogate-Key: <image hash>` per endpoint, which
//! `deploy/varnish/default.vcl` turns into a ban of every variant of the image.

use std::time::Duration;

/// Why a purge failed.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// The endpoint could not be reached or did not answer in time.
    #[error("purging {endpoint}: {source}")]
    Unreachable {
        /// the purge endpoint
        endpoint: String,
        /// what failed
        #[source]
        source: reqwest::Error,
    },
    /// The CDN answered with a status other than success.
    #[error("purging {endpoint}: the CDN answered {status}")]
    Refused {
        /// the purge endpoint
        endpoint: String,
        /// its status
        status: u16,
    },
}

/// Purges images from the CDN's purge endpoints (`cdn.purge`).
pub struct CdnPurger {
    client: reqwest::Client,
    endpoints: Vec<String>,
}

impl CdnPurger {
    /// A purger for `endpoints` (empty ones are skipped), each request bounded by 10 s.
    pub fn new(endpoints: &[String]) -> CdnPurger {
        CdnPurger {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            endpoints: endpoints
                .iter()
                .filter(|e| !e.is_empty())
                .cloned()
                .collect(),
        }
    }

    /// Drops every variant of the image whose hash is `surrogate_key` from every endpoint;
    /// each endpoint's status code or error, in order.
    pub async fn purge(&self, surrogate_key: &str) -> Vec<(String, Result<u16, PurgeError>)> {
        let mut out = Vec::with_capacity(self.endpoints.len());
        for endpoint in &self.endpoints {
            out.push((
                endpoint.clone(),
                self.purge_one(endpoint, surrogate_key).await,
            ));
        }
        out
    }

    async fn purge_one(&self, endpoint: &str, surrogate_key: &str) -> Result<u16, PurgeError> {
        let method = reqwest::Method::from_bytes(b"PURGE").unwrap_or(reqwest::Method::DELETE);
        let response = self
            .client
            .request(method, endpoint)
            .header("Surrogate-Key", surrogate_key)
            .send()
            .await
            .map_err(|source| PurgeError::Unreachable {
                endpoint: endpoint.to_string(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(PurgeError::Refused {
                endpoint: endpoint.to_string(),
                status: status.as_u16(),
            })
        }
    }
}
