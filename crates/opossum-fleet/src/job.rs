//! What a queue carries: one request for one variant.

use std::collections::BTreeMap;

use opossum_ops::Chain;
use opossum_pipeline::Mode;
use serde::{Deserialize, Serialize};

/// Which queue a job goes to. The Redis backend has no priorities inside a queue, so each class
/// is its own queue with its own worker pool (warming never takes a slot user work needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// work a user is waiting for (`opossum:process`)
    User,
    /// cache warming from the scheduler (`opossum:warm`)
    Warm,
}

impl Priority {
    /// Both classes, user first.
    pub const ALL: [Priority; 2] = [Priority::User, Priority::Warm];

    /// `user` or `warm`, as events and analytics name it.
    pub fn name(self) -> &'static str {
        match self {
            Priority::User => "user",
            Priority::Warm => "warm",
        }
    }

    /// The queue's name after the prefix: `process` or `warm`.
    pub fn queue_suffix(self) -> &'static str {
        match self {
            Priority::User => "process",
            Priority::Warm => "warm",
        }
    }
}

/// One job: an image, an operation chain and options. It says once what it is: the chain as
/// submitted and, when the producer resolved it, the chain to compute; whether the producer
/// already looked the key up; user work or warming, and how fresh an answer must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// unique per submission; completion events carry it so consumers can drop duplicates
    pub job_id: String,
    /// the image, an object in the originals store
    pub image_id: String,
    /// the chain as submitted (either form, preset names kept): what events report and
    /// related-variant warming reads
    pub ops: String,
    /// the chain to compute, when the producer resolved it (the HTTP origin: presets expanded,
    /// the format negotiated); `None` and the worker resolves `ops`
    #[serde(default)]
    pub chain: Option<Chain>,
    /// the producer looked the key up in the shared tier and counted the miss: the worker
    /// looks up without counting, so one request is one miss fleet-wide
    #[serde(default)]
    pub looked_up: bool,
    /// request options that take part in the key
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// user work or warming
    pub priority: Priority,
    /// when it was submitted (Unix milliseconds)
    pub submitted_at_ms: u64,
    /// a cached answer expiring before this (Unix milliseconds) is recomputed: how warming
    /// refreshes a popular variant before it expires; 0 for ordinary jobs
    #[serde(default)]
    pub fresh_until_ms: u64,
}

impl Job {
    /// A new job with a fresh id, submitted now.
    pub fn new(image_id: impl Into<String>, ops: impl Into<String>, priority: Priority) -> Job {
        Job {
            job_id: new_job_id(),
            image_id: image_id.into(),
            ops: ops.into(),
            options: BTreeMap::new(),
            chain: None,
            looked_up: false,
            priority,
            submitted_at_ms: opossum_cache::unix_millis(),
            fresh_until_ms: 0,
        }
    }

    /// How the pipeline answers this job, said once: warming looks up uncounted (it is not a
    /// request), refreshes what expires before `fresh_until_ms` and computes at background
    /// priority; a user job looks up counted, unless its producer looked it up already.
    pub fn mode(&self) -> Mode {
        match (self.priority, self.looked_up) {
            (Priority::Warm, _) => Mode::warm(self.fresh_until_ms),
            (Priority::User, true) => Mode::LOOKED_UP,
            (Priority::User, false) => Mode::REQUEST,
        }
    }

    /// A user job for a request the producer resolved to `chain` and already looked up (and
    /// missed): the HTTP origin's miss in a fleet. `ops` is the chain as the user wrote it.
    pub fn looked_up(image_id: impl Into<String>, ops: impl Into<String>, chain: Chain) -> Job {
        Job {
            chain: Some(chain),
            looked_up: true,
            ..Job::new(image_id, ops, Priority::User)
        }
    }
}

/// A job id: the submit time in milliseconds and 64 random bits, both hex, so ids sort roughly
/// by submission and never collide in practice.
pub fn new_job_id() -> String {
    format!(
        "{:012x}{:016x}",
        opossum_cache::unix_millis(),
        rand::random::<u64>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_through_messagepack() {
        let mut job = Job::new("photos/cat.jpg", "thumbnail:200", Priority::Warm);
        job.options.insert("dpr".into(), "2".into());
        let bytes = rmp_serde::to_vec_named(&job).unwrap();
        let back: Job = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, job);
        let chain = Chain::parse("thumbnail:200,format:webp").unwrap();
        let resolved = Job::looked_up("a.png", "preset:avatar", chain.clone());
        let bytes = rmp_serde::to_vec_named(&resolved).unwrap();
        let back: Job = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.chain, Some(chain));
        assert!(back.looked_up);
        assert_eq!(back.ops, "preset:avatar");
        assert_eq!(job.job_id.len(), 28);
        assert_ne!(new_job_id(), new_job_id());
    }

    #[test]
    fn a_job_says_its_mode_once() {
        let user = Job::new("a.png", "thumbnail:200", Priority::User);
        assert_eq!(user.mode(), Mode::REQUEST);
        let chain = Chain::parse("thumbnail:200").unwrap();
        let looked_up = Job::looked_up("a.png", "thumbnail:200", chain);
        assert_eq!(looked_up.mode().lookup, opossum_pipeline::Lookup::Uncounted);
        assert!(!looked_up.mode().background);
        let mut warm = Job::new("a.png", "thumbnail:200", Priority::Warm);
        warm.fresh_until_ms = 1234;
        assert_eq!(warm.mode(), Mode::warm(1234));
        assert!(warm.mode().background);
    }
}
