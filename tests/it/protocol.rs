//! Command parsing and replies: bad input, FEAT/HELP/OPTS, TYPE/MODE/STRU, STAT.

use std::io::Read;

use crate::support::{default_config, TestServer};

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

/// What a digest tool prints for `bytes`, first field.
fn tool_digest(tool: &str, bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(tool)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn crc32_of(bytes: &[u8]) -> String {
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), bytes).unwrap();
    crate::support::run_ok(std::process::Command::new("python3").args([
        "-c",
        "import sys, zlib; print('%08x' % zlib.crc32(open(sys.argv[1], 'rb').read()))",
        path.path().to_str().unwrap(),
    ]))
    .trim()
    .to_owned()
}

#[test]
fn hash_and_its_aliases_match_the_coreutils_digests_whole_and_from_an_offset() {
    let server = TestServer::start();
    let body = crate::support::pattern(3 * 1024 * 1024 + 17, 5);
    std::fs::write(server.path("f.bin"), &body).unwrap();
    let mut c = server.raw_alice();
    let feat = c.cmd("FEAT").lines;
    assert!(
        feat.contains(&" HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32".to_owned()),
        "{feat:?}"
    );
    assert!(feat.contains(&" XSHA256".to_owned()), "{feat:?}");

    let size = body.len();
    let reply = c.cmd("HASH f.bin");
    assert_eq!(reply.code, 213, "{reply:?}");
    assert_eq!(
        reply.text(),
        format!(
            "SHA-256 0-{size} {} /f.bin",
            tool_digest("sha256sum", &body)
        )
    );
    for (name, tool) in [
        ("SHA-512", "sha512sum"),
        ("SHA-1", "sha1sum"),
        ("MD5", "md5sum"),
    ] {
        assert_eq!(c.cmd(&format!("OPTS HASH {name}")).code, 200);
        let reply = c.cmd("HASH f.bin");
        assert_eq!(
            reply.text(),
            format!("{name} 0-{size} {} /f.bin", tool_digest(tool, &body))
        );
    }
    assert_eq!(c.cmd("OPTS HASH CRC32").code, 200);
    assert_eq!(c.cmd("OPTS HASH").text(), "CRC32");
    assert!(c
        .cmd("FEAT")
        .lines
        .contains(&" HASH SHA-256;SHA-512;SHA-1;MD5;CRC32*".to_owned()));
    assert_eq!(
        c.cmd("HASH f.bin").text(),
        format!("CRC32 0-{size} {} /f.bin", crc32_of(&body))
    );
    assert_eq!(c.cmd("OPTS HASH WHIRLPOOL").code, 501);

    // A range by the REST convention: from the offset to the end, once.
    assert_eq!(c.cmd("OPTS HASH SHA-256").code, 200);
    assert_eq!(c.cmd("REST 1000000").code, 350);
    assert_eq!(
        c.cmd("HASH f.bin").text(),
        format!(
            "SHA-256 1000000-{size} {} /f.bin",
            tool_digest("sha256sum", &body[1_000_000..])
        )
    );
    assert!(
        c.cmd("HASH f.bin").text().starts_with("SHA-256 0-"),
        "the offset is used once"
    );
    assert_eq!(c.cmd(&format!("REST {}", size + 1)).code, 350);
    assert_eq!(c.cmd("HASH f.bin").code, 554);

    for (verb, tool) in [
        ("XSHA256", "sha256sum"),
        ("XSHA512", "sha512sum"),
        ("XSHA1", "sha1sum"),
        ("XMD5", "md5sum"),
    ] {
        let reply = c.cmd(&format!("{verb} f.bin"));
        assert_eq!(reply.code, 250, "{verb}");
        assert_eq!(reply.text(), tool_digest(tool, &body), "{verb}");
    }
    assert_eq!(c.cmd("XCRC f.bin").text(), crc32_of(&body));

    // What may not be hashed: a directory, a missing file, a file without
    // the right to read it.
    std::fs::write(server.path("secret/s"), b"s").unwrap();
    assert_eq!(c.cmd("HASH pub").code, 553);
    assert_eq!(c.cmd("HASH missing").code, 550);
    assert_eq!(c.cmd("XMD5 secret/s").code, 550);
}

#[test]
fn hashing_is_bounded_by_hash_max_size_and_zero_turns_it_off() {
    let server = TestServer::start_with(|root| {
        default_config(root).replace("[server]\n", "[server]\nhash_max_size = \"1KiB\"\n")
    });
    std::fs::write(server.path("small"), vec![1u8; 1024]).unwrap();
    std::fs::write(server.path("large"), vec![1u8; 1025]).unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("HASH small").code, 213);
    let refused = c.cmd("HASH large");
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(refused.text().contains("hash_max_size"), "{refused:?}");
    assert_eq!(c.cmd("NOOP").code, 200, "the session goes on");

    let off = TestServer::start_with(|root| {
        default_config(root).replace("[server]\n", "[server]\nhash_max_size = 0\n")
    });
    std::fs::write(off.path("small"), b"x").unwrap();
    let mut c = off.raw_alice();
    let feat = c.cmd("FEAT").lines.join("\n");
    assert!(!feat.contains("HASH") && !feat.contains("XCRC"), "{feat}");
    assert_eq!(c.cmd("HASH small").code, 502);
    assert_eq!(c.cmd("XSHA256 small").code, 502);
}

#[test]
fn lftp_asks_for_a_hash_with_quote() {
    if !crate::support::have_tool("lftp", &["--version"]) {
        return;
    }
    let server = TestServer::start();
    let body = crate::support::pattern(200_000, 9);
    std::fs::write(server.path("f.bin"), &body).unwrap();
    let out = crate::support::run_ok(
        std::process::Command::new("lftp")
            .args(["-u", &format!("alice,{}", crate::support::PASSWORD)])
            .args(["-e", "quote HASH f.bin; quote XMD5 f.bin; bye"])
            .arg(format!("ftp://{}", server.addr)),
    );
    assert!(out.contains(&tool_digest("sha256sum", &body)), "{out}");
    assert!(out.contains(&tool_digest("md5sum", &body)), "{out}");
}
