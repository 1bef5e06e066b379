//! Shared harness: runs the binary with a deadline and a memory cap, and reports how it ended
//! (directories and the corpus come from `opossum_testkit`).

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use opossum_testkit::TempDir;

/// Address-space cap for every run: far above what a correct run needs, low enough that a
/// memory blow-up ends the run (and fails the test) instead of the machine.
const ADDRESS_SPACE_LIMIT: &str = "--as=2147483648";

pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_opossum")
}

pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout_text()))
    }
}

/// Runs `opossum args...` under the address-space cap; kills it after `deadline`. Each run
/// gets its own empty data directory (`OPOSSUM_DATA_DIR`) unless the arguments name one, so
/// tests never touch the user's cache or each other's.
pub(crate) fn run(args: &[&str], deadline: Duration) -> Result<Run, String> {
    let data = TempDir::new("data");
    let mut child = Command::new("prlimit")
        .arg(ADDRESS_SPACE_LIMIT)
        .arg("--")
        .arg(binary())
        .args(args)
        .env("OPOSSUM_DATA_DIR", data.path())
        .env_remove("OPOSSUM_REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start prlimit (util-linux): {e}"))?;
    let started = Instant::now();
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut buf).map(|_| buf)
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut buf).map(|_| buf)
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {deadline:?} (a hang)"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out_reader
        .join()
        .expect("reader")
        .map_err(|e| e.to_string())?;
    let stderr = err_reader
        .join()
        .expect("reader")
        .map_err(|e| e.to_string())?;
    Ok(Run {
        status,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}
