//! Fetching originals over HTTP(S) without letting a URL turn the fetcher against the network
//! it runs in.
//!
//! Two callers use it: the operator's `originals: https://…/base/` store, whose base is
//! trusted as configured, and image ids that are themselves URLs (`sources.url_ids`), which are
//! user input and pass every check. The checks are [`Guard`]'s (`guard.rs`: schemes,
//! credentials, the host allow-list, ports, non-public addresses); the limits are
//! [`FetchLimits`]' (`fetcher.rs`: timeouts, the minimum transfer rate, the byte limit read in
//! a stream, redirects). No I/O happens before the guard has passed a URL, and no connection
//! goes to an address it has not passed.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod fetcher;
mod guard;

pub use fetcher::{
    FetchError, FetchLimits, Fetched, Fetcher, Freshness, Revalidated, Validators, join_id,
};
pub use guard::{Guard, HostPattern, Hosts, Origin, Refused, non_public};
pub use ipnet::IpNet;
pub use url::Url;
