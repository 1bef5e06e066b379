//! Redis URLs: `redis://` and `rediss://` name one server; `redis+cluster://` and
//! `rediss+cluster://` name a cluster by one or more seed nodes, with the credentials and
//! options of the single-server URL applying to every node:
//! `rediss+cluster://user:secret@10.0.0.1:6379,10.0.0.2:6379/?insecure`.

/// What a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// one server: the URL as given
    Single(String),
    /// a cluster: one single-server URL per seed node
    Cluster(Vec<String>),
}

/// A Redis URL in parts: the `url` crate reads one host, so a cluster's list of nodes is
/// split here, and this is the one place that does it (the configuration checks URLs and
/// applies credentials with the same parts the connection reads).
enum Parsed<'a> {
    Single(url::Url),
    Cluster(ClusterParts<'a>),
}

/// `redis+cluster://[userinfo@]host:port[,host:port...][/db][?query]`, in parts.
struct ClusterParts<'a> {
    tls: bool,
    userinfo: Option<&'a str>,
    hosts: &'a str,
    /// `/0?query`, as given
    tail: &'a str,
}

impl<'a> Parsed<'a> {
    fn parse(url: &'a str) -> Result<Parsed<'a>, String> {
        let shown = redact(url);
        let expected = "expected redis://, rediss://, redis+cluster:// or rediss+cluster://";
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("`{shown}` is not a Redis URL ({expected})"));
        };
        let tls = match scheme {
            "redis" | "rediss" | "unix" | "redis+unix" => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| format!("`{shown}` is not a Redis URL ({e})"))?;
                return Ok(Parsed::Single(parsed));
            }
            "redis+cluster" => false,
            "rediss+cluster" => true,
            other => {
                return Err(format!(
                    "`{shown}` is not a Redis URL: unknown scheme {other}:// ({expected})"
                ));
            }
        };
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let parts = ClusterParts {
            tls,
            userinfo,
            hosts,
            tail,
        };
        let db = parts.path().trim_matches('/');
        if !db.is_empty() && db != "0" {
            return Err(format!(
                "`{shown}`: a Redis Cluster has only database 0 (SELECT is refused); remove /{db}, and use a key prefix to keep deployments apart"
            ));
        }
        if parts.nodes().next().is_none() {
            return Err(format!(
                "`{shown}`: name at least one cluster node (redis+cluster://HOST:PORT[,HOST:PORT...])"
            ));
        }
        for (host, node) in parts.nodes().zip(parts.seeds()) {
            let parsed = url::Url::parse(&node)
                .map_err(|e| format!("`{shown}`: cluster node `{host}` is not HOST:PORT ({e})"))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(format!("`{shown}`: cluster node `{host}` has no host"));
            }
        }
        Ok(Parsed::Cluster(parts))
    }
}

impl ClusterParts<'_> {
    fn path(&self) -> &str {
        self.tail.split('?').next().unwrap_or("")
    }

    fn nodes(&self) -> impl Iterator<Item = &str> {
        self.hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
    }

    /// One single-server URL per node, with the cluster URL's credentials and options.
    fn seeds(&self) -> impl Iterator<Item = String> {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let query = self.tail.split_once('?').map(|(_, query)| query);
        self.nodes().map(move |host| {
            let mut node = format!("{scheme}://");
            if let Some(userinfo) = self.userinfo {
                node.push_str(userinfo);
                node.push('@');
            }
            node.push_str(host);
            if let Some(query) = query {
                node.push_str("/?");
                node.push_str(query);
            }
            node
        })
    }
}

/// Reads a Redis URL. Errors say what is wrong in words a user can act on, and never show a
/// password.
pub fn parse_url(url: &str) -> Result<Target, String> {
    Ok(match Parsed::parse(url)? {
        Parsed::Single(_) => Target::Single(url.to_string()),
        Parsed::Cluster(parts) => Target::Cluster(parts.seeds().collect()),
    })
}

