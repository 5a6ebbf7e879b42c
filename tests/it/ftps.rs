//! FTPS (RFC 4217): explicit and implicit TLS, the `[tls]` policies, the
//! rule that a data connection resumes its control connection's TLS session,
//! and real clients (suppaftp on rustls, curl, Python's ftplib, lftp).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use suppaftp::{RustlsConnector, RustlsFtpStream};

use crate::support::ftplib_script;
use crate::support::ftps::{
    client_config, test_cert, write_pems, FtpsClient, TlsOptions, SERVER_NAME, TLS12_ONLY,
    TLS13_FIRST,
};
use crate::support::{have_tool, pattern, run_ok, TestServer, IO_TIMEOUT, PASSWORD};

fn tls_server() -> TestServer {
    TestServer::start_tls(TlsOptions::default())
}

/// Compares byte strings by length and first difference, not by printing megabytes.
#[track_caller]
pub(crate) fn assert_same(got: &[u8], want: &[u8]) {
    let first_difference = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "got {} bytes, want {}; first difference at {first_difference:?}",
        got.len(),
        want.len()
    );
}

fn names(listing: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(listing)
        .lines()
        .map(str::to_owned)
        .collect()
}

// Round trips

#[test]
fn the_server_picks_aes_128_gcm_over_the_clients_first_choice() {
    let server = tls_server();
    for (versions, want) in [
        (TLS13_FIRST, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        (
            TLS12_ONLY,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
    ] {
        // rustls, like OpenSSL, lists AES-256-GCM first.
        let config = client_config(versions);
        let mut c = FtpsClient::explicit(server.addr, config);
        assert_eq!(c.cmd("NOOP").code, 200);
        assert_eq!(c.cipher_suite(), Some(want));
    }
}

#[test]
fn explicit_tls_uploads_then_downloads_and_lists_many_times_on_one_connection() {
    let server = tls_server();
    let bytes = pattern(3_000_000, 1);
    let mut c = server.ftps_alice();

    assert_eq!(c.upload("STOR big.bin", &bytes).code, 226);
    assert_same(&std::fs::read(server.path("big.bin")).unwrap(), &bytes);

    // Each download resumes with a ticket and leaves a fresh one behind.
    for _ in 0..4 {
        let (reply, got) = c.download("RETR big.bin");
        assert_eq!(reply.code, 226, "{reply:?}");
        assert_same(&got, &bytes);
    }
    let (reply, list) = c.download("LIST");
    assert_eq!(reply.code, 226);
    assert!(
        names(&list).iter().any(|l| l.ends_with(" big.bin")),
        "{list:?}"
    );
    let (reply, list) = c.download("NLST");
    assert_eq!(reply.code, 226);
    assert!(names(&list).contains(&"big.bin".to_owned()));
    let (reply, list) = c.download("MLSD");
    assert_eq!(reply.code, 226);
    assert!(names(&list)
        .iter()
        .any(|l| l.contains("size=3000000;") && l.ends_with(" big.bin")));
}

#[test]
fn explicit_tls_1_2_uploads_and_downloads_any_number_of_files_on_one_connection() {
    let server = tls_server();
    let mut c = FtpsClient::explicit(server.addr, client_config(TLS12_ONLY));
    c.login("alice", PASSWORD);
    c.protect_data();
    for i in 0..4u64 {
        let bytes = pattern(500_000, 10 + i);
        let name = format!("f{i}.bin");
        assert_eq!(c.upload(&format!("STOR {name}"), &bytes).code, 226);
        assert_same(&std::fs::read(server.path(&name)).unwrap(), &bytes);
    }
    for i in 0..4u64 {
        let (reply, got) = c.download(&format!("RETR f{i}.bin"));
        assert_eq!(reply.code, 226, "{reply:?}");
        assert_same(&got, &pattern(500_000, 10 + i));
    }
}

#[test]
fn implicit_tls_uploads_downloads_and_lists_with_data_protected_by_default() {
    let server = TestServer::start_tls(TlsOptions {
        implicit: true,
        ..TlsOptions::default()
    });
    assert_eq!(server.addrs.len(), 2, "listen, then implicit_listen");
    let mut c = FtpsClient::implicit(server.implicit_addr(), client_config(TLS13_FIRST));
    assert_eq!(c.greeting.code, 220);
    c.login("alice", PASSWORD);
    // No PBSZ or PROT: implicit FTPS protects data connections from the start.
    let bytes = pattern(2_000_000, 2);
    assert_eq!(c.upload("STOR imp.bin", &bytes).code, 226);
    assert_same(&std::fs::read(server.path("imp.bin")).unwrap(), &bytes);
    for _ in 0..3 {
        let (reply, got) = c.download("RETR imp.bin");
        assert_eq!(reply.code, 226, "{reply:?}");
        assert_same(&got, &bytes);
    }
    let (reply, list) = c.download("NLST");
    assert_eq!(reply.code, 226);
    assert!(names(&list).contains(&"imp.bin".to_owned()));
    assert_eq!(c.cmd("AUTH TLS").code, 503, "already protected");
}

#[test]
fn suppaftp_on_rustls_logs_in_puts_retrieves_and_lists_over_explicit_tls() {
    let server = tls_server();
    let connector = RustlsConnector::from(client_config(TLS13_FIRST));
    let mut ftp = RustlsFtpStream::connect(server.addr)
        .unwrap()
        .into_secure(connector, SERVER_NAME)
        .unwrap();
    ftp.get_ref().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    ftp.login("alice", PASSWORD).unwrap();
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .unwrap();
    let bytes = pattern(1_000_000, 3);
    ftp.put_file("s.bin", &mut bytes.as_slice()).unwrap();
    assert_same(&std::fs::read(server.path("s.bin")).unwrap(), &bytes);
    for _ in 0..3 {
        let got = ftp.retr_as_buffer("s.bin").unwrap().into_inner();
        assert_same(&got, &bytes);
    }
    let list = ftp.list(None).unwrap();
    assert!(list.iter().any(|l| l.ends_with(" s.bin")), "{list:?}");
    assert!(ftp.nlst(None).unwrap().contains(&"s.bin".to_owned()));
    ftp.quit().unwrap();
}

// Policies

#[test]
fn data_connections_may_stay_clear_under_policy_none() {
    let server = tls_server();
    std::fs::write(server.path("clear.txt"), b"in the clear").unwrap();
    let mut c = FtpsClient::explicit(server.addr, client_config(TLS13_FIRST));
    c.login("alice", PASSWORD);
    // Without PROT, data connections are clear (RFC 4217 §8: PROT C is the default).
    let (reply, got) = c.download("RETR clear.txt");
    assert_eq!((reply.code, got.as_slice()), (226, &b"in the clear"[..]));
    c.protect_data();
    assert_eq!(c.cmd("PROT C").code, 200);
    assert!(!c.protected);
    let (reply, got) = c.download("RETR clear.txt");
    assert_eq!((reply.code, got.as_slice()), (226, &b"in the clear"[..]));
    assert_eq!(c.upload("STOR up.txt", b"clear up").code, 226);
    assert_eq!(std::fs::read(server.path("up.txt")).unwrap(), b"clear up");
}

#[test]
fn required_login_refuses_user_before_auth_tls_with_530() {
    let server = TestServer::start_tls(TlsOptions {
        required: "login",
        ..TlsOptions::default()
    });
    let mut c = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    assert_eq!(c.cmd("USER alice").code, 530);
    assert_eq!(c.cmd("USER anonymous").code, 530);
    assert_eq!(c.auth_tls().code, 234);
    c.login("alice", PASSWORD);
    // Data may still be clear under "login".
    std::fs::write(server.path("f.txt"), b"f").unwrap();
    let (reply, got) = c.download("RETR f.txt");
    assert_eq!((reply.code, got.as_slice()), (226, &b"f"[..]));
}

#[test]
fn required_data_refuses_clear_transfers_with_521_and_allows_prot_p() {
    let server = TestServer::start_tls(TlsOptions {
        required: "data",
        ..TlsOptions::default()
    });
    std::fs::write(server.path("f.txt"), b"secret").unwrap();
    let mut plain = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    assert_eq!(plain.cmd("USER alice").code, 530, "data implies login");

    let mut c = FtpsClient::explicit(server.addr, client_config(TLS13_FIRST));
    c.login("alice", PASSWORD);
    assert_eq!(c.download("RETR f.txt").0.code, 521);
    assert_eq!(c.download("LIST").0.code, 521);
    assert_eq!(c.upload("STOR new.txt", b"x").code, 521);
    assert!(!server.path("new.txt").exists());
    assert_eq!(c.cmd("PBSZ 0").code, 200);
    assert_eq!(c.cmd("PROT C").code, 200);
    assert_eq!(c.download("RETR f.txt").0.code, 521);
    assert_eq!(c.cmd("PROT P").code, 200);
    let (reply, got) = c.download("RETR f.txt");
    assert_eq!((reply.code, got.as_slice()), (226, &b"secret"[..]));
    assert_eq!(c.upload("STOR new.txt", b"x").code, 226);
}

#[test]
fn a_users_tls_required_overrides_the_server_policy() {
    let server = TestServer::start_tls(TlsOptions {
        required: "login",
        bob_tls_required: Some("none"),
        ..TlsOptions::default()
    });
    std::fs::write(server.path("f.txt"), b"f").unwrap();
    let mut bob = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    bob.login("bob", PASSWORD);
    assert_eq!(bob.download("RETR f.txt").0.code, 226, "bob may stay clear");
    let mut alice = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    assert_eq!(alice.cmd("USER alice").code, 530);

    let server = TestServer::start_tls(TlsOptions {
        bob_tls_required: Some("data"),
        ..TlsOptions::default()
    });
    std::fs::write(server.path("f.txt"), b"f").unwrap();
    let mut bob = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    assert_eq!(bob.cmd("USER bob").code, 530, "asked before the password");
    let mut bob = FtpsClient::explicit(server.addr, client_config(TLS13_FIRST));
    bob.login("bob", PASSWORD);
    assert_eq!(bob.download("RETR f.txt").0.code, 521);
    bob.protect_data();
    assert_eq!(bob.download("RETR f.txt").0.code, 226);
    let mut alice = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    alice.login("alice", PASSWORD);
    assert_eq!(alice.download("RETR f.txt").0.code, 226);
}

// Commands

#[test]
fn without_tls_configured_auth_is_502_pbsz_prot_503_ccc_533_and_feat_hides_tls() {
    let server = TestServer::start();
    let mut c = server.raw();
    assert_eq!(c.cmd("AUTH TLS").code, 502);
    assert_eq!(c.cmd("PBSZ 0").code, 503);
    assert_eq!(c.cmd("PROT P").code, 503);
    assert_eq!(c.cmd("CCC").code, 533);
    let feat = c.cmd("FEAT");
    assert_eq!(feat.code, 211);
    for hidden in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(!feat.lines.iter().any(|l| l.trim() == hidden), "{feat:?}");
    }
}

#[test]
fn with_tls_configured_feat_lists_auth_tls_pbsz_and_prot() {
    let server = tls_server();
    let mut c = server.raw();
    let feat = c.cmd("FEAT");
    assert_eq!(feat.code, 211);
    for listed in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(feat.lines.iter().any(|l| l.trim() == listed), "{feat:?}");
    }
}

