//! What a fetch may reach: the checks on a URL before any I/O and on every address its host
//! resolves to.
//!
//! A URL is user input once image ids may be URLs, and the server that fetches it sits inside
//! a network the user cannot see. So the checks refuse, before anything is sent:
//!
//! - schemes other than `http` and `https`, credentials in the URL, ports not allowed;
//! - hosts not on the allow-list (before any DNS lookup: a refused name is never resolved);
//! - addresses that are not on the public internet: loopback, private (RFC 1918, fc00::/7),
//!   link-local (169.254.0.0/16, where cloud metadata lives, and fe80::/10), shared address
//!   space (100.64.0.0/10), multicast, unspecified ("this network", 0.0.0.0/8, which Linux
//!   connects to the local host), broadcast and reserved, and the same addresses written inside
//!   IPv6 (IPv4-mapped, IPv4-compatible, NAT64, 6to4).
//!
//! Odd spellings of addresses (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`) need no
//! code of their own: the WHATWG URL parser the `url` crate implements reads them as the IPv4
//! address they mean, so the check sees `127.0.0.1`. IPv6 zone ids are not valid in URLs and
//! fail to parse.
//!
//! The address check is applied to the address the connection is made to: for an IP literal
//! here, for a name in [`crate::fetcher`]'s resolver, which resolves once and hands the checked
//! addresses to the connector (no second lookup, so DNS rebinding cannot swap them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

/// One entry of the host allow-list: an exact name (or IP literal) or `*.example.com`, which
/// matches every name below `example.com` but not `example.com` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// this name exactly
    Exact(String),
    /// any name ending in `.suffix`
    Subdomains(String),
}

impl HostPattern {
    /// Reads `pattern`: `images.example.com`, `*.example.com`, `127.0.0.2` or `[::1]`.
    pub fn parse(pattern: &str) -> Result<HostPattern, String> {
        let normal = normalise_name(pattern);
        if let Some(suffix) = normal.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("bad host pattern `{pattern}`"));
            }
            return Ok(HostPattern::Subdomains(suffix.to_string()));
        }
        let bad =
            || format!("bad host pattern `{pattern}`: expected a name, `*.name` or an address");
        if normal.is_empty() || normal.contains('*') || normal.contains('/') {
            return Err(bad());
        }
        // Held as a URL's host is written (`[::ffff:127.0.0.1]` as `[::ffff:7f00:1]`,
        // `0x7f000001` as `127.0.0.1`), so a pattern matches every spelling of its host.
        let bracketed = if normal.contains(':') && !normal.starts_with('[') {
            format!("[{normal}]")
        } else {
            normal
        };
        let parsed = Url::parse(&format!("http://{bracketed}/")).map_err(|_| bad())?;
        match parsed.host_str() {
            Some(host) if parsed.port().is_none() => Ok(HostPattern::Exact(host.to_string())),
            _ => Err(bad()),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => name == host,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
        }
    }
}

/// Lower case without a trailing dot: how names are compared.
fn normalise_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Which hosts a fetcher may ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosts {
    /// any host (the operator's own base URL and where it redirects, still address-checked)
    Any,
    /// only these (empty: none)
    Only(Vec<HostPattern>),
}

/// The rules a fetch follows: hosts, ports and addresses.
#[derive(Debug, Clone)]
pub struct Guard {
    /// which hosts may be asked
    pub hosts: Hosts,
    /// which ports may be connected to
    pub ports: Vec<u16>,
    /// when true, non-public addresses are allowed too
    pub allow_private: bool,
    /// networks allowed even though they are not public (an internal image server's subnet)
    pub allowed_networks: Vec<IpNet>,
    /// a scheme, host and port trusted as configured (the operator's base URL): no host, port
    /// or address check for it
    pub trusted: Option<Origin>,
}

/// A URL's scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `url`, if it has a host.
    pub fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: normalise_name(url.host_str()?),
            port: url.port_or_known_default()?,
        })
    }

    /// The host, as compared.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// Why a URL or an address was refused. Always permanent: asking again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused to fetch `{url}`: {reason}")]
pub struct Refused {
    /// the URL (or host) refused, without credentials
    pub url: String,
    /// why
    pub reason: String,
}

impl Guard {
    /// The secure default: no host, ports 80 and 443, public addresses only.
    pub fn none_allowed() -> Guard {
        Guard {
            hosts: Hosts::Only(Vec::new()),
            ports: vec![80, 443],
            allow_private: false,
            allowed_networks: Vec::new(),
            trusted: None,
        }
    }

