//! The test harness every integration test shares: real servers started on free ports, each
//! with its own temporary directory, killed and cleaned up on drop. A server binary that is
//! missing fails the test with the command that installs it; nothing is skipped silently.
//!
//! ```no_run
//! let redis = opossum_testkit::RedisServer::start();
//! let url = redis.url(); // redis://127.0.0.1:<free port>/
//! redis.kill();          // fault injection
//! redis.restart();       // same port, same (empty) data
//! ```
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod cluster;

pub use cluster::{Announce, RedisCluster};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name contains `tag`.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "opossum-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A unique key prefix, so tests sharing a server never see each other's keys.
pub fn unique_namespace(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A redis-server owned by one test.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Starts redis-server on a free port (no persistence, `allkeys-lfu`) and waits until it
    /// answers PING.
    pub fn start() -> RedisServer {
        let server = RedisServer {
            port: free_port(),
            dir: TempDir::new("redis"),
            child: Mutex::new(None),
        };
        server.spawn();
        server
    }

    fn spawn(&self) {
        let child = spawn_redis(
            self.port,
            self.dir.path(),
            &["--maxmemory-policy", "allkeys-lfu"],
        );
        *self.child.lock().unwrap() = Some(child);
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (its data is gone: it never persists).
    pub fn restart(&self) {
        self.kill();
        self.spawn();
    }
}

/// Starts `redis-server` on `port` (loopback, no persistence) in `dir` with `extra`
/// arguments, and waits until it answers PING: every server and cluster node of the harness.
pub(crate) fn spawn_redis(port: u16, dir: &Path, extra: &[&str]) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}): install it with `apt-get install redis-server`"
            )
        });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers_ping(port) {
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer PING within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP answer read by [`http_get`].
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// the status code
    pub status: u16,
    /// header names (lowercase) and values, in order
    pub headers: Vec<(String, String)>,
    /// the body (the server closes the connection after it)
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The first value of header `name` (any case), or "".
    pub fn header(&self, name: &str) -> &str {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// `GET {base}{path}` over one HTTP/1.1 connection (`Connection: close`), for tests that
/// have no HTTP client of their own; `base` is `http://host:port`. Panics, naming the URL,
/// when the server cannot be reached or answers something that is not HTTP.
pub fn http_get(base: &str, path: &str) -> HttpReply {
    let address = base.strip_prefix("http://").unwrap_or(base);
    let url = format!("{base}{path}");
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{url}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{url}: no HTTP header in {} bytes", raw.len()));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{url}: bad status line in {head:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpReply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A child process killed and reaped when dropped, however the test ends (a failed
/// assertion included), so no server or worker outlives its test.
#[derive(Debug)]
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Spawns `command` (its stdout piped), which binds its own listener (port 0) and prints
    /// the address on a stdout line starting with `announcement` (`listening on `, `metrics
    /// on `): returns the process and what follows the announcement (`http://127.0.0.1:PORT`).
    /// The rest of stdout is drained on a thread. No port is picked, freed and reused, so no
    /// other process can take it in between. Panics when the process exits or `deadline`
    /// passes first.
    pub fn spawn_announced(
        command: &mut Command,
        announcement: &str,
        deadline: Duration,
    ) -> (Process, String) {
        use std::io::BufRead;
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let process = Process(child);
        let (sender, receiver) = std::sync::mpsc::channel();
        let prefix = announcement.to_string();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix(&prefix)
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(rest.trim().to_string());
                }
            }
        });
        match receiver.recv_timeout(deadline) {
            Ok(address) => (process, address),
            Err(_) => panic!("{command:?} printed no `{announcement}` line within {deadline:?}"),
        }
    }
}

/// The workspace binary `name` (`opossum`, `opossum-worker`, ...) from the target directory
/// the running test was built in (a test binary lives in its `deps/`). Panics naming the
/// command that builds it when it is missing.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary inside a target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace (`cargo test --workspace` builds it)",
        path.display()
    );
    path
}

/// The repository's root (for `deploy/` and the README).
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared test corpus: `../shared/corpus` beside the checkout, or `$OPOSSUM_CORPUS`.
/// Panics saying how to get it when it is missing.
pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("OPOSSUM_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join("../shared/corpus"));
    assert!(
        dir.join("photos").is_dir(),
        "test corpus not found at {}: check out the project with ../shared beside it, \
         or set OPOSSUM_CORPUS to the corpus directory",
        dir.display()
    );
    dir
}

/// Each line of a command's standard output as JSON; panics naming a line that is not.
pub fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The first of `names` found on `PATH` or in `/usr/sbin` (where Debian puts daemons such as
/// varnishd). Panics with `how` to install it when none is: a test whose server is missing
/// fails and says how to get it.
pub fn tool(names: &[&str], how: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    dirs.extend([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")]);
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} not found: {how} (.ci/setup installs it)",
                names.join(" or ")
            )
        })
}