#[test]
fn auth_accepts_tls_ssl_tls_c_and_tls_p() {
    let server = tls_server();
    for mechanism in ["TLS", "SSL", "TLS-C", "TLS-P", "tls"] {
        let mut c = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
        assert_eq!(c.auth(mechanism).code, 234, "AUTH {mechanism}");
        c.login("alice", PASSWORD);
    }
}

#[test]
fn auth_with_an_unknown_mechanism_is_504_and_a_second_auth_is_503() {
    let server = tls_server();
    let mut c = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    assert_eq!(c.cmd("AUTH XYZ").code, 504);
    assert_eq!(c.cmd("AUTH KERBEROS_V4").code, 504);
    assert_eq!(c.auth_tls().code, 234);
    assert_eq!(c.cmd("AUTH TLS").code, 503);
    c.login("alice", PASSWORD);
}

#[test]
fn pbsz_and_prot_before_auth_tls_are_503() {
    let server = tls_server();
    let mut c = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    assert_eq!(c.cmd("PBSZ 0").code, 503);
    assert_eq!(c.cmd("PROT P").code, 503);
    assert_eq!(c.cmd("CCC").code, 533);
}

#[test]
fn prot_needs_pbsz_and_knows_only_p_and_c() {
    let server = tls_server();
    let mut c = FtpsClient::explicit(server.addr, client_config(TLS13_FIRST));
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("PROT P").code, 503, "PROT before PBSZ");
    let pbsz = c.cmd("PBSZ 1024");
    assert_eq!((pbsz.code, pbsz.text()), (200, "PBSZ=0"));
    assert_eq!(c.cmd("PROT S").code, 536);
    assert_eq!(c.cmd("PROT E").code, 536);
    assert_eq!(c.cmd("PROT X").code, 504);
    assert_eq!(c.cmd("PROT P").code, 200);
    assert_eq!(c.cmd("PROT C").code, 200);
}

