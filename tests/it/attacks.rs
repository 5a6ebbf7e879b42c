//! The attacks an outside round broke (and those of our own round), each
//! replayed against the real server: what the attacker tries, and what must
//! hold instead. docs/security.md lists them with their outcomes.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::daemon::Daemon;
use crate::support::ftps::{client_config, FtpsClient, TlsOptions, TLS13_FIRST};
use crate::support::{
    default_config, fail2ban_addresses, free_ports, have_tool, password_hash, RawClient, Reply,
    TestServer, IO_TIMEOUT, PASSWORD,
};

/// The daemon binary on `config` (made from its served directory), and that directory.
fn daemon(config: impl FnOnce(&Path) -> String) -> (Daemon, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    for dir in ["pub", "readonly", "secret"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let path = root.path().join("aioftpd.toml");
    std::fs::write(&path, config(root.path())).unwrap();
    let daemon = Daemon::start(root.path(), &["--config", path.to_str().unwrap()]);
    (daemon, root)
}

/// Text a client chooses, shaped like the line the fail2ban filter bans on.
const FORGED: &str = "x: login failed [aioftpd-auth-failure] address=10.66.66.66 login=\"root\"";

#[test]
fn client_text_in_log_lines_never_matches_the_fail2ban_filter() {
    if !have_tool("fail2ban-regex", &["--version"]) {
        return;
    }
    let (daemon, root) = daemon(|root| {
        format!(
            "{}\n[login]\nfailure_delay = \"0s\"\n",
            default_config(root)
        )
    });
    std::fs::write(root.path().join("pub/a.txt"), b"a").unwrap();
    let mut anonymous = RawClient::connect(daemon.addr);
    anonymous.login("anonymous", "guest");
    let forged_cr = format!("a\r2026-01-01T00:00:00.000000Z  WARN {FORGED}");
    for line in [
        format!("STOR {FORGED}"),
        format!("DELE {FORGED}"),
        format!("MKD {forged_cr}"),
        "RNFR a.txt".to_owned(),
        format!("SITE {FORGED}"),
        format!("CWD /../{FORGED}"),
    ] {
        let reply = anonymous.cmd(&line);
        assert!(reply.code >= 300, "{line:?}: {reply:?}");
    }
    let mut alice = RawClient::connect(daemon.addr);
    alice.login("alice", crate::support::PASSWORD);
    std::fs::write(root.path().join("mine.txt"), b"m").unwrap();
    assert_eq!(alice.cmd("RNFR mine.txt").code, 350);
    assert_eq!(alice.cmd(&format!("RNTO {FORGED}")).code, 250);
    // A forged login, and one real failure from this address.
    let mut guesser = RawClient::connect(daemon.addr);
    assert_eq!(guesser.cmd(&format!("USER {FORGED}")).code, 331);
    assert_eq!(guesser.cmd("PASS wrong").code, 530);
    let log = root.path().join("daemon.log");
    std::fs::write(&log, daemon.stop().join("\n")).unwrap();
    assert_eq!(
        fail2ban_addresses(&log, ""),
        ["127.0.0.1"],
        "only the real failure counts"
    );
}

#[test]
fn a_password_never_reaches_the_debug_log_however_pass_is_spelt() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("pub")).unwrap();
    let path = root.path().join("aioftpd.toml");
    std::fs::write(&path, default_config(root.path())).unwrap();
    let daemon = Daemon::start(
        root.path(),
        &["--config", path.to_str().unwrap(), "--log-level", "debug"],
    );
    for line in [" PASS hunter2-a", "pass hunter2-b", "PASS\thunter2-c"] {
        let mut c = RawClient::connect(daemon.addr);
        assert_eq!(c.cmd("USER alice").code, 331);
        c.cmd(line);
    }
    let log = daemon.stop().join("\n");
    assert!(log.contains("PASS ***"), "the commands were logged");
    assert!(!log.contains("hunter2"), "{log}");
}

