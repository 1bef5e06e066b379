//! Completion events: the Redis stream `{prefix}:events`, trimmed with `MAXLEN ~`.
//!
//! A worker writes one entry per finished job, after the cache write, so a consumer that sees
//! the event finds the variant cached. Delivery is at-least-once (a worker killed between the
//! write and its acknowledgement runs the job again and writes a second event); every entry
//! carries the job id so consumers drop duplicates. A worker process writes through one
//! [`EventWriter`] (group commit): the events of jobs that finish while a write is in flight
//! go out together in the next pipeline, and each job is acknowledged after the write that
//! carried its event.
//!
//! Blocking reads (`XREAD BLOCK`) get a connection of their own: on the shared multiplexed
//! connection they would hold up every command queued behind them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opossum_analytics::Answer;
use opossum_cache::TierKind;
use opossum_pipeline::{ErrorKind, PipelineError, Provenance, Response};
use opossum_redis::{Connection, Redis};
use serde::{Deserialize, Serialize};

use crate::{FleetError, Job, Priority};

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// the variant is cached
    Ok,
    /// the job failed for good (bad input, or retries exhausted)
    Error,
}

impl Status {
    /// `ok` or `error`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

/// Why a job failed, as its event carries it: what kind of failure (which decides the HTTP
/// status a waiting origin answers) and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// what kind of failure
    pub kind: ErrorKind,
    /// the message, as first reported
    pub message: String,
}

/// One completion event, with the fields DESIGN.md names. Built only by [`Event::finished`]
/// and [`Event::gave_up`], so `status`, `source` and `error` always agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// the job's id (consumers drop duplicates by it)
    pub job_id: String,
    /// the image
    pub image_id: String,
    /// the variant's cache key (empty when the chain itself was invalid)
    pub key: String,
    /// how it ended
    pub status: Status,
    /// where the answer came from: the tier that answered (for an error, the tier that held
    /// the remembered error), computed or coalesced; `None` when nothing answered (an invalid
    /// request, a failed load, retries exhausted)
    pub source: Option<Provenance>,
    /// size of the variant
    pub bytes: u64,
    /// the quality it was encoded at, for formats with one (what `max-bytes` chose)
    pub quality: Option<u8>,
    /// time the worker spent on the job
    pub duration_ms: f64,
    /// why it failed; `None` when `status` is `ok`
    pub error: Option<JobError>,
    /// the chain as submitted (presets by name), so consumers such as related-variant
    /// warming can ask for siblings
    pub ops: String,
    /// `user` or `warm`: which queue the job came from
    pub priority: Priority,
}

impl Event {
    /// The event of `job` finished with `result` (a response, or a permanent failure) after
    /// `duration`; `key` is empty when the request never had one.
    pub fn finished(
        job: &Job,
        key: String,
        result: Result<&Response, &PipelineError>,
        duration: Duration,
    ) -> Event {
        let (status, source, bytes, quality, error) = match result {
            Ok(response) => (
                Status::Ok,
                Some(response.provenance),
                response.entry.body.len() as u64,
                response.entry.quality,
                None,
            ),
            Err(error) => (
                Status::Error,
                error.provenance(),
                0,
                None,
                Some(JobError {
                    kind: error.kind(),
                    message: error.message().to_string(),
                }),
            ),
        };
        Event {
            job_id: job.job_id.clone(),
            image_id: job.image_id.clone(),
            key,
            status,
            source,
            bytes,
            quality,
            duration_ms: duration.as_secs_f64() * 1000.0,
            error,
            ops: job.ops.clone(),
            priority: job.priority,
        }
    }

    /// The final event of `job`, whose transient failures outlasted the retry policy.
    pub fn gave_up(job: &Job, attempts: usize, last: &PipelineError) -> Event {
        let error = PipelineError::new(
            last.kind(),
            format!("gave up after {attempts} attempts: {}", last.message()),
        );
        Event::finished(job, String::new(), Err(&error), Duration::ZERO)
    }

    /// The error's message; empty for a success.
    pub fn error_message(&self) -> &str {
        self.error.as_ref().map_or("", |e| e.message.as_str())
    }

    /// Appends the entry's field-value pairs to `cmd` (an `XADD`): borrowed strings and
    /// numbers formatted in place, no per-field allocation.
    fn write_fields(&self, cmd: &mut redis::Pipeline) {
        cmd.arg("job_id")
            .arg(&self.job_id)
            .arg("image_id")
            .arg(&self.image_id)
            .arg("key")
            .arg(&self.key)
            .arg("status")
            .arg(self.status.name())
            .arg("source")
            .arg(self.source.map_or("", Provenance::name))
            .arg("bytes")
            .arg(self.bytes)
            .arg("quality");
        match self.quality {
            Some(quality) => cmd.arg(u16::from(quality)),
            None => cmd.arg(""),
        };
        // Microsecond precision, as `{:.3}` milliseconds always wrote.
        let mut duration = [0u8; 32];
        let duration = format_millis(self.duration_ms, &mut duration);
        cmd.arg("duration_ms")
            .arg(duration)
            .arg("error")
            .arg(self.error_message())
            .arg("error_kind")
            .arg(self.error.as_ref().map_or("", |e| e.kind.name()))
            .arg("ops")
            .arg(&self.ops)
            .arg("priority")
            .arg(self.priority.name());
    }