    /// Checks `url` before anything is sent: scheme, credentials, host, port, and the address
    /// when the host is one. Names are checked again, address by address, when resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        let refuse = |reason: String| Refused {
            url: shown(url),
            reason,
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(format!(
                "scheme `{}` is not http or https",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("credentials in URLs are not allowed".into()));
        }
        let origin = Origin::of(url).ok_or_else(|| refuse("no host".into()))?;
        if self.trusted.as_ref() == Some(&origin) {
            return Ok(());
        }
        if !self.host_allowed(origin.host()) {
            return Err(refuse(format!(
                "host `{}` is not in sources.allowed_hosts",
                origin.host()
            )));
        }
        if !self.ports.contains(&origin.port) {
            return Err(refuse(format!(
                "port {} is not in sources.allowed_ports",
                origin.port
            )));
        }
        let literal = match url.host() {
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(address) = literal {
            self.check_address(address)
                .map_err(|reason| refuse(reason.to_string()))?;
        }
        Ok(())
    }

    /// Whether `host` (lower case, as a URL holds it) may be asked at all.
    pub fn host_allowed(&self, host: &str) -> bool {
        match &self.hosts {
            Hosts::Any => true,
            Hosts::Only(patterns) => {
                let host = normalise_name(host);
                patterns.iter().any(|pattern| pattern.matches(&host))
            }
        }
    }

    /// Whether `name` is the trusted origin's host (its addresses are not checked).
    pub(crate) fn trusts_host(&self, name: &str) -> bool {
        self.trusted
            .as_ref()
            .is_some_and(|origin| origin.host == normalise_name(name))
    }

    /// Checks one address a connection would go to.
    pub fn check_address(&self, address: IpAddr) -> Result<(), &'static str> {
        match non_public(address) {
            None => Ok(()),
            Some(_) if self.allow_private => Ok(()),
            Some(_)
                if self
                    .allowed_networks
                    .iter()
                    .any(|net| net.contains(&address)) =>
            {
                Ok(())
            }
            Some(what) => Err(what),
        }
    }
}

/// The URL as shown in errors and logs: without credentials, at most 200 characters.
pub(crate) fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.as_str().chars().take(200).collect()
}

/// Why `address` is not on the public internet, if it is not.
pub fn non_public(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = v4.octets();
    Some(match () {
        _ if a == 0 => "an unspecified address (0.0.0.0/8 reaches this host)",
        _ if v4.is_loopback() => "a loopback address",
        _ if v4.is_private() => "a private address",
        _ if v4.is_link_local() => "a link-local address (cloud metadata lives here)",
        _ if a == 100 && (64..128).contains(&b) => "a shared address (100.64.0.0/10)",
        _ if a == 192 && b == 0 && c == 0 => "an IETF protocol address (192.0.0.0/24)",
        _ if a == 198 && (b == 18 || b == 19) => "a benchmarking address (198.18.0.0/15)",
        _ if v4.is_multicast() => "a multicast address",
        _ if v4.is_broadcast() || a >= 240 => "a reserved or broadcast address",
        _ => return None,
    })
}

fn non_public_v6(v6: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(v6) {
        return non_public_v4(v4).map(|_| "an IPv4 address written as IPv6 that is not public");
    }
    let first = v6.segments()[0];
    Some(match () {
        _ if v6.is_unspecified() => "an unspecified address",
        _ if v6.is_loopback() => "a loopback address",
        _ if (first & 0xfe00) == 0xfc00 => "a private address (fc00::/7)",
        _ if (first & 0xffc0) == 0xfe80 => "a link-local address (fe80::/10)",
        _ if (first & 0xffc0) == 0xfec0 => "a site-local address (fec0::/10)",
        _ if v6.is_multicast() => "a multicast address",
        _ => return None,
    })
}

