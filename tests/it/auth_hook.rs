//! `[auth_hook]`: the daemon (the real binary) asking examples/auth_hook.py,
//! the worked example of docs/users.md, or an endpoint of the test's own
//! that answers badly or not at all; real clients logging in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::daemon::Daemon;
use crate::support::{curl, have_tool, password_hash, pattern, run_ok, RawClient, IO_TIMEOUT};
use crate::users::login_code;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/auth_hook.py");

/// examples/auth_hook.py serving `accounts` (JSON) on 127.0.0.1, a free
/// port; recording each request's login in `requests.log`. Killed when dropped.
struct Hook {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Hook {
    fn start(dir: &Path, accounts: &serde_json::Value) -> Self {
        let file = dir.join("accounts.json");
        std::fs::write(&file, accounts.to_string()).unwrap();
        let log = dir.join("requests.log");
        let mut child = Command::new("python3")
            .arg(SCRIPT)
            .arg("serve")
            .arg(&file)
            .args(["--port", "0", "--log"])
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 examples/auth_hook.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the hook's first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("not the hook's first line: {line:?}"))
            .parse()
            .expect("host:port");
        Hook { child, addr, log }
    }

    fn url(&self) -> String {
        format!("http://{}/login", self.addr)
    }

    /// The logins asked so far, in order.
    fn logins(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let request: serde_json::Value = serde_json::from_str(line).unwrap();
                request["login"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `password` value of the accounts file (few iterations: a test).
fn hook_hash(password: &str) -> String {
    run_ok(Command::new("python3").args([SCRIPT, "hash", "--iterations", "1000", password]))
        .trim()
        .to_owned()
}

/// A config in `dir` asking `url`, with `alice` in `[[users]]` (password
/// `s3cret`) and `hook` appended to `[auth_hook]`; failures answered at once.
fn config(dir: &Path, url: &str, hook: &str) -> PathBuf {
    let path = dir.join("aioftpd.toml");
    std::fs::create_dir_all(dir.join("alice")).unwrap();
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\ndata_timeout = \"20s\"\n\
             max_connections = 100\nmax_connections_per_ip = 50\n\
             [login]\nfailure_delay = \"0s\"\nmax_failures_per_ip = 1000\n\
             [auth_hook]\nurl = \"{url}\"\n{hook}\n\
             [[users]]\nlogin = \"alice\"\npassword = \"{hash}\"\nbase_path = \"alice\"\n\
             permissions = [{{ path = \"/\", writable = true }}]\n",
            hash = password_hash(),
        ),
    )
    .unwrap();
    path
}

fn start(dir: &Path, config: &Path) -> Daemon {
    let daemon = Daemon::start(dir, &["--config", config.to_str().unwrap()]);
    assert!(
        daemon
            .startup_log
            .iter()
            .any(|line| line.contains("auth hook ready")),
        "{:?}",
        daemon.startup_log
    );
    daemon
}

/// bob (password `bob-pw`), served from `dir/bob`, starting in `/in`,
/// reading everywhere and writing only in `/in`.
fn bob(dir: &Path) -> serde_json::Value {
    std::fs::create_dir_all(dir.join("bob/in")).unwrap();
    std::fs::write(dir.join("bob/in/hello.txt"), b"hello from the hook").unwrap();
    serde_json::json!({
        "bob": {
            "password": hook_hash("bob-pw"),
            "user": {
                "base_path": dir.join("bob").to_str().unwrap(),
                "home": "/in",
                "permissions": [{"path": "/"}, {"path": "/in", "writable": true}],
            }
        },
        "carol": {
            "password": hook_hash("carol-pw"),
            "user": {"base_path": dir.join("bob").to_str().unwrap(), "permissions": [{"path": 5}]}
        }
    })
}

#[test]
fn a_user_only_the_hook_knows_logs_in_with_curl_and_lftp_under_its_answers_rules() {
    if !have_tool("curl", &["--version"]) || !have_tool("lftp", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start(dir.path(), &bob(dir.path()));
    let config = config(dir.path(), &hook.url(), "cache_lifetime = \"0s\"");
    let daemon = start(dir.path(), &config);

    let got = curl(&[&format!("ftp://bob:bob-pw@{}/hello.txt", daemon.addr)]);
    assert_eq!(got, "hello from the hook");

    let work = tempfile::tempdir().unwrap();
    let bytes = pattern(200_000, 3);
    std::fs::write(work.path().join("up.bin"), &bytes).unwrap();
    run_ok(
        Command::new("lftp")
            .args(["-u", "bob,bob-pw", "-e"])
            .arg(format!(
                "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; \
                 put {} -o up.bin; bye",
                work.path().join("up.bin").display()
            ))
            .arg(format!("ftp://{}", daemon.addr)),
    );
    assert_eq!(
        std::fs::read(dir.path().join("bob/in/up.bin")).unwrap(),
        bytes,
        "the upload landed in the answer's home"
    );

    let mut c = RawClient::connect(daemon.addr);
    c.login("bob", "bob-pw");
    assert_eq!(c.cmd("PWD").text(), "\"/in\" is the current directory");
    let _data = c.pasv();
    assert_eq!(c.cmd("STOR /ro.txt").code, 550, "/ is read-only for bob");
    assert!(!dir.path().join("bob/ro.txt").exists());
    assert_eq!(hook.logins().iter().filter(|l| *l == "bob").count(), 3);
}

#[test]
fn a_wrong_password_is_530_and_a_login_of_the_file_never_reaches_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start(dir.path(), &bob(dir.path()));
    let config = config(dir.path(), &hook.url(), "cache_lifetime = \"0s\"");
    let daemon = start(dir.path(), &config);
    assert_eq!(login_code(&daemon, "bob", "wrong"), 530);
    assert_eq!(login_code(&daemon, "nobody", "bob-pw"), 530);
    assert_eq!(login_code(&daemon, "alice", "s3cret"), 230);
    assert_eq!(login_code(&daemon, "alice", "wrong"), 530);
    assert_eq!(hook.logins(), ["bob", "nobody"]);
}

#[test]
fn a_yes_is_reused_within_cache_lifetime_and_a_wrong_password_always_asks() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start(dir.path(), &bob(dir.path()));
    let config = config(dir.path(), &hook.url(), "cache_lifetime = \"10m\"");
    let daemon = start(dir.path(), &config);
    assert_eq!(login_code(&daemon, "bob", "bob-pw"), 230);
    assert_eq!(login_code(&daemon, "bob", "bob-pw"), 230);
    assert_eq!(hook.logins(), ["bob"], "the second login was not asked");
    assert_eq!(login_code(&daemon, "bob", "wrong"), 530);
    assert_eq!(login_code(&daemon, "bob", "wrong"), 530);
    assert_eq!(hook.logins(), ["bob", "bob", "bob"]);
}

/// An endpoint of the test's own: each request gets `answer(login)` as a
/// 200 body, or, for `None`, is held open unanswered. Counts requests.
struct Endpoint {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl Endpoint {
    fn start(answer: fn(&str) -> Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for socket in listener.incoming() {
                let Ok(mut socket) = socket else { return };
                let Some(login) = request_login(&mut socket) else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                match answer(&login) {
                    Some(body) => {
                        let _ = write!(
                            socket,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    None => held.push(socket),
                }
            }
        });
        Endpoint { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}/login", self.addr)
    }
}

/// The login of one request, read to the end of its body.
fn request_login(socket: &mut TcpStream) -> Option<String> {
    socket.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length: usize = text[..end]
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        if data.len() >= end + 4 + length {
            let body: serde_json::Value =
                serde_json::from_slice(&data[end + 4..end + 4 + length]).ok()?;
            return body["login"].as_str().map(str::to_owned);
        }
    }
}

#[test]
fn a_malformed_answer_is_530_and_the_log_names_the_login_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::start(|login| {
        Some(match login {
            "notjson" => "<html>oops</html>".to_owned(),
            "notbool" => r#"{"allow": "yes", "user": {"storage": "memory"}}"#.to_owned(),
            _ => r#"{"allow": true, "user": {"storage": "memory", "permissions": [{"path": "/", "writable": "yes"}]}}"#.to_owned(),
        })
    });
    let config = config(dir.path(), &endpoint.url(), "");
    let mut daemon = start(dir.path(), &config);
    for (login, field) in [
        ("notjson", "answer"),
        ("notbool", "allow"),
        ("badrule", "user.permissions[0].writable"),
    ] {
        assert_eq!(login_code(&daemon, login, "secret-pw"), 530, "{login}");
        let line = daemon.wait_for("auth hook:");
        assert!(
            line.contains(login) && line.contains(field),
            "{login}, {field}: {line}"
        );
        assert!(!line.contains("secret-pw"), "{line}");
    }
    // The hook's own rules are [[users]]'s: the example's carol, too.
    let hook = Hook::start(dir.path(), &bob(dir.path()));
    let config = self::config(dir.path(), &hook.url(), "");
    let mut daemon = start(dir.path(), &config);
    assert_eq!(login_code(&daemon, "carol", "carol-pw"), 530);
    let line = daemon.wait_for("auth hook:");
    assert!(
        line.contains("carol") && line.contains("user.permissions[0].path"),
        "{line}"
    );
}

