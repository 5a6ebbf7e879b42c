//! Bandwidth-throttling accuracy: how close the rate a client sees comes to
//! the rate the config sets, at each level (server, user, connection), in
//! each direction, for 1, 4 and 16 transfers at once.
//!
//! Each case starts its own server in-process on 127.0.0.1:0 (fresh buckets,
//! so every case gets the same initial burst), moves files sized to take
//! about `RUN` at the configured rate with plain blocking FTP clients, and
//! prints one markdown table row. Run with `cargo bench --bench throttle`.
//! It measures; it asserts nothing beyond every byte arriving.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{mpsc, Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aioftpd::server::{self, Server};
use tempfile::TempDir;
use tokio::sync::oneshot;

const MIB: u64 = 1024 * 1024;

/// The limit every case configures, at whichever level it tests.
const RATE: u64 = 8 * MIB;

/// How long each case should take at the configured rate.
const RUN: Duration = Duration::from_secs(3);

/// The throttle lets a fresh bucket run this far ahead of its rate
/// (`BURST` in src/throttle.rs); used only to print the burst-aware ratio.
const BURST: Duration = Duration::from_millis(250);

/// Transfers at once.
const CONCURRENCY: [usize; 3] = [1, 4, 16];

/// No socket read in the benchmark waits longer than this: a hang fails loudly.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What the client writes per `write_all` when uploading.
const UPLOAD_CHUNK: usize = 128 * 1024;

#[derive(Clone, Copy, Debug)]
enum Level {
    /// `[server] download_limit`: one bucket for every transfer.
    Server,
    /// `[[users]] download_limit`: one bucket for all the user's sessions.
    User,
    /// `[server] download_limit_per_connection`: one bucket per control connection.
    Connection,
}

#[derive(Clone, Copy, Debug)]
enum Direction {
    Download,
    Upload,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Server => "server",
            Level::User => "user",
            Level::Connection => "connection",
        })
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Download => "download (RETR)",
            Direction::Upload => "upload (STOR)",
        })
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
struct Case {
    level: Level,
    direction: Direction,
    concurrent: usize,
}

impl Case {
    /// What all transfers together should reach.
    fn expected_aggregate(&self) -> u64 {
        match self.level {
            Level::Server | Level::User => RATE,
            Level::Connection => RATE * self.concurrent as u64,
        }
    }

    /// Each transfer's size, so that the whole case takes `RUN` at the expected rate.
    fn bytes_per_transfer(&self) -> u64 {
        let total = self.expected_aggregate() as f64 * RUN.as_secs_f64();
        (total / self.concurrent as f64) as u64
    }

    /// The config: an anonymous user, read-write on the temp dir, and the one limit under test.
    fn config(&self, root: &Path) -> String {
        let prefix = match self.direction {
            Direction::Download => "download",
            Direction::Upload => "upload",
        };
        let (server_limit, user_limit) = match self.level {
            Level::Server => (format!("{prefix}_limit = {RATE}"), String::new()),
            Level::User => (String::new(), format!("{prefix}_limit = {RATE}")),
            Level::Connection => (
                format!("{prefix}_limit_per_connection = {RATE}"),
                String::new(),
            ),
        };
        format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
idle_timeout = "60s"
data_timeout = "30s"
{server_limit}

[[users]]
base_path = "{root}"
permissions = [{{ path = "/", readable = true, writable = true }}]
{user_limit}
"#,
            root = root.display()
        )
    }
}

/// What one case measured.
struct Measurement {
    bytes: u64,
    elapsed: Duration,
}

