//! One Redis connection type for a single server and for a Redis Cluster.
//!
//! Every module that talks to Redis (the cache tier, leases, analytics, warming claims, the
//! queues, events, pub/sub) takes a [`Connection`] from a [`Redis`] client and never learns
//! which kind of server is behind it:
//!
//! - [`Redis::open`] reads `redis://` / `rediss://` (one server) and `redis+cluster://` /
//!   `rediss+cluster://HOST:PORT[,HOST:PORT...]` (a cluster, seeded from those nodes; the
//!   client follows `MOVED` and `ASK` and refreshes its slot map on its own);
//! - [`Connection`] implements the redis crate's `ConnectionLike`, so commands, pipelines,
//!   scripts and apalis-redis's storages run on it unchanged;
//! - commands that answer for one node only (`INFO`, `CONFIG GET`, `DBSIZE`) go through
//!   [`Connection::on_each_primary`], which runs them on every primary and returns each node's
//!   reply, for the caller to sum or check node by node;
//! - [`Redis::subscribe`] is pub/sub on either kind (RESP3 push messages on a cluster, where a
//!   `PUBLISH` reaches every node);
//! - [`slot`] and [`check_one_slot`] say which slot keys hash to. A cluster refuses a
//!   transaction, a script or a pipeline whose keys span slots; debug builds check every
//!   pipeline and command on a single server too, so the single-node test suite fails where a
//!   cluster would.

use std::pin::Pin;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

mod slots;
mod url;

pub use slots::{SLOTS, check_command, check_one_slot, command_keys, slot};
pub use url::{Target, parse_url, redact, with_credentials};

/// A Redis client: one server or a cluster, from one URL.
#[derive(Clone)]
pub struct Redis {
    kind: Kind,
    url: String,
}

#[derive(Clone)]
enum Kind {
    Single(Box<redis::Client>),
    /// The seed nodes, validated by [`Redis::open`]; each connection builds its own client,
    /// because the overall response timeout is a client setting, not a connection's.
    Cluster {
        seeds: Vec<String>,
    },
}

/// Attempts a cluster command gets, redirects included: a slot move answers `MOVED` or `ASK`
/// a few times before the client's slot map catches up, which is not a failure.
const CLUSTER_ATTEMPTS: u32 = 6;

/// How a connection behaves when the server is slow or away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// longest one attempt of a command may take (`None`: wait for ever, for blocking reads);
    /// on a cluster the whole command, every attempt and wait, is bounded too
    pub response_timeout: Option<Duration>,
    /// longest a connection attempt may take
    pub connection_timeout: Duration,
    /// reconnection attempts per failed command before it fails (one server; a cluster
    /// command always gets [`CLUSTER_ATTEMPTS`], since redirects spend them)
    pub retries: usize,
    /// longest wait between reconnection attempts
    pub max_delay: Duration,
}

impl Default for Settings {
    /// Queue work: a generous response timeout (the redis crate's 500 ms default turns a busy
    /// moment into a fatal stream error) and reconnection with backoff.
    fn default() -> Settings {
        Settings {
            response_timeout: Some(Duration::from_secs(10)),
            connection_timeout: Duration::from_secs(5),
            retries: 6,
            max_delay: Duration::from_secs(2),
        }
    }
}

fn invalid(what: &'static str, detail: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, what, detail))
}

impl Redis {
    /// A client for `url` (see the module documentation). Connects nothing yet.
    pub fn open(url: &str) -> RedisResult<Redis> {
        let kind = match parse_url(url).map_err(|e| invalid("invalid Redis URL", e))? {
            Target::Single(url) => Kind::Single(Box::new(redis::Client::open(url.as_str())?)),
            Target::Cluster(seeds) => {
                ClusterClientBuilder::new(seeds.clone()).build()?;
                Kind::Cluster { seeds }
            }
        };
        Ok(Redis {
            kind,
            url: redact(url),
        })
    }

