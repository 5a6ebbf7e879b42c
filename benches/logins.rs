//! Password logins under attack, against the real daemon (failure_delay 0,
//! so nothing hides the checks' own cost):
//! - timing: how long a wrong password takes for a user with aioftpd's own
//!   argon2 parameters, for one with an imported m=65536,t=3,p=4 hash, and
//!   for an unknown login (medians of 30 tries each, in turns);
//! - memory: the daemon's VmRSS idle after those tries, right after 64
//!   wrong passwords sent at once from 64 addresses, and 5 s later;
//! - bursts: 1, 64 and 500 logins of one user at once (each from its own
//!   address, threads released together), with the right password and with
//!   a wrong one, each on a fresh daemon with the default config: how long
//!   the burst took, VmRSS idle, with the sessions logged in, and 5 s after
//!   they all quit.
//!
//! `cargo bench --bench logins`; `AIOFTPD=/path/to/aioftpd cargo bench
//! --bench logins` measures another build. Loopback only; stops by itself.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use support::{connect_from, rss_kib, start, Control};

const TRIES: usize = 30;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("logins: skipped (run with `cargo bench --bench logins`)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = aioftpd::auth::hash_password("pw").expect("hash");
    let salt =
        argon2::password_hash::SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let imported = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(65536, 3, 4, None).expect("params"),
    )
    .hash_password(b"pw", &salt)
    .expect("hash")
    .to_string();
    let config = dir.path().join("aioftpd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\
             [login]\nfailure_delay = \"0s\"\nmax_failures_per_ip = 1000\n\
             [[users]]\nlogin = \"alice\"\npassword = \"{ours}\"\nbase_path = \"{root}\"\n\
             [[users]]\nlogin = \"imported\"\npassword = \"{imported}\"\nbase_path = \"{root}\"\n",
            root = dir.path().display(),
        ),
    )
    .expect("config");
    let (mut daemon, addr) = start(&config);
    let pid = daemon.id();

    let wrong = |login: &str| -> Duration {
        let s = connect_from("127.0.0.1", addr).expect("connect");
        let mut c = Control::new(s);
        c.greeting().expect("greeting");
        c.cmd(&format!("USER {login}")).expect("331");
        let asked = Instant::now();
        c.cmd("PASS wrong").expect("530");
        asked.elapsed()
    };
    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..TRIES {
        for (i, login) in ["alice", "imported", "nobody"].iter().enumerate() {
            times[i].push(wrong(login));
        }
    }
    let median = |t: &mut Vec<Duration>| {
        t.sort();
        t[t.len() / 2].as_secs_f64() * 1000.0
    };
    let [a, i, n] = &mut times;
    let (a, i, n) = (median(a), median(i), median(n));

    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(pid);
    let burst: Vec<_> = (1..=64u8)
        .map(|host| {
            std::thread::spawn(move || {
                let s = connect_from(&format!("127.0.4.{host}"), addr).expect("connect");
                let mut c = Control::new(s);
                c.greeting().expect("greeting");
                c.cmd("USER alice").expect("331");
                c.cmd("PASS wrong").expect("530");
            })
        })
        .collect();
    for b in burst {
        b.join().expect("burst client");
    }
    let after = rss_kib(pid);
    std::thread::sleep(Duration::from_secs(5));
    let later = rss_kib(pid);
    let _ = daemon.kill();
    let _ = daemon.wait();

    println!("password logins, failure_delay 0, loopback");
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| wrong password, aioftpd's parameters (median of {TRIES}) | {a:.1} ms |");
    println!("| wrong password, imported m=65536,t=3,p=4 (median of {TRIES}) | {i:.1} ms |");
    println!("| unknown login (median of {TRIES}) | {n:.1} ms |");
    println!("| VmRSS idle / right after 64 wrong passwords at once / 5 s later | {idle} / {after} / {later} KiB |");

    println!();
    println!("bursts of logins of one user at once, default config (failure_delay 1 s, credential cache on)");
    println!();
    println!("| logins | password | burst took | VmRSS idle | logged in | 5 s after they quit |");
    println!("|---|---|---|---|---|---|");
    for clients in [1, 64, 500] {
        for right in [true, false] {
            let b = login_burst(&ours, clients, right);
            println!(
                "| {clients} | {} | {:.0} ms | {} KiB | {} KiB | {} KiB |",
                if right { "right" } else { "wrong" },
                b.took.as_secs_f64() * 1000.0,
                b.idle,
                b.held,
                b.later
            );
        }
    }
}

struct Burst {
    took: Duration,
    idle: u64,
    held: u64,
    later: u64,
}

/// `clients` logins as `alice` at once on a fresh daemon, each from its own
/// address, with the right password or a wrong one; the sessions stay open
/// until all have their reply, then quit.
fn login_burst(hash: &str, clients: usize, right: bool) -> Burst {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("aioftpd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nmax_connections = 1000\n\
             [[users]]\nlogin = \"alice\"\npassword = \"{hash}\"\nbase_path = \"{root}\"\n",
            root = dir.path().display(),
        ),
    )
    .expect("config");
    let (mut daemon, addr) = start(&config);
    let pid = daemon.id();
    std::thread::sleep(Duration::from_secs(1));
    let idle = rss_kib(pid);
    let go = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let (done_tx, done) = std::sync::mpsc::channel();
    let quit = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let password = if right { "pw" } else { "wrong" };
    let expected = if right { 230 } else { 530 };
    let workers: Vec<_> = (0..clients)
        .map(|n| {
            let (go, quit, done_tx) = (go.clone(), quit.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let from = format!("127.5.{}.{}", n / 250, n % 250 + 1);
                let s = connect_from(&from, addr).expect("connect");
                let mut c = Control::new(s);
                c.greeting().expect("greeting");
                c.cmd("USER alice").expect("331");
                go.wait();
                let reply = c.cmd(&format!("PASS {password}")).expect("reply");
                assert_eq!(reply.0, expected, "{}", reply.1);
                done_tx.send(()).expect("done");
                quit.wait();
                let _ = c.cmd("QUIT");
            })
        })
        .collect();
    go.wait();
    let started = Instant::now();
    for _ in 0..clients {
        done.recv().expect("a login's reply");
    }
    let took = started.elapsed();
    let held = rss_kib(pid);
    quit.wait();
    for w in workers {
        w.join().expect("login client");
    }
    std::thread::sleep(Duration::from_secs(5));
    let later = rss_kib(pid);
    let _ = daemon.kill();
    let _ = daemon.wait();
    Burst {
        took,
        idle,
        held,
        later,
    }
}
