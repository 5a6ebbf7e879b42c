//! What the daemon logs, read as an admin's tools read it: fail2ban's
//! filter on real output at every level and format, the priorities journald
//! takes from the lines, and the audit events at info.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use crate::support::daemon::{Daemon, BIN};
use crate::support::{
    default_config, fail2ban_addresses, free_ports, have_tool, run_ok, RawClient, IO_TIMEOUT,
    PASSWORD,
};

/// The daemon on the default test config, with `args` added.
fn daemon(args: &[&str], env: &[(&str, &str)]) -> (Daemon, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    for dir in ["pub", "readonly", "secret"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let path = root.path().join("aioftpd.toml");
    let config = format!(
        "{}\n[login]\nfailure_delay = \"0s\"\n",
        default_config(root.path())
    );
    std::fs::write(&path, config).unwrap();
    let mut all = vec!["--config", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let daemon = Daemon::start_with_env(root.path(), &all, env);
    (daemon, root)
}

/// One wrong password from this host (127.0.0.1), with a login that looks
/// like the rest of a failure line.
fn fail_once(daemon: &Daemon) {
    let mut c = RawClient::connect(daemon.addr);
    assert_eq!(c.cmd("USER x\" address=10.66.66.66 login=\"y").code, 331);
    assert_eq!(c.cmd("PASS wrong").code, 530);
    assert_eq!(c.cmd("QUIT").code, 221);
}

/// The addresses the packaged filter finds in `lines`.
fn banned(lines: &[String], dir: &Path) -> Vec<String> {
    let log = dir.join("daemon.log");
    std::fs::write(&log, lines.join("\n")).unwrap();
    fail2ban_addresses(&log, "")
}

#[test]
fn fail2ban_finds_each_failed_login_at_every_level_and_in_both_formats() {
    if !have_tool("fail2ban-regex", &["--version"]) {
        return;
    }
    // Below info the `listening` line the test waits for is hidden, so the
    // supervisor alone stays at info; the sessions log at the level named.
    for level in ["warn", "warning", "notice", "info", "debug", "trace"] {
        for format in ["text", "json"] {
            let filter = format!("{level},aioftpd::supervisor=info");
            let (daemon, root) = daemon(&["--log-level", &filter, "--log-format", format], &[]);
            fail_once(&daemon);
            let lines = daemon.stop();
            assert_eq!(
                banned(&lines, root.path()),
                ["127.0.0.1"],
                "--log-level {level} --log-format {format}:\n{}",
                lines.join("\n")
            );
        }
    }
}

#[test]
fn under_journald_each_line_carries_its_priority() {
    for format in ["text", "json"] {
        let env = [("JOURNAL_STREAM", "8:12345")];
        let (daemon, _root) = daemon(&["--log-format", format], &env);
        fail_once(&daemon);
        let lines = daemon.stop();
        let failed = lines
            .iter()
            .find(|l| l.contains("login failed"))
            .expect("a failure line");
        assert!(failed.starts_with("<4>"), "{format}: {failed}");
        let connected = lines.iter().find(|l| l.contains("connected")).unwrap();
        assert!(connected.starts_with("<6>"), "{format}: {connected}");
        assert!(
            lines.iter().all(|l| l.starts_with('<')),
            "{format}: every line has a priority:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn audit_events_are_logged_at_info_with_their_user_as_fields() {
    let (daemon, root) = daemon(&["--log-format", "json"], &[]);
    std::fs::write(root.path().join("a.txt"), b"a").unwrap();
    let mut c = RawClient::connect(daemon.addr);
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("MKD d").code, 257);
    assert_eq!(c.upload("STOR d/up.txt", b"up").code, 226);
    assert_eq!(c.fetch("RETR a.txt").0.code, 226);
    assert_eq!(c.cmd("RNFR d/up.txt").code, 350);
    assert_eq!(c.cmd("RNTO d/moved.txt").code, 250);
    assert_eq!(c.cmd("DELE d/moved.txt").code, 250);
    assert_eq!(c.cmd("RMD d").code, 250);
    assert_eq!(c.cmd("QUIT").code, 221);
    let mut events = Vec::new();
    for line in daemon.stop() {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["span"]["name"] == "session" {
            assert_eq!(event["level"], "INFO", "{line}");
            events.push(event["fields"].clone());
        }
    }
    let find = |message: &str| {
        events
            .iter()
            .find(|e| e["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in {events:#?}"))
    };
    find("connected");
    assert_eq!(find("login ok")["address"], "127.0.0.1");
    for message in [
        "login ok",
        "directory created",
        "renamed",
        "deleted",
        "directory removed",
        "transfer",
        "logout",
    ] {
        assert_eq!(find(message)["user"], "alice", "{message}");
    }
    assert_eq!(find("directory created")["path"], "/d");
    assert_eq!(find("renamed")["to"], "/d/moved.txt");
    assert_eq!(find("deleted")["path"], "/d/moved.txt");
    let transfers: Vec<_> = events
        .iter()
        .filter(|e| e["message"] == "transfer")
        .map(|e| (e["verb"].as_str().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    assert_eq!(transfers, [("STOR", "/d/up.txt"), ("RETR", "/a.txt")]);
    find("disconnected");
}

/// The packaged filter on the journal, as the packaged jail reads it: the
/// daemon's stderr goes to journald's stream (systemd-cat) and fail2ban's
/// systemd backend reads the entries back. `.ci/run` starts journald where
/// none runs.
#[test]
fn fail2ban_finds_each_failed_login_in_the_journal() {
    let python_systemd = ["-c", "import systemd.journal"];
    if !have_tool("fail2ban-regex", &["--version"])
        || !have_tool("systemd-cat", &["--version"])
        // Debian's fail2ban runs on the system's interpreter.
        || !have_tool("/usr/bin/python3", &python_systemd)
        || !have_tool("journalctl", &["--sync"])
    {
        return;
    }
    for format in ["text", "json"] {
        let root = tempfile::tempdir().unwrap();
        let (port, _) = free_ports(22_100, 1);
        let ident = format!("aioftpd-test-{}-{format}", std::process::id());
        // READY=1 on the notify socket says the daemon listens: its log
        // goes to the journal, so there is no line to wait for.
        let notify_path = root.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut child = Command::new("systemd-cat")
            .args(["-t", &ident, "--"])
            .arg(BIN)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                format,
            ])
            .arg("--root")
            .arg(root.path())
            .env("JOURNAL_STREAM", "0:0")
            .env("NOTIFY_SOCKET", &notify_path)
            .spawn()
            .unwrap();
        let mut message = [0; 512];
        loop {
            let len = notify.recv(&mut message).expect("READY=1 from the daemon");
            if String::from_utf8_lossy(&message[..len]).contains("READY=1") {
                break;
            }
        }
        let mut c = RawClient::connect(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(c.cmd("USER root").code, 331);
        assert_eq!(c.cmd("PASS wrong").code, 530);
        assert_eq!(c.cmd("QUIT").code, 221);
        run_ok(Command::new("kill").args(["-TERM", &child.id().to_string()]));
        assert!(child.wait().unwrap().success());
        // Returns once journald has stored everything written before it.
        run_ok(Command::new("journalctl").arg("--sync"));
        let options = format!("[journalmatch='SYSLOG_IDENTIFIER={ident}']");
        assert_eq!(
            fail2ban_addresses("systemd-journal", &options),
            ["127.0.0.1"],
            "{format}"
        );
    }
}

/// The lines of `path` once it has `count` of them (the daemon writes them
/// from a thread of its own, after the `226`); bounded.
fn lines_once(path: &Path, count: usize) -> Vec<String> {
    for _ in 0..2_000 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= count {
            assert_eq!(lines.len(), count, "{path:?}: {lines:#?}");
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("{path:?} never had {count} lines");
}

/// One xferlog(5) line, read as its documentation describes it: the
/// current time (five fields: weekday, month, day, time, year), then
/// transfer-time remote-host file-size filename transfer-type
/// special-action-flag direction access-mode username service-name
/// authentication-method authenticated-user-id completion-status.
#[derive(Debug, PartialEq, Eq)]
struct Xfer {
    host: String,
    size: u64,
    file: String,
    kind: String,
    direction: String,
    access: String,
    user: String,
    status: String,
}

fn parse_xferlog(line: &str) -> Xfer {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 18, "{line}");
    assert!(
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&f[0]),
        "{line}"
    );
    assert!(f[3].len() == 8 && f[3].matches(':').count() == 2, "{line}");
    assert!(f[4].parse::<u32>().unwrap() >= 2026, "{line}");
    f[5].parse::<u64>().expect("transfer-time in seconds");
    assert_eq!(
        (f[10], f[14], f[15], f[16]),
        ("_", "ftp", "0", "*"),
        "{line}"
    );
    Xfer {
        host: f[6].to_owned(),
        size: f[7].parse().unwrap(),
        file: f[8].to_owned(),
        kind: f[9].to_owned(),
        direction: f[11].to_owned(),
        access: f[12].to_owned(),
        user: f[13].to_owned(),
        status: f[17].to_owned(),
    }
}

fn logged_daemon(format: &str) -> (Daemon, tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    for dir in ["pub", "readonly", "secret"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let log = root.path().join("xferlog");
    let config = format!(
        "{}\n[transfer_log]\npath = \"{}\"\nformat = \"{format}\"\n",
        default_config(root.path()),
        log.display()
    );
    let path = root.path().join("aioftpd.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::start(root.path(), &["--config", path.to_str().unwrap()]);
    (daemon, root, log)
}

#[test]
fn the_xferlog_reads_back_as_its_format_says_and_rotation_loses_no_line() {
    let (mut daemon, root, log) = logged_daemon("xferlog");
    std::fs::write(root.path().join("pub/down.bin"), vec![7u8; 1000]).unwrap();
    let mut c = RawClient::connect(daemon.addr);
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("TYPE I").code, 200);
    assert_eq!(c.upload("STOR my file.bin", &[1u8; 2345]).code, 226);
    let (reply, _) = c.fetch("RETR pub/down.bin");
    assert_eq!(reply.code, 226);
    let mut anon = RawClient::connect(daemon.addr);
    anon.login("anonymous", "me@example.com");
    assert_eq!(anon.fetch("RETR down.bin").0.code, 226);

    let lines = lines_once(&log, 3);
    let parsed: Vec<Xfer> = lines.iter().map(|l| parse_xferlog(l)).collect();
    let expect = |size, file: &str, kind: &str, direction: &str, access: &str, user: &str| Xfer {
        host: "127.0.0.1".into(),
        size,
        file: file.into(),
        kind: kind.into(),
        direction: direction.into(),
        access: access.into(),
        user: user.into(),
        status: "c".into(),
    };
    assert_eq!(
        parsed,
        [
            expect(2345, "/my_file.bin", "b", "i", "r", "alice"),
            expect(1000, "/pub/down.bin", "b", "o", "r", "alice"),
            // The anonymous session stayed in TYPE A.
            expect(1000, "/down.bin", "a", "o", "a", "anonymous"),
        ]
    );

    // logrotate: the file is renamed, then SIGUSR1; what came before stays
    // in the old file, what comes after goes to a new one.
    let rotated = root.path().join("xferlog.1");
    std::fs::rename(&log, &rotated).unwrap();
    daemon.signal("USR1");
    daemon.wait_for("transfer log reopened");
    assert_eq!(c.upload("STOR after.bin", b"after").code, 226);
    assert_eq!(lines_once(&rotated, 3), lines);
    let after = lines_once(&log, 1);
    assert_eq!(parse_xferlog(&after[0]).file, "/after.bin");
}

#[test]
fn the_json_transfer_log_keeps_names_exact() {
    let (_daemon, _root, log) = logged_daemon("json");
    let mut c = RawClient::connect(_daemon.addr);
    c.login("alice", PASSWORD);
    assert_eq!(c.upload("STOR a \"quoted\" name", b"12345").code, 226);
    let line = &lines_once(&log, 1)[0];
    let record: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(record["path"], "/a \"quoted\" name");
    assert_eq!(record["bytes"], 5);
    assert_eq!(record["direction"], "upload");
    assert_eq!(record["user"], "alice");
    assert_eq!(record["address"], "127.0.0.1");
    assert_eq!(record["complete"], true);
}
