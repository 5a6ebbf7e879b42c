//! The real binary under real signals: SIGHUP reloads, SIGTERM drains, a
//! second SIGTERM exits at once.

use std::ffi::OsStr;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::daemon::{Daemon, BIN};
use crate::support::{free_ports, have_tool, password_hash, pattern, RawClient, PASSWORD};

fn start(config: &Path) -> Daemon {
    let dir = config.parent().expect("config dir");
    Daemon::start(dir, &[OsStr::new("--config"), config.as_os_str()])
}

fn write_config(dir: &Path, users: &[&str], extra_server: &str) -> PathBuf {
    let mut text = format!("[server]\nlisten = [\"127.0.0.1:0\"]\n{extra_server}\n");
    for login in users {
        text.push_str(&format!(
            "\n[[users]]\nlogin = \"{login}\"\npassword = \"{}\"\nbase_path = \"{}\"\npermissions = [{{ path = \"/\", writable = true }}]\n",
            password_hash(),
            dir.join("root").display()
        ));
    }
    let path = dir.join("aioftpd.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn setup(bytes: usize) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("root")).expect("mkdir");
    let data = pattern(bytes, 77);
    std::fs::write(dir.path().join("root/big.bin"), &data).expect("write");
    (dir, data)
}

/// Starts `RETR big.bin` as alice and returns the client and the data connection after the 150.
fn start_download(addr: SocketAddr) -> (RawClient, std::net::TcpStream) {
    let mut c = RawClient::connect(addr);
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("TYPE I").code, 200);
    let data = c.pasv();
    assert_eq!(c.cmd("RETR big.bin").code, 150);
    (c, data)
}

fn read_all(mut data: std::net::TcpStream, mut got: Vec<u8>) -> Vec<u8> {
    data.read_to_end(&mut got).expect("read data");
    got
}

#[test]
fn a_reload_adds_a_user_while_a_running_transfer_goes_on() {
    // Throttled so the download is still running when the reload happens.
    let (dir, data) = setup(3 << 20);
    let config = write_config(dir.path(), &["alice"], "download_limit = \"2MiB\"");
    let mut daemon = start(&config);
    let (mut alice, mut stream) = start_download(daemon.addr);
    let mut first = vec![0u8; 64 * 1024];
    stream.read_exact(&mut first).expect("first bytes");

    write_config(dir.path(), &["alice", "bob"], "download_limit = \"2MiB\"");
    daemon.signal("HUP");
    daemon.wait_for("config reloaded");

    let mut bob = RawClient::connect(daemon.addr);
    bob.login("bob", PASSWORD);
    assert_eq!(
        read_all(stream, first),
        data,
        "the transfer survived the reload"
    );
    assert_eq!(alice.reply().code, 226);
    assert_eq!(alice.cmd("NOOP").code, 200);
}

#[test]
fn a_broken_config_on_reload_is_rejected_and_the_old_users_still_work() {
    let (dir, _) = setup(10);
    let config = write_config(dir.path(), &["alice"], "");
    let mut daemon = start(&config);
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nidle_timout = \"5m\"\n",
    )
    .expect("write");
    daemon.signal("HUP");
    let rejected = daemon.wait_for("reload rejected");
    assert!(rejected.contains("reload rejected"), "{rejected}");
    daemon.wait_for("idle_timout");
    let mut alice = RawClient::connect(daemon.addr);
    alice.login("alice", PASSWORD);
}

#[test]
fn sigterm_lets_a_running_download_finish_then_exits_0() {
    let (dir, data) = setup(3 << 20);
    let config = write_config(dir.path(), &["alice"], "download_limit = \"2MiB\"");
    let mut daemon = start(&config);
    let mut idle = RawClient::connect(daemon.addr);
    idle.login("alice", PASSWORD);
    let (mut busy, mut stream) = start_download(daemon.addr);
    let mut first = vec![0u8; 64 * 1024];
    stream.read_exact(&mut first).expect("first bytes");

    daemon.signal("TERM");
    daemon.wait_for("signal received");
    assert_eq!(idle.reply().code, 421, "an idle session is told and closed");
    assert_eq!(
        read_all(stream, first),
        data,
        "the running transfer completes"
    );
    assert_eq!(busy.reply().code, 226);
    assert!(daemon.wait().success(), "exit 0 after the drain");
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let (dir, data) = setup(8 << 20);
    let config = write_config(dir.path(), &["alice"], "download_limit = \"1MiB\"");
    let mut daemon = start(&config);
    let (_busy, mut stream) = start_download(daemon.addr);
    let mut first = vec![0u8; 64 * 1024];
    stream.read_exact(&mut first).expect("first bytes");
    daemon.signal("TERM");
    daemon.wait_for("signal received");
    daemon.signal("TERM");
    let status = daemon.wait();
    assert!(
        !status.success(),
        "a forced exit is not a clean one: {status}"
    );
    let got = read_all(stream, first);
    assert!(
        got.len() < data.len(),
        "the daemon did not wait for the transfer"
    );
}

