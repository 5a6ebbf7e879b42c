//! Test support: a real server on 127.0.0.1:0 over a temporary directory,
//! a raw line-level client for exact reply codes, and suppaftp for flows.

#![allow(dead_code)] // each topic module uses a different part of this kit

pub mod daemon;
pub mod ftps;
pub mod postgres;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use aioftpd::auth::UserManager;
use aioftpd::auth::{ConfigUserManager, Permission, User};
use aioftpd::context::ServerContext;
use aioftpd::path::VirtualPath;
use aioftpd::server::{self, Server};
use aioftpd::session::Session;
use aioftpd::settings::Settings;
use aioftpd::storage::MemoryStorage;
use suppaftp::FtpStream;
use tempfile::TempDir;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The password of the test user `alice`.
pub const PASSWORD: &str = "s3cret";

/// Reads and writes on test sockets never wait longer than this: a hang fails the test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// argon2 is slow on purpose: hash once per test binary.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| aioftpd::auth::hash_password(PASSWORD).expect("hash"))
}

/// The default test config: `alice` (read-write on `/`, read-only `/readonly`,
/// nothing in `/secret`) and an anonymous user reading `/pub`.
pub fn default_config(root: &Path) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
idle_timeout = "60s"
data_timeout = "10s"

[[users]]
login = "alice"
password = "{hash}"
base_path = "{root}"
permissions = [
  {{ path = "/", readable = true, writable = true }},
  {{ path = "/readonly", readable = true, writable = false }},
  {{ path = "/secret", readable = false, writable = false }},
]

[[users]]
base_path = "{root}/pub"
permissions = [{{ path = "/", readable = true, writable = false }}]
"#,
        hash = password_hash(),
        root = root.display()
    )
}

