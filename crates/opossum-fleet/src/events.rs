//! Completion events: the Redis stream `{prefix}:events`, trimmed with `MAXLEN ~`.
//!
//! A worker writes one entry per finished job, after the cache write, so a consumer that sees
//! the event finds the variant cached. Delivery is at-least-once (a worker killed between the
//! write and its acknowledgement runs the job again and writes a second event); every entry
//! carries the job id so consumers drop duplicates.
//!
//! Blocking reads (`XREAD BLOCK`) get a connection of their own: on the shared multiplexed
//! connection they would hold up every command queued behind them.

use std::collections::HashMap;
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

    fn fields(&self) -> [(&'static str, String); 12] {
        [
            ("job_id", self.job_id.clone()),
            ("image_id", self.image_id.clone()),
            ("key", self.key.clone()),
            ("status", self.status.name().to_string()),
            (
                "source",
                self.source.map_or("", Provenance::name).to_string(),
            ),
            ("bytes", self.bytes.to_string()),
            (
                "quality",
                self.quality.map_or_else(String::new, |q| q.to_string()),
            ),
            ("duration_ms", format!("{:.3}", self.duration_ms)),
            ("error", self.error_message().to_string()),
            (
                "error_kind",
                self.error
                    .as_ref()
                    .map_or("", |e| e.kind.name())
                    .to_string(),
            ),
            ("ops", self.ops.clone()),
            ("priority", self.priority.name().to_string()),
        ]
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
            for (name, value) in event.fields() {
                pipe.arg(name).arg(value);
            }
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
