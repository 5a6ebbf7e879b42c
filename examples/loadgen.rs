//! Load generator for `benches/compare/run.sh`: the workloads in which the
//! Python client (`benches/compare/client.py`) was the bottleneck.
//!
//! On the 2-core benchmark machine the Python client's 20 login processes
//! used 124 % of a core, its 8 small-file workers and its FTPS reader about
//! 100 % each, and its TLS reader topped out near 1–1.5 GB/s. This does the
//! same protocol steps with blocking sockets, one thread per worker, and
//! rustls. Logins and small files still cost the client kernel time (TCP
//! over loopback, waking blocked workers), which no client avoids.
//! `run.sh` builds it with `cargo build --release --example loadgen` and
//! exports its path as `LOADGEN`; `client.py` runs one subcommand per
//! measured run and parses the single JSON line it prints on stdout. Errors
//! go to stderr, with a non-zero exit.
//!
//! Client CPU is user + system time from `getrusage(2)`, counted from the
//! moment the workers are released (their setup does not count): the whole
//! process's, except in `tls-ceiling`, which counts the reader thread only.
//! The TLS workloads run themselves again with a glibc tunable: see
//! `TUNABLES`.
#![forbid(unsafe_code)]

use std::env;
use std::fmt::Display;
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeValLike;
use rustls::client::ClientConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::ServerConnection;
use rustls::{ClientConfig, HandshakeKind, RootCertStore, ServerConfig, StreamOwned};
use serde_json::{json, Value};

const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// The bulk readers' buffer, reused for the whole transfer.
const BUF: usize = 4 << 20;
/// Socket timeouts: short for the login loop, where a stuck connection is
/// counted as an error and the loop goes on; as client.py's elsewhere.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(60);
/// A reply line longer than this is an error, not a reason to buffer more.
const MAX_LINE: usize = 64 << 10;
const ANONYMOUS: (&str, &str) = ("anonymous", "bench@example.org");
/// glibc's memcpy switches to `rep movsb` from a few KiB up. On the
/// benchmark machine's AMD EPYC that is slow when source and destination
/// are mutually misaligned, as in rustls' copy of every record it decrypts
/// (a 16 KiB payload from 5 bytes past the record header into a new
/// buffer): it doubled the TLS reader's CPU, to as much as the Python
/// client's. glibc reads tunables at startup only, so the TLS workloads
/// run themselves again with the threshold above a record's size.
const TUNABLES: &str = "glibc.cpu.x86_rep_movsb_threshold=2097152";

#[derive(Parser)]
#[command(about = "Load generator for benches/compare/run.sh; prints one JSON line")]
struct Cli {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// WORKERS threads connect, log in and QUIT in a loop for SECONDS.
    Logins(Logins),
    /// WORKERS threads, each logged in once as anonymous, RETR or STOR
    /// PREFIX00000.. PREFIX{FILES-1}, one EPSV and data connection per file.
    Small(Small),
    /// One explicit FTPS (RFC 4217) download; the data connection resumes
    /// the control connection's TLS session.
    FtpsRetr(FtpsRetr),
    /// The FTPS reader against a rustls TLS 1.3 sender in this process
    /// writing from memory: the reader's own ceiling.
    TlsCeiling(TlsCeiling),
}

#[derive(Args)]
struct Logins {
    #[arg(long)]
    port: u16,
    #[arg(long)]
    workers: usize,
    #[arg(long)]
    seconds: f64,
    #[arg(long, default_value = ANONYMOUS.0)]
    user: String,
    #[arg(long, default_value = ANONYMOUS.1)]
    password: String,
}

