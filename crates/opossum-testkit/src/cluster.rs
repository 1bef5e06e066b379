//! A real Redis Cluster for tests: `primaries` redis-server processes with
//! `--cluster-enabled yes` (and `replicas` replicas of each), each in its own directory, joined
//! by `redis-cli --cluster create`, torn down on drop. A node's cluster bus listens on its port
//! + 10000, so ports are drawn below 55535 with both free.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::TempDir;

/// One node of a [`RedisCluster`].
#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

/// How the end of a slot move reaches the primaries (`CLUSTER SETSLOT ... NODE`, one node at a
/// time, as `redis-cli` and every operator's tool send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// every primary in port order, one right after the other
    InPortOrder,
    /// the source first, then the others after this lag: for that long the nodes disagree on
    /// the owner, and a client is sent back and forth (`MOVED` from the source to the
    /// destination, which is still importing, and `MOVED` back)
    SourceFirst(Duration),
}

/// A running Redis Cluster on loopback.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    primary_count: usize,
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts `primaries` primaries (at least 3, as `redis-cli --cluster create` requires) with
    /// `replicas` replicas each, and waits until every node reports `cluster_state:ok`.
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        assert!(primaries >= 3, "a Redis Cluster needs at least 3 primaries");
        let dir = TempDir::new("redis-cluster");
        let ports = cluster_ports(primaries * (1 + replicas));
        let nodes: Vec<Node> = ports
            .iter()
            .map(|&port| {
                let node_dir = dir.join(&port.to_string());
                std::fs::create_dir_all(&node_dir).expect("create node dir");
                Node {
                    port,
                    dir: node_dir,
                    child: Mutex::new(None),
                }
            })
            .collect();
        for node in &nodes {
            node.spawn();
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let created = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-cli ({e}): install it with `apt-get install redis-tools`")
            });
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = RedisCluster {
            nodes,
            primary_count: primaries,
            _dir: dir,
        };
        cluster.wait_until_ok(Duration::from_secs(30));
        // A replica whose link to its primary never came up cannot be promoted (its data age
        // is unknown): wait for every link, so a test that kills a primary gets a failover.
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &cluster.nodes {
            while cli(node.port, &["INFO", "replication"]).contains("master_link_status:down") {
                assert!(
                    Instant::now() < deadline,
                    "replica on port {} never synced with its primary",
                    node.port
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        cluster
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Every node's port, primaries first as created.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// The ports of the nodes that are primaries now (after a failover, a former replica).
    pub fn primaries(&self) -> Vec<u16> {
        let Some(live) = self.nodes.iter().find(|node| node.is_running()) else {
            return Vec::new();
        };
        let text = cli(live.port, &["CLUSTER", "NODES"]);
        let mut ports: Vec<u16> = text
            .lines()
            .filter(|line| {
                let flags = line.split(' ').nth(2).unwrap_or_default();
                flags.contains("master") && !flags.contains("fail")
            })
            .filter_map(|line| {
                let address = line.split(' ').nth(1)?;
                address.split(['@', ':']).nth(1)?.parse().ok()
            })
            .collect();
        ports.sort_unstable();
        ports
    }

    /// Waits until every replica has acknowledged everything its primary has written
    /// (replication is asynchronous: a write a primary acknowledged can be lost when it dies
    /// before its replica has it, as Redis documents). Panics after `timeout`.
    pub fn wait_for_replication(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            loop {
                let info = cli(node.port, &["INFO", "replication"]);
                let field = |name: &str| -> Option<u64> {
                    info.lines()
                        .find_map(|line| line.strip_prefix(name))
                        .and_then(|v| v.trim().parse().ok())
                };
                let written = field("master_repl_offset:").unwrap_or(0);
                let replicas_behind = info
                    .lines()
                    .filter(|line| line.starts_with("slave") && line.contains("offset="))
                    .any(|line| {
                        line.split(',')
                            .find_map(|part| part.strip_prefix("offset="))
                            .and_then(|v| v.parse::<u64>().ok())
                            .is_none_or(|offset| offset < written)
                    });
                if !info.contains("role:master") || !replicas_behind {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replicas of port {} did not catch up within {timeout:?}",
                    node.port
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The port of the primary that serves `slot` now.
    pub fn owner_of_slot(&self, slot: u16) -> u16 {
        let live = self
            .nodes
            .iter()
            .find(|node| node.is_running())
            .expect("no node running");
        let text = cli(live.port, &["CLUSTER", "NODES"]);
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let serves = fields.iter().skip(8).any(|range| {
                let range = range.split("->-").next().unwrap_or(range);
                match range.split_once('-') {
                    Some((low, high)) => {
                        low.parse::<u16>().is_ok_and(|low| low <= slot)
                            && high.parse::<u16>().is_ok_and(|high| slot <= high)
                    }
                    None => range.parse::<u16>() == Ok(slot),
                }
            });
            if serves
                && let Some(port) = fields
                    .get(1)
                    .and_then(|address| address.split(['@', ':']).nth(1))
                    .and_then(|port| port.parse().ok())
            {
                return port;
            }
        }
        panic!("no primary serves slot {slot}:\n{text}");
    }

    /// Moves `slot` with its keys to the primary on `to`, the way `redis-cli --cluster reshard`
    /// does: the slot is marked importing and migrating, its keys are moved `batch` at a time
    /// with `MIGRATE` (a pause of `pause` between batches, so traffic meets the slot half
    /// moved, when clients get `ASK` redirections), then every primary is told the new owner,
    /// in port order.
    pub fn move_slot(&self, slot: u16, to: u16, batch: usize, pause: Duration) {
        self.move_slot_announced(slot, to, batch, pause, Announce::InPortOrder);
    }

    /// [`RedisCluster::move_slot`], with the new owner told to the primaries as `announce` says.
    pub fn move_slot_announced(
        &self,
        slot: u16,
        to: u16,
        batch: usize,
        pause: Duration,
        announce: Announce,
    ) {
        let from = self.owner_of_slot(slot);
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let id = |port: u16| cli(port, &["CLUSTER", "MYID"]).trim().to_string();
        let (from_id, to_id) = (id(from), id(to));
        let slot_arg = slot.to_string();
        let ok = |port: u16, args: &[&str]| {
            let out = cli(port, args);
            assert!(out.contains("OK"), "{args:?} on {port}: {out}");
        };
        ok(
            to,
            &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &from_id],
        );
        ok(
            from,
            &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &to_id],
        );
        let batch_arg = batch.max(1).to_string();
        loop {
            let listed = cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, &batch_arg]);
            let keys: Vec<&str> = listed.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let to_port = to.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().copied());
            let out = cli(from, &args);
            assert!(
                out.contains("OK") || out.contains("NOKEY"),
                "MIGRATE: {out}"
            );
            std::thread::sleep(pause);
        }
        let mut primaries = self.primaries();
        if let Announce::SourceFirst(lag) = announce {
            ok(from, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id]);
            primaries.retain(|&port| port != from);
            std::thread::sleep(lag);
        }
        for port in primaries {
            ok(port, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id]);
        }
    }

    /// Waits until `victim` (a killed primary) is no longer a primary and a replica serves in
    /// its place, as many primaries as before; panics after `timeout`.
    pub fn wait_for_failover(&self, victim: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let primaries = self.primaries();
            if !primaries.contains(&victim) && primaries.len() >= self.primary_count {
                return;
            }
            assert!(Instant::now() < deadline, "no failover: {primaries:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the node on `port` again, in its own directory: it rejoins the cluster from its
    /// `nodes.conf` (a former primary whose replica took over comes back as a replica).
    pub fn restart(&self, port: u16) {
        if let Some(node) = self.nodes.iter().find(|node| node.port == port)
            && !node.is_running()
        {
            node.spawn();
        }
    }

    /// Kills the node on `port` with SIGKILL, as a crash would.
    pub fn kill(&self, port: u16) {
        if let Some(node) = self.nodes.iter().find(|node| node.port == port) {
            node.kill();
        }
    }

    /// Waits until every running node reports `cluster_state:ok`; panics after `timeout`.
    pub fn wait_until_ok(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self
                .nodes
                .iter()
                .filter(|node| node.is_running())
                .all(|node| cli(node.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster on ports {:?} was not ok within {timeout:?}",
                self.ports()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill();
        }
    }
}

impl Node {
    fn spawn(&self) {
        let cluster = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        *self.child.lock().unwrap() = Some(crate::spawn_redis(self.port, &self.dir, &cluster));
    }

    fn is_running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `redis-cli -p PORT ARGS...`'s output ("" when it cannot connect).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// `count` ports below 55535 whose port and bus port (+10000) are both free right now, never
/// handed out before in this process: clusters started by tests running side by side must not
/// pick the same ports before the first one's nodes have bound them.
fn cluster_ports(count: usize) -> Vec<u16> {
    static CURSOR: Mutex<Option<u16>> = Mutex::new(None);
    let mut cursor = CURSOR.lock().unwrap_or_else(|e| e.into_inner());
    let mut candidate = cursor.unwrap_or_else(|| 20_000 + (std::process::id() % 20_000) as u16);
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        candidate = if candidate >= 45_000 {
            20_000
        } else {
            candidate + 1
        };
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(candidate) && free(candidate + 10_000) && !ports.contains(&candidate) {
            ports.push(candidate);
        }
    }
    *cursor = Some(candidate);
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_serves_every_slot_and_fails_over_to_a_replica() {
        let cluster = RedisCluster::start(3, 1);
        assert_eq!(cluster.ports().len(), 6);
        assert_eq!(cluster.primaries().len(), 3, "{:?}", cluster.primaries());
        let info = cli(cluster.ports()[0], &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        let seed = cluster.ports()[0];
        // `-c` follows MOVED: keys in every shard are reachable from one seed.
        for key in ["a", "b", "c", "d", "e", "f"] {
            let set = cli(seed, &["-c", "SET", key, "1"]);
            assert!(set.contains("OK"), "{key}: {set}");
        }
        assert!(cluster.url().starts_with("redis+cluster://127.0.0.1:"));
        cluster.wait_for_replication(Duration::from_secs(10));

        let victim = cluster.primaries()[0];
        cluster.kill(victim);
        cluster.wait_for_failover(victim, Duration::from_secs(30));
        cluster.wait_until_ok(Duration::from_secs(30));
        for key in ["a", "b", "c", "d", "e", "f"] {
            let get = cli(cluster.primaries()[0], &["-c", "GET", key]);
            assert!(get.contains('1'), "{key} after failover: {get}");
        }
    }

    #[test]
    fn a_slot_moves_with_its_keys() {
        let cluster = RedisCluster::start(3, 0);
        let seed = cluster.ports()[0];
        // `foo` is in slot 12182 (CLUSTER KEYSLOT foo).
        assert!(cli(seed, &["-c", "SET", "{foo}:1", "x"]).contains("OK"));
        assert!(cli(seed, &["-c", "SET", "{foo}:2", "y"]).contains("OK"));
        let from = cluster.owner_of_slot(12182);
        let to = *cluster.primaries().iter().find(|&&p| p != from).unwrap();
        cluster.move_slot(12182, to, 1, Duration::from_millis(10));
        assert_eq!(cluster.owner_of_slot(12182), to);
        assert_eq!(cli(to, &["GET", "{foo}:2"]).trim(), "y");
        assert!(cli(from, &["GET", "{foo}:1"]).contains("MOVED"));
    }
}
