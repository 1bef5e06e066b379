//! `opossum submit`, `opossum events` and `opossum queue`: the producer's and the operator's
//! side of the worker fleet. With `--redis`, jobs go to the Redis queues and events come from
//! the stream; without it, `submit` runs the jobs in this process (embedded mode) and waits.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use opossum_config::Config;
use opossum_fleet::{Event, Job, JobQueue, Priority, Status, parse_image_id, submit_and_wait};
use opossum_ops::Chain;
use serde::Serialize;

use opossum_wiring::{Node, NodeSettings, Wiring};

use crate::runtime;

#[derive(clap::Args)]
pub(crate) struct SubmitArgs {
    /// The image: an object name in the originals store
    #[arg(required_unless_present = "batch", conflicts_with = "batch")]
    image_id: Option<String>,
    /// Operation chain, string or JSON form
    #[arg(long, required_unless_present = "batch")]
    ops: Option<String>,
    /// JSON lines `{"image_id": .., "ops": ..}` from FILE, or `-` for stdin
    #[arg(long)]
    batch: Option<PathBuf>,
    /// Wait for each job's completion event and print it (always, without --redis)
    #[arg(long)]
    wait: bool,
    /// How long --wait waits
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Submit to the low-priority warming queue
    #[arg(long)]
    warm: bool,
}

#[derive(clap::Args)]
pub(crate) struct EventsArgs {
    /// Keep printing events as they arrive
    #[arg(long)]
    follow: bool,
    /// How many of the latest events to print first
    #[arg(long, default_value_t = 100)]
    count: usize,
}

#[derive(clap::Subcommand)]
pub(crate) enum QueueCommand {
    /// Jobs parked, due, retrying, in flight and dead, per queue
    Stats {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Jobs that exhausted their retries
    Dead {
        /// Most jobs to list
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(serde::Deserialize)]
struct BatchLine {
    image_id: String,
    ops: serde_json::Value,
    #[serde(default)]
    priority: Option<Priority>,
}

/// Checks a request before it is queued, so a typo fails here and not in a worker. A chain
/// naming a preset version this process does not know is left to the workers.
fn validate(image_id: &str, ops: &str, config: &Config) -> anyhow::Result<()> {
    parse_image_id(image_id)?;
    let references = Chain::preset_refs(ops).with_context(|| format!("invalid --ops `{ops}`"))?;
    let unknown_version = references.iter().any(|r| {
        r.version.is_some() && opossum_ops::PresetLookup::lookup(&config.presets, r).is_none()
    });
    if !unknown_version {
        Chain::parse_any_with(ops, &config.presets)
            .with_context(|| format!("invalid --ops `{ops}`"))?;
    }
    Ok(())
}

fn read_jobs(args: &SubmitArgs, config: &Config) -> anyhow::Result<Vec<Job>> {
    let default_priority = if args.warm {
        Priority::Warm
    } else {
        Priority::User
    };
    let Some(batch) = &args.batch else {
        let image_id = args.image_id.clone().context("an IMAGE_ID is required")?;
        let ops = args.ops.clone().context("--ops is required")?;
        validate(&image_id, &ops, config)?;
        return Ok(vec![Job::new(image_id, ops, default_priority)]);
    };
    let reader: Box<dyn BufRead> = if batch.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(batch)
            .with_context(|| format!("cannot read {}", batch.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut jobs = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.context("reading the batch")?;
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let parsed: BatchLine = serde_json::from_str(&line).with_context(|| {
            format!("batch line {number}: expected {{\"image_id\": .., \"ops\": ..}}")
        })?;
        let ops = match parsed.ops {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        validate(&parsed.image_id, &ops, config).with_context(|| format!("batch line {number}"))?;
        jobs.push(Job::new(
            parsed.image_id,
            ops,
            parsed.priority.unwrap_or(default_priority),
        ));
    }
    if jobs.is_empty() {
        bail!("the batch holds no jobs");
    }
    Ok(jobs)
}

#[derive(Serialize)]
struct Submitted<'a> {
    job_id: &'a str,
    image_id: &'a str,
    queue: String,
}

fn print_event(event: &Event) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(event)?);
    Ok(())
}

pub(crate) fn submit(args: SubmitArgs, wiring: &Wiring) -> anyhow::Result<()> {
    let jobs = read_jobs(&args, &wiring.config)?;
    let failed = runtime()?.block_on(async {
        if wiring.queue_redis.is_none() {
            // Without Redis this process is the fleet: it runs the jobs and always waits.
            let node = Node::open_embedded(wiring, NodeSettings::one_shot()).await?;
            let failed = submit_and_print(node.queue.as_ref(), jobs, &args).await;
            node.finish().await;
            return failed;
        }
        let fleet = wiring.fleet("`opossum submit` to the fleet").await?;
        if args.wait {
            return submit_and_print(&fleet, jobs, &args).await;
        }
        let names: Vec<String> = jobs
            .iter()
            .map(|job| fleet.queues.config().display_name(job.priority))
            .collect();
        fleet.queues.submit(jobs.clone()).await?;
        for (job, queue) in jobs.iter().zip(names) {
            let line = Submitted {
                job_id: &job.job_id,
                image_id: &job.image_id,
                queue,
            };
            println!("{}", serde_json::to_string(&line)?);
        }
        Ok(0)
    })?;
    if failed > 0 {
        bail!("{failed} job(s) ended with an error");
    }
    Ok(())
}

/// Submits `jobs` to `queue`, prints each one's completion event and returns how many failed;
/// fails when some had no event within `--timeout`.
async fn submit_and_print(
    queue: &dyn JobQueue,
    jobs: Vec<Job>,
    args: &SubmitArgs,
) -> anyhow::Result<usize> {
    let submitted = jobs.len();
    let found = submit_and_wait(queue, jobs, args.timeout).await?;
    for event in &found {
        print_event(event)?;
    }
    if found.len() < submitted {
        bail!(
            "{} of {submitted} job(s) had no completion event within {:?} (are workers running?)",
            submitted - found.len(),
            args.timeout
        );
    }
    Ok(found.iter().filter(|e| e.status == Status::Error).count())
}

#[derive(Serialize)]
struct EventLine<'a> {
    id: &'a str,
    #[serde(flatten)]
    event: &'a Event,
}

