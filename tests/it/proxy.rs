//! Behind HAProxy (Debian's, on loopback): the PROXY protocol on control
//! and passive data connections, and the client address every rule sees.
//!
//! The hosts: clients at 127.0.0.2 and 127.0.0.3, HAProxy at 127.0.0.10
//! (its frontends, and the source of its connections to the daemon), the
//! daemon's proxied listener and passive ports at 127.0.0.11.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::daemon::Daemon;
use crate::support::{
    default_config, fail2ban_addresses, free_ports, have_tool, pattern, tcp_from, RawClient,
    TestServer, IO_TIMEOUT, PASSWORD,
};

const HAPROXY: &str = "127.0.0.10";
const DAEMON: &str = "127.0.0.11";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// HAProxy in the foreground with a config of its own; stopped when dropped.
struct Haproxy {
    child: Child,
    /// Control frontends: v2 header (`send-proxy-v2`) and v1 (`send-proxy`).
    v2: SocketAddr,
    v1: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Forwards control connections to `control` and the passive `ports`
    /// to the same ports at the daemon's address.
    fn start(control: SocketAddr, ports: (u16, u16), front: (u16, u16)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend control_v2
    bind {HAPROXY}:{v2}
    default_backend daemon_v2
frontend control_v1
    bind {HAPROXY}:{v1}
    default_backend daemon_v1
frontend data
    bind {HAPROXY}:{first}-{last}
    default_backend daemon_data
backend daemon_v2
    source {HAPROXY}
    server a {control} send-proxy-v2
backend daemon_v1
    source {HAPROXY}
    server a {control} send-proxy
backend daemon_data
    source {HAPROXY}
    # No port: each data connection goes to the port it came to.
    server a {DAEMON} send-proxy-v2
",
            v2 = front.0,
            v1 = front.1,
            first = ports.0,
            last = ports.1,
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("haproxy");
        let haproxy = Haproxy {
            child,
            v2: SocketAddr::new(ip(HAPROXY), front.0),
            v1: SocketAddr::new(ip(HAPROXY), front.1),
            _dir: dir,
        };
        haproxy.wait_listening();
        haproxy
    }