    /// Whether this is a cluster (for messages; nothing else should need to ask).
    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster { .. })
    }

    /// The URL with any password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A cluster client for `settings`. Each attempt is bounded by the response timeout, and
    /// the whole command, all its attempts and waits together, by the overall one: a client
    /// whose driver stops answering (as tokio 1.54 made the redis crate's do during a slot
    /// refresh; see the workspace `Cargo.toml`) fails its commands instead of hanging them.
    fn cluster_client(seeds: &[String], settings: &Settings) -> RedisResult<ClusterClient> {
        let max_delay = u64::try_from(settings.max_delay.as_millis()).unwrap_or(u64::MAX);
        let overall = settings
            .response_timeout
            .map(|timeout| (timeout + settings.max_delay) * (CLUSTER_ATTEMPTS + 1));
        ClusterClientBuilder::new(seeds.to_vec())
            .retries(CLUSTER_ATTEMPTS)
            .max_retry_wait(max_delay)
            .overall_response_timeout(overall)
            .build()
    }

    /// The per-connection half of a cluster client's settings (the redis crate's
    /// `ClusterConfig` replaces the builder's response timeout, so it is always given).
    fn cluster_config(settings: &Settings) -> ClusterConfig {
        let mut config = ClusterConfig::new().set_connection_timeout(settings.connection_timeout);
        if let Some(timeout) = settings.response_timeout {
            config = config.set_response_timeout(timeout);
        }
        config
    }

    fn manager_config(settings: &Settings) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_response_timeout(settings.response_timeout)
            .set_connection_timeout(Some(settings.connection_timeout))
            .set_number_of_retries(settings.retries)
            .set_max_delay(settings.max_delay)
    }

    /// A shared, reconnecting connection; fails when the server cannot be reached now.
    pub async fn connect(&self, settings: &Settings) -> RedisResult<Connection> {
        Ok(match &self.kind {
            Kind::Single(client) => Connection::Managed(
                ConnectionManager::new_with_config(*client.clone(), Self::manager_config(settings))
                    .await?,
            ),
            Kind::Cluster { seeds } => Connection::Cluster(
                Self::cluster_client(seeds, settings)?
                    .get_async_connection_with_config(Self::cluster_config(settings))
                    .await?,
            ),
        })
    }

    /// A shared, reconnecting connection that connects on first use, so a server that is down
    /// now fails the first commands, not the start-up.
    pub fn connect_lazy(&self, settings: &Settings) -> RedisResult<Connection> {
        Ok(match &self.kind {
            Kind::Single(client) => Connection::Managed(ConnectionManager::new_lazy_with_config(
                *client.clone(),
                Self::manager_config(settings),
            )?),
            Kind::Cluster { seeds } => Connection::Cluster(
                Self::cluster_client(seeds, settings)?
                    .get_pending_async_connection_with_config(Self::cluster_config(settings)),
            ),
        })
    }

    /// A connection of its own, for blocking reads (`XREAD BLOCK`) that would hold up every
    /// other command pipelined on a shared one.
    pub async fn connect_dedicated(&self, response_timeout: Duration) -> RedisResult<Connection> {
        Ok(match &self.kind {
            Kind::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(response_timeout));
                Connection::Direct(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            Kind::Cluster { seeds } => {
                let settings = Settings {
                    response_timeout: Some(response_timeout),
                    ..Settings::default()
                };
                Connection::Cluster(
                    Self::cluster_client(seeds, &settings)?
                        .get_async_connection_with_config(Self::cluster_config(&settings))
                        .await?,
                )
            }
        })
    }

    /// Subscribes to `channel`: a stream of message payloads that ends when the subscription
    /// is lost (the caller resubscribes). On a cluster the subscription is a RESP3 connection
    /// of its own, which the client moves to another node when its node fails.
    pub async fn subscribe(&self, channel: &str) -> RedisResult<Subscription> {
        match &self.kind {
            Kind::Single(client) => {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(channel).await?;
                let messages = pubsub
                    .into_on_message()
                    .map(|message| message.get_payload_bytes().to_vec());
                Ok(Subscription(Box::pin(messages)))
            }
            Kind::Cluster { seeds } => {
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                let client = ClusterClientBuilder::new(seeds.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(sender)
                    .build()?;
                let mut connection = client.get_async_connection().await?;
                connection.subscribe(channel).await?;
                let messages = futures::stream::unfold(
                    (receiver, connection),
                    |(mut receiver, connection)| async move {
                        loop {
                            let push = receiver.recv().await?;
                            if push.kind == redis::PushKind::Message
                                && let Some(Value::BulkString(payload)) = push.data.get(1)
                            {
                                return Some((payload.clone(), (receiver, connection)));
                            }
                        }
                    },
                );
                Ok(Subscription(Box::pin(messages)))
            }
        }
    }
}

