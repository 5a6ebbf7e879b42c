//! RETR, STOR, APPE, STOU, REST, ABOR, TYPE A: bytes arrive exactly, failures lose nothing.

use std::io::{Cursor, Read, Write};
use std::net::TcpListener;

use crate::support::{pattern, RawClient, TestServer};

#[test]
fn upload_then_download_round_trips_bytes_of_every_size() {
    let server = TestServer::start();
    let mut ftp = server.ftp();
    for (i, len) in [0usize, 1, 4095, 128 * 1024, 3 * 1024 * 1024 + 17]
        .into_iter()
        .enumerate()
    {
        let name = format!("f{i}.bin");
        let bytes = pattern(len, i as u64 + 1);
        ftp.put_file(&name, &mut Cursor::new(bytes.clone()))
            .unwrap();
        assert_eq!(
            std::fs::read(server.path(&name)).unwrap(),
            bytes,
            "stored {len}"
        );
        let back = ftp.retr_as_buffer(&name).unwrap().into_inner();
        assert_eq!(back, bytes, "retrieved {len}");
    }
}

#[test]
fn stor_replaces_an_existing_file() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"old contents, longer").unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.upload("STOR f", b"new").code, 226);
    assert_eq!(std::fs::read(server.path("f")).unwrap(), b"new");
}

#[test]
fn appe_appends_and_creates() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.upload("APPE log", b"one\n").code, 226);
    assert_eq!(c.upload("APPE log", b"two\n").code, 226);
    assert_eq!(std::fs::read(server.path("log")).unwrap(), b"one\ntwo\n");
}

#[test]
fn rest_resumes_a_download() {
    let server = TestServer::start();
    let bytes = pattern(100_000, 9);
    std::fs::write(server.path("f"), &bytes).unwrap();
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    assert_eq!(c.cmd("REST 60000").code, 350);
    let (reply, _) = (c.cmd("NOOP"), ());
    assert_eq!(reply.code, 200, "REST survives a command in between");
    let mut data = c.pasv();
    assert_eq!(c.cmd("RETR f").code, 150);
    let mut tail = Vec::new();
    data.read_to_end(&mut tail).unwrap();
    assert_eq!(c.reply().code, 226);
    assert_eq!(tail, &bytes[60_000..]);
}

#[test]
fn rest_resumes_an_upload_keeping_the_prefix() {
    let server = TestServer::start();
    let bytes = pattern(50_000, 3);
    std::fs::write(server.path("f"), &bytes[..20_000]).unwrap();
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    assert_eq!(c.cmd("REST 20000").code, 350);
    assert_eq!(c.upload("STOR f", &bytes[20_000..]).code, 226);
    assert_eq!(std::fs::read(server.path("f")).unwrap(), bytes);
}

#[test]
fn rest_with_appe_writes_at_the_offset() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"0123456789").unwrap();
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    assert_eq!(c.cmd("REST 4").code, 350);
    assert_eq!(c.upload("APPE f", b"abc").code, 226);
    assert_eq!(std::fs::read(server.path("f")).unwrap(), b"0123abc");
}

#[test]
fn suppaftp_resume_transfer() {
    let server = TestServer::start();
    let bytes = pattern(10_000, 5);
    std::fs::write(server.path("f"), &bytes).unwrap();
    let mut ftp = server.ftp();
    ftp.resume_transfer(4000).unwrap();
    let tail = ftp.retr_as_buffer("f").unwrap().into_inner();
    assert_eq!(tail, &bytes[4000..]);
}

#[test]
fn ascii_mode_converts_line_endings_both_ways() {
    let server = TestServer::start();
    std::fs::write(server.path("unix.txt"), b"a\nb\n").unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("TYPE A").code, 200);
    let mut data = c.pasv();
    assert_eq!(c.cmd("RETR unix.txt").code, 150);
    let mut wire = Vec::new();
    data.read_to_end(&mut wire).unwrap();
    assert_eq!(c.reply().code, 226);
    assert_eq!(wire, b"a\r\nb\r\n");
    assert_eq!(c.upload("STOR up.txt", b"x\r\ny\r\n").code, 226);
    assert_eq!(std::fs::read(server.path("up.txt")).unwrap(), b"x\ny\n");
}

#[test]
fn stou_stores_under_a_new_name_and_says_which() {
    let server = TestServer::start();
    std::fs::write(server.path("report"), b"old").unwrap();
    let mut c = server.raw_alice();
    let mut data = c.pasv();
    let opening = c.cmd("STOU report");
    assert_eq!(opening.code, 150);
    let name = opening
        .text()
        .strip_prefix("FILE: ")
        .expect("FILE: name")
        .to_owned();
    assert_ne!(name, "report");
    data.write_all(b"new").unwrap();
    drop(data);
    assert_eq!(c.reply().code, 226);
    assert_eq!(std::fs::read(server.path("report")).unwrap(), b"old");
    assert_eq!(std::fs::read(server.path(&name)).unwrap(), b"new");
}

#[test]
fn retr_of_missing_file_or_directory_is_550_without_a_data_connection() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("RETR nope").code, 550);
    assert_eq!(c.cmd("RETR pub").code, 550);
}

#[test]
fn retr_refusals_are_the_same_with_and_without_zero_copy() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"0123456789").unwrap();
    let mut c = server.raw_alice();
    // TYPE I on a plain connection goes through sendfile; TYPE A copies.
    for mode in ["TYPE I", "TYPE A"] {
        assert_eq!(c.cmd(mode).code, 200);
        assert_eq!(c.cmd("RETR nope").code, 550, "{mode}");
        assert_eq!(c.cmd("RETR pub").code, 550, "{mode}");
        assert_eq!(c.cmd("REST 11").code, 350);
        assert_eq!(c.cmd("RETR f").code, 554, "{mode}: restart beyond the end");
        assert_eq!(c.cmd("REST 10").code, 350);
        let mut data = c.pasv();
        assert_eq!(c.cmd("RETR f").code, 150, "{mode}: restart at the end");
        let mut rest = Vec::new();
        data.read_to_end(&mut rest).unwrap();
        assert_eq!(c.reply().code, 226);
        assert!(rest.is_empty(), "{mode}");
    }
}

