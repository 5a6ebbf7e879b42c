//! The rule that a `PROT P` data connection resumes a TLS session this
//! server issued to its control connection (or to a sibling: the same named
//! user from the same address), the order of `PROT` and `PASV`, and `AUTH TLS`
//! behind commands sent in clear. Each refusal is checked against what it
//! defends: the data connection gets `522` and nothing is written.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, NamedGroup};

use crate::ftps::assert_same;
use crate::support::ftps::{
    client_config, tls_over, FtpsClient, TlsOptions, TLS12_ONLY, TLS13_FIRST,
};
use crate::support::{pattern, TestServer, PASSWORD};

fn tls_server() -> TestServer {
    TestServer::start_tls(TlsOptions::default())
}

/// A second loopback address, for a client on another host.
fn elsewhere() -> IpAddr {
    "127.0.0.2".parse().unwrap()
}

/// A client session cache that keeps only the newest TLS 1.3 ticket, as
/// curl does, and counts the tickets it was given.
#[derive(Debug, Default)]
struct NewestTicketOnly {
    ticket: Mutex<Option<Tls13ClientSessionValue>>,
    received: AtomicUsize,
}

impl NewestTicketOnly {
    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl ClientSessionStore for NewestTicketOnly {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }
    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {}
    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        *self.ticket.lock().unwrap() = Some(value);
        self.received.fetch_add(1, Ordering::SeqCst);
    }
    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.ticket.lock().unwrap().take()
    }
}

/// A TLS 1.3 client config whose sessions go to `store`.
fn config_with(store: Arc<NewestTicketOnly>) -> Arc<ClientConfig> {
    let mut config = (*client_config(TLS13_FIRST)).clone();
    config.resumption = Resumption::store(store);
    Arc::new(config)
}

#[test]
fn a_data_connection_that_does_not_resume_gets_522_when_reuse_is_required() {
    let server = tls_server();
    std::fs::write(server.path("old.bin"), b"old").unwrap();
    let mut c = server.ftps_alice();
    let own = c.data_config.clone();
    // A config of its own: an empty session cache, a full handshake.
    c.data_config = client_config(TLS13_FIRST);
    assert_eq!(c.download("RETR old.bin").0.code, 522);
    assert_eq!(c.upload("STOR old.bin", b"new").code, 522);
    assert_eq!(std::fs::read(server.path("old.bin")).unwrap(), b"old");
    assert_eq!(c.download("LIST").0.code, 522);
    // The same control connection still works for a client that resumes.
    c.data_config = own;
    let (reply, got) = c.download("RETR old.bin");
    assert_eq!((reply.code, got.as_slice()), (226, &b"old"[..]));
}

#[test]
fn without_required_reuse_a_data_connection_may_make_a_full_handshake() {
    let server = TestServer::start_tls(TlsOptions {
        require_session_reuse: false,
        ..TlsOptions::default()
    });
    let mut c = server.ftps_alice();
    c.data_config = client_config(TLS13_FIRST);
    let bytes = pattern(300_000, 4);
    for _ in 0..3 {
        assert_eq!(c.upload("STOR full.bin", &bytes).code, 226);
        let (reply, got) = c.download("RETR full.bin");
        assert_eq!(reply.code, 226);
        assert_same(&got, &bytes);
    }
}

/// alice's control connection A, then control connection B from `from`
/// logged in as `second`, both from one TLS 1.2 client config: its single
/// cached session is now B's, and that is what A's next data connection
/// offers, for an upload over an existing file. `close_b` closes B first.
/// Returns the upload's reply and whether the file changed.
fn upload_offering_the_session_of(second: &str, from: IpAddr, close_b: bool) -> (u16, bool) {
    let server = tls_server();
    std::fs::write(server.path("f.txt"), b"old").unwrap();
    let shared = client_config(TLS12_ONLY);
    let mut a = FtpsClient::explicit(server.addr, shared.clone());
    a.login("alice", PASSWORD);
    a.protect_data();
    let mut b = FtpsClient::explicit_from(from, server.addr, shared);
    b.login(second, PASSWORD);
    if close_b {
        assert_eq!(b.cmd("QUIT").code, 221);
        assert!(b.try_reply().is_none(), "B is closed");
    }
    let code = a.upload("STOR f.txt", b"new").code;
    let changed = std::fs::read(server.path("f.txt")).unwrap() != b"old";
    (code, changed)
}

