//! The one seam between embedded mode and the fleet: [`JobQueue`], implemented by the Redis
//! fleet ([`Fleet`]) and the in-process queue ([`Embedded`]).
//!
//! Everything above the fleet (the HTTP origin, the scheduler, `opossum submit`) submits jobs,
//! reads backlogs, follows completion events and takes warming claims through this trait, so
//! "embedded or fleet" is decided once, where a process is wired, and matched nowhere else.
//! [`Completions`] (many waiters on one follower) and [`submit_and_wait`] are built on it.
//! One conformance suite (`tests/seam.rs`) runs against both implementations.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::events::{Event, EventReader, Events};
use crate::{Embedded, Fleet, FleetError, Job, Priority};

/// Events one [`EventFollower::next`] returns at most.
pub const EVENTS_PER_READ: usize = 1000;

/// Where jobs go and how their completions come back.
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues `jobs`, each on its priority's queue.
    async fn submit(&self, jobs: Vec<Job>) -> Result<(), FleetError>;
    /// Jobs of `priority` waiting or running.
    async fn backlog(&self, priority: Priority) -> Result<u64, FleetError>;
    /// The latest `count` completion events, oldest first.
    async fn latest_events(&self, count: usize) -> Result<Vec<Event>, FleetError>;
    /// A follower of the completion events written from now on.
    async fn follow(&self) -> Result<Box<dyn EventFollower>, FleetError>;
    /// Whether each warming claim is held.
    async fn claimed(&self, claims: &[String]) -> Result<Vec<bool>, FleetError>;
    /// Takes each claim for `ttl` unless it is held; says which were taken.
    async fn take_claims(&self, claims: &[&String], ttl: Duration)
    -> Result<Vec<bool>, FleetError>;
}

/// Completion events as they are written.
#[async_trait::async_trait]
pub trait EventFollower: Send {
    /// The events of about the next second, up to [`EVENTS_PER_READ`]; none on a quiet
    /// second. A failure is logged and gives none (after a pause and a reconnection).
    async fn next(&mut self) -> Vec<Event>;
}

#[async_trait::async_trait]
impl JobQueue for Fleet {
    async fn submit(&self, jobs: Vec<Job>) -> Result<(), FleetError> {
        self.queues.submit(jobs).await
    }

    async fn backlog(&self, priority: Priority) -> Result<u64, FleetError> {
        Ok(self.queues.depth(priority).await?.backlog())
    }

    async fn latest_events(&self, count: usize) -> Result<Vec<Event>, FleetError> {
        Ok(self
            .events
            .latest(count)
            .await?
            .into_iter()
            .map(|(_, event)| event)
            .collect())
    }

    async fn follow(&self) -> Result<Box<dyn EventFollower>, FleetError> {
        Ok(Box::new(StreamFollower {
            reader: self.events.reader(Duration::from_secs(1)).await?,
            after: self.events.last_id().await?,
            events: self.events.clone(),
        }))
    }

    async fn claimed(&self, claims: &[String]) -> Result<Vec<bool>, FleetError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        // Split by slot: the warmer's claims share one hash tag (one pipeline), any others
        // still work on a cluster.
        Ok(self
            .connection
            .query_by_slot(claims, |pipe, claim| {
                pipe.cmd("EXISTS").arg(claim);
            })
            .await?)
    }

    async fn take_claims(
        &self,
        claims: &[&String],
        ttl: Duration,
    ) -> Result<Vec<bool>, FleetError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let claims: Vec<String> = claims.iter().map(|claim| claim.to_string()).collect();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let taken: Vec<Option<String>> = self
            .connection
            .query_by_slot(&claims, |pipe, claim| {
                pipe.cmd("SET")
                    .arg(claim)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms);
            })
            .await?;
        Ok(taken.into_iter().map(|t| t.is_some()).collect())
    }
}

/// The Redis stream's follower: blocking reads on a connection of its own.
struct StreamFollower {
    events: Events,
    reader: EventReader,
    after: String,
}

#[async_trait::async_trait]
impl EventFollower for StreamFollower {
    async fn next(&mut self) -> Vec<Event> {
        match self.reader.next(&self.after, EVENTS_PER_READ).await {
            Ok(entries) => {
                if let Some((id, _)) = entries.last() {
                    self.after = id.clone();
                }
                entries.into_iter().map(|(_, e)| e).collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading completion events failed; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Ok(fresh) = self.events.reader(Duration::from_secs(1)).await {
                    self.reader = fresh;
                }
                Vec::new()
            }
        }
    }
}

#[async_trait::async_trait]
impl JobQueue for Embedded {
    async fn submit(&self, jobs: Vec<Job>) -> Result<(), FleetError> {
        for job in jobs {
            self.submit_one(job)?;
        }
        Ok(())
    }

    async fn backlog(&self, priority: Priority) -> Result<u64, FleetError> {
        Ok(self.backlog_of(priority))
    }