#[test]
fn a_session_of_a_user_removed_by_a_reload_is_closed_at_its_next_command() {
    let (dir, _) = setup(10);
    let config = write_config(dir.path(), &["alice", "bob"], "");
    let mut daemon = start(&config);
    let mut bob = RawClient::connect(daemon.addr);
    bob.login("bob", PASSWORD);
    let mut alice = RawClient::connect(daemon.addr);
    alice.login("alice", PASSWORD);
    write_config(dir.path(), &["alice"], "");
    daemon.signal("HUP");
    daemon.wait_for("config reloaded");
    assert_eq!(bob.cmd("NOOP").code, 421);
    assert!(bob.try_reply().is_none());
    assert_eq!(
        alice.cmd("NOOP").code,
        200,
        "alice's account is still there"
    );
}

#[test]
fn sigkill_mid_upload_keeps_the_old_file_and_its_leftover_is_never_listed() {
    let (dir, _) = setup(10);
    let root = dir.path().join("root");
    std::fs::write(root.join("keep.bin"), b"the old contents").expect("write");
    let config = write_config(dir.path(), &["alice"], "");
    let mut daemon = start(&config);
    let mut c = RawClient::connect(daemon.addr);
    c.login("alice", PASSWORD);
    c.cmd("TYPE I");
    let mut data = c.pasv();
    assert_eq!(c.cmd("STOR keep.bin").code, 150);
    std::io::Write::write_all(&mut data, &pattern(256 * 1024, 5)).expect("send");
    // The file is opened once the data connection is up, after the 150:
    // the kill must come when the upload is under way, its file there.
    let temporary = || {
        std::fs::read_dir(&root).expect("dir").any(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with(".aioftpd-upload.")
        })
    };
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !temporary() && std::time::Instant::now() < give_up {
        std::thread::yield_now();
    }
    daemon.signal("KILL");
    daemon.wait();
    assert_eq!(
        std::fs::read(root.join("keep.bin")).expect("read"),
        b"the old contents"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&root)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".aioftpd-upload."))
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "the killed upload's temporary file: {leftovers:?}"
    );

    let restarted = start(&config);
    let mut c = RawClient::connect(restarted.addr);
    c.login("alice", PASSWORD);
    let (_, names) = c.fetch("NLST");
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["big.bin", "keep.bin"], "the leftover is not listed");
}

#[test]
fn a_socket_passed_by_systemd_is_served_instead_of_the_configured_listen() {
    if !have_tool("systemd-socket-activate", &["--version"]) {
        return;
    }
    let (dir, _) = setup(10);
    std::fs::write(dir.path().join("root/hello.txt"), b"hi").expect("write");
    let (passed, configured) = free_ports(21_500, 2);
    let config = dir.path().join("aioftpd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{configured}\"]\n\n[[users]]\nbase_path = \"{}\"\n",
            dir.path().join("root").display()
        ),
    )
    .expect("write config");
    let addr = SocketAddr::from(([127, 0, 0, 1], passed));
    let mut activate = Command::new("systemd-socket-activate");
    activate
        .arg("--listen")
        .arg(addr.to_string())
        .arg(BIN)
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path());
    let mut daemon = Daemon::launch(activate);
    // Like systemd with Accept=no, it starts the daemon at the first connection.
    daemon.wait_for(&format!("Listening on {addr}"));
    let mut c = RawClient::connect(addr);
    assert_eq!(c.greeting.code, 220, "{:?}", c.greeting);
    c.login("anonymous", "me@example.com");
    assert_eq!(c.fetch("RETR hello.txt").1, "hi");
    let listening = daemon.wait_for("listening");
    assert!(listening.contains(&format!("addr={addr}")), "{listening}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", configured)).is_ok(),
        "the configured listen address was left alone"
    );
    assert_eq!(c.cmd("QUIT").code, 221);
    daemon.stop();
}

#[test]
fn risky_settings_are_logged_as_warnings_at_start_and_on_reload() {
    let (dir, _) = setup(10);
    let config = write_config(
        dir.path(),
        &["alice"],
        "max_connections = 4\nmax_connections_per_ip = 4",
    );
    let mut daemon = start(&config);
    assert!(
        daemon.startup_log.iter().any(|line| line.contains("WARN")
            && line.contains("server.max_connections_per_ip: warning: one address may open 4")),
        "{:#?}",
        daemon.startup_log
    );
    let risky = std::fs::read_to_string(&config)
        .expect("read")
        .replace("max_connections = 4\n", "max_connections = 3\n")
        .replace("writable = true", "writable = true }, { path = \"/typo\"");
    std::fs::write(&config, risky).expect("write");
    daemon.signal("HUP");
    daemon.wait_for("one address may open 4 connections, no fewer than the server's 3");
    daemon.wait_for("users[0].permissions[1].path: warning: /typo names nothing");
    daemon.wait_for("config reloaded");
}
