//! Command parsing and replies: bad input, FEAT/HELP/OPTS, TYPE/MODE/STRU, STAT.

use std::io::Read;

use crate::support::TestServer;

#[test]
fn unknown_verbs_are_500_and_the_session_goes_on() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("FROB x").code, 500);
    assert_eq!(c.cmd("").code, 500);
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn missing_arguments_are_501() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    for cmd in [
        "RETR",
        "STOR",
        "CWD",
        "MKD",
        "DELE",
        "USER",
        "REST x",
        "PORT 1,2,3",
        "MFMT 2020",
    ] {
        assert_eq!(c.cmd(cmd).code, 501, "{cmd}");
    }
}

#[test]
fn over_long_lines_get_500_then_the_connection_is_closed() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    let long = "A".repeat(100_000);
    assert_eq!(c.cmd(&long).code, 500);
    assert_eq!(c.cmd("NOOP").code, 200);
    assert_eq!(c.cmd(&long).code, 500);
    assert_eq!(c.cmd(&long).code, 421);
    assert!(c.try_reply().is_none());
}

#[test]
fn non_utf8_bytes_and_telnet_sequences_do_not_kill_the_session() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    c.send_bytes(b"CWD \xff\xfe\x80\x81\r\n");
    assert_eq!(c.reply().code, 550);
    c.send_bytes(b"\xff\xf4\xff\xf2NOOP\r\n");
    assert_eq!(c.reply().code, 200);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    c.send_bytes(b"NOOP\r\nPWD\r\nSYST\r\nTYPE I\r\n");
    let codes: Vec<u16> = (0..4).map(|_| c.reply().code).collect();
    assert_eq!(codes, [200, 257, 215, 200]);
}

#[test]
fn feat_lists_the_extensions_clients_look_for() {
    let server = TestServer::start();
    let reply = server.raw().cmd("FEAT");
    assert_eq!(reply.code, 211);
    let body: Vec<&str> = reply.lines[1..reply.lines.len() - 1]
        .iter()
        .map(|l| l.trim())
        .collect();
    for feature in [
        "EPRT",
        "EPSV",
        "MDTM",
        "MFMT",
        "REST STREAM",
        "SIZE",
        "UTF8",
        "TVFS",
    ] {
        assert!(body.contains(&feature), "{feature} missing from {body:?}");
    }
    assert!(body
        .iter()
        .any(|f| f.starts_with("MLST type*;size*;modify*;perm*;")));
    assert!(reply.lines[1..]
        .iter()
        .all(|l| l.starts_with(' ') || l.starts_with("211 ")));
}

#[test]
fn opts_utf8_and_mlst() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("OPTS UTF8 ON").code, 200);
    let reply = c.cmd("OPTS MLST type;size;");
    assert_eq!((reply.code, reply.text()), (200, "MLST OPTS type;size;"));
    std::fs::write(server.path("f"), b"abc").unwrap();
    let mlst = c.cmd("MLST f");
    assert_eq!(mlst.lines[1], " type=file;size=3; /f");
    assert_eq!(c.cmd("OPTS BOGUS").code, 501);
}

#[test]
fn help_lists_commands_and_shows_syntax() {
    let server = TestServer::start();
    let mut c = server.raw();
    let all = c.cmd("HELP");
    assert_eq!(all.code, 214);
    assert!(all.lines.iter().any(|l| l.contains("RETR")));
    let one = c.cmd("HELP RETR");
    assert_eq!(one.code, 214);
    assert!(one.text().contains("RETR <path>"));
}

#[test]
fn type_mode_stru() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    for (cmd, code) in [
        ("TYPE I", 200),
        ("TYPE A", 200),
        ("TYPE A N", 200),
        ("TYPE L 8", 200),
        ("TYPE E", 504),
        ("TYPE Q", 501),
        ("MODE S", 200),
        ("MODE B", 504),
        ("STRU F", 200),
        ("STRU R", 504),
        ("SYST", 215),
    ] {
        assert_eq!(c.cmd(cmd).code, code, "{cmd}");
    }
}

#[test]
fn stat_reports_status_and_lists_a_path_over_the_control_connection() {
    let server = TestServer::start();
    std::fs::write(server.path("listed.txt"), b"x").unwrap();
    let mut c = server.raw_alice();
    let status = c.cmd("STAT");
    assert_eq!(status.code, 211);
    assert!(status.lines.iter().any(|l| l.contains("alice")));
    let listing = c.cmd("STAT /");
    assert_eq!(listing.code, 213);
    assert!(listing.lines.iter().any(|l| l.ends_with(" listed.txt")));
}

#[test]
fn site_help_and_unknown_site_commands() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("SITE HELP").code, 214);
    assert_eq!(c.cmd("SITE CHMOD 777 x").code, 504);
}

#[test]
fn a_client_vanishing_mid_transfer_does_not_disturb_others() {
    let server = TestServer::start();
    std::fs::write(server.path("big.bin"), vec![7u8; 4 << 20]).unwrap();
    {
        let mut c = server.raw_alice();
        assert_eq!(c.cmd("TYPE I").code, 200);
        let mut data = c.pasv();
        assert_eq!(c.cmd("RETR big.bin").code, 150);
        let mut first = [0u8; 1024];
        data.read_exact(&mut first).unwrap();
        // Both connections vanish without a word.
    }
    let mut other = server.raw_alice();
    assert_eq!(other.cmd("NOOP").code, 200);
}