/// A server where alice has `rules` (TOML inline tables) over a fresh tree.
fn server_with_rules(rules: &str) -> TestServer {
    let rules = rules.to_owned();
    TestServer::start_with(move |root| {
        format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
data_timeout = "10s"

[[users]]
login = "alice"
password = "{hash}"
base_path = "{root}"
permissions = [{rules}]
"#,
            hash = password_hash(),
            root = root.display(),
        )
    })
}

fn write(server: &TestServer, rel: &str, bytes: &[u8]) {
    let path = server.path(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn renaming_a_directory_never_lifts_a_rule_beneath_it() {
    let server = server_with_rules(
        r#"{ path = "/", readable = true, writable = true },
           { path = "/home/secret", readable = false, writable = false },
           { path = "/home/reports", readable = true, writable = false }"#,
    );
    write(&server, "home/secret/s.txt", b"secret");
    write(&server, "home/reports/q1.txt", b"q1");
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("RNFR /home").code, 350);
    assert_eq!(c.cmd("RNTO /h2").code, 550);
    assert!(server.path("home/secret/s.txt").is_file(), "nothing moved");
    assert_eq!(c.fetch("RETR /h2/secret/s.txt").0.code, 550);
    assert_eq!(c.upload("STOR /h2/reports/q1.txt", b"forged").code, 550);
    assert_eq!(
        std::fs::read(server.path("home/reports/q1.txt")).unwrap(),
        b"q1"
    );
    // Moving the subdirectory itself out is the same lift.
    assert_eq!(c.cmd("RNFR /home/reports").code, 550, "not writable");
    std::fs::remove_file(server.path("home/secret/s.txt")).unwrap();
    assert_eq!(
        c.cmd("RMD /home/secret").code,
        550,
        "its entry is not alice's"
    );
    // A rename that carries nothing into more rights goes through.
    write(&server, "home/plain/p.txt", b"p");
    assert_eq!(c.cmd("RNFR /home/plain").code, 350);
    assert_eq!(c.cmd("RNTO /plain").code, 250);
}

/// Links an admin placed inside the tree are followed, and the rules hold
/// for where they lead, not only for the name the client typed.
#[test]
fn a_link_inside_the_tree_never_leads_past_a_rule() {
    let server = server_with_rules(
        r#"{ path = "/", readable = true, writable = true },
           { path = "/home/secret", readable = false, writable = false },
           { path = "/home/reports", readable = true, writable = false }"#,
    );
    write(&server, "home/secret/s.txt", b"secret");
    write(&server, "home/reports/q1.txt", b"q1");
    write(&server, "open/o.txt", b"open");
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, server.path(&format!("pub/{name}"))).unwrap();
    };
    link("../home/secret", "secret");
    link("../home/secret/s.txt", "s.txt");
    link("../home/reports", "reports");
    link("..", "top");
    link("../open/o.txt", "o.txt");
    let mut c = server.raw_alice();
    for read in [
        "RETR /pub/secret/s.txt",
        "RETR /pub/s.txt",
        "LIST /pub/secret",
    ] {
        assert_eq!(c.fetch(read).0.code, 550, "{read}");
    }
    for cmd in [
        "SIZE /pub/s.txt",
        "CWD /pub/secret",
        "MLST /pub/top/home/secret",
    ] {
        assert_eq!(c.cmd(cmd).code, 550, "{cmd}");
    }
    assert_eq!(c.upload("STOR /pub/reports/q1.txt", b"forged").code, 550);
    assert_eq!(c.cmd("DELE /pub/reports/q1.txt").code, 550);
    assert_eq!(c.cmd("RNFR /pub/top/home/secret").code, 550);
    // The rename of /home, named through a link, would lift both rules.
    assert_eq!(c.cmd("RNFR /pub/top/home").code, 350);
    assert_eq!(c.cmd("RNTO /h2").code, 550);
    assert_eq!(
        std::fs::read(server.path("home/reports/q1.txt")).unwrap(),
        b"q1"
    );
    assert!(server.path("home/secret/s.txt").is_file());
    // A link that crosses no rule still works, and a link itself is an
    // entry of its own directory: removing it leaves its target alone.
    let (reply, bytes) = c.fetch("RETR /pub/o.txt");
    assert_eq!((reply.code, bytes.as_str()), (226, "open"));
    assert_eq!(c.cmd("DELE /pub/s.txt").code, 250);
    assert!(server.path("home/secret/s.txt").is_file());
}