#[test]
fn ccc_is_refused_with_534_and_the_connection_stays_protected() {
    let server = tls_server();
    let mut c = server.ftps_alice();
    assert_eq!(c.cmd("CCC").code, 534);
    // Still speaking TLS: the reply came through the TLS stream, and so does this one.
    assert_eq!(c.cmd("NOOP").code, 200);
}

// Broken peers

#[test]
fn a_data_connection_that_fails_its_tls_handshake_gets_425() {
    let server = tls_server();
    std::fs::write(server.path("f.txt"), b"f").unwrap();
    let mut c = server.ftps_alice();
    let mut data = c.pasv();
    assert_eq!(c.cmd("RETR f.txt").code, 150);
    data.write_all(b"this is not a ClientHello\r\n").unwrap();
    assert_eq!(c.reply().code, 425);
    drop(data);
    assert_eq!(c.download("RETR f.txt").0.code, 226);
}

#[test]
fn plaintext_instead_of_a_tls_handshake_closes_that_connection_only() {
    let server = tls_server();
    let mut bad = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    assert_eq!(bad.cmd("AUTH TLS").code, 234);
    bad.send("hello");
    bad.send("USER alice");
    assert!(
        bad.try_reply().is_none(),
        "the server closes the connection"
    );

    let mut good = server.ftps_alice();
    assert_eq!(good.download("LIST").0.code, 226);
}

