//! Connection caps, login protection, login timeout and throttled transfers.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use aioftpd::settings::Settings;
use tokio::io::AsyncWriteExt;

use crate::support::{
    default_config, next_line, pattern, paused_session, read_reply, Reply, TestServer, IO_TIMEOUT,
    PASSWORD,
};

/// The default config with extra `[server]` keys and a `[login]` section.
fn config(root: &Path, server: &str, login: &str) -> String {
    let base = default_config(root).replace(
        "data_timeout = \"10s\"",
        &format!("data_timeout = \"10s\"\n{server}"),
    );
    format!("{base}\n[login]\n{login}\n")
}

/// A connection from `from` (a loopback address), with the greeting read.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    greeting: Option<Reply>,
}

impl Client {
    fn connect_from(from: &str, to: SocketAddr) -> Self {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let local: SocketAddr = format!("{from}:0").parse().unwrap();
        socket.bind(&local.into()).unwrap();
        socket.connect(&to.into()).unwrap();
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let greeting = read_reply(&mut reader);
        Client {
            reader,
            writer,
            greeting,
        }
    }

    fn cmd(&mut self, line: &str) -> Option<Reply> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .ok()?;
        read_reply(&mut self.reader)
    }

    fn code(&mut self, line: &str) -> u16 {
        self.cmd(line).map_or(0, |r| r.code)
    }

    fn closed(&mut self) -> bool {
        read_reply(&mut self.reader).is_none()
    }
}

fn greeting_code(client: &Client) -> u16 {
    client.greeting.as_ref().map_or(0, |r| r.code)
}

#[test]
fn over_the_server_cap_a_connection_gets_421_and_the_slot_comes_back() {
    let server = TestServer::start_with(|root| config(root, "max_connections = 2", ""));
    let mut first = Client::connect_from("127.0.0.1", server.addr);
    let _second = Client::connect_from("127.0.0.1", server.addr);
    let mut third = Client::connect_from("127.0.0.1", server.addr);
    assert_eq!(greeting_code(&third), 421);
    assert!(third.closed());
    assert_eq!(first.code("QUIT"), 221);
    assert!(first.closed());
    assert_eq!(
        greeting_code(&Client::connect_from("127.0.0.1", server.addr)),
        220
    );
}

#[test]
fn over_the_address_cap_a_connection_gets_421_while_other_addresses_are_served() {
    let server = TestServer::start_with(|root| config(root, "max_connections_per_ip = 1", ""));
    let _held = Client::connect_from("127.0.0.1", server.addr);
    let mut refused = Client::connect_from("127.0.0.1", server.addr);
    assert_eq!(greeting_code(&refused), 421);
    assert!(refused.closed());
    let mut other = Client::connect_from("127.0.0.2", server.addr);
    assert_eq!(greeting_code(&other), 220);
    assert_eq!(other.code("USER alice"), 331);
    assert_eq!(other.code(&format!("PASS {PASSWORD}")), 230);
}

#[test]
fn over_the_users_cap_login_is_530_until_a_session_ends() {
    let server = TestServer::start_with(|root| {
        config(root, "", "").replacen(
            "login = \"alice\"",
            "login = \"alice\"\nmax_connections = 1",
            1,
        )
    });
    let mut first = server.raw_alice();
    let mut second = server.raw();
    assert_eq!(second.cmd("USER alice").code, 331);
    assert_eq!(second.cmd(&format!("PASS {PASSWORD}")).code, 530);
    assert_eq!(first.cmd("QUIT").code, 221);
    assert!(first.try_reply().is_none());
    second.login("alice", PASSWORD);
}

#[test]
fn repeated_failures_on_one_connection_close_it_with_421() {
    let server = TestServer::start_with(|root| {
        config(
            root,
            "",
            "failure_delay = \"0s\"\nmax_failures_per_connection = 2",
        )
    });
    let mut c = server.raw();
    c.cmd("USER alice");
    assert_eq!(c.cmd("PASS wrong").code, 530);
    c.cmd("USER alice");
    assert_eq!(c.cmd("PASS wrong").code, 421);
    assert!(c.try_reply().is_none());
}

#[test]
fn an_address_over_its_failure_budget_is_blocked_and_others_are_not() {
    let server = TestServer::start_with(|root| {
        config(
            root,
            "",
            "failure_delay = \"0s\"\nmax_failures_per_ip = 3\nblock_duration = \"1h\"",
        )
    });
    for attempt in 1..=3 {
        let mut c = Client::connect_from("127.0.0.1", server.addr);
        assert_eq!(c.code("USER mallory"), 331);
        let expected = if attempt < 3 { 530 } else { 421 };
        assert_eq!(c.code("PASS guess"), expected, "attempt {attempt}");
    }
    let mut blocked = Client::connect_from("127.0.0.1", server.addr);
    assert_eq!(greeting_code(&blocked), 421);
    assert!(blocked.closed());
    let mut other = Client::connect_from("127.0.0.2", server.addr);
    assert_eq!(other.code("USER alice"), 331);
    assert_eq!(
        other.code(&format!("PASS {PASSWORD}")),
        230,
        "a right password elsewhere still works"
    );
}