#[test]
fn a_write_only_drop_box_stays_unreadable_through_renames() {
    let server = server_with_rules(
        r#"{ path = "/", readable = true, writable = true },
           { path = "/drop", readable = false, writable = true }"#,
    );
    write(&server, "drop/other.txt", b"someone else's upload");
    let mut c = server.raw_alice();
    assert_eq!(c.fetch("RETR /drop/other.txt").0.code, 550);
    assert_eq!(c.cmd("RNFR /drop/other.txt").code, 350);
    assert_eq!(c.cmd("RNTO /home/stolen.txt").code, 550);
    assert_eq!(c.fetch("RETR /home/stolen.txt").0.code, 550);
    assert!(server.path("drop/other.txt").is_file());
    // Within the drop box, and into it, renames still work.
    assert_eq!(c.cmd("RNFR /drop/other.txt").code, 350);
    assert_eq!(c.cmd("RNTO /drop/renamed.txt").code, 250);
    write(&server, "mine.txt", b"mine");
    assert_eq!(c.cmd("RNFR /mine.txt").code, 350);
    assert_eq!(c.cmd("RNTO /drop/mine.txt").code, 250);
}

#[test]
fn a_writable_rule_does_not_make_its_own_directory_entry_writable() {
    let server = server_with_rules(
        r#"{ path = "/", readable = true, writable = false },
           { path = "/up", readable = true, writable = true }"#,
    );
    std::fs::create_dir(server.path("up")).unwrap();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("RMD /up").code, 550);
    assert!(server.path("up").is_dir());
    assert_eq!(c.cmd("RNFR /up").code, 550);
    std::fs::remove_dir(server.path("up")).unwrap();
    assert_eq!(c.upload("STOR /up", b"in the read-only root").code, 550);
    assert_eq!(c.cmd("MKD /up").code, 550);
    assert!(!server.path("up").exists());
    std::fs::create_dir(server.path("up")).unwrap();
    assert_eq!(c.upload("STOR /up/file", b"inside").code, 226);
    assert_eq!(c.cmd("MKD /up/sub").code, 257);
}

#[test]
fn the_login_budget_holds_on_connections_opened_before_the_block() {
    let server = TestServer::start_with(|root| {
        format!(
            "{}\n[login]\nfailure_delay = \"0s\"\nmax_failures_per_ip = 3\n",
            default_config(root)
        )
    });
    // All opened first, as an attacker spreading guesses would.
    let mut conns: Vec<RawClient> = (0..6).map(|_| server.raw()).collect();
    for c in &mut conns {
        assert_eq!(c.cmd("USER alice").code, 331);
    }
    let codes: Vec<u16> = conns[..4]
        .iter_mut()
        .map(|c| c.cmd("PASS wrong").code)
        .collect();
    assert_eq!(codes, [530, 530, 421, 421], "three guesses, then none");
    let right = conns[4].cmd(&format!("PASS {}", crate::support::PASSWORD));
    assert_eq!(right.code, 421, "a blocked address gets no password check");
    assert!(conns[4].try_reply().is_none(), "and is closed");
}