#[test]
fn a_plaintext_client_on_the_implicit_port_gets_no_greeting_and_others_are_served() {
    let server = TestServer::start_tls(TlsOptions {
        implicit: true,
        ..TlsOptions::default()
    });
    let mut plain = TcpStream::connect(server.implicit_addr()).unwrap();
    plain.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    plain.write_all(b"USER x\r\n").unwrap();
    let mut answer = Vec::new();
    // EOF or a reset: either way the server hung up, and said no 220.
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"220"), "{answer:?}");

    let mut c = FtpsClient::implicit(server.implicit_addr(), client_config(TLS13_FIRST));
    c.login("alice", PASSWORD);
    assert_eq!(c.download("LIST").0.code, 226);
}

#[test]
fn an_upload_cut_without_close_notify_is_426_and_keeps_the_old_file() {
    let server = tls_server();
    std::fs::write(server.path("keep.bin"), b"old contents").unwrap();
    let mut c = server.ftps_alice();
    let reply = c.upload_cut_short("STOR keep.bin", &pattern(1_000_000, 5));
    assert_eq!(reply.code, 426, "{reply:?}");
    assert_eq!(
        std::fs::read(server.path("keep.bin")).unwrap(),
        b"old contents"
    );
    // The control connection goes on.
    assert_eq!(c.upload("STOR keep.bin", b"new").code, 226);
    assert_eq!(std::fs::read(server.path("keep.bin")).unwrap(), b"new");
}

