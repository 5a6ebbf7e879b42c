//! Faults the real filesystem cannot produce on demand, injected below the
//! server with `FaultyStorage`: a full disk, refusals, a hanging backend.

use std::sync::Arc;
use std::time::Duration;

use aioftpd::auth::{ConfigUserManager, PasswordHash, Permission, User};
use aioftpd::path::VirtualPath;
use aioftpd::settings::Settings;
use aioftpd::storage::faults::{FaultSwitch, Faults, FaultyStorage};
use aioftpd::storage::{FsStorage, TimedStorage};

use crate::support::{password_hash, pattern, TestServer, PASSWORD};

/// A server whose user alice reads and writes a temp dir through a faulty backend.
fn faulty_server(storage_timeout: Duration) -> (TestServer, FaultSwitch) {
    let root = tempfile::tempdir().expect("tempdir");
    let fs = Arc::new(FsStorage::new(root.path()).expect("fs"));
    let (faulty, switch) = FaultyStorage::new(fs);
    let alice = User {
        login: Some("alice".into()),
        home: VirtualPath::root(),
        permissions: vec![Permission {
            path: VirtualPath::root(),
            readable: true,
            writable: true,
        }],
        storage: Arc::new(TimedStorage::new(Arc::new(faulty), storage_timeout)),
        tls_required: None,
        max_connections: None,
        limits: Default::default(),
        quota: None,
    };
    let hash = PasswordHash::parse(password_hash()).expect("hash");
    let users = ConfigUserManager::new(vec![(alice, hash)], None);
    let mut settings = Settings {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        ..Settings::default()
    };
    settings.session.storage_timeout = storage_timeout;
    (TestServer::serve(root, settings, Arc::new(users)), switch)
}

#[test]
fn a_full_disk_during_stor_is_452_and_the_old_file_stays() {
    let (server, switch) = faulty_server(Duration::from_secs(30));
    std::fs::write(server.path("keep.bin"), b"the old contents").unwrap();
    switch.set(Faults {
        full_after: Some(100_000),
        ..Faults::default()
    });
    let mut c = server.raw_alice();
    c.cmd("TYPE I");
    let reply = c.upload("STOR keep.bin", &pattern(1_000_000, 4));
    assert_eq!(reply.code, 452, "{reply:?}");
    assert_eq!(
        std::fs::read(server.path("keep.bin")).unwrap(),
        b"the old contents"
    );
    let leftovers = std::fs::read_dir(server.root.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
    switch.set(Faults::default());
    assert_eq!(
        c.upload("STOR keep.bin", b"new").code,
        226,
        "the session goes on"
    );
}

#[test]
fn a_refusing_backend_is_550_for_every_command_and_nothing_crashes() {
    let (server, switch) = faulty_server(Duration::from_secs(30));
    std::fs::write(server.path("f"), b"x").unwrap();
    let mut c = server.raw_alice();
    switch.set(Faults {
        deny: true,
        ..Faults::default()
    });
    for cmd in [
        "CWD /", "SIZE f", "MDTM f", "MKD d", "DELE f", "RNFR f", "RMD d",
    ] {
        assert_eq!(c.cmd(cmd).code, 550, "{cmd}");
    }
    c.cmd("PASV");
    assert_eq!(c.cmd("RETR f").code, 550);
    assert_eq!(c.cmd("LIST").code, 550);
    switch.set(Faults::default());
    assert_eq!(c.cmd("SIZE f").code, 213);
}

#[test]
fn a_hanging_backend_answers_451_at_the_storage_timeout() {
    let (server, switch) = faulty_server(Duration::from_millis(500));
    std::fs::write(server.path("f"), b"x").unwrap();
    let mut c = server.raw_alice();
    switch.set(Faults {
        hang: true,
        ..Faults::default()
    });
    assert_eq!(c.cmd("SIZE f").code, 451);
    assert_eq!(c.cmd("MKD d").code, 451);
    switch.set(Faults::default());
    assert_eq!(c.cmd("SIZE f").code, 213, "the session goes on");
    let mut other = server.raw();
    other.login("alice", PASSWORD);
}