    fn from_fields(map: &HashMap<String, redis::Value>) -> Option<Event> {
        let text = |name: &str| -> Option<String> {
            match map.get(name)? {
                redis::Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into()),
                redis::Value::SimpleString(s) => Some(s.clone()),
                _ => None,
            }
        };
        let status = match text("status")?.as_str() {
            "ok" => Status::Ok,
            _ => Status::Error,
        };
        let error = (status == Status::Error).then(|| JobError {
            // An entry without a kind is from an older writer: say nothing more than it did.
            kind: text("error_kind")
                .and_then(|kind| ErrorKind::from_name(&kind))
                .unwrap_or(ErrorKind::Internal),
            message: text("error").unwrap_or_default(),
        });
        Some(Event {
            job_id: text("job_id")?,
            image_id: text("image_id")?,
            key: text("key").unwrap_or_default(),
            status,
            source: text("source").and_then(|name| Provenance::from_name(&name)),
            bytes: text("bytes").and_then(|b| b.parse().ok()).unwrap_or(0),
            quality: text("quality").and_then(|q| q.parse().ok()),
            duration_ms: text("duration_ms")
                .and_then(|d| d.parse().ok())
                .unwrap_or(0.0),
            error,
            ops: text("ops").unwrap_or_default(),
            priority: match text("priority").as_deref() {
                Some("warm") => Priority::Warm,
                _ => Priority::User,
            },
        })
    }
}

/// `millis` with three decimals, written into `buffer` without allocating.
fn format_millis(millis: f64, buffer: &mut [u8; 32]) -> &[u8] {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    // 32 bytes hold any f64 at three decimals up to 1e27 ms; beyond that, the prefix written.
    let _ = write!(cursor, "{millis:.3}");
    let written = cursor.position() as usize;
    &buffer[..written]
}

/// How the analytics count an answer from `provenance`.
pub fn answer_of(provenance: Provenance) -> Answer {
    match provenance {
        Provenance::Tier(TierKind::Memory) => Answer::Memory,
        Provenance::Tier(TierKind::Disk) => Answer::Disk,
        Provenance::Tier(TierKind::Redis) => Answer::Redis,
        Provenance::Computed => Answer::Computed,
        Provenance::Coalesced => Answer::Coalesced,
    }
}

/// Writes and reads the event stream.
#[derive(Clone)]
pub struct Events {
    client: Redis,
    connection: Connection,
    stream: String,
    max_len: usize,
    wait_replicas: usize,
}

/// An entry read from the stream: its id and the event.
pub type StreamEntry = (String, Event);

impl Events {
    /// The stream `{prefix}:events` on `connection`, trimmed to about `max_len` entries.
    pub fn new(client: Redis, connection: Connection, prefix: &str, max_len: usize) -> Events {
        Events {
            client,
            connection,
            stream: format!("{prefix}:events"),
            max_len,
            wait_replicas: 0,
        }
    }

    /// Publishing waits until `replicas` replicas hold each batch
    /// ([`QueueConfig::wait_replicas`](crate::QueueConfig::wait_replicas)).
    pub fn waiting_for(mut self, replicas: usize) -> Events {
        self.wait_replicas = replicas;
        self
    }

    /// The stream's key.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Appends events in one round trip.
    pub async fn publish(&self, events: &[Event]) -> Result<(), FleetError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for event in events {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*");
            event.write_fields(&mut pipe);
            pipe.ignore();
        }
        let mut connection = self.connection.clone();
        pipe.query_async::<()>(&mut connection).await?;
        crate::queue::wait_for_replicas(
            &self.connection,
            &self.stream,
            self.wait_replicas,
            "completion events",
        )
        .await
    }

    /// The id of the newest entry (`0-0` for an empty stream): read it before submitting, then
    /// read after it, and no event of the submitted job can be missed.
    pub async fn last_id(&self) -> Result<String, FleetError> {
        let mut connection = self.connection.clone();
        let reply = self.newest(&mut connection, 1).await?;
        Ok(reply
            .ids
            .first()
            .map_or_else(|| "0-0".to_string(), |entry| entry.id.clone()))
    }

    async fn newest(
        &self,
        connection: &mut Connection,
        count: usize,
    ) -> Result<redis::streams::StreamRangeReply, FleetError> {
        Ok(redis::cmd("XREVRANGE")
            .arg(&self.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(connection)
            .await?)
    }

    /// The latest `count` entries, oldest first.
    pub async fn latest(&self, count: usize) -> Result<Vec<StreamEntry>, FleetError> {
        let mut connection = self.connection.clone();
        let reply = self.newest(&mut connection, count).await?;
        let mut out: Vec<StreamEntry> = reply
            .ids
            .into_iter()
            .filter_map(|entry| Event::from_fields(&entry.map).map(|event| (entry.id, event)))
            .collect();
        out.reverse();
        Ok(out)
    }

    /// A connection for blocking reads.
    pub async fn reader(&self, block: Duration) -> Result<EventReader, FleetError> {
        let connection = self
            .client
            .connect_dedicated(block + Duration::from_secs(5))
            .await?;
        Ok(EventReader {
            connection,
            stream: self.stream.clone(),
            block,
        })
    }
}