// Real clients

fn curl(args: &[&str]) -> String {
    run_ok(
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "60"])
            .args(args),
    )
}

/// The test certificate as a PEM file for external clients to trust.
fn ca_file(dir: &std::path::Path) -> String {
    let path = dir.join("ca.pem");
    std::fs::write(&path, &test_cert().cert_pem).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn curl_explicit_ftps_uploads_downloads_and_lists_with_reuse_required() {
    if !have_tool("curl", &["--version"]) {
        return;
    }
    let server = tls_server();
    let work = tempfile::tempdir().unwrap();
    let ca = ca_file(work.path());
    let tls = ["--ssl-reqd", "--cacert", &ca];
    let bytes = pattern(2_000_000, 6);
    let local = work.path().join("up.bin");
    std::fs::write(&local, &bytes).unwrap();

    let url = server.url("/up.bin");
    let mut args = tls.to_vec();
    args.extend(["-T", local.to_str().unwrap(), &*url]);
    curl(&args);
    assert_same(&std::fs::read(server.path("up.bin")).unwrap(), &bytes);

    // Two downloads and a listing over one control connection (TLS 1.3).
    let (one, two) = (work.path().join("1.bin"), work.path().join("2.bin"));
    let dir = server.url("/");
    let mut args = tls.to_vec();
    args.extend(["-o", one.to_str().unwrap(), &*url]);
    args.extend(["-o", two.to_str().unwrap(), &*url]);
    args.push(&dir);
    let listing = curl(&args);
    assert_same(&std::fs::read(&one).unwrap(), &bytes);
    assert_same(&std::fs::read(&two).unwrap(), &bytes);
    assert!(listing.lines().any(|l| l.ends_with(" up.bin")), "{listing}");
}

#[test]
fn curl_over_tls_1_2_uploads_twice_on_one_connection_with_reuse_required() {
    if !have_tool("curl", &["--version"]) {
        return;
    }
    let server = tls_server();
    let work = tempfile::tempdir().unwrap();
    let ca = ca_file(work.path());
    let local = work.path().join("up.bin");
    std::fs::write(&local, pattern(100_000, 7)).unwrap();
    let local = local.to_str().unwrap();
    let (url1, url2) = (server.url("/a.bin"), server.url("/b.bin"));
    curl(&[
        "--ssl-reqd",
        "--cacert",
        &ca,
        "--tls-max",
        "1.2",
        "-T",
        local,
        &url1,
        "-T",
        local,
        &url2,
    ]);
    assert!(server.path("a.bin").is_file() && server.path("b.bin").is_file());
}

#[test]
fn curl_implicit_ftps_downloads_and_lists() {
    if !have_tool("curl", &["--version"]) {
        return;
    }
    let server = TestServer::start_tls(TlsOptions {
        implicit: true,
        ..TlsOptions::default()
    });
    let work = tempfile::tempdir().unwrap();
    let ca = ca_file(work.path());
    let bytes = pattern(1_000_000, 8);
    std::fs::write(server.path("imp.bin"), &bytes).unwrap();
    let base = format!("ftps://alice:{PASSWORD}@{}", server.implicit_addr());
    let out = work.path().join("imp.bin");
    curl(&[
        "--cacert",
        &ca,
        "-o",
        out.to_str().unwrap(),
        &format!("{base}/imp.bin"),
    ]);
    assert_same(&std::fs::read(&out).unwrap(), &bytes);
    let listing = curl(&["--cacert", &ca, &format!("{base}/")]);
    assert!(
        listing.lines().any(|l| l.ends_with(" imp.bin")),
        "{listing}"
    );
}

#[test]
fn lftp_puts_gets_and_lists_over_explicit_tls_with_reuse_required() {
    if !have_tool("lftp", &["--version"]) {
        return;
    }
    let server = TestServer::start_tls(TlsOptions {
        required: "data",
        ..TlsOptions::default()
    });
    let work = tempfile::tempdir().unwrap();
    let bytes = pattern(1_500_000, 9);
    std::fs::write(work.path().join("src.bin"), &bytes).unwrap();
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; \
         set ftp:ssl-force true; set ftp:ssl-protect-data true; \
         set ssl:verify-certificate no; \
         put {src} -o a.bin; put {src} -o b.bin; cls -l; \
         get a.bin -o {got1}; get b.bin -o {got2}; bye",
        src = work.path().join("src.bin").display(),
        got1 = work.path().join("got1.bin").display(),
        got2 = work.path().join("got2.bin").display(),
    );
    let out = run_ok(
        Command::new("lftp")
            .args(["-u", &format!("alice,{PASSWORD}"), "-e", &script])
            .arg(format!("ftp://{}", server.addr)),
    );
    assert!(out.contains("a.bin") && out.contains("b.bin"), "{out}");
    assert_same(&std::fs::read(server.path("b.bin")).unwrap(), &bytes);
    assert_same(
        &std::fs::read(work.path().join("got1.bin")).unwrap(),
        &bytes,
    );
    assert_same(
        &std::fs::read(work.path().join("got2.bin")).unwrap(),
        &bytes,
    );
}
const FTPLIB_TLS_SCRIPT: &str = r#"
import ftplib, io, ssl, sys
host, port, user, password, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=ca)
f = ftplib.FTP_TLS(context=context)
f.connect(host, port, timeout=30)
f.login(user, password)
f.prot_p()
data = bytes(range(256)) * 4096
for name in ("a.bin", "b.bin"):
    f.storbinary("STOR " + name, io.BytesIO(data))
