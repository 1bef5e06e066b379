//! The status page (`/`) and the Prometheus text (`/metrics`), both rendered on the server from
//! the same counters: the hierarchy's per-tier and per-category stats, the origin's own request
//! counters, and (in a fleet) the queue depths. The page has no JavaScript: numbers sit in
//! elements with `data-metric` attributes, and a small inline SVG draws the hit rate over the
//! last ten minutes. It refreshes itself every five seconds.

use std::fmt::Write as _;

use opossum_cache::{ANSWER_CATEGORIES, TierKind};
use opossum_fleet::{Depth, Priority};

use crate::Origin;
use crate::counters::counters;

async fn depths(origin: &Origin) -> Vec<(String, Depth)> {
    let Some(queues) = &origin.fleet_queues else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for priority in Priority::ALL {
        if let Ok(depth) = queues.depth(priority).await {
            out.push((queues.config().display_name(priority), depth));
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The status page.
pub(crate) async fn page(origin: &Origin) -> String {
    let stats = origin.state.pipeline.hierarchy().stats();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
         <title>Opossum origin</title><style>body{font-family:sans-serif;margin:2em}\
         td,th{padding:2px 10px;text-align:right}th:first-child,td:first-child{text-align:left}\
         table{border-collapse:collapse}tr:nth-child(even){background:#f3f3f3}</style></head><body>\
         <h1>Opossum origin</h1>",
    );
    let rate = stats.overall_hit_rate();
    let _ = write!(
        html,
        "<p>hit rate <b data-metric=\"hit-rate\">{}</b> &middot; requests <b data-metric=\"requests\">{}</b> \
         &middot; computations <b data-metric=\"computations\">{}</b> &middot; errors <b data-metric=\"errors\">{}</b> \
         &middot; up {} s</p>",
        rate.map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0)),
        counters().requests.get(),
        counters().computations.get(),
        counters().errors.get(),
        origin.started.elapsed().as_secs()
    );
    html.push_str("<h2>Hit rate by tier and category</h2><table><tr><th>category</th>");
    for tier in TierKind::ALL {
        let _ = write!(html, "<th>{}</th>", tier.name());
    }
    html.push_str("</tr>");
    for category in ANSWER_CATEGORIES.map(|c| c.name()) {
        let _ = write!(html, "<tr><td>{category}</td>");
        for tier in TierKind::ALL.map(TierKind::name) {
            let counters = stats
                .tiers
                .get(tier)
                .and_then(|t| t.categories.get(category));
            let cell = counters
                .and_then(|c| c.hit_rate())
                .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0));
            let _ = write!(
                html,
                "<td data-metric=\"tier-hit-rate\" data-tier=\"{tier}\" data-category=\"{category}\" \
                 data-hits=\"{}\" data-misses=\"{}\">{cell}</td>",
                counters.map_or(0, |c| c.hits),
                counters.map_or(0, |c| c.misses),
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</table><h2>Queues</h2>");
    let depths = depths(origin).await;
    if origin.fleet_queues.is_none() {
        let _ = write!(
            html,
            "<p>embedded mode: misses are computed in this process; warm jobs waiting or running: \
             <span data-metric=\"warm-backlog\">{}</span></p>",
            origin.queue.backlog(Priority::Warm).await.unwrap_or(0)
        );
    } else {
        html.push_str(
            "<table><tr><th>queue</th><th>parked</th><th>due</th><th>retrying</th><th>in flight</th><th>dead</th></tr>",
        );
        for (name, d) in &depths {
            let _ = write!(
                html,
                "<tr><td>{}</td><td data-metric=\"queue-parked\">{}</td><td data-metric=\"queue-due\">{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(name),
                d.parked,
                d.due,
                d.retrying,
                d.in_flight,
                d.dead
            );
        }
        html.push_str("</table>");
    }
    html.push_str("<h2>Hit rate over time</h2>");
    let history: Vec<(u64, f64)> = origin
        .history
        .lock()
        .map(|h| h.iter().copied().collect())
        .unwrap_or_default();
    let points: Vec<String> = history
        .iter()
        .enumerate()
        .map(|(i, (_, r))| format!("{},{:.1}", i * 5, 100.0 - r * 100.0))
        .collect();
    let _ = write!(
        html,
        "<svg id=\"hit-rate-chart\" width=\"600\" height=\"100\" viewBox=\"0 0 600 100\" \
         style=\"border:1px solid #ccc\" data-points=\"{}\"><polyline fill=\"none\" stroke=\"#2a7\" \
         stroke-width=\"2\" points=\"{}\"/></svg>",
        history.len(),
        points.join(" ")
    );
    html.push_str(
        "<h2>Recent requests</h2><table id=\"recent\"><tr><th>image</th><th>chain</th><th>status</th><th>source</th><th>ms</th></tr>",
    );
    let recent: Vec<crate::RecentRequest> = origin
        .recent
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    for r in recent {
        let _ = write!(
            html,
            "<tr data-metric=\"recent\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            escape(&r.image_id),
            escape(&r.chain),
            r.status,
            r.source,
            r.ms
        );
    }
    html.push_str("</table></body></html>\n");
    html
}

/// The Prometheus text exposition: the process registry (the origin's counters, the tiers'
/// CacheAnalytics fields, queue depths, request durations), refreshed from this origin's tiers
/// and queues. Labels are bounded: tiers, categories, sources, queues, routes.
pub(crate) async fn metrics(origin: &Origin) -> String {
    let sources = opossum_fleet::Sources {
        hierarchy: Some(origin.state.pipeline.hierarchy().clone()),
        queues: origin.fleet_queues.clone(),
    };
    opossum_telemetry::render(&sources).await
}