/// A server running on its own runtime thread over a temp dir; stops when dropped.
struct BenchServer {
    addr: SocketAddr,
    root: TempDir,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BenchServer {
    fn start(case: &Case) -> Self {
        let root = tempfile::tempdir().expect("create the benchmark's temp dir");
        let text = case.config(root.path());
        let loaded = aioftpd::config::load_str(&text, Path::new("bench.toml"))
            .unwrap_or_else(|e| panic!("the benchmark's config is invalid: {e}\n{text}"));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("build the server's tokio runtime");
            runtime.block_on(async move {
                let listeners = server::bind_all(&loaded.settings).expect("bind 127.0.0.1:0");
                let addr = listeners[0]
                    .socket
                    .local_addr()
                    .expect("the listener's address");
                addr_tx.send(addr).expect("report the address");
                Server::new(loaded.settings, Arc::new(loaded.users))
                    .run(listeners, async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().expect("the server thread started");
        BenchServer {
            addr,
            root,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A blocking FTP control connection that reads whole (multi-line) replies.
struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Control {
    /// Connects, reads the greeting and logs in as the anonymous user in binary mode.
    fn login(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the control port");
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set the control read timeout");
        let writer = stream.try_clone().expect("clone the control socket");
        let mut control = Control {
            reader: BufReader::new(stream),
            writer,
        };
        control.expect_reply(220, "the greeting");
        control.command("USER anonymous", 331);
        control.command("PASS bench@example.org", 230);
        control.command("TYPE I", 200);
        control
    }

    /// Reads one reply; returns its code and last line.
    fn reply(&mut self) -> (u16, String) {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read a control reply");
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not an FTP reply: {line:?}"));
        if line.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                line.clear();
                self.reader
                    .read_line(&mut line)
                    .expect("read a multi-line reply");
                if line.is_empty() || line.starts_with(&end) {
                    break;
                }
            }
        }
        (code, line)
    }

    fn expect_reply(&mut self, code: u16, after: &str) -> String {
        let (got, line) = self.reply();
        assert_eq!(got, code, "after {after}: {line}");
        line
    }

    fn send(&mut self, command: &str) {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("send a control command");
    }

    fn command(&mut self, command: &str, code: u16) -> String {
        self.send(command);
        self.expect_reply(code, command)
    }

    /// `PASV` and a connected data socket.
    fn passive(&mut self) -> TcpStream {
        let line = self.command("PASV", 227);
        // 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)
        let inner = line
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(inner, _)| inner)
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let numbers: Vec<u16> = inner
            .split(',')
            .map(|n| n.trim().parse().expect("a number in the PASV reply"))
            .collect();
        assert_eq!(numbers.len(), 6, "PASV reply {line:?}");
        let port = numbers[4] * 256 + numbers[5];
        let data = TcpStream::connect((self.writer.peer_addr().expect("peer").ip(), port))
            .expect("connect to the passive data port");
        data.set_read_timeout(Some(IO_TIMEOUT))
            .expect("set the data read timeout");
        data
    }
}

/// One client's transfer: from the barrier to its last byte. Returns (start, end, bytes).
fn client(
    addr: SocketAddr,
    case: Case,
    index: usize,
    barrier: &Barrier,
) -> (Instant, Instant, u64) {
    let size = case.bytes_per_transfer();
    let mut control = Control::login(addr);
    let mut data = control.passive();
    barrier.wait();
    let start = Instant::now();
    let (end, moved) = match case.direction {
        Direction::Download => {
            control.send("RETR source");
            control.expect_reply(150, "RETR");
            let mut buf = vec![0u8; 256 * 1024];
            let mut moved = 0u64;
            loop {
                let n = data.read(&mut buf).expect("read the data connection");
                if n == 0 {
                    break;
                }
                moved += n as u64;
            }
            let end = Instant::now();
            control.expect_reply(226, "the download");
            (end, moved)
        }
        Direction::Upload => {
            control.send(&format!("STOR upload-{index}"));
            control.expect_reply(150, "STOR");
            let chunk = vec![0x5au8; UPLOAD_CHUNK];
            let mut left = size;
            while left > 0 {
                let n = left.min(UPLOAD_CHUNK as u64) as usize;
                data.write_all(&chunk[..n])
                    .expect("write the data connection");
                left -= n as u64;
            }
            data.shutdown(Shutdown::Write)
                .expect("close the data connection");
            // The socket buffers hold megabytes, so the writes finish early;
            // the server has read (and paid for) the last byte when it says 226.
            control.expect_reply(226, "the upload");
            (Instant::now(), size)
        }
    };
    control.send("QUIT");
    (start, end, moved)
}

fn run(case: Case) -> Measurement {
    let server = BenchServer::start(&case);
    let size = case.bytes_per_transfer();
    if let Direction::Download = case.direction {
        // Sparse: reads return zeros at page-cache speed, and the disk is never the limit.
        let file = std::fs::File::create(server.root.path().join("source"))
            .expect("create the download source");
        file.set_len(size).expect("size the download source");
    }
    let barrier = Arc::new(Barrier::new(case.concurrent));
    let addr = server.addr;
    let clients: Vec<_> = (0..case.concurrent)
        .map(|index| {
            let barrier = barrier.clone();
            std::thread::spawn(move || client(addr, case, index, &barrier))
        })
        .collect();
    let results: Vec<_> = clients
        .into_iter()
        .map(|c| c.join().expect("a client thread panicked"))
        .collect();
    let start = results
        .iter()
        .map(|r| r.0)
        .min()
        .expect("at least one client");
    let end = results
        .iter()
        .map(|r| r.1)
        .max()
        .expect("at least one client");
    let bytes: u64 = results.iter().map(|r| r.2).sum();
    assert_eq!(
        bytes,
        size * case.concurrent as u64,
        "{case:?}: every byte should arrive"
    );
    drop(server);
    Measurement {
        bytes,
        elapsed: end - start,
    }
}

fn mib_per_s(bytes_per_second: f64) -> String {
    format!("{:.2} MiB/s", bytes_per_second / MIB as f64)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too and should be quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("throttle: skipped (run it with `cargo bench --bench throttle`)");
        return;
    }
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "machine: {nproc} CPUs ({} {}), 127.0.0.1 loopback; each case ~{} s at the configured rate, fresh server per case",
        std::env::consts::OS,
        std::env::consts::ARCH,
        RUN.as_secs()
    );
    println!();
    println!("| level | direction | concurrent | configured | expected aggregate | achieved aggregate | ratio | ratio vs. rate + burst |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for direction in [Direction::Download, Direction::Upload] {
        for level in [Level::Server, Level::User, Level::Connection] {
            for concurrent in CONCURRENCY {
                let case = Case {
                    level,
                    direction,
                    concurrent,
                };
                let measured = run(case);
                let expected = case.expected_aggregate() as f64;
                let achieved = measured.bytes as f64 / measured.elapsed.as_secs_f64();
                // A fresh bucket lets BURST worth through at once, so the ideal
                // time is the bytes at the rate less BURST.
                let ideal = measured.bytes as f64 / expected - BURST.as_secs_f64();
                let with_burst = measured.bytes as f64 / ideal;
                let configured = match level {
                    Level::Connection => format!("{} each", mib_per_s(RATE as f64)),
                    Level::Server | Level::User => mib_per_s(RATE as f64),
                };
                println!(
                    "| {level} | {direction} | {concurrent} | {configured} | {} | {} | {:.3} | {:.3} |",
                    mib_per_s(expected),
                    mib_per_s(achieved),
                    achieved / expected,
                    achieved / with_burst,
                );
            }
        }
    }
}
