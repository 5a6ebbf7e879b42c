//! Config-driven behaviour: memory storage, home, passive range and public
//! address, idle and data-connection timeouts.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{default_config, free_ports, password_hash, RawClient, TestServer, PASSWORD};

#[test]
fn memory_storage_serves_uploads_back() {
    let server = TestServer::start_with(|_| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[users]]\nlogin = \"alice\"\npassword = \"{}\"\nstorage = \"memory\"\npermissions = [{{ path = \"/\", readable = true, writable = true }}]\n",
            password_hash()
        )
    });
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("MKD box").code, 257);
    assert_eq!(c.upload("STOR box/m.txt", b"in memory").code, 226);
    assert_eq!(c.fetch("RETR box/m.txt").1, "in memory");
    assert_eq!(c.fetch("NLST box").1, "m.txt\r\n");
    assert!(!server.path("box").exists(), "nothing touched the disk");
}

#[test]
fn a_session_starts_in_the_users_home() {
    let server = TestServer::start_with(|root| {
        default_config(root).replace("login = \"alice\"", "login = \"alice\"\nhome = \"/pub\"")
    });
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("PWD").text(), "\"/pub\" is the current directory");
}

#[test]
fn pasv_uses_the_port_range_and_announces_the_public_address() {
    // Not an ephemeral port: another test's socket could take it between
    // this session's PASV and EPSV (it did, once in many runs).
    let (port, _) = free_ports(21_200, 1);
    let server = TestServer::start_with(|root| {
        format!(
            "{}\n[passive]\nports = \"{port}-{port}\"\npublic_address = \"203.0.113.7\"\n",
            default_config(root)
        )
    });
    let mut c = server.raw_alice();
    let reply = c.cmd("PASV");
    assert_eq!(reply.code, 227);
    assert!(
        reply
            .text()
            .contains(&format!("(203,0,113,7,{},{})", port >> 8, port & 0xff)),
        "{reply:?}"
    );
    let epsv = c.cmd("EPSV");
    assert_eq!(
        epsv.text(),
        format!("Entering Extended Passive Mode (|||{port}|)")
    );

    // While this session holds the only port, another session is told 425 and goes on.
    let mut other = server.raw_alice();
    assert_eq!(other.cmd("EPSV").code, 425);
    assert_eq!(other.cmd("NOOP").code, 200);

    // The port returns once the data connection is done.
    std::fs::write(server.path("f"), b"x").unwrap();
    let mut data = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(c.cmd("RETR f").code, 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(c.reply().code, 226);
    assert_eq!(other.cmd("EPSV").code, 229);
}

#[test]
fn an_idle_session_is_closed_with_421() {
    let server = TestServer::start_with(|root| {
        default_config(root).replace("idle_timeout = \"60s\"", "idle_timeout = \"1s\"")
    });
    let mut c = server.raw();
    c.login("alice", PASSWORD);
    let reply = c.reply();
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(c.try_reply().is_none());
}

#[test]
fn a_data_connection_that_never_comes_is_425() {
    let server = TestServer::start_with(|root| {
        default_config(root).replace("data_timeout = \"10s\"", "data_timeout = \"1s\"")
    });
    std::fs::write(server.path("f"), b"x").unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("PASV").code, 227);
    assert_eq!(c.cmd("RETR f").code, 425);
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn durations_too_long_for_the_clock_in_settings_built_in_code_mean_never() {
    // The library API takes Settings as built; nothing range-checks them.
    let root = tempfile::tempdir().unwrap();
    for dir in ["pub", "readonly", "secret"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let loaded =
        aioftpd::config::load_str(&default_config(root.path()), Path::new("test.toml")).unwrap();
    let mut settings = loaded.settings;
    let session = &mut settings.session;
    session.idle_timeout = Duration::MAX;
    session.login_timeout = Duration::MAX;
    session.data_timeout = Duration::MAX;
    session.socket_timeout = Duration::MAX;
    session.storage_timeout = Duration::MAX;
    settings.shutdown_timeout = Duration::MAX;
    settings.login.failure_window = Duration::MAX;
    settings.login.block_duration = Duration::MAX;
    settings.login.max_failures_per_ip = 1;
    settings.login.failure_delay = Duration::ZERO;
    let users = loaded.users.with_credential_cache(Some(Duration::MAX));
    let server = TestServer::serve(root, settings, Arc::new(users));
    std::fs::write(server.path("f"), b"served").unwrap();

    let mut c = server.raw_alice();
    assert_eq!(c.fetch("RETR f").1, "served");
    assert_eq!(c.cmd("QUIT").code, 221);
    // The second login is answered from the credential cache.
    assert_eq!(server.raw_alice().cmd("NOOP").code, 200);

    let mut guesser = server.raw();
    assert_eq!(guesser.cmd("USER alice").code, 331);
    assert_eq!(
        guesser.cmd("PASS wrong").code,
        421,
        "the budget of one is spent"
    );
    assert_eq!(
        RawClient::connect(server.addr).greeting.code,
        421,
        "and the address is blocked, however long the block"
    );
}

#[test]
fn pasv_announces_each_client_network_its_own_address() {
    let server = TestServer::start_with(|root| {
        format!(
            "{}\n[passive]\npublic_address = \"203.0.113.7\"\n\
             [[passive.overrides]]\nnetworks = [\"127.0.0.2\"]\naddress = \"192.168.1.2\"\n\
             [[passive.overrides]]\nnetworks = [\"127.0.0.3/32\", \"10.0.0.0/8\"]\naddress = \"10.0.0.5\"\n",
            default_config(root)
        )
    });
    let announced = |from: &str| {
        let mut c = RawClient::connect_from(from.parse().unwrap(), server.addr);
        c.login("alice", PASSWORD);
        let reply = c.cmd("PASV");
        assert_eq!(reply.code, 227, "{reply:?}");
        let text = reply.text();
        let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
        inner.split(',').take(4).collect::<Vec<_>>().join(".")
    };
    assert_eq!(announced("127.0.0.2"), "192.168.1.2");
    assert_eq!(announced("127.0.0.3"), "10.0.0.5");
    assert_eq!(
        announced("127.0.0.4"),
        "203.0.113.7",
        "elsewhere: public_address"
    );
}
