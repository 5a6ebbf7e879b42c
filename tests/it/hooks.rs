//! Event hooks and the pre-upload check (docs/hooks.md), with real hook
//! programs (shell scripts in the test's temp dir) and a real HTTP server
//! (python3's http.server) for URL hooks. Every wait is on an outcome,
//! bounded: lines in a file, a line in the daemon's log.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::daemon::Daemon;
use crate::support::{default_config, have_tool, RawClient, TestServer, IO_TIMEOUT, PASSWORD};

/// Writes an executable `#!/bin/sh` script `name` into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A hook program that appends each event's JSON, one line each, to `out`.
fn recorder(dir: &Path, out: &Path) -> PathBuf {
    script(
        dir,
        "record.sh",
        &format!("cat >> '{out}'\necho >> '{out}'", out = out.display()),
    )
}

/// Waits until `file` holds at least `count` lines; them, parsed as JSON.
fn events_in(file: &Path, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() >= count {
            return lines
                .iter()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
                .collect();
        }
        assert!(Instant::now() < deadline, "{}: {text:?}", file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The default test config with no failure delay, and `extra` added.
fn config_with(root: &Path, extra: &str) -> String {
    format!(
        "{}\n[login]\nfailure_delay = \"0s\"\n{extra}",
        default_config(root)
    )
}

/// The event of kind `kind` in `events`, which must hold exactly one.
fn the_one<'a>(events: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    let found: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == kind).collect();
    assert_eq!(found.len(), 1, "{kind}: {events:#?}");
    found[0]
}

/// Drives one of each event: a failed login, a login, an upload, a
/// download, mkdir, rename, delete, rmdir.
fn one_of_each(addr: std::net::SocketAddr) {
    let mut wrong = RawClient::connect(addr);
    assert_eq!(wrong.cmd("USER alice").code, 331);
    assert_eq!(wrong.cmd("PASS wrong").code, 530);
    let mut c = RawClient::connect(addr);
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("TYPE I").code, 200);
    assert_eq!(c.upload("STOR up.txt", b"hello").code, 226);
    let (reply, body) = c.fetch("RETR up.txt");
    assert_eq!((reply.code, body.as_str()), (226, "hello"));
    assert_eq!(c.cmd("MKD d").code, 257);
    assert_eq!(c.cmd("RNFR up.txt").code, 350);
    assert_eq!(c.cmd("RNTO d/moved.txt").code, 250);
    assert_eq!(c.cmd("DELE d/moved.txt").code, 250);
    assert_eq!(c.cmd("RMD d").code, 250);
    assert_eq!(c.cmd("QUIT").code, 221);
}

#[test]
fn a_hook_program_sees_each_event_once_with_its_fields() {
    let hooks = tempfile::tempdir().unwrap();
    let out = hooks.path().join("events");
    let program = recorder(hooks.path(), &out);
    let server = TestServer::start_with(|root| {
        config_with(
            root,
            &format!(
                "[[hooks]]\nevents = [\"upload\", \"download\", \"delete\", \"rename\", \"mkdir\", \"rmdir\", \"login\", \"login_failed\"]\n\
                 command = [\"{}\"]\nconcurrency = 1\n",
                program.display()
            ),
        )
    });
    one_of_each(server.addr);
    let events = events_in(&out, 8);
    for event in &events {
        assert_eq!(event["address"], "127.0.0.1", "{event}");
        assert_eq!(event["user"], "alice", "{event}");
        assert_eq!(event["tls"], false, "{event}");
    }
    let upload = the_one(&events, "upload");
    assert_eq!(upload["path"], "/up.txt");
    assert_eq!(upload["bytes"], 5);
    assert_eq!(upload["complete"], true);
    assert_eq!(upload["result"], "ok");
    let download = the_one(&events, "download");
    assert_eq!(
        (&download["path"], &download["bytes"]),
        (&"/up.txt".into(), &5.into())
    );
    assert_eq!(the_one(&events, "mkdir")["path"], "/d");
    let rename = the_one(&events, "rename");
    assert_eq!(
        (&rename["from"], &rename["to"]),
        (&"/up.txt".into(), &"/d/moved.txt".into())
    );
    assert_eq!(the_one(&events, "delete")["path"], "/d/moved.txt");
    assert_eq!(the_one(&events, "rmdir")["path"], "/d");
    the_one(&events, "login");
    the_one(&events, "login_failed");
    assert_eq!(events.len(), 8, "{events:#?}");
}

/// A python3 HTTP server on 127.0.0.1 that appends each POST's body to a
/// file and answers `answer` (JSON); killed when dropped.
struct HttpSink {
    child: Child,
    port: u16,
}