    async fn latest_events(&self, count: usize) -> Result<Vec<Event>, FleetError> {
        Ok(self.latest(count))
    }

    async fn follow(&self) -> Result<Box<dyn EventFollower>, FleetError> {
        Ok(Box::new(ChannelFollower(self.subscribe())))
    }

    async fn claimed(&self, claims: &[String]) -> Result<Vec<bool>, FleetError> {
        Ok(self.claims().claimed(claims))
    }

    async fn take_claims(
        &self,
        claims: &[&String],
        ttl: Duration,
    ) -> Result<Vec<bool>, FleetError> {
        Ok(self.claims().take(claims, ttl))
    }
}

/// The embedded queue's follower: its broadcast channel.
struct ChannelFollower(tokio::sync::broadcast::Receiver<Event>);

#[async_trait::async_trait]
impl EventFollower for ChannelFollower {
    async fn next(&mut self) -> Vec<Event> {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let mut out = Vec::new();
        match tokio::time::timeout(Duration::from_secs(1), self.0.recv()).await {
            Ok(Ok(event)) => out.push(event),
            Ok(Err(RecvError::Lagged(missed))) => {
                tracing::debug!(missed, "an event follower fell behind the events");
            }
            Ok(Err(RecvError::Closed)) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return out;
            }
            Err(_) => return out,
        }
        while out.len() < EVENTS_PER_READ {
            match self.0.try_recv() {
                Ok(event) => out.push(event),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// Warming claims kept in memory (embedded mode): claim -> expiry (Unix milliseconds).
#[derive(Default)]
pub(crate) struct MemoryClaims(Mutex<HashMap<String, u64>>);

impl MemoryClaims {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn claimed(&self, claims: &[String]) -> Vec<bool> {
        let now = opossum_cache::unix_millis();
        let held = self.held();
        claims
            .iter()
            .map(|claim| held.get(claim).is_some_and(|until| *until > now))
            .collect()
    }

    fn take(&self, claims: &[&String], ttl: Duration) -> Vec<bool> {
        let now = opossum_cache::unix_millis();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let mut held = self.held();
        held.retain(|_, until| *until > now);
        claims
            .iter()
            .map(|claim| {
                held.insert((*claim).clone(), now + ttl_ms)
                    .is_none_or(|until| until <= now)
            })
            .collect()
    }
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Event>>>>;

/// Follows a queue's completion events in one task and hands each job's first event to
/// whoever expects it: how a long-running producer (the HTTP origin) waits for many jobs at
/// once. Register with [`Completions::expect`] before submitting, and no event is missed.
pub struct Completions {
    waiters: Waiters,
    task: tokio::task::JoinHandle<()>,
}

impl Completions {
    /// Starts following `queue`'s events from now on.
    pub async fn follow(queue: &dyn JobQueue) -> Result<Completions, FleetError> {
        let mut follower = queue.follow().await?;
        let waiters: Waiters = Arc::default();
        let delivered = waiters.clone();
        let task = tokio::spawn(async move {
            loop {
                for event in follower.next().await {
                    let waiter = delivered
                        .lock()
                        .ok()
                        .and_then(|mut w| w.remove(&event.job_id));
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(event);
                    }
                }
            }
        });
        Ok(Completions { waiters, task })
    }

    /// Expects the event of `job_id`: call before submitting the job.
    pub fn expect(&self, job_id: &str) -> Expected {
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.insert(job_id.to_string(), sender);
        }
        Expected {
            job_id: job_id.to_string(),
            receiver,
            waiters: self.waiters.clone(),
        }
    }
}

impl Drop for Completions {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One job's expected event ([`Completions::expect`]); dropped unanswered, it unregisters.
pub struct Expected {
    job_id: String,
    receiver: oneshot::Receiver<Event>,
    waiters: Waiters,
}

impl Expected {
    /// The job's first event, or `None` when none came within `timeout`.
    pub async fn wait(mut self, timeout: Duration) -> Option<Event> {
        tokio::time::timeout(timeout, &mut self.receiver)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for Expected {
    fn drop(&mut self) {
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.remove(&self.job_id);
        }
    }
}

/// Submits `jobs` and waits for the first event of each, until `timeout`: what
/// `opossum submit --wait` does on either backend. Returns the events found, in the order
/// they came (fewer than the jobs when the time ran out; duplicates dropped).
pub async fn submit_and_wait(
    queue: &dyn JobQueue,
    jobs: Vec<Job>,
    timeout: Duration,
) -> Result<Vec<Event>, FleetError> {
    let mut follower = queue.follow().await?;
    let mut pending: HashSet<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    queue.submit(jobs).await?;
    let deadline = Instant::now() + timeout;
    let mut found = Vec::new();
    while !pending.is_empty() && Instant::now() < deadline {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok(events) = tokio::time::timeout(remaining, follower.next()).await else {
            break;
        };
        for event in events {
            if pending.remove(&event.job_id) {
                found.push(event);
            }
        }
    }
    Ok(found)
}
