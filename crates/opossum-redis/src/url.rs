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

/// Reads a Redis URL. Errors say what is wrong in words a user can act on.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{}: not a URL (expected redis://HOST:PORT)", redact(url)))?;
    let node_scheme = match scheme {
        "redis" | "rediss" | "unix" | "redis+unix" => return Ok(Target::Single(url.to_string())),
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        other => {
            return Err(format!(
                "unknown scheme {other}:// (one of redis://, rediss://, redis+cluster://, rediss+cluster://)"
            ));
        }
    };
    // [userinfo@]host:port[,host:port...][/db][?query]
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let db = path.trim_matches('/');
    if !db.is_empty() && db != "0" {
        return Err(format!(
            "{}: a Redis Cluster has only database 0 (SELECT is refused); remove /{db}, and use a key prefix to keep deployments apart",
            redact(url)
        ));
    }
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| {
            let mut node = format!("{node_scheme}://");
            if let Some(userinfo) = userinfo {
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
        .collect();
    if nodes.is_empty() {
        return Err(format!(
            "{}: name at least one cluster node (redis+cluster://HOST:PORT[,HOST:PORT...])",
            redact(url)
        ));
    }
    for (node, host) in nodes.iter().zip(hosts.split(',').map(str::trim)) {
        let parsed = url::Url::parse(node).map_err(|e| {
            format!(
                "{}: cluster node {host} is not HOST:PORT ({e})",
                redact(url)
            )
        })?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("{}: cluster node {host} has no host", redact(url)));
        }
    }
    Ok(Target::Cluster(nodes))
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
