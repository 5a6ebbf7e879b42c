//! Quotas: an upload that crosses one gets 552 and leaves the old file and
//! the usage as they were; APPE and REST+STOR count only what they add; a
//! delete gives room back; and two instances sharing a PostgreSQL users
//! database enforce one quota together, as `aioftpd user show` reports.

use std::path::Path;
use std::process::Command;

use crate::support::daemon::Daemon;
use crate::support::postgres::Postgres;
use crate::support::{have_tool, password_hash, pattern, RawClient, TestServer, PASSWORD};
use crate::users::user_ok;

/// alice, writing on `/` under `quota`, and the anonymous user.
fn quota_config(root: &Path, quota: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ndata_timeout = \"10s\"\n\
         [[users]]\nlogin = \"alice\"\npassword = \"{}\"\nbase_path = \"{}\"\n\
         permissions = [{{ path = \"/\", writable = true }}]\n{quota}\n",
        password_hash(),
        root.display()
    )
}

fn alice(server: &TestServer) -> RawClient {
    let mut c = server.raw();
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("TYPE I").code, 200);
    c
}

#[test]
fn an_upload_that_crosses_the_quota_gets_552_and_leaves_the_old_file_and_the_usage() {
    let server = TestServer::start_with(|root| {
        let old = pattern(600, 1);
        std::fs::write(root.join("old.bin"), old).unwrap();
        quota_config(root, "quota_bytes = 1000\nquota_files = 10")
    });
    let mut c = alice(&server);
    // 600 held: replacing old.bin with 1,500 bytes would hold 1,500.
    let reply = c.upload("STOR old.bin", &pattern(1500, 2));
    assert_eq!(reply.code, 552, "{reply:?}");
    assert_eq!(
        std::fs::read(server.path("old.bin")).unwrap(),
        pattern(600, 1)
    );
    // A new file crossing it leaves nothing behind.
    let reply = c.upload("STOR new.bin", &pattern(500, 3));
    assert_eq!(reply.code, 552, "{reply:?}");
    assert!(!server.path("new.bin").exists());
    // The usage is still 600: 400 more fit exactly.
    assert_eq!(c.upload("STOR fits.bin", &pattern(400, 4)).code, 226);
    // At the limit, the next upload is refused before any data connection.
    let _data = c.pasv();
    let refused = c.cmd("STOR more.bin");
    assert_eq!(refused.code, 552, "{refused:?}");
    assert!(!server.path("more.bin").exists());
    // A delete gives its bytes back; replacing a file with a smaller one too.
    assert_eq!(c.cmd("DELE fits.bin").code, 250);
    assert_eq!(c.upload("STOR old.bin", &pattern(100, 5)).code, 226);
    assert_eq!(c.upload("STOR big.bin", &pattern(900, 6)).code, 226);
    assert_eq!(
        std::fs::read(server.path("big.bin")).unwrap(),
        pattern(900, 6)
    );
}

#[test]
fn appe_and_rest_stor_count_only_what_they_add() {
    let server = TestServer::start_with(|root| {
        std::fs::write(root.join("log.txt"), pattern(600, 1)).unwrap();
        quota_config(root, "quota_bytes = 1000")
    });
    let mut c = alice(&server);
    assert_eq!(c.upload("APPE log.txt", &pattern(300, 2)).code, 226);
    // 900 held: 200 more would cross.
    let reply = c.upload("APPE log.txt", &pattern(200, 3));
    assert_eq!(reply.code, 552, "{reply:?}");
    assert_eq!(
        std::fs::metadata(server.path("log.txt")).unwrap().len(),
        900
    );
    // From 850, 150 bytes make the file 1,000 long: 100 more than it was.
    assert_eq!(c.cmd("REST 850").code, 350);
    assert_eq!(c.upload("STOR log.txt", &pattern(150, 4)).code, 226);
    assert_eq!(
        std::fs::metadata(server.path("log.txt")).unwrap().len(),
        1000
    );
    let _data = c.pasv();
    assert_eq!(c.cmd("APPE log.txt").code, 552, "at the limit");
    drop(_data);
    // At the limit, writing over the file without growing it is fine.
    assert_eq!(c.cmd("REST 100").code, 350);
    assert_eq!(c.upload("STOR log.txt", &pattern(900, 5)).code, 226);
    let reply = c.upload("STOR log.txt", &pattern(1001, 6));
    assert_eq!(reply.code, 552, "{reply:?}");
    assert_eq!(
        std::fs::metadata(server.path("log.txt")).unwrap().len(),
        1000
    );
}

