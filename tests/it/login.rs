//! USER/PASS, anonymous access, REIN, and what needs a login.

use crate::support::{TestServer, PASSWORD};

#[test]
fn greeting_is_220() {
    let server = TestServer::start();
    assert_eq!(server.raw().greeting.code, 220);
}

#[test]
fn right_password_logs_in_wrong_one_is_530() {
    let server = TestServer::start();
    let mut c = server.raw();
    assert_eq!(c.cmd("USER alice").code, 331);
    assert_eq!(c.cmd("PASS wrong").code, 530);
    assert_eq!(c.cmd("USER alice").code, 331);
    assert_eq!(c.cmd(&format!("PASS {PASSWORD}")).code, 230);
    assert_eq!(c.cmd("PWD").code, 257);
}

#[test]
fn unknown_login_is_refused_never_mapped_to_anonymous() {
    let server = TestServer::start();
    let mut c = server.raw();
    assert_eq!(
        c.cmd("USER mallory").code,
        331,
        "no user enumeration at USER"
    );
    assert_eq!(c.cmd("PASS anything").code, 530);
    assert_eq!(c.cmd("PWD").code, 530);
}

#[test]
fn anonymous_and_ftp_reach_the_anonymous_user_with_any_password() {
    let server = TestServer::start();
    std::fs::write(server.path("pub/hello.txt"), b"hi").unwrap();
    for login in ["anonymous", "ftp", "ANONYMOUS"] {
        let mut c = server.raw();
        c.login(login, "me@example.com");
        let (reply, names) = c.fetch("NLST");
        assert_eq!(reply.code, 226);
        assert_eq!(names, "hello.txt\r\n");
    }
}

#[test]
fn commands_that_touch_files_need_a_login() {
    let server = TestServer::start();
    let mut c = server.raw();
    for cmd in [
        "PWD", "CWD /", "LIST", "RETR x", "STOR x", "PASV", "MKD d", "SIZE x", "DELE x",
    ] {
        assert_eq!(c.cmd(cmd).code, 530, "{cmd}");
    }
    for (cmd, code) in [
        ("NOOP", 200),
        ("SYST", 215),
        ("FEAT", 211),
        ("HELP", 214),
        ("TYPE I", 200),
    ] {
        assert_eq!(c.cmd(cmd).code, code, "{cmd}");
    }
}

#[test]
fn pass_without_user_is_503() {
    let server = TestServer::start();
    assert_eq!(server.raw().cmd("PASS x").code, 503);
}

#[test]
fn rein_logs_out_and_keeps_the_connection() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("REIN").code, 220);
    assert_eq!(c.cmd("PWD").code, 530);
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("PWD").code, 257);
}

#[test]
fn acct_and_allo_are_superfluous() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("ACCT x").code, 202);
    assert_eq!(c.cmd("ALLO 100").code, 202);
}

#[test]
fn quit_says_goodbye_and_closes() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("QUIT").code, 221);
    assert!(c.try_reply().is_none());
}

#[test]
fn suppaftp_logs_in() {
    let server = TestServer::start();
    let mut ftp = server.ftp();
    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.quit().unwrap();
}

#[test]
fn many_connections_of_one_client_logging_in_at_once_all_get_in() {
    // A mirror opening its parallel sessions, or a fleet behind one NAT
    // address reconnecting together, sends one right password many times
    // at once: that is one guess, not many, under the default budget of
    // 10 (32: the default cap of connections from one address).
    let server = TestServer::start();
    let mut conns: Vec<_> = (0..32).map(|_| server.raw()).collect();
    for c in &mut conns {
        assert_eq!(c.cmd("USER alice").code, 331);
    }
    for c in &mut conns {
        c.send(&format!("PASS {PASSWORD}"));
    }
    let codes: Vec<u16> = conns.iter_mut().map(|c| c.reply().code).collect();
    assert!(codes.iter().all(|&code| code == 230), "{codes:?}");
}
