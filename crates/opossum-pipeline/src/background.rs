//! Background priority for CPU work: computations whose [`crate::Mode`] says `background`
//! (warm jobs) run on a small pool of threads that lowered their own scheduling priority (`nice`
//! 19), so on a busy machine the kernel gives the cores to user work first. A warm job still
//! gets idle CPU at full speed; it just never competes on equal terms with a user's request.
//!
//! The threads lower their priority with the `renice` command on their own thread id (Linux
//! applies `setpriority` per thread), which keeps this crate free of `unsafe` and of a
//! platform crate. Where `renice` is missing or refused, the pool still runs, at normal
//! priority, and says so once in the log.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Work = Box<dyn FnOnce() + Send>;

/// The background pool's queue, started on first use.
fn pool() -> Option<&'static Mutex<mpsc::Sender<Work>>> {
    static POOL: OnceLock<Option<Mutex<mpsc::Sender<Work>>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Work>();
        let receiver = std::sync::Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for index in 0..threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("opossum-background-{index}"))
                .spawn(move || {
                    lower_own_priority(index == 0);
                    loop {
                        let work = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match work {
                            Ok(work) => work(),
                            Err(_) => return,
                        }
                    }
                });
            if spawned.is_err() {
                return None;
            }
        }
        Some(Mutex::new(sender))
    })
    .as_ref()
}

fn lower_own_priority(report: bool) {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name().map(|n| n.to_string_lossy().into_owned()));
    let lowered = tid.is_some_and(|tid| {
        std::process::Command::new("renice")
            .args(["-n", "19", "-p", &tid])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if report && !lowered {
        tracing::warn!(
            "cannot lower the background threads' priority (renice); warm jobs run at normal priority"
        );
    }
}

/// Runs `work` on the background pool and waits for it (on tokio's blocking pool when the
/// background pool could not be started). A panic is an error, as with `spawn_blocking`.
pub(crate) async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let Some(pool) = pool() else {
        return tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| format!("image task failed: {e}"));
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let job: Work = Box::new(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = sender.send(result.map_err(|_| "background image task panicked".to_string()));
    });
    pool.lock()
        .map_err(|_| "background pool poisoned".to_string())?
        .send(job)
        .map_err(|_| "background pool stopped".to_string())?;
    receiver
        .await
        .unwrap_or_else(|_| Err("background pool stopped".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_runs_on_the_low_priority_pool() {
        let name = || std::thread::current().name().unwrap_or("").to_string();
        let thread = run(name).await.unwrap();
        assert!(thread.starts_with("opossum-background-"), "{thread}");
        // Its nice value is 19 (from /proc: field 19 of the thread's stat line).
        let nice = run(|| {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let after = stat.rsplit_once(") ").unwrap().1;
            after.split(' ').nth(16).unwrap().parse::<i32>().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(nice, 19);
        let failed = run(|| panic!("boom")).await;
        assert!(failed.is_err());
    }
}
