//! Uncached versus cached latency of the HTTP origin, one request at a time over one
//! keep-alive connection, as a CDN or an upstream app talks to an origin. `curl` per request
//! also times a TCP connection setup, which is the client's cost, not the answer's; the
//! script prints both.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Requests `url` (with `{i}` replaced by 1..=count): each variant once uncached, then
/// `repeat` times cached, and prints the p50 of each in milliseconds.
pub(crate) fn run(url: &str, count: usize, repeat: usize) -> anyhow::Result<()> {
    if !url.contains("{i}") {
        bail!("--url needs `{{i}}`, the variant's number");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(120))
            .build()?;
        // Open the connection before timing anything.
        let first = reqwest::Url::parse(&url.replace("{i}", "1"))?;
        get(&client, first.join("/healthz")?.as_str()).await?;
        let mut cold = Vec::with_capacity(count);
        let mut warm = Vec::with_capacity(count * repeat);
        for i in 1..=count {
            let url = url.replace("{i}", &i.to_string());
            cold.push(get(&client, &url).await?);
            for _ in 0..repeat {
                warm.push(get(&client, &url).await?);
            }
        }
        println!(
            "cold_p50_ms={:.4} warm_p50_ms={:.4} cold={} warm={}",
            p50(&mut cold),
            p50(&mut warm),
            cold.len(),
            warm.len()
        );
        Ok(())
    })
}

/// One GET, its body read; the time in milliseconds. Anything but 200 is an error: a failed
/// request must not pass for a fast one.
async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.bytes().await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status != reqwest::StatusCode::OK {
        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(ms)
}

fn p50(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get((values.len().max(1) - 1) / 2)
        .copied()
        .unwrap_or(0.0)
}
