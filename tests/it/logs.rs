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