#[derive(Args)]
struct Small {
    #[arg(long)]
    port: u16,
    #[arg(long)]
    workers: usize,
    #[arg(long)]
    verb: Verb,
    #[arg(long)]
    prefix: String,
    #[arg(long)]
    files: usize,
    /// Each file's size: what RETR must receive, what STOR sends.
    #[arg(long)]
    size: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Verb {
    #[value(name = "RETR")]
    Retr,
    #[value(name = "STOR")]
    Stor,
}

#[derive(Args)]
struct FtpsRetr {
    #[arg(long)]
    port: u16,
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
    #[arg(long)]
    path: String,
    #[arg(long)]
    size: u64,
    /// The only certificate trusted (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// Once the data connection is made, print `ready` on stderr and wait
    /// for a line on stdin before sending RETR; once the 2xx is in, print
    /// `done` and wait for another before QUIT. So the caller can sample
    /// the server's CPU around the measured part only, while the session
    /// (a process of its own in the forking servers) is still there.
    #[arg(long)]
    wait_go: bool,
}

#[derive(Args)]
struct TlsCeiling {
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    size: u64,
}

fn main() -> ExitCode {
    let workload = Cli::parse().workload;
    let tls = matches!(workload, Workload::FtpsRetr(_) | Workload::TlsCeiling(_));
    if tls && env::var_os("GLIBC_TUNABLES").is_none() {
        let err = match env::current_exe() {
            Ok(me) => Command::new(me)
                .args(env::args_os().skip(1))
                .env("GLIBC_TUNABLES", TUNABLES)
                .exec(),
            Err(e) => e,
        };
        eprintln!("loadgen: cannot run again with GLIBC_TUNABLES={TUNABLES}: {err}");
        return ExitCode::FAILURE;
    }
    let result = match workload {
        Workload::Logins(args) => logins(&args),
        Workload::Small(args) => small(&args),
        Workload::FtpsRetr(args) => ftps_retr(&args),
        Workload::TlsCeiling(args) => tls_ceiling(&args),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---- workloads ---------------------------------------------------------------

fn logins(a: &Logins) -> io::Result<Value> {
    at_least_one_worker(a.workers)?;
    let run_for = Duration::try_from_secs_f64(a.seconds).map_err(io::Error::other)?;
    let (results, wall, cpu) = fan_out(a.workers, |_, release| {
        release.wait();
        let deadline = Instant::now() + run_for;
        let (mut done, mut errors, mut first_error) = (0u64, 0u64, None);
        while Instant::now() < deadline {
            match login_once(a.port, &a.user, &a.password) {
                Ok(()) => done += 1,
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        (done, errors, first_error)
    });
    let done: u64 = results.iter().map(|r| r.0).sum();
    let errors: u64 = results.iter().map(|r| r.1).sum();
    let first_error = results.iter().find_map(|r| r.2.as_deref());
    Ok(json!({
        "logins": done, "errors": errors, "first_error": first_error,
        "wall": wall, "client_cpu": cpu,
    }))
}

fn login_once(port: u16, user: &str, password: &str) -> io::Result<()> {
    let mut c = Control::connect(port, LOGIN_TIMEOUT)?;
    c.login(user, password)?;
    c.cmd("QUIT")?;
    Ok(())
}

fn small(a: &Small) -> io::Result<Value> {
    at_least_one_worker(a.workers)?;
    let paths: Vec<String> = (0..a.files)
        .map(|j| format!("{}{j:05}", a.prefix))
        .collect();
    let (_, wall, cpu) = fan_out(a.workers, |i, release| {
        // As paths[i::N] in Python.
        let mine = paths.iter().skip(i).step_by(a.workers);
        if let Err(e) = small_worker(a, mine, release) {
            // Fatal, as in client.py; the others may be waiting at the barrier.
            exit_on_failure(format_args!("small-file worker {i}: {e}"));
        }
    });
    Ok(json!({"files": a.files, "wall": wall, "client_cpu": cpu}))
}

fn small_worker<'a>(
    a: &Small,
    paths: impl Iterator<Item = &'a String>,
    release: &Release,
) -> io::Result<()> {
    let mut c = Control::connect(a.port, TIMEOUT)?;
    c.login(ANONYMOUS.0, ANONYMOUS.1)?;
    c.expect("TYPE I", "200")?;
    let zeros = vec![0u8; a.size];
    let mut buf = vec![0u8; 64 << 10];
    release.wait();
    for path in paths {
        let mut data = c.passive(TIMEOUT)?; // one data connection per file
        let command = match a.verb {
            Verb::Retr => format!("RETR {path}"),
            Verb::Stor => format!("STOR {path}"),
        };
        c.expect(&command, "1")?;
        match a.verb {
            Verb::Retr => {
                let size = a.size as u64;
                expect_size(drain(&mut data, &mut buf, size)?, size, &command)?;
            }
            Verb::Stor => data.write_all(&zeros)?,
        }
        drop(data); // EOF ends an upload; the server may wait for it to answer
        c.expect_reply(&command, "2")?;
    }
    c.quit();
    Ok(())
}

fn ftps_retr(a: &FtpsRetr) -> io::Result<Value> {
    let config = client_config(&a.ca)?;
    let mut plain = Control::connect(a.port, TIMEOUT)?;
    plain.expect("AUTH TLS", "234")?;
    let tls = ClientConnection::new(config.clone(), server_name()).map_err(io::Error::other)?;
    let mut c = Control::new(StreamOwned::new(tls, plain.into_inner()?));
    // Reading the login's replies also takes in the session tickets the
    // server sends after the handshake, which the data connection offers.
    c.login(&a.user, &a.password)?;
    c.expect("PBSZ 0", "200")?;
    c.expect("PROT P", "200")?;
    c.expect("TYPE I", "200")?;
    let raw = c.passive(TIMEOUT)?;
    let mut buf = vec![0u8; BUF];
    let pause = |what: &str| -> io::Result<()> {
        if a.wait_go {
            eprintln!("{what}");
            io::stdin().read_line(&mut String::new())?;
        }
        Ok(())
    };
    pause("ready")?;
    let (cpu0, t0) = (cpu(UsageWho::RUSAGE_SELF), Instant::now());
    let retr = format!("RETR {}", a.path);
    c.expect(&retr, "1")?;
    // The same config holds the control connection's tickets, so this
    // handshake offers its session: aioftpd, vsftpd and ProFTPD refuse a
    // data connection that does not resume it.
    let tls = ClientConnection::new(config, server_name()).map_err(io::Error::other)?;
    let mut data = StreamOwned::new(tls, BigReads::new(raw));
    let n = drain(&mut data, &mut buf, a.size).map_err(|e| context(e, format!("FTPS {retr}")))?;
    let info = TlsInfo::of(&data.conn);
    drop(data); // closed before the 226, as client.py did
    c.expect_reply(&retr, "2")?;
    let (wall, client_cpu) = (
        t0.elapsed().as_secs_f64(),
        cpu(UsageWho::RUSAGE_SELF) - cpu0,
    );
    pause("done")?;
    c.quit();
    expect_size(n, a.size, &format!("FTPS {retr}"))?;
    Ok(json!({
        "bytes": n, "wall": wall, "client_cpu": client_cpu,
        "version": info.version, "cipher": info.cipher, "resumed": info.resumed,
    }))
}

fn tls_ceiling(a: &TlsCeiling) -> io::Result<Value> {
    let key = PrivateKeyDer::from_pem_file(&a.key)
        .map_err(|e| context(io::Error::other(e), a.key.display()))?;
    let server =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(certificates(&a.cert)?, key)
            .map_err(io::Error::other)?;
    let client = client_config(&a.cert)?;
    let size = a.size;
    let listener = TcpListener::bind((HOST, 0))?;
    let port = listener.local_addr()?.port();
    let sender = thread::spawn(move || send_from_memory(&listener, Arc::new(server), size));
    let mut buf = vec![0u8; BUF];
    let raw = connect(port, TIMEOUT)?;
    let (cpu0, t0) = (cpu(UsageWho::RUSAGE_THREAD), Instant::now());
    let tls = ClientConnection::new(client, server_name()).map_err(io::Error::other)?;
    let mut data = StreamOwned::new(tls, BigReads::new(raw));
    let n = drain(&mut data, &mut buf, size)?;
    let (wall, client_cpu) = (
        t0.elapsed().as_secs_f64(),
        cpu(UsageWho::RUSAGE_THREAD) - cpu0,
    );
    let info = TlsInfo::of(&data.conn);
    drop(data);
    sender
        .join()
        .map_err(|_| io::Error::other("the sender thread panicked"))??;
    expect_size(n, size, "TLS ceiling")?;
    Ok(json!({"bytes": n, "wall": wall, "client_cpu": client_cpu, "cipher": info.cipher}))
}

/// Writes `size` bytes from one buffer to the first connection, then
/// close_notify, as the FTP servers end a download.
fn send_from_memory(
    listener: &TcpListener,
    config: Arc<ServerConfig>,
    size: u64,
) -> io::Result<()> {
    let (sock, _) = listener.accept()?;
    let tls = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(tls, sock);
    let block = vec![0u8; BUF];
    let mut left = size;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        stream.write_all(&block[..n])?;
        left -= n as u64;
    }
    stream.conn.send_close_notify();
    stream.flush()
}

// ---- the control connection --------------------------------------------------

/// One FTP control connection, plain or TLS: sends a command line, reads a
/// (multi-line) reply.
struct Control<S> {
    stream: S,
    buf: Vec<u8>,
}

impl Control<TcpStream> {
    /// Connects and reads the 220 greeting.
    fn connect(port: u16, timeout: Duration) -> io::Result<Self> {
        let mut c = Control::new(connect(port, timeout)?);
        c.expect_reply("greeting", "220")?;
        Ok(c)
    }

    /// The socket, for the TLS handshake after `AUTH TLS`.
    fn into_inner(self) -> io::Result<TcpStream> {
        if !self.buf.is_empty() {
            return Err(io::Error::other("the server sent more after 234"));
        }
        Ok(self.stream)
    }
}

impl<S: Read + Write> Control<S> {
    fn new(stream: S) -> Self {
        Control {
            stream,
            buf: Vec::new(),
        }
    }

    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=scanned + i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            scanned = self.buf.len();
            if scanned > MAX_LINE {
                return Err(io::Error::other("reply line too long"));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "control connection closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// RFC 959 §4.2: a multi-line reply starts with "code-" and ends with a
    /// line starting "code ". Returns it as one line: the code and the last
    /// line's text.
    fn reply(&mut self) -> io::Result<String> {
        let first = self.line()?;
        if first.get(3) != Some(&b'-') {
            return Ok(latin1(&first));
        }
        loop {
            let line = self.line()?;
            if line.len() >= 4 && line[..3] == first[..3] && line[3] == b' ' {
                return Ok(format!("{} {}", latin1(&first[..3]), latin1(&line[4..])));
            }
        }
    }

    fn cmd(&mut self, line: &str) -> io::Result<String> {
        self.stream.write_all(format!("{line}\r\n").as_bytes())?;
        self.stream.flush()?;
        self.reply()
    }

    /// Sends `line`; its reply must start with `code`.
    fn expect(&mut self, line: &str, code: &str) -> io::Result<String> {
        let reply = self.cmd(line)?;
        expect_code(line, code, reply)
    }

    /// Reads a reply to `what`, which must start with `code`.
    fn expect_reply(&mut self, what: &str, code: &str) -> io::Result<String> {
        let reply = self.reply()?;
        expect_code(what, code, reply)
    }

    fn login(&mut self, user: &str, password: &str) -> io::Result<()> {
        let mut r = self.cmd(&format!("USER {user}"))?;
        if r.starts_with("331") {
            r = self.cmd(&format!("PASS {password}"))?;
        }
        if !r.starts_with("230") {
            return Err(io::Error::other(format!("login as {user} failed: {r:?}")));
        }
        Ok(())
    }

    /// EPSV (RFC 2428), else PASV; returns the connected data socket.
    fn passive(&mut self, timeout: Duration) -> io::Result<TcpStream> {
        let r = self.cmd("EPSV")?;
        let port = if r.starts_with("229") {
            epsv_port(&r)
        } else {
            let r = self.expect("PASV", "227")?;
            pasv_port(&r)
        };
        connect(
            port.ok_or_else(|| io::Error::other(format!("no port in {r:?}")))?,
            timeout,
        )
    }

    /// QUIT, ignoring a server that has already gone, as client.py did.
    fn quit(mut self) {
        let _ = self.cmd("QUIT");
    }
}

fn expect_code(what: &str, code: &str, reply: String) -> io::Result<String> {
    if reply.starts_with(code) {
        Ok(reply)
    } else {
        Err(io::Error::other(format!(
            "{what}: expected {code}, got {reply:?}"
        )))
    }
}

/// "229 Entering Extended Passive Mode (|||port|)"
fn epsv_port(reply: &str) -> Option<u16> {
    let (_, rest) = reply.split_once('(')?;
    rest.split('|').nth(3)?.trim().parse().ok()
}

/// "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)"; the address is ignored
/// (the data connection goes to 127.0.0.1), as in client.py.
fn pasv_port(reply: &str) -> Option<u16> {
    let (_, rest) = reply.split_once('(')?;
    let mut nums = rest.split(')').next()?.split(',').skip(4);
    let p1: u8 = nums.next()?.trim().parse().ok()?;
    let p2: u8 = nums.next()?.trim().parse().ok()?;
    Some(u16::from(p1) << 8 | u16::from(p2))
}

/// Bytes as client.py decoded them: Latin-1, one char per byte.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn connect(port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let addr = SocketAddr::from((HOST, port));
    let sock = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| context(e, format!("connect to {addr}")))?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    Ok(sock)
}

// ---- data ----------------------------------------------------------------------

/// Reads `r` to EOF into `buf`, returning the byte count. A TLS stream that
/// ends without close_notify ends there if all `size` bytes arrived (a
/// truncation attack cannot shorten what is complete); short, it is an error.
fn drain(r: &mut impl Read, buf: &mut [u8], size: u64) -> io::Result<u64> {
    let mut total = 0;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && total == size => return Ok(total),
            Err(e) => return Err(context(e, format!("after {total} of {size} bytes"))),
        }
    }
}

