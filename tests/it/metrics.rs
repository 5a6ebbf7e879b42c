//! The metrics endpoint of the daemon binary, scraped with curl while it
//! serves: counters move by what the clients did, Prometheus' own
//! `promtool check metrics` accepts the text, `/healthz` fails once the
//! daemon drains.

use std::collections::HashMap;
use std::io::Read;
use std::process::Command;

use crate::support::daemon::Daemon;
use crate::support::{default_config, free_ports, have_tool, run_ok, RawClient, PASSWORD};

/// `curl` of `url`: the status code and body.
fn get(url: &str) -> (u16, String) {
    let out = run_ok(Command::new("curl").args([
        "--silent",
        "--max-time",
        "20",
        "--write-out",
        "\n%{http_code}",
        url,
    ]));
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// Every sample of a scrape, by its name and labels as written.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}

#[test]
fn counters_move_by_what_clients_do_and_promtool_accepts_the_scrape() {
    let root = tempfile::tempdir().unwrap();
    for dir in ["pub", "readonly", "secret"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let (metrics_port, _) = free_ports(24400, 1);
    let (first, last) = free_ports(24410, 4);
    let config = format!(
        "{}\n[passive]\nports = \"{first}-{last}\"\n[login]\nfailure_delay = \"0s\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
        default_config(root.path())
    );
    let path = root.path().join("aioftpd.toml");
    std::fs::write(&path, config).unwrap();
    let mut daemon = Daemon::start(root.path(), &["--config", path.to_str().unwrap()]);
    daemon.wait_for("metrics listening");
    let url = format!("http://127.0.0.1:{metrics_port}");
    let before = samples(&get(&format!("{url}/metrics")).1);

    let mut bad = RawClient::connect(daemon.addr);
    assert_eq!(bad.cmd("USER alice").code, 331);
    assert_eq!(bad.cmd("PASS wrong").code, 530);
    let mut c = RawClient::connect(daemon.addr);
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("TYPE I").code, 200);
    assert_eq!(c.upload("STOR up.bin", &[5u8; 10_000]).code, 226);
    assert_eq!(c.fetch("RETR up.bin").0.code, 226);
    assert_eq!(c.fetch("RETR up.bin").0.code, 226);
    // A passive port held open for the scrape to see.
    let held = c.pasv();

    let (status, text) = get(&format!("{url}/metrics"));
    assert_eq!(status, 200);
    let after = samples(&text);
    let delta = |name: &str| value(&after, name) - value(&before, name);
    assert_eq!(delta("aioftpd_logins_total{result=\"ok\"}"), 1.0);
    assert_eq!(delta("aioftpd_logins_total{result=\"failed\"}"), 1.0);
    assert_eq!(
        delta("aioftpd_transfers_total{direction=\"upload\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        delta("aioftpd_transfers_total{direction=\"download\",result=\"ok\"}"),
        2.0
    );
    assert_eq!(
        delta("aioftpd_transfer_bytes_total{direction=\"upload\"}"),
        10_000.0
    );
    assert_eq!(
        delta("aioftpd_transfer_bytes_total{direction=\"download\"}"),
        20_000.0
    );
    assert_eq!(value(&after, "aioftpd_sessions{tls=\"no\"}"), 2.0);
    assert_eq!(
        value(&after, "aioftpd_passive_ports{state=\"leased\"}"),
        1.0
    );
    assert_eq!(value(&after, "aioftpd_passive_ports{state=\"free\"}"), 3.0);
    assert_eq!(
        delta("aioftpd_replies_total{class=\"5xx\"}"),
        1.0,
        "the 530"
    );
    assert!(delta("aioftpd_replies_total{class=\"2xx\"}") >= 9.0);
    assert_eq!(delta("aioftpd_password_checks_total"), 2.0);
    assert_eq!(
        value(&after, "aioftpd_password_queue"),
        0.0,
        "nobody waits now"
    );
    assert!(after.contains_key("aioftpd_password_queue"));
    assert!(delta("aioftpd_storage_operation_seconds_count{operation=\"open_write\"}") >= 1.0);
    drop(held);

    if have_tool("promtool", &["--version"]) {
        let file = root.path().join("scrape.txt");
        std::fs::write(&file, &text).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", file.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Draining: /healthz fails while a transfer still runs.
    assert_eq!(get(&format!("{url}/healthz")), (200, "ok\n".to_owned()));
    std::fs::write(root.path().join("big.bin"), vec![0u8; 64 << 20]).unwrap();
    let mut data = c.pasv();
    assert_eq!(c.cmd("RETR big.bin").code, 150);
    let mut first = [0u8; 1];
    data.read_exact(&mut first).unwrap();
    daemon.signal("TERM");
    daemon.wait_for("shutting down");
    assert_eq!(
        get(&format!("{url}/healthz")),
        (503, "draining\n".to_owned())
    );
    drop(data);
}
