//! What the daemon benchmarks share: starting the daemon binary, a minimal
//! control-connection client, connecting from a chosen loopback address, and
//! reading the daemon's memory.

#![allow(dead_code)] // each benchmark uses a different part

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The daemon to measure: `AIOFTPD=/path/to/aioftpd` measures another build
/// (an older one, for a before-and-after), else the one built with the bench.
pub fn daemon_binary() -> String {
    std::env::var("AIOFTPD").unwrap_or_else(|_| env!("CARGO_BIN_EXE_aioftpd").to_owned())
}

pub fn expect(reply: Option<(u16, String)>, code: u16) -> Result<(), String> {
    match reply {
        Some((got, _)) if got == code => Ok(()),
        other => Err(format!("expected {code}, got {other:?}")),
    }
}

pub struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Control {
    pub fn new(stream: TcpStream) -> Self {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        let writer = stream.try_clone().expect("clone");
        Control {
            reader: BufReader::new(stream),
            writer,
        }
    }

    pub fn greeting(&mut self) -> Option<(u16, String)> {
        self.reply()
    }

    pub fn cmd(&mut self, line: &str) -> Option<(u16, String)> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .ok()?;
        self.reply()
    }

    pub fn raw(&mut self, bytes: &[u8]) -> Option<(u16, String)> {
        self.writer.write_all(bytes).ok()?;
        self.writer.write_all(b"\r\n").ok()?;
        self.reply()
    }

    /// Reads one reply (multi-line aware enough for this client).
    pub fn reply(&mut self) -> Option<(u16, String)> {
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

    pub fn pasv(&mut self) -> Result<TcpStream, String> {
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

pub fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().expect("local address");
    socket.bind(&local.into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

pub fn start(config: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(daemon_binary())
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

pub fn rss_kib(pid: u32) -> u64 {
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