/// A running server over a temporary directory; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Every listener's address, `listen` first, then implicit-TLS ones.
    pub addrs: Vec<SocketAddr>,
    pub root: TempDir,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// The default config on 127.0.0.1.
    pub fn start() -> Self {
        Self::start_with(default_config)
    }

    /// A server whose config text is made from the root directory.
    pub fn start_with(config: impl FnOnce(&Path) -> String) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        for dir in ["pub", "readonly", "secret"] {
            std::fs::create_dir(root.path().join(dir)).expect("mkdir");
        }
        let text = config(root.path());
        let loaded = aioftpd::config::load_str(&text, Path::new("test.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        Self::serve(root, loaded.settings, Arc::new(loaded.users))
    }

    /// A server with settings and users built by the test itself (for
    /// storage backends a config file cannot name, such as a faulty one).
    pub fn serve(root: TempDir, settings: Settings, users: Arc<dyn UserManager>) -> Self {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listeners = server::bind_all(&settings).expect("bind");
                let addrs: Vec<SocketAddr> = listeners
                    .iter()
                    .map(|l| l.socket.local_addr().expect("addr"))
                    .collect();
                addr_tx.send(addrs).expect("send addr");
                let server = Server::new(settings, users);
                server
                    .run(listeners, async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addrs = addr_rx.recv().expect("server started");
        TestServer {
            addr: addrs[0],
            addrs,
            root,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A path inside the served directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// A suppaftp client logged in as alice, binary mode, passive.
    pub fn ftp(&self) -> FtpStream {
        let mut ftp = FtpStream::connect(self.addr).expect("connect");
        ftp.get_ref()
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("timeout");
        ftp.login("alice", PASSWORD).expect("login");
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .expect("TYPE I");
        ftp
    }

    /// A raw client that has read the greeting.
    pub fn raw(&self) -> RawClient {
        RawClient::connect(self.addr)
    }

    /// A raw client logged in as alice.
    pub fn raw_alice(&self) -> RawClient {
        let mut c = self.raw();
        c.login("alice", PASSWORD);
        c
    }

    /// The URL prefix for curl and friends, with alice's credentials.
    pub fn url(&self, path: &str) -> String {
        format!("ftp://alice:{PASSWORD}@{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A reply as the raw client read it.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    /// Every line of the reply, CRLF removed.
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of the last line after the code.
    pub fn text(&self) -> &str {
        self.lines.last().map_or("", |l| l.get(4..).unwrap_or(""))
    }
}

/// A line-level FTP client: sends exactly what a test says and reads whole replies.
pub struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub greeting: Reply,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> Self {
        Self::with_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// A client connecting from `local` (see [`tcp_from`]).
    pub fn connect_from(local: IpAddr, addr: SocketAddr) -> Self {
        Self::with_stream(tcp_from(local, addr))
    }

    fn with_stream(stream: TcpStream) -> Self {
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        let greeting = read_reply(&mut reader).expect("greeting");
        RawClient {
            reader,
            writer,
            greeting,
        }
    }

    /// Sends `line` + CRLF and reads the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
    }

    /// Sends `line` + CRLF without reading.
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\r\n").as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// The control connection's own address.
    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().expect("local")
    }

    /// Reads one complete reply; panics if the server closed the connection.
    pub fn reply(&mut self) -> Reply {
        read_reply(&mut self.reader).expect("reply")
    }

    /// Reads one reply, or `None` when the server has closed the connection.
    pub fn try_reply(&mut self) -> Option<Reply> {
        read_reply(&mut self.reader)
    }

    pub fn login(&mut self, user: &str, pass: &str) {
        assert_eq!(self.cmd(&format!("USER {user}")).code, 331);
        let reply = self.cmd(&format!("PASS {pass}"));
        assert_eq!(reply.code, 230, "{reply:?}");
    }

    /// Sends PASV and connects to the announced port.
    pub fn pasv(&mut self) -> TcpStream {
        let reply = self.cmd("PASV");
        assert_eq!(reply.code, 227, "{reply:?}");
        let text = reply.text();
        let inner = &text[text.find('(').expect("(") + 1..text.find(')').expect(")")];
        let n: Vec<u16> = inner
            .split(',')
            .map(|x| x.parse().expect("number"))
            .collect();
        let addr = SocketAddr::from((
            [n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8],
            n[4] * 256 + n[5],
        ));
        self.data_to(addr)
    }

    /// Sends EPSV and connects to the announced port on the control address.
    pub fn epsv(&mut self) -> TcpStream {
        let reply = self.cmd("EPSV");
        assert_eq!(reply.code, 229, "{reply:?}");
        let text = reply.text();
        let port: u16 = text[text.find("|||").expect("|||") + 3..text.rfind('|').expect("|")]
            .parse()
            .expect("port");
        let ip = self.writer.peer_addr().expect("peer").ip();
        self.data_to(SocketAddr::new(ip, port))
    }

    /// A data connection to `addr` from the control connection's host, as
    /// a client makes it.
    fn data_to(&self, addr: SocketAddr) -> TcpStream {
        let data = tcp_from(self.local_addr().ip(), addr);
        data.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        data
    }

    /// Runs a listing-style command over a fresh PASV connection and returns its text.
    pub fn fetch(&mut self, command: &str) -> (Reply, String) {
        let mut data = self.pasv();
        let first = self.cmd(command);
        if first.code != 150 {
            return (first, String::new());
        }
        let mut out = String::new();
        data.read_to_string(&mut out).expect("read data");
        (self.reply(), out)
    }

    /// Uploads `bytes` with `command` (STOR/APPE path) over PASV; returns the final reply.
    pub fn upload(&mut self, command: &str, bytes: &[u8]) -> Reply {
        let mut data = self.pasv();
        let first = self.cmd(command);
        if first.code != 150 {
            return first;
        }
        // A server that refuses the upload partway (a quota, a full disk)
        // closes the connection under the write: its reply says what happened.
        let _ = data.write_all(bytes);
        drop(data);
        self.reply()
    }
}

/// Connects to `addr` from `local`: all of 127/8 is loopback, so a test can
/// be several hosts.
pub fn tcp_from(local: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("socket");
    socket
        .bind(&SocketAddr::new(local, 0).into())
        .expect("bind the client's address");
    socket.connect(&addr.into()).expect("connect");
    socket.into()
}

pub(crate) fn read_reply(reader: &mut impl BufRead) -> Option<Reply> {
    let mut lines: Vec<String> = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        let done = if lines.is_empty() {
            line.as_bytes().get(3) != Some(&b'-')
        } else {
            line.len() >= 4 && line[..3] == lines[0][..3] && line.as_bytes()[3] == b' '
        };
        lines.push(line);
        if done {
            let code = lines[0].get(..3)?.parse().ok()?;
            return Some(Reply { code, lines });
        }
    }
}

/// Deterministic pseudo-random bytes (no rand dependency needed).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `count` consecutive ports at or above `from` that nothing listens on now,
/// below the ephemeral range so OS-chosen ports of other tests (control
/// listeners on port 0, clients' local ports, servers' random passive
/// ports) never take them. Each test passes a `from` of its own.
pub fn free_ports(from: u16, count: u16) -> (u16, u16) {
    let is_free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let first = (from..u16::MAX - count)
        .find(|&first| (first..first + count).all(is_free))
        .expect("a free port range");
    (first, first + count - 1)
}

/// curl with `args`, quiet but for errors, within a minute; its output.
pub fn curl(args: &[&str]) -> String {
    run_ok(
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "60"])
            .args(args),
    )
}