#[test]
fn a_login_from_a_quiet_address_is_not_queued_behind_a_flood_of_wrong_passwords() {
    let server = TestServer::start_with(|root| {
        format!(
            "{}\n[login]\nfailure_delay = \"0s\"\nmax_failures_per_ip = 100\n",
            default_config(root)
        )
    });
    let order = Arc::new(AtomicUsize::new(0));
    // Two dozen in the queue: first come, first served would answer all of them first.
    let flood: Vec<_> = (0..24)
        .map(|_| {
            let mut c = server.raw();
            assert_eq!(c.cmd("USER alice").code, 331);
            c
        })
        .collect();
    let mut honest = RawClient::connect_from("127.0.0.2".parse().unwrap(), server.addr);
    assert_eq!(honest.cmd("USER alice").code, 331);
    // Every wrong password is on its way before the right one, each a
    // different guess: one guess sent many times is checked only once.
    let flooders: Vec<_> = flood
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.send(&format!("PASS wrong{i}"));
            let order = order.clone();
            std::thread::spawn(move || {
                assert_eq!(c.reply().code, 530);
                order.fetch_add(1, Ordering::SeqCst)
            })
        })
        .collect();
    let reply = honest.cmd(&format!("PASS {}", crate::support::PASSWORD));
    let answered_before = order.fetch_add(1, Ordering::SeqCst);
    assert_eq!(reply.code, 230);
    for f in flooders {
        f.join().unwrap();
    }
    assert!(
        answered_before <= 8,
        "{answered_before} wrong passwords were answered before the right one"
    );
}

#[test]
fn an_upload_refused_before_its_data_connection_changes_nothing() {
    let server = TestServer::start_with(|root| {
        default_config(root).replacen("[server]\n", "[server]\natomic_uploads = false\n", 1)
    });
    std::fs::write(server.path("precious.txt"), b"precious").unwrap();
    let listing = |server: &TestServer| {
        let mut names: Vec<_> = std::fs::read_dir(server.path(""))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let before = listing(&server);
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("STOR precious.txt").code, 425, "no PASV or PORT");
    // Commands whose data connection never comes, given up with ABOR.
    for command in [
        "STOR precious.txt",
        "APPE fresh.txt",
        "STOU",
        "STOU hint.txt",
        "REST 3|STOR precious.txt",
        "REST 3|APPE precious.txt",
    ] {
        assert_eq!(c.cmd("PASV").code, 227);
        for part in command.split('|') {
            c.send(part);
        }
        if command.starts_with("REST") {
            assert_eq!(c.reply().code, 350);
        }
        assert_eq!(c.cmd("ABOR").code, 426, "{command}");
        assert_eq!(c.reply().code, 226, "{command}");
    }
    assert_eq!(
        std::fs::read(server.path("precious.txt")).unwrap(),
        b"precious"
    );
    assert_eq!(listing(&server), before, "no file was created");
}

#[test]
fn an_upload_refused_by_the_tls_policy_changes_nothing() {
    let server = TestServer::start_tls(TlsOptions {
        required: "data",
        atomic_uploads: false,
        ..TlsOptions::default()
    });
    std::fs::write(server.path("precious.txt"), b"precious").unwrap();
    let mut c = FtpsClient::explicit(server.addr, client_config(TLS13_FIRST));
    c.login("alice", PASSWORD);
    assert_eq!(c.upload("STOR precious.txt", b"x").code, 521);
    assert_eq!(c.upload("APPE fresh.txt", b"x").code, 521);
    assert_eq!(
        std::fs::read(server.path("precious.txt")).unwrap(),
        b"precious"
    );
    assert!(!server.path("fresh.txt").exists());
}

#[test]
fn a_restart_offset_past_the_end_of_the_file_is_refused_for_uploads() {
    let server = TestServer::start();
    std::fs::write(server.path("small.txt"), b"0123456789").unwrap();
    let mut c = server.raw_alice();
    for (command, path) in [
        ("STOR", "small.txt"),
        ("APPE", "small.txt"),
        ("STOR", "absent.txt"),
    ] {
        assert_eq!(c.cmd("REST 1099511627776").code, 350);
        let reply = c.upload(&format!("{command} {path}"), b"x");
        assert_eq!(reply.code, 554, "{command} {path}: {reply:?}");
    }
    assert_eq!(
        std::fs::read(server.path("small.txt")).unwrap(),
        b"0123456789"
    );
    assert!(!server.path("absent.txt").exists());
    // Up to the end is a resume, as before.
    assert_eq!(c.cmd("REST 10").code, 350);
    assert_eq!(c.upload("STOR small.txt", b"ab").code, 226);
    assert_eq!(
        std::fs::read(server.path("small.txt")).unwrap(),
        b"0123456789ab"
    );
}

