//! Where a benchmark's CPU goes: the CPU time of every process a run involves, per job.
//!
//! On a two-core machine a queue benchmark is bound by the CPU of all its processes together
//! (the Redis server, the load generator, the workers), so a throughput ratio alone cannot
//! say which of them stands in the way. A [`Snapshot`] before and after a run gives each
//! one's share: Redis's own accounting (`INFO cpu`, and `INFO commandstats` for the time
//! spent inside each command), and `/proc/PID/stat` for the processes on this machine.

use std::collections::BTreeMap;

use serde::Serialize;

/// CPU seconds of a process on this machine, from `/proc/PID/stat` (user + system; the kernel
/// reports them in ticks of 1/100 s).
pub(crate) fn process_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// What a Redis server (every primary, summed) has spent so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct RedisCpu {
    /// `used_cpu_user + used_cpu_sys`, seconds
    seconds: f64,
    /// per command: calls and microseconds inside it
    commands: BTreeMap<String, (u64, u64)>,
}

impl RedisCpu {
    pub(crate) async fn read(connection: &mut opossum_redis::Connection) -> anyhow::Result<Self> {
        let replies = connection
            .on_each_primary(redis::cmd("INFO").arg("cpu").arg("commandstats"))
            .await?;
        let mut total = RedisCpu::default();
        for reply in replies {
            let text: String = redis::from_redis_value(reply.value)?;
            total.add(&RedisCpu::parse(&text));
        }
        Ok(total)
    }

    fn parse(info: &str) -> RedisCpu {
        let mut out = RedisCpu::default();
        for line in info.lines() {
            let line = line.trim();
            if let Some(v) = line
                .strip_prefix("used_cpu_sys:")
                .or_else(|| line.strip_prefix("used_cpu_user:"))
            {
                out.seconds += v.parse::<f64>().unwrap_or(0.0);
            } else if let Some(rest) = line.strip_prefix("cmdstat_") {
                let Some((name, stats)) = rest.split_once(':') else {
                    continue;
                };
                let field = |key: &str| -> u64 {
                    stats
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                        .unwrap_or(0)
                };
                out.commands
                    .insert(name.to_string(), (field("calls"), field("usec")));
            }
        }
        out
    }

    fn add(&mut self, other: &RedisCpu) {
        self.seconds += other.seconds;
        for (name, (calls, usec)) in &other.commands {
            let entry = self.commands.entry(name.clone()).or_default();
            entry.0 += calls;
            entry.1 += usec;
        }
    }
}

/// The CPU of a run's processes at one moment.
pub(crate) struct Snapshot {
    redis: RedisCpu,
    generator: f64,
    workers: f64,
}

impl Snapshot {
    /// Now: the Redis server(s), this process, and the worker processes `workers`.
    pub(crate) async fn take(
        connection: &mut opossum_redis::Connection,
        workers: &[u32],
    ) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            redis: RedisCpu::read(connection).await?,
            generator: process_seconds(std::process::id()).unwrap_or(0.0),
            workers: workers.iter().filter_map(|&pid| process_seconds(pid)).sum(),
        })
    }

    /// What was spent between `self` and `later`, per job.
    pub(crate) fn per_job(&self, later: &Snapshot, jobs: usize) -> CpuPerJob {
        let per = |seconds: f64| seconds * 1e6 / jobs.max(1) as f64;
        let mut commands: Vec<CommandPerJob> = later
            .redis
            .commands
            .iter()
            .filter_map(|(name, &(calls, usec))| {
                let (calls0, usec0) = self.redis.commands.get(name).copied().unwrap_or((0, 0));
                let calls = calls.saturating_sub(calls0);
                // INFO itself is the measurement, not the run.
                (calls > 0 && name != "info").then(|| CommandPerJob {
                    command: name.clone(),
                    calls: calls as f64 / jobs.max(1) as f64,
                    micros: usec.saturating_sub(usec0) as f64 / jobs.max(1) as f64,
                })
            })
            .collect();
        commands.sort_by(|a, b| b.micros.total_cmp(&a.micros));
        CpuPerJob {
            redis_micros: per(later.redis.seconds - self.redis.seconds),
            generator_micros: per(later.generator - self.generator),
            workers_micros: per(later.workers - self.workers),
            commands,
        }
    }
}

/// CPU per job of one run, in microseconds.
#[derive(Serialize, Debug, Clone)]
pub(crate) struct CpuPerJob {
    /// the Redis server(s), all of its threads
    pub(crate) redis_micros: f64,
    /// the load generator (with the no-op baseline, its worker too)
    pub(crate) generator_micros: f64,
    /// the worker processes
    pub(crate) workers_micros: f64,
    /// Redis commands per job, the most expensive first
    pub(crate) commands: Vec<CommandPerJob>,
}

impl CpuPerJob {
    pub(crate) fn total_micros(&self) -> f64 {
        self.redis_micros + self.generator_micros + self.workers_micros
    }

    /// `name calls×, µs; ...` for the `top` most expensive commands.
    pub(crate) fn commands_line(&self, top: usize) -> String {
        self.commands
            .iter()
            .take(top)
            .map(|c| format!("{} {:.2}x {:.1} µs", c.command, c.calls, c.micros))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One Redis command's share of a job.
#[derive(Serialize, Debug, Clone)]
pub(crate) struct CommandPerJob {
    command: String,
    /// calls per job
    calls: f64,
    /// microseconds inside Redis per job
    micros: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_sections_are_parsed() {
        let info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\n\
                    used_cpu_sys_children:9.0\r\n# Commandstats\r\n\
                    cmdstat_xadd:calls=10,usec=50,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_evalsha:calls=4,usec=400,usec_per_call=100.00\r\n";
        let cpu = RedisCpu::parse(info);
        // The children's time (a fork for a snapshot) is not the server's work.
        assert!((cpu.seconds - 3.75).abs() < 1e-9, "{cpu:?}");
        assert_eq!(cpu.commands["xadd"], (10, 50));
        assert_eq!(cpu.commands["evalsha"], (4, 400));
        let before = Snapshot {
            redis: RedisCpu::default(),
            generator: 1.0,
            workers: 0.0,
        };
        let after = Snapshot {
            redis: cpu,
            generator: 1.5,
            workers: 2.0,
        };
        let per = before.per_job(&after, 2);
        assert!((per.redis_micros - 1.875e6).abs() < 1e-3);
        assert!((per.total_micros() - (1.875e6 + 0.25e6 + 1e6)).abs() < 1e-3);
        assert_eq!(per.commands[0].command, "evalsha");
        assert_eq!(per.commands_line(1), "evalsha 2.00x 200.0 µs");
    }

    #[test]
    fn this_process_has_spent_cpu() {
        let spent = process_seconds(std::process::id()).unwrap();
        assert!(spent >= 0.0);
        assert!(process_seconds(u32::MAX).is_none());
    }
}
