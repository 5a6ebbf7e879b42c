//! Permissions and confinement: per-path rules, `..`, symlinks, bounce and port stealing.

use std::io::Read;
use std::net::TcpStream;

use crate::support::TestServer;

#[test]
fn read_only_paths_refuse_writes_but_allow_reads() {
    let server = TestServer::start();
    std::fs::write(server.path("readonly/doc"), b"ro").unwrap();
    let mut c = server.raw_alice();
    c.cmd("PASV");
    assert_eq!(c.cmd("STOR readonly/new").code, 550);
    for cmd in [
        "DELE readonly/doc",
        "MKD readonly/d",
        "RNFR readonly/doc",
        "APPE readonly/doc",
    ] {
        assert_eq!(c.cmd(cmd).code, 550, "{cmd}");
    }
    assert_eq!(c.fetch("RETR readonly/doc").1, "ro");
    assert!(!server.path("readonly/new").exists());
}

#[test]
fn a_path_without_rights_can_be_neither_listed_nor_entered() {
    let server = TestServer::start();
    std::fs::write(server.path("secret/key"), b"k").unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("CWD secret").code, 550);
    assert_eq!(c.cmd("SIZE secret/key").code, 550);
    c.cmd("PASV");
    assert_eq!(c.cmd("RETR secret/key").code, 550);
    assert_eq!(c.cmd("LIST secret").code, 550);
}

#[test]
fn anonymous_users_cannot_write() {
    let server = TestServer::start();
    let mut c = server.raw();
    c.login("anonymous", "guest@");
    c.cmd("PASV");
    assert_eq!(c.cmd("STOR x").code, 550);
    assert_eq!(c.cmd("MKD d").code, 550);
}

#[test]
fn dot_dot_stays_inside_the_virtual_root() {
    let server = TestServer::start();
    std::fs::write(server.path("pub/inside"), b"in").unwrap();
    let mut c = server.raw();
    c.login("anonymous", "x");
    assert_eq!(c.cmd("CWD ../../../..").code, 250);
    assert_eq!(c.cmd("PWD").text(), "\"/\" is the current directory");
    let (_, names) = c.fetch("NLST ../..");
    assert_eq!(names, "inside\r\n", "anonymous sees only pub");
    assert_eq!(c.cmd("SIZE ../readonly").code, 550);
}

#[test]
fn symlinks_pointing_outside_the_root_are_not_followed() {
    let server = TestServer::start();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), b"root:x:0:0").unwrap();
    std::os::unix::fs::symlink(outside.path(), server.path("escape")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("passwd"), server.path("passwd")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", server.path("etc")).unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("CWD escape").code, 550);
    assert_eq!(c.cmd("CWD etc").code, 550);
    assert_eq!(c.cmd("SIZE passwd").code, 550);
    for cmd in [
        "RETR passwd",
        "RETR escape/passwd",
        "STOR escape/new",
        "RETR etc/passwd",
    ] {
        let (reply, text) = c.fetch(cmd);
        assert_eq!(reply.code, 550, "{cmd}: {reply:?}");
        assert!(text.is_empty());
    }
    // Listing the link itself shows the link, as `ls -l link` does, not what it points at.
    let (reply, text) = c.fetch("LIST escape");
    assert_eq!(reply.code, 226);
    assert!(text.starts_with('l') && !text.contains("passwd"), "{text}");
    assert!(!outside.path().join("new").exists());
}

#[test]
fn port_to_another_host_or_a_privileged_port_is_refused() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(
        c.cmd("PORT 127,0,0,2,31,144").code,
        504,
        "third host (bounce)"
    );
    assert_eq!(c.cmd("PORT 127,0,0,1,0,21").code, 504, "privileged port");
    assert_eq!(c.cmd("EPRT |1|10.1.2.3|8080|").code, 504);
    assert_eq!(c.cmd("EPRT |1|127.0.0.1|22|").code, 504);
    assert_eq!(c.cmd("PORT 127,0,0,1,31,144").code, 200);
}

#[test]
fn a_passive_port_is_not_given_to_another_address() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"mine").unwrap();
    let mut c = server.raw_alice();
    let reply = c.cmd("EPSV");
    let text = reply.text();
    let port: u16 = text[text.find("|||").unwrap() + 3..text.rfind('|').unwrap()]
        .parse()
        .unwrap();
    // A thief on another loopback address connects first and gets nothing.
    let thief = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    thief
        .bind(
            &"127.0.0.2:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    thief
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut thief: TcpStream = thief.into();
    let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(c.cmd("RETR f").code, 150);
    let mut got = String::new();
    data.read_to_string(&mut got).unwrap();
    assert_eq!(c.reply().code, 226);
    assert_eq!(got, "mine");
    thief
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut stolen = Vec::new();
    let _ = thief.read_to_end(&mut stolen);
    assert!(stolen.is_empty());
}

#[test]
fn epsv_all_refuses_other_data_setups() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("EPSV ALL").code, 200);
    assert_eq!(c.cmd("PASV").code, 503);
    assert_eq!(c.cmd("PORT 127,0,0,1,31,144").code, 503);
    assert_eq!(c.cmd("EPSV").code, 229);
}

#[test]
fn epsv_for_the_wrong_protocol_is_522() {
    let server = TestServer::start();
    assert_eq!(server.raw_alice().cmd("EPSV 2").code, 522);
}

#[test]
fn a_directory_swapped_for_an_outside_symlink_after_cwd_is_not_followed() {
    let server = TestServer::start();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"outside").unwrap();
    std::fs::create_dir(server.path("dir")).unwrap();
    std::fs::write(server.path("dir/secret"), b"inside").unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("CWD dir").code, 250);
    assert_eq!(c.fetch("RETR secret").1, "inside");
    // Between two commands, the directory the session stands in becomes a
    // link to outside: every later access resolves anew and is refused.
    std::fs::remove_dir_all(server.path("dir")).unwrap();
    std::os::unix::fs::symlink(outside.path(), server.path("dir")).unwrap();
    let (reply, text) = c.fetch("RETR secret");
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(text.is_empty());
    assert_eq!(c.cmd("SIZE secret").code, 550);
    c.cmd("PASV");
    assert_eq!(c.cmd("STOR planted").code, 550);
    assert!(!outside.path().join("planted").exists());
}
