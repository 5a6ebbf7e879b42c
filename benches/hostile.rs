//! A 30-second hostile mix against the real daemon: connection floods that
//! never speak, slowloris senders, bounce attempts, over-long lines and
//! junk, while a well-behaved client on another address keeps transferring
//! and checking its bytes. Prints what the good client got done and the
//! daemon's memory over the run (VmRSS from /proc).
//!
//! `cargo bench --bench hostile` (it sends traffic to 127.0.0.0/8 only and
//! stops by itself). `cargo test --all-targets` builds it and skips the run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(30);
const FILE_SIZE: usize = 1 << 20;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("hostile: skipped (run with `cargo bench --bench hostile`)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    let payload: Vec<u8> = (0..FILE_SIZE).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("file.bin"), &payload).expect("write");
    let config = dir.path().join("aioftpd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nmax_connections_per_ip = 64\nlogin_timeout = \"10s\"\n\
             [login]\nfailure_delay = \"0s\"\n\
             [[users]]\nbase_path = \"{}\"\npermissions = [{{ path = \"/\", writable = true }}]\n",
            root.display()
        ),
    )
    .expect("config");
    let (mut daemon, addr) = start(&config);
    let pid = daemon.id();
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();

    // 1. A flood: connections that never send a byte, reopened as they are cut.
    for _ in 0..4 {
        let stop = stop.clone();
        attackers.push(std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(s) = connect_from("127.0.0.1", addr) {
                    held.push(s);
                }
                if held.len() > 100 {
                    held.remove(0);
                }
            }
        }));
    }
    // 2. Slowloris: one byte a second on 20 connections.
    for _ in 0..20 {
        let stop = stop.clone();
        attackers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = connect_from("127.0.0.1", addr) else {
                    continue;
                };
                for byte in b"USER slowloris\r\n".iter().cycle() {
                    if stop.load(Ordering::Relaxed) || s.write_all(&[*byte]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }));
    }
    // 3. Bounce attempts, junk and over-long lines, as fast as replies come.
    for _ in 0..4 {
        let stop = stop.clone();
        attackers.push(std::thread::spawn(move || {
            let junk = vec![b'A'; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                let Ok(s) = connect_from("127.0.0.1", addr) else {
                    continue;
                };
                let mut c = Control::new(s);
                if c.greeting().is_none()
                    || c.cmd("USER anonymous").is_none()
                    || c.cmd("PASS x").is_none()
                {
                    continue;
                }
                for _ in 0..50 {
                    if c.cmd("PORT 127,0,0,3,31,144").is_none()
                        || c.cmd("EPRT |1|10.0.0.1|22|").is_none()
                        || c.cmd("\u{1}\u{2}garbage \u{ff}").is_none()
                        || c.raw(&junk).is_none()
                    {
                        break;
                    }
                }
            }
        }));
    }

    // The well-behaved client, from another address.
    let good_ok = Arc::new(AtomicU64::new(0));
    let good_failed = Arc::new(AtomicU64::new(0));
    let good = {
        let (stop, ok, failed, payload) = (
            stop.clone(),
            good_ok.clone(),
            good_failed.clone(),
            payload.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match good_round(addr, &payload) {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(err) => {
                        eprintln!("good client: {err}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };

    let started = Instant::now();
    let (mut rss_first, mut rss_max, mut rss_last) = (0, 0, 0);
    while started.elapsed() < RUN {
        std::thread::sleep(Duration::from_secs(1));
        let rss = rss_kib(pid);
        if rss_first == 0 {
            rss_first = rss;
        }
        rss_max = rss_max.max(rss);
        rss_last = rss;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = good.join();
    for attacker in attackers {
        let _ = attacker.join();
    }
    let alive = daemon.try_wait().expect("try_wait").is_none();
    let _ = daemon.kill();
    let _ = daemon.wait();

    println!(
        "hostile mix: {} s on loopback, {} CPUs",
        RUN.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| good client rounds (STOR + RETR of 1 MiB, bytes checked) | {} ok, {} failed |",
        good_ok.load(Ordering::Relaxed),
        good_failed.load(Ordering::Relaxed)
    );
    println!("| daemon alive at the end | {alive} |");
    println!(
        "| daemon VmRSS after 1 s / max / at the end | {rss_first} / {rss_max} / {rss_last} KiB |"
    );
}

/// One round of the well-behaved client: log in from 127.0.0.2, upload, download, compare.
fn good_round(addr: SocketAddr, payload: &[u8]) -> Result<(), String> {
    let s = connect_from("127.0.0.2", addr).map_err(|e| e.to_string())?;
    let mut c = Control::new(s);
    c.greeting().ok_or("no greeting")?;
    expect(c.cmd("USER anonymous"), 331)?;
    expect(c.cmd("PASS good@example.com"), 230)?;
    expect(c.cmd("TYPE I"), 200)?;
    let mut data = c.pasv()?;
    expect(c.cmd("STOR up.bin"), 150)?;
    data.write_all(payload).map_err(|e| e.to_string())?;
    drop(data);
    expect(c.reply(), 226)?;
    let mut data = c.pasv()?;
    expect(c.cmd("RETR up.bin"), 150)?;
    let mut back = Vec::new();
    data.read_to_end(&mut back).map_err(|e| e.to_string())?;
    expect(c.reply(), 226)?;
    if back != payload {
        return Err("bytes differ".into());
    }
    let _ = c.cmd("QUIT");
    Ok(())
}

fn expect(reply: Option<(u16, String)>, code: u16) -> Result<(), String> {
    match reply {
        Some((got, _)) if got == code => Ok(()),
        other => Err(format!("expected {code}, got {other:?}")),
    }
}

struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Control {
    fn new(stream: TcpStream) -> Self {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        let writer = stream.try_clone().expect("clone");
        Control {
            reader: BufReader::new(stream),
            writer,
        }
    }

    fn greeting(&mut self) -> Option<(u16, String)> {
        self.reply()
    }

    fn cmd(&mut self, line: &str) -> Option<(u16, String)> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .ok()?;
        self.reply()
    }

    fn raw(&mut self, bytes: &[u8]) -> Option<(u16, String)> {
        self.writer.write_all(bytes).ok()?;
        self.writer.write_all(b"\r\n").ok()?;
        self.reply()
    }

    /// Reads one reply (multi-line aware enough for this client).
    fn reply(&mut self) -> Option<(u16, String)> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let code: u16 = line.get(..3)?.parse().ok()?;
            if line.as_bytes().get(3) == Some(&b' ') {
                return Some((code, line.trim_end().to_owned()));
            }
        }
    }

    fn pasv(&mut self) -> Result<TcpStream, String> {
        let (code, text) = self.cmd("EPSV").ok_or("no EPSV reply")?;
        if code != 229 {
            return Err(format!("EPSV: {text}"));
        }
        let port: u16 = text
            .split("|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .and_then(|p| p.parse().ok())
            .ok_or("EPSV reply without port")?;
        connect_from(
            "127.0.0.2",
            SocketAddr::new(
                self.writer.peer_addr().map_err(|e| e.to_string())?.ip(),
                port,
            ),
        )
        .map_err(|e| e.to_string())
    }
}

fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().expect("local address");
    socket.bind(&local.into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

fn start(config: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aioftpd"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aioftpd");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("aioftpd exited").expect("log line");
        if let Some(at) = line.find("addr=") {
            break line[at + 5..]
                .split_whitespace()
                .next()
                .expect("addr")
                .parse()
                .expect("address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
