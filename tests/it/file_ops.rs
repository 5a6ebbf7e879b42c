//! CWD/CDUP/PWD, MKD, RMD, DELE, RNFR/RNTO, MFMT.

use crate::support::TestServer;

#[test]
fn pwd_cwd_cdup_and_quoting() {
    let server = TestServer::start();
    std::fs::create_dir_all(server.path("a/say \"hi\"")).unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("CWD a").code, 250);
    assert_eq!(c.cmd("XCWD say \"hi\"").code, 250);
    assert_eq!(
        c.cmd("PWD").text(),
        "\"/a/say \"\"hi\"\"\" is the current directory"
    );
    assert_eq!(c.cmd("CDUP").code, 250);
    assert_eq!(c.cmd("XPWD").text(), "\"/a\" is the current directory");
    assert_eq!(c.cmd("CWD /").code, 250);
    assert_eq!(c.cmd("CWD missing").code, 550);
    std::fs::write(server.path("file"), b"").unwrap();
    assert_eq!(c.cmd("CWD file").code, 550);
}

#[test]
fn mkd_rmd_dele() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    let mkd = c.cmd("MKD new dir");
    assert_eq!(mkd.code, 257);
    assert!(mkd.text().starts_with("\"/new dir\""), "{mkd:?}");
    assert!(server.path("new dir").is_dir());
    assert_eq!(c.cmd("MKD new dir").code, 550, "exists");
    assert_eq!(c.cmd("XMKD missing/child").code, 550);
    std::fs::write(server.path("new dir/f"), b"x").unwrap();
    assert_eq!(c.cmd("RMD new dir").code, 550, "not empty");
    assert_eq!(c.cmd("DELE new dir").code, 550, "DELE refuses directories");
    assert_eq!(c.cmd("DELE new dir/f").code, 250);
    assert_eq!(c.cmd("XRMD new dir").code, 250);
    assert!(!server.path("new dir").exists());
    assert_eq!(c.cmd("DELE gone").code, 550);
    assert_eq!(c.cmd("RMD /").code, 550);
}

#[test]
fn rename_moves_files_and_directories() {
    let server = TestServer::start();
    std::fs::write(server.path("old"), b"data").unwrap();
    std::fs::create_dir(server.path("d")).unwrap();
    let mut ftp = server.ftp();
    ftp.rename("old", "d/new").unwrap();
    assert_eq!(std::fs::read(server.path("d/new")).unwrap(), b"data");
    ftp.rename("d", "e").unwrap();
    assert!(server.path("e/new").exists());
}

#[test]
fn rnto_without_rnfr_is_503() {
    let server = TestServer::start();
    assert_eq!(server.raw_alice().cmd("RNTO x").code, 503);
}

#[test]
fn rnfr_is_forgotten_after_another_command() {
    let server = TestServer::start();
    std::fs::write(server.path("a"), b"").unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("RNFR a").code, 350);
    assert_eq!(c.cmd("NOOP").code, 200);
    assert_eq!(c.cmd("RNTO b").code, 503);
    assert!(server.path("a").exists());
}

#[test]
fn rnfr_of_a_missing_path_is_550() {
    let server = TestServer::start();
    assert_eq!(server.raw_alice().cmd("RNFR nope").code, 550);
}

#[test]
fn mfmt_sets_the_modification_time() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"").unwrap();
    let mut c = server.raw_alice();
    let reply = c.cmd("MFMT 20200102030405 f");
    assert_eq!(reply.code, 213);
    assert_eq!(reply.text(), "Modify=20200102030405; /f");
    assert_eq!(c.cmd("MDTM f").text(), "20200102030405");
    assert_eq!(c.cmd("MFMT 2020 f").code, 501);
}