pub(crate) fn events(args: EventsArgs, wiring: &Wiring) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let events = wiring.fleet("`opossum events`").await?.events;
        let latest = events.latest(args.count).await?;
        let mut after = latest
            .last()
            .map_or_else(|| "0-0".to_string(), |(id, _)| id.clone());
        if latest.is_empty() {
            after = events.last_id().await?;
        }
        for (id, event) in &latest {
            println!("{}", serde_json::to_string(&EventLine { id, event })?);
        }
        if !args.follow {
            return Ok(());
        }
        let mut reader = events.reader(Duration::from_secs(5)).await?;
        loop {
            for (id, event) in reader.next(&after, 1000).await? {
                println!(
                    "{}",
                    serde_json::to_string(&EventLine {
                        id: &id,
                        event: &event
                    })?
                );
                after = id;
            }
        }
    })
}

pub(crate) fn queue(command: QueueCommand, wiring: &Wiring) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let queues = wiring.fleet("`opossum queue`").await?.queues;
        match command {
            QueueCommand::Stats { json } => {
                let mut rows = Vec::new();
                for priority in Priority::ALL {
                    rows.push((
                        queues.config().display_name(priority),
                        queues.depth(priority).await?,
                    ));
                }
                if json {
                    let map: serde_json::Map<String, serde_json::Value> = rows
                        .iter()
                        .map(|(name, depth)| Ok((name.clone(), serde_json::to_value(depth)?)))
                        .collect::<anyhow::Result<_>>()?;
                    println!("{}", serde_json::Value::Object(map));
                } else {
                    println!(
                        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
                        "queue", "parked", "due", "retrying", "in-flight", "dead"
                    );
                    for (name, d) in rows {
                        println!(
                            "{name:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
                            d.parked, d.due, d.retrying, d.in_flight, d.dead
                        );
                    }
                }
            }
            QueueCommand::Dead { limit } => {
                for priority in Priority::ALL {
                    for dead in queues.dead(priority, limit).await? {
                        println!("{}", serde_json::to_string(&dead)?);
                    }
                }
            }
        }
        Ok(())
    })
}