/// `url` with TLS (when `tls`), a user name and a password applied, on either kind of URL:
/// the configuration's `tls`, `username` and `password` reach a cluster's every node as they
/// reach one server. Encoded as the `url` crate encodes a single-server URL's userinfo.
pub fn with_credentials(
    url: &str,
    tls: bool,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<String, String> {
    let shown = redact(url);
    let set = |node: &mut url::Url| -> Result<(), String> {
        if let Some(username) = username {
            node.set_username(username)
                .map_err(|()| format!("cannot set a user name on `{shown}`"))?;
        }
        if let Some(password) = password {
            node.set_password(Some(password))
                .map_err(|()| format!("cannot set a password on `{shown}`"))?;
        }
        Ok(())
    };
    match Parsed::parse(url)? {
        Parsed::Single(mut parsed) => {
            if tls && parsed.scheme() == "redis" {
                parsed
                    .set_scheme("rediss")
                    .map_err(|()| format!("cannot use TLS with `{shown}`"))?;
            }
            set(&mut parsed)?;
            Ok(parsed.to_string())
        }
        Parsed::Cluster(parts) => {
            let mut userinfo = parts.userinfo.map(str::to_string);
            if username.is_some() || password.is_some() {
                // The `url` crate encodes userinfo; borrow it on a stand-in host.
                let base = match parts.userinfo {
                    Some(userinfo) => format!("redis://{userinfo}@node"),
                    None => "redis://node".to_string(),
                };
                let mut node = url::Url::parse(&base).map_err(|e| format!("`{shown}`: {e}"))?;
                set(&mut node)?;
                userinfo = node
                    .as_str()
                    .strip_prefix("redis://")
                    .and_then(|rest| rest.rsplit_once("@node"))
                    .map(|(userinfo, _)| userinfo.to_string());
            }
            let scheme = if parts.tls || tls {
                "rediss+cluster"
            } else {
                "redis+cluster"
            };
            let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
            Ok(format!(
                "{scheme}://{userinfo}{}{}",
                parts.hosts, parts.tail
            ))
        }
    }
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    // `redis://user@host` names a user and no password.
    let Some((user, _password)) = userinfo.split_once(':') else {
        return url.to_string();
    };
    format!("{scheme}://{user}:***{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_server_url_passes_through() {
        assert_eq!(
            parse_url("redis://127.0.0.1:6379/2").unwrap(),
            Target::Single("redis://127.0.0.1:6379/2".into())
        );
    }

    #[test]
    fn a_cluster_url_gives_one_seed_per_node_with_the_credentials() {
        assert_eq!(
            parse_url("rediss+cluster://u:p@a:7000,b:7001/0?insecure").unwrap(),
            Target::Cluster(vec![
                "rediss://u:p@a:7000/?insecure".into(),
                "rediss://u:p@b:7001/?insecure".into()
            ])
        );
        assert_eq!(
            parse_url("redis+cluster://127.0.0.1:7000").unwrap(),
            Target::Cluster(vec!["redis://127.0.0.1:7000".into()])
        );
    }

    #[test]
    fn a_cluster_url_with_a_database_is_refused_by_name() {
        let error = parse_url("redis+cluster://:pw@a:7000/3").unwrap_err();
        assert!(error.contains("only database 0"), "{error}");
        assert!(!error.contains("pw"), "password leaked: {error}");
    }

    #[test]
    fn bad_cluster_urls_are_refused() {
        assert!(
            parse_url("redis+cluster://")
                .unwrap_err()
                .contains("at least one")
        );
        assert!(
            parse_url("redis+cluster://a:notaport")
                .unwrap_err()
                .contains("a:notaport")
        );
        assert!(
            parse_url("memcached://a")
                .unwrap_err()
                .contains("unknown scheme")
        );
    }

    #[test]
    fn credentials_reach_one_server_and_every_cluster_node() {
        assert_eq!(
            with_credentials("redis://h:1/2", true, None, Some("p@ss")).unwrap(),
            "rediss://:p%40ss@h:1/2"
        );
        assert_eq!(
            with_credentials(
                "redis+cluster://a:7000,b:7001",
                true,
                Some("u"),
                Some("p@ss")
            )
            .unwrap(),
            "rediss+cluster://u:p%40ss@a:7000,b:7001"
        );
        assert_eq!(
            with_credentials("redis+cluster://u:old@a:7000/0?insecure", false, None, None).unwrap(),
            "redis+cluster://u:old@a:7000/0?insecure"
        );
        let error = with_credentials("redis+cluster://:pw@a:x", false, None, None).unwrap_err();
        assert!(error.contains("`a:x`"), "{error}");
        assert!(!error.contains("pw"), "password leaked: {error}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(
            redact("redis+cluster://:secret@a:1,b:2"),
            "redis+cluster://:***@a:1,b:2"
        );
        assert_eq!(redact("redis://user@h:1"), "redis://user@h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