#[test]
fn a_file_quota_counts_files_not_bytes() {
    let server = TestServer::start_with(|root| {
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/a"), b"a").unwrap();
        quota_config(root, "quota_files = 2")
    });
    let mut c = alice(&server);
    assert_eq!(c.upload("STOR b", b"b").code, 226);
    let _data = c.pasv();
    assert_eq!(c.cmd("STOR c").code, 552);
    drop(_data);
    // Replacing a file it has is no new file; a rename over one frees one.
    assert_eq!(c.upload("STOR b", &pattern(5000, 1)).code, 226);
    assert_eq!(c.cmd("RNFR b").code, 350);
    assert_eq!(c.cmd("RNTO d/a").code, 250);
    assert_eq!(c.upload("STOR c", b"c").code, 226);
}

/// What `aioftpd user show alice --json` says alice's tree holds.
fn shown_usage(config: &Path) -> serde_json::Value {
    let out = user_ok(config, &["show", "alice", "--json"], "");
    let shown: serde_json::Value = serde_json::from_str(&out).expect("json");
    shown["usage"].clone()
}

fn login(daemon: &Daemon) -> RawClient {
    let mut c = RawClient::connect(daemon.addr);
    c.login("alice", "db-pw");
    assert_eq!(c.cmd("TYPE I").code, 200);
    c
}

fn two_instances_enforce_one_quota(dir: &Path, section: &str) {
    std::fs::create_dir(dir.join("files")).unwrap();
    let config = dir.join("aioftpd.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = [\"127.0.0.1:0\"]\ndata_timeout = \"10s\"\n{section}"),
    )
    .unwrap();
    user_ok(
        &config,
        &[
            "add",
            "alice",
            "--base-path",
            "files",
            "--permissions",
            "[{ path = \"/\", writable = true }]",
            "--quota-bytes",
            "100KiB",
            "--quota-files",
            "5",
        ],
        "db-pw\n",
    );
    assert_eq!(
        shown_usage(&config),
        serde_json::Value::Null,
        "not counted yet"
    );
    let args = ["--config", config.to_str().unwrap()];
    let a = Daemon::start(dir, &args);
    let b = Daemon::start(dir, &args);
    let mut on_a = login(&a);
    let mut on_b = login(&b);
    assert_eq!(on_a.upload("STOR one.bin", &pattern(60 << 10, 1)).code, 226);
    // 60 KiB held, counted by a: b sees the same usage.
    let reply = on_b.upload("STOR two.bin", &pattern(60 << 10, 2));
    assert_eq!(reply.code, 552, "{reply:?}");
    assert!(!dir.join("files/two.bin").exists());
    assert_eq!(on_b.upload("STOR two.bin", &pattern(40 << 10, 3)).code, 226);
    assert_eq!(
        shown_usage(&config),
        serde_json::json!({ "bytes": 100 << 10, "files": 2 })
    );
    let _data = on_a.pasv();
    assert_eq!(on_a.cmd("STOR three.bin").code, 552, "a sees b's upload");
    drop(_data);
    assert_eq!(on_a.cmd("DELE two.bin").code, 250);
    assert_eq!(
        shown_usage(&config),
        serde_json::json!({ "bytes": 60 << 10, "files": 1 })
    );
    let text = user_ok(&config, &["show", "alice"], "");
    assert!(text.contains("quota_bytes: 100KiB"), "{text}");
    assert!(text.contains("usage: 61440 bytes in 1 files"), "{text}");
}

#[test]
fn two_instances_sharing_postgresql_enforce_one_quota_together() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let section = format!(
        "[users_database]\nurl = \"{}\"\npassword_file = \"{}\"\ncache_lifetime = \"30s\"\n",
        server.url(),
        server.password_file(dir.path()).display()
    );
    two_instances_enforce_one_quota(dir.path(), &section);
}

#[test]
fn two_instances_sharing_an_sqlite_file_enforce_one_quota_together() {
    let dir = tempfile::tempdir().unwrap();
    let section = "[users_database]\nurl = \"sqlite:users.db\"\ncache_lifetime = \"30s\"\n";
    two_instances_enforce_one_quota(dir.path(), section);
}

#[test]
fn curl_is_told_552_when_an_upload_crosses_the_quota() {
    if !have_tool("curl", &["--version"]) {
        return;
    }
    let server = TestServer::start_with(|root| quota_config(root, "quota_bytes = \"64KiB\""));
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("big.bin");
    std::fs::write(&file, pattern(1 << 20, 9)).unwrap();
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60", "-T"])
        .arg(&file)
        .arg(format!("ftp://alice:{PASSWORD}@{}/big.bin", server.addr))
        .output()
        .unwrap();
    // curl's CURLE_REMOTE_DISK_FULL: what it makes of a 552.
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{said}");
    assert!(said.contains("Exceeded storage allocation"), "{said}");
    assert!(!server.path("big.bin").exists());
}