for name in ("a.bin", "b.bin"):
    out = io.BytesIO()
    f.retrbinary("RETR " + name, out.write)
    assert out.getvalue() == data, "binary round trip"
assert "a.bin" in f.nlst()
f.quit()
print("ok")
"#;

#[test]
fn python_ftplib_ftp_tls_works_without_session_reuse() {
    if !have_tool("python3", &["--version"]) {
        return;
    }
    let server = TestServer::start_tls(TlsOptions {
        require_session_reuse: false,
        ..TlsOptions::default()
    });
    let work = tempfile::tempdir().unwrap();
    let out = ftplib_script(FTPLIB_TLS_SCRIPT, server.addr, &[&ca_file(work.path())]);
    assert_eq!(out.trim(), "ok");
    assert_eq!(
        std::fs::read(server.path("b.bin")).unwrap().len(),
        256 * 4096
    );
}

#[test]
fn an_upload_is_answered_with_the_servers_close_notify() {
    let server = tls_server();
    let mut c = server.ftps_alice();
    let tcp = c.pasv();
    assert_eq!(c.cmd("STOR cn.bin").code, 150);
    let mut tls = crate::support::ftps::tls_over(tcp, &c.data_config);
    tls.write_all(b"payload").unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut rest = Vec::new();
    let end = tls.read_to_end(&mut rest);
    assert!(
        end.is_ok(),
        "the server closed without close_notify: {end:?}"
    );
    assert_eq!(c.reply().code, 226);
}