/// A short or long download is a server bug, not a slow run: say so.
fn expect_size(got: u64, want: u64, what: &str) -> io::Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what}: got {got} bytes, expected {want}"
        )))
    }
}

/// A socket read through a large buffer. rustls reads TLS records 4 KiB at a
/// time (`read_tls`); straight from the socket that is four system calls per
/// 16 KiB record.
struct BigReads(BufReader<TcpStream>);

impl BigReads {
    fn new(sock: TcpStream) -> Self {
        BigReads(BufReader::with_capacity(256 << 10, sock))
    }
}

impl Read for BigReads {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for BigReads {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.get_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.get_mut().flush()
    }
}

// ---- TLS -----------------------------------------------------------------------

/// TLS 1.3 only, trusting only the certificate(s) in `ca`; session
/// resumption on (rustls' default in-memory cache, shared by every
/// connection made from this config).
fn client_config(ca: &Path) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots
            .add(cert)
            .map_err(|e| context(io::Error::other(e), ca.display()))?;
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .map_err(|e| context(io::Error::other(e), path.display()))
}

/// The certificate names 127.0.0.1 (an IP address: no SNI is sent).
fn server_name() -> ServerName<'static> {
    ServerName::from(IpAddr::V4(HOST))
}

struct TlsInfo {
    version: String,
    cipher: String,
    resumed: bool,
}