#[test]
fn a_hook_that_never_answers_gives_each_login_its_530_and_stalls_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::start(|_| None);
    let config = config(dir.path(), &endpoint.url(), "timeout = \"3s\"");
    let daemon = start(dir.path(), &config);
    let addr = daemon.addr;
    let waiting: Vec<_> = (0..20)
        .map(|n| {
            std::thread::spawn(move || {
                let mut c = RawClient::connect(addr);
                assert_eq!(c.cmd(&format!("USER hung{n}")).code, 331);
                c.cmd("PASS pw").code
            })
        })
        .collect();
    // Bounded poll: until all twenty are waiting on the hook.
    let deadline = Instant::now() + IO_TIMEOUT;
    while endpoint.requests.load(Ordering::SeqCst) < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 20);
    assert_eq!(
        login_code(&daemon, "alice", "s3cret"),
        230,
        "alice is not held up"
    );
    for login in waiting {
        assert_eq!(login.join().unwrap(), 530);
    }
}

#[test]
fn a_hook_that_is_not_running_is_530() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/login", listener.local_addr().unwrap())
    };
    let config = config(dir.path(), &closed, "");
    let mut daemon = start(dir.path(), &config);
    assert_eq!(login_code(&daemon, "bob", "bob-pw"), 530);
    let line = daemon.wait_for("auth hook: no usable answer");
    assert!(line.contains("bob"), "{line}");
    assert_eq!(login_code(&daemon, "alice", "s3cret"), 230);
}