    /// Until both control frontends take connections (HAProxy binds every
    /// frontend before it accepts on any); bounded.
    fn wait_listening(&self) {
        let until = Instant::now() + IO_TIMEOUT;
        for front in [self.v2, self.v1] {
            while TcpStream::connect_timeout(&front, Duration::from_secs(1)).is_err() {
                assert!(Instant::now() < until, "haproxy does not listen on {front}");
                std::thread::yield_now();
            }
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test config with the daemon's passive ports at `ports`, announced
/// as HAProxy's address, and a proxied listener on `proxied`.
fn config(root: &Path, proxied: SocketAddr, ports: (u16, u16), per_ip: u32) -> String {
    default_config(root).replace(
        "[server]\n",
        &format!(
            "[proxy_protocol]\nlisten = [\"{proxied}\"]\ntrusted = [\"{HAPROXY}\"]\n\n\
             [passive]\nports = \"{}-{}\"\npublic_address = \"{HAPROXY}\"\n\n\
             [login]\nfailure_delay = \"0s\"\n\n\
             [server]\nmax_connections_per_ip = {per_ip}\n",
            ports.0, ports.1
        ),
    )
}

/// The data port a `227` announces, at HAProxy.
fn passive_port(client: &mut RawClient) -> SocketAddr {
    let reply = client.cmd("PASV");
    assert_eq!(reply.code, 227, "{reply:?}");
    let text = reply.text();
    let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
    let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!(
        &n[..4],
        [127, 0, 0, 10],
        "PASV announces the balancer's address"
    );
    SocketAddr::new(ip(HAPROXY), n[4] * 256 + n[5])
}

#[test]
fn through_haproxy_each_rule_sees_the_client_and_data_flows_both_ways() {
    if !have_tool("haproxy", &["-v"]) {
        return;
    }
    let ports = free_ports(24310, 6);
    let front = free_ports(24300, 2);
    let proxied = SocketAddr::new(ip(DAEMON), 0);
    let server = TestServer::start_with(|root| config(root, proxied, ports, 2));
    let control = server.addrs[1];
    let haproxy = Haproxy::start(control, ports, front);
    let body = pattern(256 * 1024, 7);

    // Through the v2 frontend, from 127.0.0.2: upload, then read back.
    let mut client = RawClient::connect_from(ip("127.0.0.2"), haproxy.v2);
    assert_eq!(client.greeting.code, 220);
    client.login("alice", PASSWORD);
    assert_eq!(client.cmd("TYPE I").code, 200);
    let data = passive_port(&mut client);
    client.send("STOR up.bin");
    let mut up = tcp_from(ip("127.0.0.2"), data);
    assert_eq!(client.reply().code, 150);
    up.write_all(&body).unwrap();
    drop(up);
    assert_eq!(client.reply().code, 226);
    let stored = std::fs::read(server.path("up.bin")).unwrap();
    let at = stored.iter().zip(&body).position(|(a, b)| a != b);
    assert!(
        stored == body,
        "stored {} bytes of {}, first difference at {at:?}",
        stored.len(),
        body.len()
    );

    // A data connection for another client, through the same proxy, comes
    // first and is refused; the client's own then gets the file.
    let data = passive_port(&mut client);
    let mut thief = tcp_from(ip("127.0.0.3"), data);
    thief.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client.send("RETR up.bin");
    let mut down = tcp_from(ip("127.0.0.2"), data);
    assert_eq!(client.reply().code, 150);
    let mut got = Vec::new();
    down.read_to_end(&mut got).unwrap();
    assert_eq!(client.reply().code, 226);
    assert!(got == body, "got {} bytes of {}", got.len(), body.len());
    let mut stolen = Vec::new();
    thief.read_to_end(&mut stolen).unwrap();
    assert!(
        stolen.is_empty(),
        "the other client got {} bytes",
        stolen.len()
    );

    // Active mode goes to the client the header named, and nowhere else:
    // the proxy's own address is foreign to this session too.
    assert_eq!(client.cmd("EPRT |1|127.0.0.2|40000|").code, 200);
    assert_eq!(client.cmd("EPRT |1|127.0.0.10|40000|").code, 504);
    assert_eq!(client.cmd("PORT 127,0,0,3,156,64").code, 504);

    // The v1 header (`send-proxy`) names the client as well: a second
    // session from 127.0.0.2 fills its cap of 2, a third is refused, and
    // 127.0.0.3 is not counted with them.
    let mut second = RawClient::connect_from(ip("127.0.0.2"), haproxy.v1);
    assert_eq!(second.greeting.code, 220);
    second.login("alice", PASSWORD);
    let (reply, listing) = second.fetch("NLST");
    assert_eq!(
        reply.code, 226,
        "a v1 session's data comes through the v2 data ports"
    );
    assert!(listing.contains("up.bin"), "{listing}");
    let third = RawClient::connect_from(ip("127.0.0.2"), haproxy.v2);
    assert_eq!(
        third.greeting.code, 421,
        "max_connections_per_ip counts the client"
    );
    let elsewhere = RawClient::connect_from(ip("127.0.0.3"), haproxy.v1);
    assert_eq!(elsewhere.greeting.code, 220);
}

/// Reads until the server closes (a reset, when it closed with our bytes
/// unread, counts); what it sent first.
fn until_closed(mut stream: TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(err) => panic!("not closed: {err}"),
        }
    }
}

#[test]
fn the_proxied_listener_refuses_headers_from_elsewhere_and_proxies_without_one() {
    let proxied = SocketAddr::new(ip(DAEMON), 0);
    let server = TestServer::start_with(|root| config(root, proxied, free_ports(24330, 2), 32));
    let listener = server.addrs[1];
    // A client that is not a trusted proxy, claiming to be another.
    let mut forged = tcp_from(ip("127.0.0.3"), listener);
    let _ = forged.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.11 4000 21\r\n");
    assert!(
        until_closed(forged).is_empty(),
        "no greeting for a forged header"
    );
    // The trusted proxy's address, speaking FTP without a header.
    let mut bare = tcp_from(ip(HAPROXY), listener);
    let _ = bare.write_all(b"USER alice\r\n");
    assert!(
        until_closed(bare).is_empty(),
        "no greeting without a header"
    );
    // A header that is not one.
    let mut garbage = tcp_from(ip(HAPROXY), listener);
    let _ = garbage.write_all(b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff");
    assert!(until_closed(garbage).is_empty());
    // The plain listener takes no header: it is an unknown command there,
    // and the address stays the connection's own.
    let mut direct = RawClient::connect(server.addrs[0]);
    assert_eq!(
        direct.cmd("PROXY TCP4 192.0.2.1 127.0.0.1 4000 21").code,
        500
    );
    // A health check (v2 LOCAL) gets the greeting, as the proxy itself.
    let mut check = tcp_from(ip(HAPROXY), listener);
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    check.write_all(&local).unwrap();
    check.write_all(b"QUIT\r\n").unwrap();
    let text = String::from_utf8(until_closed(check)).unwrap();
    assert!(text.starts_with("220"), "{text}");
    assert!(text.contains("221"), "{text}");
}

#[test]
fn fail2ban_bans_the_client_behind_haproxy_not_the_proxy() {
    if !have_tool("haproxy", &["-v"]) || !have_tool("fail2ban-regex", &["--version"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    for dir in ["pub", "readonly", "secret"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let ports = free_ports(24350, 2);
    let front = free_ports(24340, 2);
    let (control, _) = free_ports(24360, 1);
    let control = SocketAddr::new(ip(DAEMON), control);
    let path = root.path().join("aioftpd.toml");
    std::fs::write(&path, config(root.path(), control, ports, 32)).unwrap();
    let daemon = Daemon::start(root.path(), &["--config", path.to_str().unwrap()]);
    let haproxy = Haproxy::start(control, ports, front);
    let mut c = RawClient::connect_from(ip("127.0.0.2"), haproxy.v2);
    assert_eq!(c.cmd("USER alice").code, 331);
    assert_eq!(c.cmd("PASS wrong").code, 530);
    assert_eq!(c.cmd("QUIT").code, 221);
    drop(haproxy);
    let lines = daemon.stop();
    let log = root.path().join("daemon.log");
    std::fs::write(&log, lines.join("\n")).unwrap();
    assert_eq!(
        fail2ban_addresses(&log, ""),
        ["127.0.0.2"],
        "{}",
        lines.join("\n")
    );
}

#[test]
fn the_example_haproxy_config_is_valid() {
    if !have_tool("haproxy", &["-v"]) {
        return;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/haproxy.cfg");
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&example)
        .output()
        .expect("haproxy -c");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