#[test]
fn an_uploads_temporary_file_cannot_be_named_by_a_client() {
    let server = TestServer::start();
    let mut alice = server.raw_alice();
    assert_eq!(alice.cmd("TYPE I").code, 200);
    let mut data = alice.pasv();
    assert_eq!(alice.cmd("STOR report.txt").code, 150);
    data.write_all(b"alice's ").unwrap();
    // The temporary exists once a byte was received: wait for it by name.
    let temp = loop {
        let found = std::fs::read_dir(server.path(""))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.starts_with(".aioftpd-upload."));
        if let Some(name) = found {
            break name;
        }
        std::thread::yield_now();
    };
    let mut mallory = server.raw_alice();
    for command in [
        format!("STOR {temp}"),
        format!("APPE {temp}"),
        format!("RETR {temp}"),
        "STOR .aioftpd-upload.1.1.tmp".to_owned(),
        "STOR dir/.aioftpd-upload.x/inside".to_owned(),
    ] {
        let reply = mallory.upload(&command, b"mallory's bytes");
        assert_eq!(reply.code, 553, "{command}: {reply:?}");
    }
    for command in [
        format!("DELE {temp}"),
        format!("RNFR {temp}"),
        format!("SIZE {temp}"),
        format!("MLST {temp}"),
        "MKD .aioftpd-upload.dir".to_owned(),
        format!("CWD {temp}"),
    ] {
        let reply = mallory.cmd(&command);
        assert_eq!(reply.code, 553, "{command}: {reply:?}");
    }
    std::fs::write(server.path("mine.txt"), b"mine").unwrap();
    assert_eq!(mallory.cmd("RNFR mine.txt").code, 350);
    assert_eq!(mallory.cmd(&format!("RNTO {temp}")).code, 553);
    data.write_all(b"bytes").unwrap();
    drop(data);
    assert_eq!(alice.reply().code, 226);
    assert_eq!(
        std::fs::read(server.path("report.txt")).unwrap(),
        b"alice's bytes"
    );
}

#[test]
fn one_address_cannot_lease_the_whole_passive_range() {
    let server = TestServer::start_with(|root| {
        let (first, last) = free_ports(21_300, 6);
        format!(
            "{}\n[passive]\nports = \"{first}-{last}\"\n",
            default_config(root)
        )
    });
    std::fs::write(server.path("pub/f.txt"), b"for everyone").unwrap();
    let anonymous = || {
        let mut c = RawClient::connect_from("127.0.0.2".parse().unwrap(), server.addr);
        assert_eq!(c.cmd("USER anonymous").code, 331);
        assert_eq!(c.cmd("PASS x@example.org").code, 230);
        c
    };
    let mut squatters: Vec<_> = (0..6).map(|_| anonymous()).collect();
    let codes: Vec<u16> = squatters.iter_mut().map(|c| c.cmd("PASV").code).collect();
    // A quarter of six ports, rounded up.
    assert_eq!(codes, [227, 227, 425, 425, 425, 425]);
    let mut alice = server.raw_alice();
    let (reply, text) = alice.fetch("RETR pub/f.txt");
    assert_eq!((reply.code, text.as_str()), (226, "for everyone"));
    // A squatter that gives its port up gets one again.
    assert_eq!(squatters[0].cmd("PORT 127,0,0,2,4,1").code, 200);
    assert_eq!(squatters[2].cmd("PASV").code, 227);
}