impl TlsInfo {
    fn of(conn: &ClientConnection) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            other => format!("{other:?}"),
        };
        // IANA's name, as OpenSSL (and so the Python client) gave it.
        let cipher = conn.negotiated_cipher_suite().map_or_else(
            || "none".to_owned(),
            |s| format!("{:?}", s.suite()).replacen("TLS13_", "TLS_", 1),
        );
        TlsInfo {
            version,
            cipher,
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        }
    }
}

// ---- workers, clocks, output -----------------------------------------------------

/// Releases the workers together; the clock and the client CPU count from
/// the release.
struct Release {
    barrier: Barrier,
    at: OnceLock<(Instant, f64)>,
}

impl Release {
    fn wait(&self) {
        // The leader is the last to arrive, and does not sleep: it marks the
        // moment while the others wake.
        if self.barrier.wait().is_leader() {
            let _ = self.at.set((Instant::now(), cpu(UsageWho::RUSAGE_SELF)));
        }
    }
}

/// Runs `work(i, release)` on `n` threads; each does its setup, then calls
/// `release.wait()`. Returns the results, the seconds from the release to
/// the last thread's end, and the process's CPU seconds over the same span.
fn fan_out<T: Send>(n: usize, work: impl Fn(usize, &Release) -> T + Sync) -> (Vec<T>, f64, f64) {
    let release = Release {
        barrier: Barrier::new(n + 1),
        at: OnceLock::new(),
    };
    let ended: Vec<(T, Instant)> = thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (work, release) = (&work, &release);
                s.spawn(move || (work(i, release), Instant::now()))
            })
            .collect();
        release.wait();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let cpu_end = cpu(UsageWho::RUSAGE_SELF);
    let (t0, cpu0) = *release.at.get().expect("the barrier has a leader");
    let t1 = ended.iter().map(|r| r.1).max().unwrap_or(t0);
    let results = ended.into_iter().map(|r| r.0).collect();
    (results, t1.duration_since(t0).as_secs_f64(), cpu_end - cpu0)
}

fn at_least_one_worker(workers: usize) -> io::Result<()> {
    match workers {
        0 => Err(io::Error::other("--workers must be at least 1")),
        _ => Ok(()),
    }
}

/// User + system CPU seconds of `who`.
fn cpu(who: UsageWho) -> f64 {
    // getrusage(2) fails only for an invalid `who`.
    let usage = getrusage(who).expect("getrusage");
    (usage.user_time().num_microseconds() + usage.system_time().num_microseconds()) as f64 / 1e6
}

/// Ends the process from a worker thread; only the first to fail reports.
fn exit_on_failure(what: impl Display) -> ! {
    static FIRST: Mutex<()> = Mutex::new(());
    let _first = FIRST.lock();
    eprintln!("loadgen: {what}");
    std::process::exit(1)
}

fn context(e: io::Error, what: impl Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