/// Messages of one channel; see [`Redis::subscribe`].
pub struct Subscription(Pin<Box<dyn Stream<Item = Vec<u8>> + Send>>);

impl Stream for Subscription {
    type Item = Vec<u8>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Vec<u8>>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// A connection to one server or to a cluster. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub enum Connection {
    /// one server, reconnecting
    Managed(ConnectionManager),
    /// one server, a connection of its own
    Direct(MultiplexedConnection),
    /// a cluster: a connection per node, routed by slot
    Cluster(ClusterConnection),
}

/// One node's reply to a per-node command.
#[derive(Debug, Clone)]
pub struct NodeReply {
    /// `host:port`
    pub node: String,
    /// the reply
    pub value: Value,
}

impl Connection {
    /// The primaries that hold slots, as `host:port` (one entry, `server`, on a single server).
    pub async fn primaries(&mut self) -> RedisResult<Vec<String>> {
        match self {
            Connection::Cluster(connection) => {
                // `CLUSTER SLOTS` names each node as the client knows it (the preferred
                // endpoint: an address, or a hostname where nodes announce one).
                let slots = connection
                    .route_command(
                        redis::cmd("CLUSTER").arg("SLOTS").clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await?;
                Ok(primaries_of(&slots))
            }
            _ => Ok(vec!["server".to_string()]),
        }
    }

    /// Runs `cmd` on every primary and returns each node's reply. On a single server, the one
    /// reply.
    pub async fn on_each_primary(&mut self, cmd: &Cmd) -> RedisResult<Vec<NodeReply>> {
        let nodes = self.primaries().await?;
        let mut replies = Vec::with_capacity(nodes.len());
        for node in nodes {
            let value = self.on_node(&node, cmd).await?;
            replies.push(NodeReply { node, value });
        }
        Ok(replies)
    }
}

impl Connection {
    /// Runs one command per key (`command` adds it to a pipeline) and returns the replies in the
    /// order of `keys`: on a cluster one pipeline per slot, the pipelines concurrently; on one
    /// server a single pipeline. What a
    /// read across many images needs on a cluster, where a pipeline must stay in one slot.
    pub async fn query_by_slot<T: redis::FromRedisValue>(
        &self,
        keys: &[String],
        command: impl Fn(&mut Pipeline, &str),
    ) -> RedisResult<Vec<T>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One server answers every slot: one pipeline, one round trip. It goes to the inner
        // connection, past the slot check, since this is where reads are split for a cluster.
        let single = |pipe: &mut Pipeline| {
            for key in keys {
                command(pipe, key);
            }
        };
        let values: Vec<Value> = match self {
            Connection::Managed(connection) => {
                let mut pipe = redis::pipe();
                single(&mut pipe);
                pipe.query_async(&mut connection.clone()).await?
            }
            Connection::Direct(connection) => {
                let mut pipe = redis::pipe();
                single(&mut pipe);
                pipe.query_async(&mut connection.clone()).await?
            }
            Connection::Cluster(_) => return self.query_each_slot(keys, &command).await,
        };
        values
            .into_iter()
            .map(redis::from_redis_value)
            .map(|v| v.map_err(Into::into))
            .collect()
    }

    /// [`Connection::query_by_slot`] on a cluster: one pipeline per slot, run concurrently.
    async fn query_each_slot<T: redis::FromRedisValue>(
        &self,
        keys: &[String],
        command: &impl Fn(&mut Pipeline, &str),
    ) -> RedisResult<Vec<T>> {
        let mut groups: std::collections::BTreeMap<u16, Vec<usize>> = Default::default();
        for (at, key) in keys.iter().enumerate() {
            groups.entry(slot(key.as_bytes())).or_default().push(at);
        }
        let runs = groups.into_values().map(|indexes| {
            let mut pipe = redis::pipe();
            for &at in &indexes {
                command(&mut pipe, &keys[at]);
            }
            let mut connection = self.clone();
            async move {
                let values: Vec<Value> = pipe.query_async(&mut connection).await?;
                Ok::<_, RedisError>((indexes, values))
            }
        });
        let mut out: Vec<Option<T>> = (0..keys.len()).map(|_| None).collect();
        for (indexes, values) in futures::future::try_join_all(runs).await? {
            for (at, value) in indexes.into_iter().zip(values) {
                out[at] = Some(redis::from_redis_value(value)?);
            }
        }
        out.into_iter()
            .map(|v| v.ok_or_else(|| RedisError::from((ErrorKind::Client, "missing reply"))))
            .collect()
    }