const AIOFTP_TLS_SCRIPT: &str = r#"
import asyncio, ssl, sys, aioftp
async def main(mode, host, port, user, password, ca, local, back):
    context = ssl.create_default_context(cafile=ca)
    if mode == "implicit":
        c = aioftp.Client(ssl=context)
        await c.connect(host, int(port))
    else:
        c = aioftp.Client()
        await c.connect(host, int(port))
        await c.upgrade_to_tls(context)
    await c.login(user, password)
    for name in ("a.bin", "b.bin"):
        await c.upload(local, name, write_into=True)
    for _ in range(2):
        await c.download("b.bin", back, write_into=True)
    names = [str(p) for p, _ in await c.list()]
    assert "a.bin" in names, names
    await c.quit()
    print("ok")
asyncio.run(main(*sys.argv[1:]))
"#;

fn aioftp_over_tls(mode: &str) {
    if !have_tool("python3", &["-c", "import aioftp"]) {
        return;
    }
    let server = TestServer::start_tls(TlsOptions {
        implicit: true,
        ..TlsOptions::default()
    });
    let addr = if mode == "implicit" {
        server.implicit_addr()
    } else {
        server.addr
    };
    let work = tempfile::tempdir().unwrap();
    let bytes = pattern(700_000, 12);
    let local = work.path().join("ai.bin");
    let back = work.path().join("back.bin");
    std::fs::write(&local, &bytes).unwrap();
    let out = run_ok(
        Command::new("python3")
            .args(["-c", AIOFTP_TLS_SCRIPT, mode])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args(["alice", PASSWORD, &ca_file(work.path())])
            .args([&local, &back]),
    );
    assert_eq!(out.trim(), "ok");
    assert_same(&std::fs::read(server.path("a.bin")).unwrap(), &bytes);
    assert_same(&std::fs::read(server.path("b.bin")).unwrap(), &bytes);
    assert_same(&std::fs::read(&back).unwrap(), &bytes);
}

#[test]
fn aioftp_client_over_implicit_tls_with_reuse_required() {
    aioftp_over_tls("implicit");
}

#[test]
fn aioftp_client_over_explicit_tls_with_reuse_required() {
    aioftp_over_tls("explicit");
}

#[test]
fn a_client_that_stalls_its_tls_handshake_is_cut_off_at_the_handshake_timeout() {
    let pem_dir = tempfile::tempdir().unwrap();
    write_pems(pem_dir.path());
    let options = TlsOptions {
        implicit: true,
        ..TlsOptions::default()
    };
    let server = TestServer::start_with(|root| {
        crate::support::ftps::tls_config(root, pem_dir.path(), options)
            .replace("handshake_timeout = \"10s\"", "handshake_timeout = \"1s\"")
    });
    // Connects to the implicit port and never says a word.
    let mut silent = TcpStream::connect(server.implicit_addr()).unwrap();
    silent.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        silent.read(&mut buf).unwrap_or(0),
        0,
        "closed, without a greeting"
    );
    // Sends AUTH TLS and then nothing.
    let mut stalled = server.raw();
    assert_eq!(stalled.cmd("AUTH TLS").code, 234);
    assert!(
        stalled.try_reply().is_none(),
        "closed after the handshake timeout"
    );
    assert_eq!(
        server.raw_alice().cmd("NOOP").code,
        200,
        "others are served"
    );
}

#[test]
fn a_handshake_timeout_too_long_for_the_clock_in_settings_built_in_code_still_protects_data() {
    let pem_dir = tempfile::tempdir().unwrap();
    write_pems(pem_dir.path());
    let root = tempfile::tempdir().unwrap();
    for dir in ["pub", "readonly", "secret"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let text = crate::support::ftps::tls_config(root.path(), pem_dir.path(), TlsOptions::default());
    let loaded = aioftpd::config::load_str(&text, std::path::Path::new("test.toml")).unwrap();
    let mut settings = loaded.settings;
    settings.tls.as_mut().unwrap().handshake_timeout = std::time::Duration::MAX;
    let server = TestServer::serve(root, settings, std::sync::Arc::new(loaded.users));
    std::fs::write(server.path("f"), b"protected").unwrap();
    let mut c = server.ftps_alice();
    let (reply, bytes) = c.download("RETR f");
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(bytes, b"protected");
}