#[test]
fn a_data_connection_resuming_another_users_session_gets_522_and_writes_nothing() {
    let here = "127.0.0.1".parse().unwrap();
    assert_eq!(
        upload_offering_the_session_of("bob", here, false),
        (522, false)
    );
}

#[test]
fn a_data_connection_resuming_a_session_issued_to_another_address_gets_522() {
    assert_eq!(
        upload_offering_the_session_of("alice", elsewhere(), false),
        (522, false)
    );
}

#[test]
fn a_data_connection_may_resume_a_sibling_control_connection_of_the_same_user() {
    let here = "127.0.0.1".parse().unwrap();
    assert_eq!(
        upload_offering_the_session_of("alice", here, false),
        (226, true)
    );
}

#[test]
fn a_sibling_that_has_closed_still_counts() {
    let here = "127.0.0.1".parse().unwrap();
    assert_eq!(
        upload_offering_the_session_of("alice", here, true),
        (226, true)
    );
}

#[test]
fn two_anonymous_sessions_from_one_address_are_not_siblings() {
    let server = tls_server();
    let bytes = b"public";
    std::fs::write(server.path("pub/p.txt"), bytes).unwrap();
    let shared = client_config(TLS12_ONLY);
    let mut one = FtpsClient::explicit(server.addr, shared.clone());
    one.login("anonymous", "a@example.org");
    one.protect_data();
    let mut other = FtpsClient::explicit(server.addr, shared);
    other.login("anonymous", "b@example.org");
    // The shared cache holds the other stranger's session now.
    assert_eq!(one.download("RETR p.txt").0.code, 522);
    drop(other);
    let mut fresh = FtpsClient::explicit(server.addr, client_config(TLS12_ONLY));
    fresh.login("anonymous", "c@example.org");
    fresh.protect_data();
    let (reply, got) = fresh.download("RETR p.txt");
    assert_eq!((reply.code, got.as_slice()), (226, &bytes[..]));
}

#[test]
fn a_sibling_still_logging_in_counts_once_it_is_in_and_only_as_the_same_user() {
    for (second, want) in [("alice", 226), ("bob", 522)] {
        let server = tls_server();
        std::fs::write(server.path("f.txt"), b"f").unwrap();
        let shared = client_config(TLS12_ONLY);
        let mut a = FtpsClient::explicit(server.addr, shared.clone());
        a.login("alice", PASSWORD);
        a.protect_data();
        // B has made its handshake, so its session is the cached one, but
        // has not logged in yet.
        let mut b = FtpsClient::explicit(server.addr, shared);
        let tcp = a.pasv();
        assert_eq!(a.cmd("RETR f.txt").code, 150);
        let mut data = tls_over(tcp, &a.data_config);
        while data.conn.is_handshaking() {
            data.conn
                .complete_io(&mut data.sock)
                .expect("data handshake");
        }
        b.login(second, PASSWORD);
        let mut got = Vec::new();
        let _ = data.read_to_end(&mut got);
        assert_eq!(a.reply().code, want, "sibling logged in as {second}");
        if want == 226 {
            assert_eq!(got, b"f");
        }
    }
}

#[test]
fn a_refused_data_connection_hands_out_no_ticket_that_opens_the_next_one() {
    let server = tls_server();
    std::fs::write(server.path("f.txt"), b"f").unwrap();
    let store = Arc::new(NewestTicketOnly::default());
    let borrowed = config_with(store.clone());
    let mut bob = FtpsClient::explicit(server.addr, borrowed.clone());
    bob.login("bob", PASSWORD);
    let mut alice = server.ftps_alice();
    let own = alice.data_config.clone();
    alice.data_config = borrowed;
    let before = store.received();
    assert_eq!(alice.download("RETR f.txt").0.code, 522, "bob's session");
    assert!(
        store.received() > before,
        "the refused connection resumed and handed out a ticket"
    );
    assert_eq!(
        alice.download("RETR f.txt").0.code,
        522,
        "that ticket is no better than the session it came from"
    );
    alice.data_config = own;
    assert_eq!(alice.download("RETR f.txt").0.code, 226);
}