    /// Waits until `replicas` replicas hold every write sent so far to the node that serves
    /// `key` (`WAIT`, at most `timeout`); returns how many did. On a cluster it asks that key's
    /// primary alone, the one node whose writes matter to the caller.
    pub async fn wait_for_replicas(
        &mut self,
        key: &str,
        replicas: usize,
        timeout: Duration,
    ) -> RedisResult<usize> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis() as u64);
        let reply = match self {
            Connection::Cluster(connection) => {
                let route = redis::cluster_routing::Route::new(
                    slot(key.as_bytes()),
                    redis::cluster_routing::SlotAddr::Master,
                );
                connection
                    .route_command(
                        wait,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?
            }
            _ => self.req_packed_command(&wait).await?,
        };
        Ok(redis::from_redis_value(reply)?)
    }

    /// Every key matching `pattern`, by `SCAN` on every primary. For tests, benchmarks and
    /// operators' tools, never for a request path.
    pub async fn scan_match(&mut self, pattern: &str) -> RedisResult<Vec<String>> {
        let nodes = self.primaries().await?;
        let mut keys = Vec::new();
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let reply = self.on_node(&node, &scan).await?;
                let (next, found): (u64, Vec<String>) = redis::from_redis_value(reply)?;
                keys.extend(found);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Runs `cmd` on the node `node` (`host:port` from [`Connection::primaries`]; `server` on a
    /// single server).
    pub async fn on_node(&mut self, node: &str, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Connection::Cluster(connection) => {
                let routing = RoutingInfo::SingleNode(by_address(node)?);
                connection.route_command(cmd.clone(), routing).await
            }
            _ => self.req_packed_command(cmd).await,
        }
    }
}