/// Whether an external client is installed. Under CI a missing client is a
/// failure (`.ci/run` installs them); elsewhere the test says so and skips.
pub fn have_tool(program: &str, probe: &[&str]) -> bool {
    let found = std::process::Command::new(program)
        .args(probe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is required under CI"
        );
        eprintln!("skipping: {program} is not installed");
    }
    found
}

/// The addresses Debian's `fail2ban-regex` finds with the packaged filter
/// (with `options` such as `[journalmatch='...']`) in `log`: a log file, or
/// `systemd-journal`.
pub fn fail2ban_addresses(log: impl AsRef<std::ffi::OsStr>, options: &str) -> Vec<String> {
    let filter = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/fail2ban/filter.d/aioftpd.conf")
        .display()
        .to_string();
    let out = run_ok(
        std::process::Command::new("fail2ban-regex")
            .args(["-o", "ip"])
            .arg(log)
            .arg(filter + options),
    );
    out.lines().map(str::to_owned).collect()
}

/// Runs the Python `script` (an ftplib session) with the arguments the
/// scripts share, the server's host and port, alice's login and password,
/// then `extra`; its output.
pub fn ftplib_script(script: &str, addr: SocketAddr, extra: &[&str]) -> String {
    let host = addr.ip().to_string();
    let port = addr.port().to_string();
    let mut args = vec!["-c", script, &host, &port, "alice", PASSWORD];
    args.extend_from_slice(extra);
    run_ok(std::process::Command::new("python3").args(&args))
}

/// Runs a command to completion; panics with its output if it fails.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A session over an in-memory pipe, on the paused clock.
pub async fn paused_session(settings: Settings) -> tokio::io::BufReader<tokio::io::DuplexStream> {
    let anonymous = User {
        login: None,
        home: VirtualPath::root(),
        permissions: vec![Permission {
            path: VirtualPath::root(),
            readable: true,
            writable: false,
        }],
        storage: Arc::new(MemoryStorage::new()),
        tls_required: None,
        max_connections: None,
        limits: Default::default(),
        quota: None,
    };
    let users = Arc::new(ConfigUserManager::new(Vec::new(), Some(anonymous)));
    let context = ServerContext::new(settings, users);
    let (client, server) = tokio::io::duplex(4096);
    let peer: SocketAddr = (IpAddr::from([192, 0, 2, 1]), 40000).into();
    let local: SocketAddr = (IpAddr::from([192, 0, 2, 2]), 21).into();
    let session = Session::new(
        Box::new(server),
        peer,
        local,
        context,
        CancellationToken::new(),
        false,
    );
    tokio::spawn(session.run());
    let mut client = tokio::io::BufReader::new(client);
    let mut greeting = String::new();
    client.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("220"), "{greeting}");
    client
}

/// The next line the server sent, line ending included.
pub async fn next_line(client: &mut (impl AsyncBufRead + Unpin)) -> String {
    let mut line = String::new();
    client.read_line(&mut line).await.unwrap();
    line
}
