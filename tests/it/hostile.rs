//! Hostile clients against the real server: floods of bytes and commands,
//! storms of PASV and ABOR, data connections that misbehave, slowloris and
//! odd line endings. Each costs the attacker alone: the session (or another
//! client) is served afterwards, and no port or byte is lost.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::time::Duration;

use aioftpd::settings::Settings;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::support::{
    default_config, free_ports, next_line, pattern, paused_session, RawClient, TestServer,
};

/// The default config with a `[passive]` port range of three ports from `from`.
fn with_three_passive_ports(root: &Path, from: u16) -> String {
    let (first, last) = free_ports(from, 3);
    format!(
        "{}\n[passive]\nports = \"{first}-{last}\"\n",
        default_config(root)
    )
}

fn passive_port(reply: &crate::support::Reply) -> u16 {
    let text = reply.text();
    if reply.code == 229 {
        text[text.find("|||").unwrap() + 3..text.rfind('|').unwrap()]
            .parse()
            .unwrap()
    } else {
        let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
        let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
        n[4] * 256 + n[5]
    }
}

#[test]
fn a_hundred_megabytes_without_a_newline_are_discarded_while_others_are_served() {
    let server = TestServer::start();
    let mut flood = server.raw_alice();
    let chunk = vec![b'A'; 1 << 20];
    for sent in 1..=100 {
        // The server must keep reading (and discarding): a write that
        // blocked for good would fail the test at the socket timeout.
        flood.send_bytes(&chunk);
        if sent == 50 {
            let mut other = server.raw_alice();
            assert_eq!(other.cmd("NOOP").code, 200);
            assert_eq!(other.cmd("QUIT").code, 221);
        }
    }
    flood.send_bytes(b"\r\n");
    assert_eq!(flood.reply().code, 500, "one over-long line, one 500");
    assert_eq!(flood.cmd("NOOP").code, 200);
}

#[test]
fn thousands_of_pasv_in_a_row_reuse_a_three_port_range() {
    let server = TestServer::start_with(|root| with_three_passive_ports(root, 21_000));
    std::fs::write(server.path("f"), b"still works").unwrap();
    let mut c = server.raw_alice();
    let mut ports = std::collections::BTreeSet::new();
    for i in 0..2000 {
        let (verb, code) = if i % 2 == 0 {
            ("PASV", 227)
        } else {
            ("EPSV", 229)
        };
        let reply = c.cmd(verb);
        assert_eq!(reply.code, code, "{verb} number {i}: {reply:?}");
        ports.insert(passive_port(&reply));
    }
    assert!(ports.len() <= 3, "ports outside the range: {ports:?}");
    let (reply, text) = c.fetch("RETR f");
    assert_eq!((reply.code, text.as_str()), (226, "still works"));
}

#[test]
fn an_abor_storm_leaves_well_formed_replies_and_no_leaked_port() {
    let server = TestServer::start_with(|root| with_three_passive_ports(root, 21_100));
    let bytes = pattern(1 << 20, 21);
    std::fs::write(server.path("big"), &bytes).unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("TYPE I").code, 200);
    for i in 0..200 {
        let data = c.pasv();
        c.send("RETR big");
        c.send("ABOR");
        // Cut mid-way: [150,] 426, 226. Done before ABOR: 150, 226, then ABOR's 226.
        let mut codes = vec![c.reply().code];
        if codes[0] == 150 {
            codes.push(c.reply().code);
        }
        codes.push(c.reply().code);
        assert!(
            matches!(codes[..], [150, 426, 226] | [426, 226] | [150, 226, 226]),
            "round {i}: {codes:?}"
        );
        drop(data);
    }
    assert_eq!(c.cmd("NOOP").code, 200, "no stray reply is left over");
    let mut data = c.pasv();
    assert_eq!(c.cmd("RETR big").code, 150);
    let mut back = Vec::new();
    data.read_to_end(&mut back).unwrap();
    assert_eq!(c.reply().code, 226);
    assert_eq!(back, bytes);
}

#[test]
fn a_client_that_shuts_its_read_side_during_retr_gets_426_and_the_session_goes_on() {
    let server = TestServer::start_with(|root| {
        default_config(root).replace("data_timeout = \"10s\"", "data_timeout = \"1s\"")
    });
    std::fs::write(server.path("big"), vec![7u8; 64 << 20]).unwrap();
    std::fs::write(server.path("small"), b"after").unwrap();
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    let mut data = c.pasv();
    assert_eq!(c.cmd("RETR big").code, 150);
    let mut some = [0u8; 4096];
    data.read_exact(&mut some).unwrap();
    data.shutdown(Shutdown::Read).unwrap();
    let reply = c.reply();
    assert!(matches!(reply.code, 426 | 226), "{reply:?}");
    drop(data);
    assert_eq!(c.cmd("NOOP").code, 200);
    let (reply, text) = c.fetch("RETR small");
    assert_eq!((reply.code, text.as_str()), (226, "after"));
}