#[test]
fn transfer_without_pasv_or_port_is_425() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"x").unwrap();
    assert_eq!(server.raw_alice().cmd("RETR f").code, 425);
}

#[test]
fn abor_without_a_transfer_is_226() {
    let server = TestServer::start();
    assert_eq!(server.raw_alice().cmd("ABOR").code, 226);
}

#[test]
fn abor_while_waiting_for_the_data_connection_answers_426_then_226() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"x").unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("PASV").code, 227);
    c.send("RETR f");
    // The client never connects; ABOR must still be heard.
    assert_eq!(c.cmd("ABOR").code, 426);
    assert_eq!(c.reply().code, 226);
    assert_eq!(c.cmd("NOOP").code, 200);
}

/// No upload's temporary file is left in `dir`.
fn assert_no_upload_temporaries(dir: &std::path::Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("aioftpd-upload"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// A server with `keep` holding "precious", and a binary STOR of it
/// under way: the control connection and the data connection.
fn replacing_keep() -> (TestServer, RawClient, std::net::TcpStream) {
    let server = TestServer::start();
    std::fs::write(server.path("keep"), b"precious").unwrap();
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    let data = c.pasv();
    assert_eq!(c.cmd("STOR keep").code, 150);
    (server, c, data)
}

#[test]
fn abor_during_an_upload_keeps_the_old_file() {
    let (server, mut c, mut data) = replacing_keep();
    data.write_all(&pattern(64 * 1024, 1)).unwrap();
    assert_eq!(c.cmd("ABOR").code, 426);
    assert_eq!(c.reply().code, 226);
    drop(data);
    assert_eq!(std::fs::read(server.path("keep")).unwrap(), b"precious");
    assert_no_upload_temporaries(server.root.path());
}

/// The client keeps sending while it aborts, then closes its end only after
/// the abort's replies: a splice job still running on the server would take
/// that close for the end of the upload. The file is checked once the
/// server's end of the data connection is gone too, so no job can come
/// after the check.
#[test]
fn an_upload_aborted_while_data_flows_stays_aborted_when_the_client_closes() {
    let (server, mut c, mut data) = replacing_keep();
    data.write_all(&pattern(256 * 1024, 2)).unwrap();
    let mut closer = data.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let block = pattern(256 * 1024, 3);
        // Until the client's end is shut or the server's is gone.
        while data.write_all(&block).is_ok() {}
    });
    assert_eq!(c.cmd("ABOR").code, 426);
    assert_eq!(c.reply().code, 226);
    let _ = closer.shutdown(std::net::Shutdown::Write);
    sender.join().unwrap();
    // The server's end closes once nothing of the upload runs any more.
    let mut rest = Vec::new();
    let _ = closer.read_to_end(&mut rest);
    assert_eq!(c.cmd("NOOP").code, 200);
    assert_eq!(std::fs::read(server.path("keep")).unwrap(), b"precious");
    assert_no_upload_temporaries(server.root.path());
}

#[test]
fn abor_during_a_download_answers_426_then_226() {
    let server = TestServer::start();
    std::fs::write(server.path("big"), vec![1u8; 32 << 20]).unwrap();
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    let mut data = c.pasv();
    assert_eq!(c.cmd("RETR big").code, 150);
    let mut some = [0u8; 4096];
    data.read_exact(&mut some).unwrap();
    let reply = c.cmd("ABOR");
    // Either the transfer was cut (426 then 226) or it had already finished (226 then 226).
    assert!(matches!(reply.code, 426 | 226), "{reply:?}");
    assert_eq!(c.reply().code, 226);
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn data_connection_reset_mid_upload_is_426_and_the_session_goes_on() {
    let server = TestServer::start();
    std::fs::write(server.path("keep"), b"precious").unwrap();
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    let mut data = c.pasv();
    assert_eq!(c.cmd("STOR keep").code, 150);
    data.write_all(b"partial").unwrap();
    socket2::SockRef::from(&data)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(data); // RST instead of FIN
    let reply = c.reply();
    assert!(matches!(reply.code, 426 | 226), "{reply:?}");
    if reply.code == 426 {
        assert_eq!(std::fs::read(server.path("keep")).unwrap(), b"precious");
    }
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn active_mode_transfers_with_port_and_eprt() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"active bytes").unwrap();
    let mut c = server.raw_alice();
    for verb in ["PORT", "EPRT"] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let arg = if verb == "PORT" {
            format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff)
        } else {
            format!("EPRT |1|127.0.0.1|{port}|")
        };
        assert_eq!(c.cmd(&arg).code, 200, "{verb}");
        c.send("RETR f");
        let (mut data, _) = listener.accept().unwrap();
        assert_eq!(c.reply().code, 150);
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        assert_eq!(c.reply().code, 226);
        assert_eq!(got, b"active bytes");
    }
}

#[test]
fn suppaftp_active_mode_upload_and_download() {
    let server = TestServer::start();
    let mut ftp = server.ftp().active_mode(std::time::Duration::from_secs(10));
    let bytes = pattern(300_000, 11);
    ftp.put_file("act.bin", &mut Cursor::new(bytes.clone()))
        .unwrap();
    assert_eq!(ftp.retr_as_buffer("act.bin").unwrap().into_inner(), bytes);
}