impl Connection {
    /// Runs an atomic pipeline (`MULTI` ... `EXEC`) whose keys share one slot, through a
    /// migration of that slot. The redis crate follows `ASK` for single commands, not inside a
    /// transaction, which then aborts; the spec's answer is applied here:
    /// - every command was redirected to the same node (none of the keys is left on the
    ///   source): the transaction goes there, after `ASKING`;
    /// - only some were (its keys are split between the nodes for now), or the slot has moved:
    ///   it waits and runs again, after one of its keys is asked about alone (a single command's
    ///   `MOVED` refreshes the client's slot map; a transaction's does not).
    ///
    /// Runs until [`MovePatience`] runs out; then the last error.
    pub async fn transaction(&mut self, pipe: &Pipeline) -> RedisResult<()> {
        let commands = pipe.cmd_iter().count();
        let mut patience = MovePatience::new();
        loop {
            let error = match pipe.query_async::<()>(self).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            let Connection::Cluster(cluster) = self else {
                return Err(error);
            };
            let Some(redirect) = migration_of(&error, commands) else {
                return Err(error);
            };
            let Some(delay) = patience.next_wait() else {
                return Err(error);
            };
            if let Redirect::AllTo(node) = redirect {
                let mut transaction = redis::pipe();
                transaction.cmd("MULTI");
                for command in pipe.cmd_iter() {
                    transaction.add_command(command.clone());
                }
                transaction.cmd("EXEC");
                // The replies to skip: MULTI's and one QUEUED a command; then EXEC's.
                match asking(cluster, &node, transaction, commands + 1).await {
                    Ok(_) => return Ok(()),
                    Err(e) if migration_of(&e, commands).is_some() => {}
                    Err(e) => return Err(e),
                }
            }
            // A `MOVED` inside a transaction does not refresh the client's slot map; one on a
            // single command does. So one key of the transaction is asked about alone, through
            // the redis crate directly: its answer does not matter, and it must not wait out the
            // move as well (`through_a_move`), which would multiply this loop's bound.
            if let Some(key) = pipe
                .cmd_iter()
                .find_map(|command| command_keys(command).ok()?.into_iter().next())
            {
                let _ = cluster
                    .req_packed_command(redis::cmd("EXISTS").arg(key))
                    .await;
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// How long a command waits out a slot move: the waits between its runs, doubling from 5 ms to
/// 400 ms, 12 of them (about 2.7 s in all). A move ends with `CLUSTER SETSLOT ... NODE` sent to
/// each node in turn; until the last has it, nodes disagree on the owner and send a command
/// back and forth (`MOVED` to the destination, which is still importing and sends it back),
/// and the redis crate spends its retries on that without waiting. The same bound serves
/// transactions, whose keys may be split between two nodes for as long as the move takes.
struct MovePatience {
    waits: u32,
    delay: Duration,
}

impl MovePatience {
    const WAITS: u32 = 12;

    fn new() -> MovePatience {
        MovePatience {
            waits: 0,
            delay: Duration::from_millis(5),
        }
    }

    /// The next wait, or `None` when patience has run out.
    fn next_wait(&mut self) -> Option<Duration> {
        if self.waits >= Self::WAITS {
            return None;
        }
        self.waits += 1;
        let delay = self.delay;
        self.delay = (self.delay * 2).min(Duration::from_millis(400));
        Some(delay)
    }
}

/// Whether `error` is a slot move's answer that a later run of the same command may not get:
/// `MOVED` (the nodes disagree on the owner for now) or `TRYAGAIN` (a multi-key command whose
/// keys are split between the two nodes). Neither ran the command.
fn is_moving(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(redis::ServerErrorKind::Moved | redis::ServerErrorKind::TryAgain)
    )
}

/// One command on a cluster through a slot move: the redis crate's own redirects, then an `ASK`
/// that outlived them followed here ([`follow_ask`]), then, for a `MOVED` or `TRYAGAIN` that
/// outlived both, the whole again after a wait ([`MovePatience`]), since the nodes agree on
/// the owner moments later.
async fn through_a_move(cluster: &mut ClusterConnection, cmd: &Cmd) -> RedisResult<Value> {
    let mut patience = MovePatience::new();
    loop {
        let first = cluster.req_packed_command(cmd).await;
        match follow_ask(cluster, cmd, first).await {
            Err(error) if is_moving(&error) => match patience.next_wait() {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(error),
            },
            other => return other,
        }
    }
}

fn is_ask(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(redis::ServerErrorKind::Ask)
}

fn by_address(node: &str) -> RedisResult<SingleNodeRoutingInfo> {
    let (host, port) = node.rsplit_once(':').unwrap_or((node, "6379"));
    Ok(SingleNodeRoutingInfo::ByAddress {
        host: host.to_string(),
        port: port
            .parse()
            .map_err(|_| invalid("invalid node address", node.to_string()))?,
    })
}

/// A single command's answer, with an `ASK` that outlived the redis crate's retries followed
/// as the spec says. The crate sends `ASKING` as a request of its own and the command after it;
/// on a connection that many tasks share, another task's command can come between the two and
/// use up the one-time `ASKING`, and the command is asked again, up to its retries. Here
/// `ASKING` and the command go as one pipeline, which nothing can come between.
async fn follow_ask(
    cluster: &mut ClusterConnection,
    cmd: &Cmd,
    mut result: RedisResult<Value>,
) -> RedisResult<Value> {
    const ASK_RETRIES: u32 = 8;
    for _ in 0..ASK_RETRIES {
        let error = match result {
            Err(error) if is_ask(&error) => error,
            other => return other,
        };
        let Some((node, _slot)) = error.redirect_node() else {
            return Err(error);
        };
        let mut command = redis::pipe();
        command.add_command(cmd.clone());
        result = asking(cluster, node, command, 0)
            .await
            .and_then(|value| value.extract_error());
    }
    result
}

/// The spec's answer to `ASK`: `commands` sent to `node` after `ASKING`, as one pipeline, so
/// that no other task's command on the shared connection comes between and uses up the
/// one-time `ASKING`. Returns the reply after the first `skip` of `commands`' replies.
async fn asking(
    cluster: &mut ClusterConnection,
    node: &str,
    commands: Pipeline,
    skip: usize,
) -> RedisResult<Value> {
    let mut pipe = redis::pipe();
    pipe.cmd("ASKING");
    for command in commands.cmd_iter() {
        pipe.add_command(command.clone());
    }
    let mut replies = cluster
        .route_pipeline(pipe, 1 + skip, 1, by_address(node)?)
        .await?;
    Ok(replies.pop().unwrap_or(Value::Nil))
}

/// What a failed transaction says about a slot migration.
enum Redirect {
    /// every command was sent on to this node: the keys are all there (or new)
    AllTo(String),
    /// some were: the keys are split between the nodes for now, or the slot is moving
    Wait,
}

/// The migration a transaction's error reports, if it reports one: its commands' `ASK`,
/// `MOVED` or `TRYAGAIN` answers (read from the error's kinds and redirect details, not its
/// text).
fn migration_of(error: &RedisError, commands: usize) -> Option<Redirect> {
    use redis::ServerErrorKind;
    let errors = error.clone().into_server_errors()?;
    let mut asked: Vec<&str> = Vec::new();
    for (_, server) in errors.iter() {
        match server.kind()? {
            ServerErrorKind::Ask => asked.push(server.details()?.split_whitespace().nth(1)?),
            ServerErrorKind::Moved | ServerErrorKind::TryAgain | ServerErrorKind::ExecAbort => {}
            _ => return None,
        }
    }
    match asked.first() {
        Some(node) if asked.len() == commands && asked.iter().all(|n| n == node) => {
            Some(Redirect::AllTo((*node).to_string()))
        }
        _ => Some(Redirect::Wait),
    }
}

/// The `host:port` of every primary that serves slots, from a `CLUSTER SLOTS` reply: ranges of
/// `[start, end, [host, port, id, ...], replicas...]`.
fn primaries_of(slots: &Value) -> Vec<String> {
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    let mut out: Vec<String> = match slots {
        Value::Array(ranges) => ranges
            .iter()
            .filter_map(|range| {
                let Value::Array(fields) = range else {
                    return None;
                };
                let Some(Value::Array(primary)) = fields.get(2) else {
                    return None;
                };
                let host = text(primary.first()?)?;
                let Some(Value::Int(port)) = primary.get(1) else {
                    return None;
                };
                Some(format!("{host}:{port}"))
            })
            .collect(),
        _ => Vec::new(),
    };
    out.sort();
    out.dedup();
    out
}

fn checked(check: Result<(), String>) -> Result<(), RedisError> {
    check.map_err(|e| RedisError::from((ErrorKind::Client, "crossed slots", e)))
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if cfg!(debug_assertions)
            && let Err(e) = checked(slots::check_command(cmd, false))
        {
            return async move { Err(e) }.boxed();
        }
        match self {
            Connection::Managed(c) => c.req_packed_command(cmd),
            Connection::Direct(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => {
                let mut cluster = c.clone();
                async move { through_a_move(&mut cluster, cmd).await }.boxed()
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        if cfg!(debug_assertions)
            && let Err(e) = checked(slots::check_pipeline(pipeline, false))
        {
            return async move { Err(e) }.boxed();
        }
        match self {
            Connection::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => {
                let mut cluster = c.clone();
                async move {
                    match cluster.req_packed_commands(pipeline, offset, count).await {
                        // A pipeline (not a transaction: that has an offset) that outlived the
                        // redis crate's redirects. On `ASK` the crate sends the whole pipeline
                        // to the importing node, where the commands whose keys are still on the
                        // source get `MOVED` back; on `MOVED` the nodes disagree on the owner
                        // for a moment. Each command goes on its own instead, to the node that
                        // holds its key, waiting out the move ([`through_a_move`]).
                        Err(error) if offset == 0 && (is_ask(&error) || is_moving(&error)) => {
                            let mut values = Vec::with_capacity(count);
                            for cmd in pipeline.cmd_iter().take(count) {
                                values.push(through_a_move(&mut cluster, cmd).await?);
                            }
                            Ok(values)
                        }
                        other => other,
                    }
                }
                .boxed()
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Managed(c) => c.get_db(),
            Connection::Direct(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_are_read_from_the_slot_ranges() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let range = |start: i64, end: i64, primary: Value, replica: Value| {
            Value::Array(vec![Value::Int(start), Value::Int(end), primary, replica])
        };
        let slots = Value::Array(vec![
            range(0, 5460, node("10.0.0.1", 6379), node("10.0.0.4", 6379)),
            range(5461, 10922, node("redis-2", 7000), node("10.0.0.5", 6379)),
            range(10923, 12000, node("10.0.0.1", 6379), node("10.0.0.4", 6379)),
        ]);
        assert_eq!(
            primaries_of(&slots),
            vec!["10.0.0.1:6379".to_string(), "redis-2:7000".to_string()]
        );
    }
}