#[test]
fn a_data_connection_reset_during_appe_keeps_the_existing_content_as_a_prefix() {
    let server = TestServer::start();
    let old = pattern(100_000, 5);
    std::fs::write(server.path("log"), &old).unwrap();
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    let mut data = c.pasv();
    assert_eq!(c.cmd("APPE log").code, 150);
    data.write_all(&pattern(300_000, 6)).unwrap();
    socket2::SockRef::from(&data)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(data); // RST instead of FIN
    let reply = c.reply();
    assert!(matches!(reply.code, 426 | 226), "{reply:?}");
    let now = std::fs::read(server.path("log")).unwrap();
    assert!(
        now.starts_with(&old),
        "the old {} bytes are not a prefix of the {} now",
        old.len(),
        now.len()
    );
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[tokio::test(start_paused = true)]
async fn slowloris_never_logs_in_and_is_closed_exactly_at_the_login_timeout() {
    let mut settings = Settings::default();
    settings.session.login_timeout = Duration::from_secs(45);
    settings.session.idle_timeout = Duration::from_secs(300);
    let client = paused_session(settings).await;
    let start = tokio::time::Instant::now();
    let (read, mut write) = tokio::io::split(client);
    let mut read = tokio::io::BufReader::new(read);
    let dripping = tokio::spawn(async move {
        for byte in b"USER anonymous\r\nPASS x\r\n" {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
    let mut line = String::new();
    read.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("421 Login timeout"), "{line}");
    assert_eq!(start.elapsed(), Duration::from_secs(45));
    line.clear();
    assert_eq!(
        read.read_line(&mut line).await.unwrap(),
        0,
        "closed: {line}"
    );
    dripping.abort();
}

#[tokio::test(start_paused = true)]
async fn a_line_completed_byte_by_byte_is_still_answered() {
    let client = paused_session(Settings::default()).await;
    let (read, mut write) = tokio::io::split(client);
    let mut read = tokio::io::BufReader::new(read);
    for byte in b"NOOP\r\n" {
        write.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(next_line(&mut read).await.starts_with("200"));
}

fn send_in_pieces(c: &mut RawClient, pieces: &[&[u8]]) {
    for piece in pieces {
        c.send_bytes(piece);
    }
}

#[test]
fn nul_bytes_in_commands_are_refused_and_the_session_goes_on() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    c.send_bytes(b"NO\0OP\r\n");
    assert_eq!(c.reply().code, 500);
    c.send_bytes(b"\0\r\n");
    assert_eq!(c.reply().code, 500);
    c.send_bytes(b"MKD a\0b\r\n");
    let reply = c.reply();
    assert!((500..600).contains(&reply.code), "{reply:?}");
    c.send_bytes(b"CWD a\0b\r\n");
    let reply = c.reply();
    assert!((500..600).contains(&reply.code), "{reply:?}");
    assert_eq!(c.cmd("PWD").text(), "\"/\" is the current directory");
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn a_cr_without_lf_does_not_end_a_line() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    // One line "NOOP\rNOOP": one reply, not two.
    c.send_bytes(b"NOOP\rNOOP\r\n");
    assert_eq!(c.reply().code, 500);
    assert_eq!(c.cmd("PWD").code, 257, "no second reply was queued");
}

#[test]
fn a_lone_lf_ends_a_line() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    c.send_bytes(b"NOOP\nPWD\n");
    assert_eq!(c.reply().code, 200);
    assert_eq!(c.reply().code, 257);
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn a_line_of_exactly_the_limit_is_accepted() {
    let limit = aioftpd::session::MAX_LINE_LENGTH;
    let server = TestServer::start();
    let mut c = server.raw_alice();
    let mut line = b"NOOP ".to_vec();
    line.resize(limit - 2, b'x');
    line.extend_from_slice(b"\r\n");
    assert_eq!(line.len(), limit);
    // In pieces, so the server sees the buffer fill up before the line ends.
    send_in_pieces(
        &mut c,
        &[&line[..4096], &line[4096..limit - 1], &line[limit - 1..]],
    );
    assert_eq!(c.reply().code, 200);
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn utf8_split_across_writes_arrives_whole() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    let name = "é文🦀";
    let line = format!("MKD {name}\r\n").into_bytes();
    let stream_pieces: Vec<&[u8]> = vec![&line[..5], &line[5..7], &line[7..10], &line[10..]];
    send_in_pieces(&mut c, &stream_pieces);
    let reply = c.reply();
    assert_eq!(reply.code, 257, "{reply:?}");
    assert!(reply.text().contains(name), "{reply:?}");
    assert!(server.path(name).is_dir());
    assert_eq!(c.cmd(&format!("CWD {name}")).code, 250);
}