#[test]
fn a_passive_port_that_no_transfer_takes_returns_after_the_data_timeout() {
    let server = TestServer::start_with(|root| {
        let (port, _) = free_ports(21_400, 1);
        default_config(root).replacen("data_timeout = \"10s\"", "data_timeout = \"1s\"", 1)
            + &format!("\n[passive]\nports = \"{port}-{port}\"\n")
    });
    let mut squatter = server.raw_alice();
    assert_eq!(squatter.cmd("PASV").code, 227);
    let mut other = RawClient::connect_from("127.0.0.2".parse().unwrap(), server.addr);
    other.login("alice", PASSWORD);
    assert_eq!(other.cmd("PASV").code, 425, "the only port is leased");
    // The squatter sends nothing more; its lease ends at its data timeout,
    // well within the reply timeout of the loop below.
    let started = std::time::Instant::now();
    while other.cmd("PASV").code != 227 {
        assert!(started.elapsed() < IO_TIMEOUT, "the lease never ended");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        squatter.cmd("LIST").code,
        425,
        "the squatter's listener is gone"
    );
}

#[test]
fn a_symlink_that_leads_out_shows_no_size_that_tells_the_real_path() {
    let server = TestServer::start();
    let outside = tempfile::tempdir().unwrap();
    let target = outside
        .path()
        .join("a-rather-long-name-outside-the-tree.txt");
    std::fs::write(&target, b"outside").unwrap();
    std::os::unix::fs::symlink(&target, server.path("out")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/dangling/target", server.path("dangling")).unwrap();
    let mut c = server.raw_alice();
    for name in ["out", "dangling"] {
        let mlst = c.cmd(&format!("MLST {name}"));
        assert_eq!(mlst.code, 250, "{mlst:?}");
        let facts = &mlst.lines[1];
        assert!(facts.contains("size=0;"), "{name}: {facts}");
    }
    let (reply, mlsd) = c.fetch("MLSD");
    assert_eq!(reply.code, 226);
    let links: Vec<&str> = mlsd
        .lines()
        .filter(|l| l.ends_with(" out") || l.ends_with(" dangling"))
        .collect();
    assert_eq!(links.len(), 2, "{mlsd}");
    assert!(links.iter().all(|l| l.contains("size=0;")), "{links:?}");
    let (reply, list) = c.fetch("LIST");
    assert_eq!(reply.code, 226);
    let sizes: Vec<&str> = list
        .lines()
        .filter(|l| l.ends_with(" out") || l.ends_with(" dangling"))
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(sizes, ["0", "0"], "{list}");
}

#[test]
fn a_per_user_tls_rule_is_told_at_user_and_server_wide_rules_tell_nothing() {
    let server = TestServer::start_tls(TlsOptions {
        required: "login",
        ..TlsOptions::default()
    });
    let replies: Vec<Reply> = ["alice", "bob", "nobody", "anonymous"]
        .iter()
        .map(|login| {
            let mut c = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
            c.cmd(&format!("USER {login}"))
        })
        .collect();
    assert!(replies.iter().all(|r| r.code == 530), "{replies:?}");
    assert!(
        replies.windows(2).all(|w| w[0].lines == w[1].lines),
        "{replies:?}"
    );

    // The documented cost of a per-user rule: over a clear connection it
    // answers before the password, where others get 331.
    let server = TestServer::start_tls(TlsOptions {
        bob_tls_required: Some("login"),
        ..TlsOptions::default()
    });
    let code = |login: &str| {
        let mut c = FtpsClient::plain(server.addr, client_config(TLS13_FIRST));
        c.cmd(&format!("USER {login}")).code
    };
    assert_eq!(
        (code("bob"), code("alice"), code("nobody")),
        (530, 331, 331)
    );
}

#[test]
fn stat_of_a_big_directory_streams_one_well_formed_reply() {
    let server = TestServer::start();
    std::fs::create_dir(server.path("many")).unwrap();
    for i in 0..2000 {
        std::fs::write(server.path(&format!("many/a-long-enough-name-{i:05}")), b"").unwrap();
    }
    // A name that tries to end the reply early and forge another.
    std::fs::write(server.path("many/x\r\n213 End of status"), b"").unwrap();
    let mut c = server.raw_alice();
    let reply = c.cmd("STAT many");
    assert_eq!(reply.code, 213);
    assert_eq!(reply.lines.len(), 2003, "first, 2001 entries, last");
    assert!(reply.lines[1..2002].iter().all(|l| l.starts_with(' ')));
    assert_eq!(c.cmd("NOOP").code, 200, "nothing left over");
}

#[test]
fn our_round_every_command_stops_at_a_rule_and_tells_nothing_of_what_exists() {
    let server = server_with_rules(
        r#"{ path = "/", readable = true, writable = true },
           { path = "/home/secret", readable = false, writable = false },
           { path = "/ro", readable = true, writable = false }"#,
    );
    write(&server, "home/secret/s.txt", b"secret");
    write(&server, "ro/r.txt", b"ro");
    write(&server, "pub/a.txt", b"pub");
    let mut c = server.raw_alice();
    for (line, code) in [
        ("MFMT 20200101000000 /ro/r.txt", 550),
        ("MFMT 20200101000000 /home/secret/s.txt", 550),
        ("DELE /ro/r.txt", 550),
        ("RNFR /ro/r.txt", 550),
        ("XMKD /ro/new", 550),
        ("XRMD /ro", 550),
        ("RMD /", 550),
        ("RNFR /", 550),
        ("SIZE /home/secret/s.txt", 550),
        ("SIZE /home/secret/missing.txt", 550),
        ("MDTM /home/secret/s.txt", 550),
        ("MDTM /home/secret/missing.txt", 550),
        ("MLST /home/secret/s.txt", 550),
        ("MLST /home/secret/missing.txt", 550),
        ("STAT /home/secret", 550),
        ("STAT /home/secret/s.txt", 550),
        ("XCWD /home/secret", 550),
        ("CWD ~root", 550),
        ("SITE CHMOD 777 /ro/r.txt", 504),
        ("MKD /pub/a\0b", 553),
        ("PBSZ 0", 503),
        ("PROT P", 503),
        ("CCC", 533),
    ] {
        assert_eq!(c.cmd(line).code, code, "{line:?}");
    }
    let denied = c.cmd("SIZE /home/secret/s.txt").text().to_owned();
    assert_eq!(denied, c.cmd("SIZE /home/secret/missing.txt").text());
    for command in [
        "RETR /home//secret/./s.txt",
        "RETR /home/x/../secret/s.txt",
        "LIST -la /home/secret",
        "NLST /home/secret/*",
        "MLSD /home/secret",
        "LIST /home/secret/s.txt",
    ] {
        assert_eq!(c.fetch(command).0.code, 550, "{command:?}");
    }
    assert_eq!(c.cmd("REST 1").code, 350);
    assert_eq!(c.fetch("RETR /home/secret/s.txt").0.code, 550);
    assert_eq!(c.upload("APPE /ro/r.txt", b"x").code, 550);
    assert_eq!(c.upload("STOU /ro", b"x").code, 550);
    assert_eq!(c.cmd("RNFR /pub/a.txt").code, 350);
    assert_eq!(c.cmd("RNTO /ro/r.txt").code, 550);
    assert_eq!(c.cmd("RNFR /pub/a.txt").code, 350);
    assert_eq!(c.cmd("NOOP").code, 200);
    assert_eq!(c.cmd("RNTO /pub/b.txt").code, 503, "RNFR is forgotten");
    assert_eq!(std::fs::read(server.path("ro/r.txt")).unwrap(), b"ro");
    assert_eq!(std::fs::read(server.path("pub/a.txt")).unwrap(), b"pub");
    assert!(!server.path("ro/new").exists());
    // A new USER in the middle of a session logs the old login out at once.
    assert_eq!(c.cmd("USER alice").code, 331);
    assert_eq!(c.cmd("SIZE /pub/a.txt").code, 530);
}