const SINK: &str = r#"
import http.server, sys
out, answer = sys.argv[1], sys.argv[2].encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        with open(out, 'ab') as f:
            f.write(body + b'\n')
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl HttpSink {
    fn start(out: &Path, answer: &str) -> Self {
        let mut child = Command::new("python3")
            .args(["-c", SINK, out.to_str().unwrap(), answer])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the sink's port");
        HttpSink { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_url_hook_receives_the_same_json() {
    if !have_tool("python3", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("posted");
    let sink = HttpSink::start(&out, "{}");
    let server = TestServer::start_with(|root| {
        config_with(
            root,
            &format!(
                "[[hooks]]\nevents = [\"upload\", \"download\", \"delete\", \"rename\", \"mkdir\", \"rmdir\", \"login\", \"login_failed\"]\n\
                 url = \"{}\"\n",
                sink.url()
            ),
        )
    });
    one_of_each(server.addr);
    let events = events_in(&out, 8);
    let upload = the_one(&events, "upload");
    assert_eq!(upload["path"], "/up.txt");
    assert_eq!(upload["bytes"], 5);
    assert_eq!(upload["user"], "alice");
    assert_eq!(upload["address"], "127.0.0.1");
    assert_eq!(the_one(&events, "rename")["to"], "/d/moved.txt");
    for kind in [
        "download",
        "delete",
        "mkdir",
        "rmdir",
        "login",
        "login_failed",
    ] {
        the_one(&events, kind);
    }
}

/// The daemon on the default test config plus `extra`, in `root`.
fn daemon(root: &Path, extra: &str) -> Daemon {
    for dir in ["pub", "readonly", "secret"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let path = root.join("aioftpd.toml");
    std::fs::write(&path, config_with(root, extra)).unwrap();
    Daemon::start(root, &["--config", path.to_str().unwrap()])
}

#[test]
fn a_hook_that_hangs_or_fails_does_not_hold_up_uploads_and_its_failure_is_logged() {
    let root = tempfile::tempdir().unwrap();
    let hooks = tempfile::tempdir().unwrap();
    let hangs = script(hooks.path(), "hangs.sh", "exec sleep 600");
    let fails = script(hooks.path(), "fails.sh", "exit 1");
    let mut daemon = daemon(
        root.path(),
        &format!(
            "[[hooks]]\nevents = [\"upload\"]\ncommand = [\"{}\"]\ntimeout = \"1s\"\nretries = 0\nqueue = 4\nconcurrency = 1\n\
             [[hooks]]\nevents = [\"upload\"]\ncommand = [\"{}\"]\nretries = 1\n",
            hangs.display(),
            fails.display()
        ),
    );
    let mut c = RawClient::connect(daemon.addr);
    c.login("alice", PASSWORD);
    for index in 0..20 {
        let name = format!("STOR f{index}.bin");
        assert_eq!(c.upload(&name, b"payload").code, 226, "{name}");
    }
    assert_eq!(c.cmd("QUIT").code, 221);
    for index in 0..20 {
        assert!(root.path().join(format!("f{index}.bin")).is_file());
    }
    // Each hook's failure is logged with the hook and the event.
    let mut seen = (false, false);
    while seen != (true, true) {
        let line = daemon.wait_for("hook failed");
        assert!(line.contains("upload"), "{line}");
        if line.contains("hooks[0]") {
            assert!(line.contains("timed out"), "{line}");
            seen.0 = true;
        }
        if line.contains("hooks[1]") {
            assert!(line.contains("exited with status 1"), "{line}");
            seen.1 = true;
        }
    }
    // SIGTERM: the hung hook's last attempt is killed at its timeout
    // before the daemon exits, so no `sleep` outlives the test.
    daemon.stop();
}

#[test]
fn the_pre_upload_check_refuses_by_name_and_lets_others_through() {
    let hooks = tempfile::tempdir().unwrap();
    let asked = hooks.path().join("asked");
    let check = script(
        hooks.path(),
        "check.sh",
        &format!(
            "echo \"$AIOFTPD_VERB $AIOFTPD_PATH size=${{AIOFTPD_SIZE:-none}} existing=${{AIOFTPD_EXISTING_SIZE:-none}}\" >> '{}'\n\
             case \"$AIOFTPD_PATH\" in *.exe) echo 'no .exe files here'; exit 1;; esac\nexit 0",
            asked.display()
        ),
    );
    let server = TestServer::start_with(|root| {
        config_with(
            root,
            &format!("[pre_upload]\ncommand = [\"{}\"]\n", check.display()),
        )
    });
    std::fs::write(server.path("old.exe"), b"old").unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("TYPE I").code, 200);
    let refused = c.upload("STOR old.exe", b"new contents");
    assert_eq!(refused.code, 553, "{}", refused.text());
    assert!(
        refused.text().contains("no .exe files here"),
        "{}",
        refused.text()
    );
    assert_eq!(std::fs::read(server.path("old.exe")).unwrap(), b"old");
    assert_eq!(c.upload("STOR new.exe", b"x").code, 553);
    assert!(!server.path("new.exe").exists());
    assert_eq!(c.cmd("ALLO 5").code, 202);
    assert_eq!(c.upload("STOR fine.txt", b"hello").code, 226);
    assert_eq!(std::fs::read(server.path("fine.txt")).unwrap(), b"hello");
    let asked = std::fs::read_to_string(&asked).unwrap();
    assert!(
        asked.contains("STOR /old.exe size=none existing=3\n"),
        "{asked}"
    );
    assert!(
        asked.contains("STOR /new.exe size=none existing=none\n"),
        "{asked}"
    );
    assert!(
        asked.contains("STOR /fine.txt size=5 existing=none\n"),
        "{asked}"
    );
}

#[test]
fn a_malformed_pre_upload_answer_refuses_the_upload_and_names_the_user_and_field() {
    if !have_tool("python3", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start(&dir.path().join("asked"), r#"{"allow": "yes"}"#);
    let root = tempfile::tempdir().unwrap();
    let mut daemon = daemon(
        root.path(),
        &format!("[pre_upload]\nurl = \"{}\"\n", sink.url()),
    );
    let mut c = RawClient::connect(daemon.addr);
    c.login("alice", PASSWORD);
    let refused = c.upload("STOR in.txt", b"data");
    assert_eq!(refused.code, 451, "{}", refused.text());
    assert!(!root.path().join("in.txt").exists());
    let line = daemon.wait_for("pre-upload check failed");
    assert!(line.contains("alice"), "{line}");
    assert!(
        line.contains("allow") && line.contains("not a boolean"),
        "{line}"
    );
    assert!(line.contains("/in.txt"), "{line}");
}