/// Events waiting for the writer, with who waits for each.
type Waiting = (
    Event,
    tokio::sync::oneshot::Sender<Result<(), Arc<FleetError>>>,
);

/// Most events one round trip of the writer carries.
const MAX_EVENTS_PER_WRITE: usize = 256;

/// A worker process's one writer of completion events: group commit. Jobs hand their event
/// over and wait until the round trip that carries it has returned; the writer sends
/// everything that queued up during its previous round trip in the next one, so an idle
/// worker writes each event at once and a busy one writes many per `XADD` pipeline instead
/// of one pipeline per job. A job is still acknowledged only after its event is written.
#[derive(Clone)]
pub struct EventWriter {
    sender: tokio::sync::mpsc::Sender<Waiting>,
    writes: Arc<std::sync::atomic::AtomicU64>,
}

impl EventWriter {
    /// Starts the writer task over `events`; it ends when every `EventWriter` clone is dropped.
    pub fn spawn(events: Events) -> EventWriter {
        let (sender, mut receiver) =
            tokio::sync::mpsc::channel::<Waiting>(4 * MAX_EVENTS_PER_WRITE);
        let writes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = writes.clone();
        tokio::spawn(async move {
            let mut received = Vec::with_capacity(MAX_EVENTS_PER_WRITE);
            while receiver
                .recv_many(&mut received, MAX_EVENTS_PER_WRITE)
                .await
                > 0
            {
                let (batch, waiters): (Vec<Event>, Vec<_>) = received.drain(..).unzip();
                let result = events.publish(&batch).await.map_err(Arc::new);
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for waiter in waiters {
                    // A job that stopped waiting (its worker shutting down) needs no answer.
                    let _ = waiter.send(result.clone());
                }
            }
        });
        EventWriter { sender, writes }
    }

    /// Round trips written so far (each carrying one or more events).
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes `event` with whatever else is waiting, and returns once it is in the stream
    /// (or the round trip that carried it failed).
    pub async fn publish(&self, event: Event) -> Result<(), FleetError> {
        let (done, written) = tokio::sync::oneshot::channel();
        let stopped = || FleetError::Queue("the completion-event writer has stopped".into());
        self.sender
            .send((event, done))
            .await
            .map_err(|_| stopped())?;
        written
            .await
            .map_err(|_| stopped())?
            .map_err(FleetError::Events)
    }
}

/// Reads the stream with blocking `XREAD`s on its own connection.
pub struct EventReader {
    connection: Connection,
    stream: String,
    block: Duration,
}

impl EventReader {
    /// Entries after `after`, waiting up to the block time for the first; empty on timeout.
    pub async fn next(
        &mut self,
        after: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>, FleetError> {
        let options = redis::streams::StreamReadOptions::default()
            .count(count)
            .block(self.block.as_millis() as usize);
        let reply: Option<redis::streams::StreamReadReply> = redis::AsyncCommands::xread_options(
            &mut self.connection,
            &[&self.stream],
            &[after],
            &options,
        )
        .await?;
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                if let Some(event) = Event::from_fields(&entry.map) {
                    out.push((entry.id, event));
                }
            }
        }
        Ok(out)
    }

    /// Waits for the first event of any of `job_ids` after `after`, until `timeout`. Returns
    /// the events found (one per job id, duplicates dropped) and the id to continue from.
    pub async fn wait_for(
        &mut self,
        job_ids: &[String],
        mut after: String,
        timeout: Duration,
    ) -> Result<(Vec<Event>, String), FleetError> {
        let deadline = Instant::now() + timeout;
        let mut pending: std::collections::HashSet<&str> =
            job_ids.iter().map(String::as_str).collect();
        let mut found = Vec::new();
        while !pending.is_empty() && Instant::now() < deadline {
            for (id, event) in self.next(&after, 1000).await? {
                after = id;
                if pending.remove(event.job_id.as_str()) {
                    found.push(event);
                }
            }
        }
        Ok((found, after))
    }
}