#[test]
fn a_single_ticket_client_goes_on_through_uploads_and_downloads_over_tls_1_3() {
    let server = tls_server();
    let store = Arc::new(NewestTicketOnly::default());
    let mut c = FtpsClient::explicit(server.addr, config_with(store));
    c.login("alice", PASSWORD);
    c.protect_data();
    let bytes = pattern(200_000, 21);
    for round in 0..3 {
        // The handshake before the command, as curl makes it.
        let tcp = c.pasv();
        let mut data = tls_over(tcp, &c.data_config);
        while data.conn.is_handshaking() {
            data.conn
                .complete_io(&mut data.sock)
                .expect("data handshake");
        }
        assert_eq!(c.cmd(&format!("STOR {round}.bin")).code, 150);
        data.write_all(&bytes).unwrap();
        data.conn.send_close_notify();
        data.flush().unwrap();
        let mut rest = Vec::new();
        data.read_to_end(&mut rest).unwrap();
        assert_eq!(c.reply().code, 226, "upload {round}");
        let (reply, got) = c.download(&format!("RETR {round}.bin"));
        assert_eq!(reply.code, 226, "download {round}");
        assert_same(&got, &bytes);
    }
}

// PROT between PASV and the transfer

#[test]
fn prot_c_after_pasv_under_prot_p_leaves_the_data_connection_clear() {
    let server = tls_server();
    std::fs::write(server.path("f.txt"), b"clear").unwrap();
    let mut c = server.ftps_alice();
    let mut tcp = c.pasv();
    assert_eq!(c.cmd("PROT C").code, 200);
    assert_eq!(c.cmd("RETR f.txt").code, 150);
    let mut got = Vec::new();
    tcp.read_to_end(&mut got).unwrap();
    assert_eq!((c.reply().code, got.as_slice()), (226, &b"clear"[..]));
}

#[test]
fn prot_p_after_pasv_under_prot_c_protects_the_data_connection() {
    let server = tls_server();
    std::fs::write(server.path("f.txt"), b"secret").unwrap();
    let mut c = FtpsClient::explicit(server.addr, client_config(TLS13_FIRST));
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("PBSZ 0").code, 200);
    let tcp = c.pasv();
    assert_eq!(c.cmd("PROT P").code, 200);
    assert_eq!(c.cmd("RETR f.txt").code, 150);
    let mut data = tls_over(tcp, &c.data_config);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!((c.reply().code, got.as_slice()), (226, &b"secret"[..]));
}

// AUTH TLS behind commands sent in clear (CVE-2011-0411)

#[test]
fn auth_tls_pipelined_with_a_command_is_503_and_the_command_runs_in_clear() {
    let server = tls_server();
    let mut c = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    c.send_bytes(b"AUTH TLS\r\nSYST\r\n");
    assert_eq!(c.reply().code, 503);
    assert_eq!(c.reply().code, 215, "SYST answered in clear");
}

#[test]
fn auth_tls_queued_behind_a_transfer_with_more_commands_is_503() {
    let server = tls_server();
    let bytes = pattern(4_000_000, 22);
    std::fs::write(server.path("big.bin"), &bytes).unwrap();
    let mut c = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
    c.login("alice", PASSWORD);
    let mut data = c.pasv();
    assert_eq!(c.cmd("RETR big.bin").code, 150);
    // Queued while the transfer runs: the data is not read yet.
    c.send_bytes(b"AUTH TLS\r\nSYST\r\n");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_same(&got, &bytes);
    assert_eq!(c.reply().code, 226);
    assert_eq!(c.reply().code, 503, "AUTH TLS with SYST still queued");
    assert_eq!(c.reply().code, 215, "SYST answered in clear");
}