#[test]
fn a_connection_that_never_logs_in_is_closed_at_the_login_timeout() {
    let server = TestServer::start_with(|root| config(root, "login_timeout = \"1s\"", ""));
    let mut c = server.raw();
    let reply = c.reply();
    assert_eq!(reply.code, 421);
    assert!(reply.text().contains("Login timeout"), "{reply:?}");
}

#[test]
fn an_idle_flood_is_capped_and_a_client_elsewhere_is_still_served() {
    let server = TestServer::start_with(|root| config(root, "max_connections_per_ip = 50", ""));
    std::fs::write(server.path("file.bin"), pattern(300_000, 8)).unwrap();
    let flood: Vec<Client> = (0..200)
        .map(|_| Client::connect_from("127.0.0.1", server.addr))
        .collect();
    let admitted = flood.iter().filter(|c| greeting_code(c) == 220).count();
    assert_eq!(admitted, 50);
    let mut good = Client::connect_from("127.0.0.2", server.addr);
    assert_eq!(greeting_code(&good), 220);
    assert_eq!(good.code("USER alice"), 331);
    assert_eq!(good.code(&format!("PASS {PASSWORD}")), 230);
    assert_eq!(good.code("SIZE file.bin"), 213);
}

#[test]
fn throttled_transfers_deliver_every_byte_both_ways() {
    let server = TestServer::start_with(|root| {
        config(
            root,
            "download_limit = \"4MiB\"\nupload_limit_per_connection = \"4MiB\"",
            "",
        )
        .replacen(
            "login = \"alice\"",
            "login = \"alice\"\ndownload_limit_per_connection = \"2MiB\"",
            1,
        )
    });
    let bytes = pattern(1_500_000, 13);
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    assert_eq!(c.upload("STOR t.bin", &bytes).code, 226);
    assert_eq!(std::fs::read(server.path("t.bin")).unwrap(), bytes);
    let (reply, _) = c.fetch("NLST");
    assert_eq!(reply.code, 226);
    let mut data = c.pasv();
    assert_eq!(c.cmd("RETR t.bin").code, 150);
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut data, &mut back).unwrap();
    assert_eq!(c.reply().code, 226);
    assert_eq!(back, bytes);
}

#[tokio::test(start_paused = true)]
async fn login_and_idle_timeouts_fire_when_due_on_the_paused_clock() {
    let mut settings = Settings::default();
    settings.session.login_timeout = Duration::from_secs(60);
    settings.session.idle_timeout = Duration::from_secs(300);

    let mut lazy = paused_session(settings.clone()).await;
    let start = tokio::time::Instant::now();
    let line = next_line(&mut lazy).await;
    assert!(line.starts_with("421 Login timeout"), "{line}");
    assert_eq!(start.elapsed(), Duration::from_secs(60));

    let mut idle = paused_session(settings).await;
    idle.get_mut()
        .write_all(b"USER anonymous\r\nPASS x\r\n")
        .await
        .unwrap();
    assert!(next_line(&mut idle).await.starts_with("331"));
    assert!(next_line(&mut idle).await.starts_with("230"));
    let start = tokio::time::Instant::now();
    let line = next_line(&mut idle).await;
    assert!(line.starts_with("421 Idle timeout"), "{line}");
    assert_eq!(start.elapsed(), Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn a_failed_login_is_answered_after_the_failure_delay() {
    let mut settings = Settings::default();
    settings.login.failure_delay = Duration::from_secs(2);
    let mut client = paused_session(settings).await;
    client
        .get_mut()
        .write_all(b"USER nobody\r\n")
        .await
        .unwrap();
    assert!(next_line(&mut client).await.starts_with("331"));
    client.get_mut().write_all(b"PASS wrong\r\n").await.unwrap();
    let start = tokio::time::Instant::now();
    assert!(next_line(&mut client).await.starts_with("530"));
    assert!(start.elapsed() >= Duration::from_secs(2));
}

#[test]
fn a_transfer_in_which_no_byte_moves_is_cut_with_426() {
    let server = TestServer::start_with(|root| {
        default_config(root).replace("data_timeout = \"10s\"", "data_timeout = \"1s\"")
    });
    // Larger than any socket buffer pair, so the server's writes must stall.
    std::fs::write(server.path("big.bin"), vec![0u8; 64 << 20]).unwrap();
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    let _data = c.pasv();
    assert_eq!(c.cmd("RETR big.bin").code, 150);
    // The client reads nothing from the data connection.
    assert_eq!(c.reply().code, 426);
    assert_eq!(c.cmd("NOOP").code, 200);
}
