//! A 30-second hostile mix against the real daemon: connection floods that
//! never speak, slowloris senders, bounce attempts, over-long lines and
//! junk, password guessing from 200 addresses, while a well-behaved client
//! on another address keeps logging in with its password, transferring and
//! checking its bytes. Prints what the good client got done, how long its
//! logins took, and the daemon's memory over the run (VmRSS from /proc).
//!
//! `cargo bench --bench hostile` (it sends traffic to 127.0.0.0/8 only and
//! stops by itself). `cargo test --all-targets` builds it and skips the run.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{connect_from, expect, rss_kib, start, Control};

const RUN: Duration = Duration::from_secs(30);
const GOOD_PASSWORD: &str = "the good client's password";
/// Addresses the password guessers rotate through, each within its own budget.
const GUESSING_ADDRESSES: u8 = 200;
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
             [[users]]\nbase_path = \"{root}\"\npermissions = [{{ path = \"/\", writable = true }}]\n\
             [[users]]\nlogin = \"alice\"\npassword = \"{hash}\"\nbase_path = \"{root}\"\n\
             permissions = [{{ path = \"/\", writable = true }}]\n",
            root = root.display(),
            hash = aioftpd::auth::hash_password(GOOD_PASSWORD).expect("hash"),
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

    // 4. Password guessing against alice from many addresses, each staying
    //    within its own failure budget until it is blocked.
    for worker in 0..4u8 {
        let stop = stop.clone();
        attackers.push(std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let host = 1 + (u32::from(worker) * 50 + n) % u32::from(GUESSING_ADDRESSES);
                let Ok(s) = connect_from(&format!("127.0.3.{host}"), addr) else {
                    continue;
                };
                let mut c = Control::new(s);
                if c.greeting().is_some() && c.cmd("USER alice").is_some() {
                    let _ = c.cmd(&format!("PASS guess-{n}"));
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
            let mut logins = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match good_round(addr, &payload) {
                    Ok(login) => {
                        logins.push(login);
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(err) => {
                        eprintln!("good client: {err}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            logins
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
    let mut logins = good.join().unwrap_or_default();
    logins.sort();
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
    if !logins.is_empty() {
        println!(
            "| good client's password login (USER to 230), median / max | {:.0} / {:.0} ms |",
            logins[logins.len() / 2].as_secs_f64() * 1000.0,
            logins[logins.len() - 1].as_secs_f64() * 1000.0
        );
    }
    println!("| daemon alive at the end | {alive} |");
    println!(
        "| daemon VmRSS after 1 s / max / at the end | {rss_first} / {rss_max} / {rss_last} KiB |"
    );
}

/// One round of the well-behaved client: log in as alice from 127.0.0.2,
/// upload, download, compare; returns how long the login took.
fn good_round(addr: SocketAddr, payload: &[u8]) -> Result<Duration, String> {
    let s = connect_from("127.0.0.2", addr).map_err(|e| e.to_string())?;
    let mut c = Control::new(s);
    c.greeting().ok_or("no greeting")?;
    let asked = Instant::now();
    expect(c.cmd("USER alice"), 331)?;
    expect(c.cmd(&format!("PASS {GOOD_PASSWORD}")), 230)?;
    let login = asked.elapsed();
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
    Ok(login)
}