/// The IPv4 address inside an IPv6 one that carries it: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return Some(low);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Guard {
        Guard {
            hosts: Hosts::Any,
            ..Guard::none_allowed()
        }
    }

    fn refused(guard: &Guard, url: &str) -> String {
        let url = Url::parse(url).unwrap();
        guard.check_url(&url).unwrap_err().reason
    }

    #[test]
    fn odd_spellings_of_loopback_are_loopback() {
        let guard = open();
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::127.0.0.1]/",
            "http://[2002:7f00:1::]/",
        ] {
            let reason = refused(&guard, url);
            assert!(
                reason.contains("loopback") || reason.contains("IPv4 address written as IPv6"),
                "{url}: {reason}"
            );
        }
    }

    #[test]
    fn every_non_public_range_is_refused() {
        let guard = open();
        for (url, expected) in [
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://10.1.2.3/", "private"),
            ("http://172.16.0.1/", "private"),
            ("http://192.168.1.1/", "private"),
            ("http://100.64.0.1/", "shared"),
            ("http://0.0.0.0/", "unspecified"),
            ("http://0/", "unspecified"),
            ("http://224.0.0.1/", "multicast"),
            ("http://255.255.255.255/", "broadcast"),
            ("http://[fe80::1]/", "link-local"),
            ("http://[fd00::1]/", "private"),
            ("http://[::]/", "unspecified"),
            ("http://[ff02::1]/", "multicast"),
            ("http://[::ffff:169.254.169.254]/", "IPv4"),
            ("http://[::ffff:10.0.0.1]/", "IPv4"),
        ] {
            let reason = refused(&guard, url);
            assert!(reason.contains(expected), "{url}: {reason}");
        }
        for public in [
            "http://93.184.216.34/",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/",
            "http://8.8.8.8/",
        ] {
            assert_eq!(guard.check_url(&Url::parse(public).unwrap()), Ok(()));
        }
    }

    #[test]
    fn zone_ids_do_not_parse() {
        assert!(Url::parse("http://[fe80::1%25eth0]/").is_err());
        assert!(Url::parse("http://[fe80::1%eth0]/").is_err());
    }

    #[test]
    fn schemes_credentials_and_ports() {
        let guard = open();
        assert!(refused(&guard, "ftp://example.com/a").contains("scheme"));
        assert!(refused(&guard, "file:///etc/passwd").contains("scheme"));
        assert!(refused(&guard, "http://user:pw@example.com/").contains("credentials"));
        assert!(refused(&guard, "http://user@example.com/").contains("credentials"));
        assert!(refused(&guard, "http://example.com:6379/").contains("port 6379"));
        assert_eq!(
            guard.check_url(&Url::parse("https://example.com/a.jpg").unwrap()),
            Ok(())
        );
        // Credentials never reach an error message.
        let error = guard
            .check_url(&Url::parse("http://user:secret@example.com/").unwrap())
            .unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn host_patterns() {
        let guard = Guard {
            hosts: Hosts::Only(vec![
                HostPattern::parse("images.example.com").unwrap(),
                HostPattern::parse("*.cdn.example.net").unwrap(),
            ]),
            ..Guard::none_allowed()
        };
        assert!(guard.host_allowed("images.example.com"));
        assert!(guard.host_allowed("IMAGES.example.com."));
        assert!(guard.host_allowed("a.cdn.example.net"));
        assert!(guard.host_allowed("a.b.cdn.example.net"));
        assert!(!guard.host_allowed("cdn.example.net"));
        assert!(!guard.host_allowed("evilcdn.example.net"));
        assert!(!guard.host_allowed("images.example.com.evil.org"));
        assert!(!guard.host_allowed("example.com"));
        assert!(refused(&guard, "http://other.org/").contains("allowed_hosts"));
        assert!(!Guard::none_allowed().host_allowed("images.example.com"));
        assert!(HostPattern::parse("*.").is_err());
        assert!(HostPattern::parse("a.*.com").is_err());
        assert!(HostPattern::parse("").is_err());
        assert!(HostPattern::parse("images.example.com:8080").is_err());
        // Addresses are held as a URL writes them, so every spelling of one matches.
        for (pattern, held) in [
            ("[::ffff:127.0.0.1]", "[::ffff:7f00:1]"),
            ("::1", "[::1]"),
            ("[::1]", "[::1]"),
            ("0x7f000001", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
        ] {
            assert_eq!(
                HostPattern::parse(pattern),
                Ok(HostPattern::Exact(held.into())),
                "{pattern}"
            );
        }
    }

    #[test]
    fn allowed_networks_and_allow_private() {
        let mut guard = open();
        guard.allowed_networks = vec!["127.0.0.2/32".parse().unwrap()];
        assert_eq!(guard.check_address("127.0.0.2".parse().unwrap()), Ok(()));
        assert!(guard.check_address("127.0.0.1".parse().unwrap()).is_err());
        guard.allow_private = true;
        assert_eq!(guard.check_address("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(
            guard.check_address("169.254.169.254".parse().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn the_trusted_origin_skips_host_port_and_address_checks() {
        let base = Url::parse("http://127.0.0.1:8080/base/").unwrap();
        let guard = Guard {
            trusted: Origin::of(&base),
            ..Guard::none_allowed()
        };
        assert_eq!(
            guard.check_url(&Url::parse("http://127.0.0.1:8080/base/a.jpg").unwrap()),
            Ok(())
        );
        assert!(guard.trusts_host("127.0.0.1"));
        // The same host on another port, or another scheme, is not the trusted origin.
        assert!(
            guard
                .check_url(&Url::parse("http://127.0.0.1:8081/a.jpg").unwrap())
                .is_err()
        );
        assert!(
            guard
                .check_url(&Url::parse("https://127.0.0.1:8080/a.jpg").unwrap())
                .is_err()
        );
    }
}
