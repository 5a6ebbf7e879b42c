//! The daemon serving a user whose storage is an S3 bucket (a real Garage,
//! started once for the test binary), driven by curl, lftp, rclone and
//! Python's ftplib. Every file is checked byte for byte, both as a client reads it
//! back and as the object stored in the bucket.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aioftpd::path::VirtualPath;
use aioftpd::storage::garage::{garage, missing, BUCKET, REGION};
use aioftpd::storage::{S3Storage, Storage};
use futures::TryStreamExt;
use tokio::io::AsyncReadExt;

use crate::support::ftplib_script;
use crate::support::{
    curl, have_tool, password_hash, pattern, run_ok, RawClient, TestServer, PASSWORD,
};

/// S3's smallest part, so that a few MB already make a multipart upload.
const PART: usize = 5 * 1024 * 1024;

/// A server whose `alice` keeps her files under `prefix` of the bucket.
fn server_on(prefix: &str, endpoint: &str) -> TestServer {
    server_with(prefix, endpoint, "")
}

/// [`server_on`], with `extra` keys in alice's entry.
fn server_with(prefix: &str, endpoint: &str, extra: &str) -> TestServer {
    let garage = garage();
    let text = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
idle_timeout = "60s"
data_timeout = "10s"

[[users]]
login = "alice"
password = "{hash}"
storage = "s3"
permissions = [{{ path = "/", readable = true, writable = true }}]
s3 = {{ endpoint = "{endpoint}", bucket = "{BUCKET}", region = "{REGION}", prefix = "{prefix}", credentials_file = "{key}", part_size = "5MiB" }}
{extra}
"#,
        hash = password_hash(),
        key = garage.credentials_file.display(),
    );
    TestServer::start_with(move |_| text)
}

/// A fresh prefix, a server on it, and a direct view of the bucket there.
fn s3_server() -> (TestServer, Bucket, String) {
    let garage = garage();
    let prefix = garage.fresh_prefix();
    let server = server_on(&prefix, &garage.endpoint);
    (server, Bucket::at(&prefix), prefix)
}

/// The objects under a prefix, read straight from the bucket, not
/// through the daemon.
struct Bucket {
    storage: S3Storage,
    runtime: tokio::runtime::Runtime,
}

impl Bucket {
    fn at(prefix: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The storage's HTTP client belongs to the runtime it is made in.
        let storage = runtime.block_on(async { garage().storage_at(prefix) });
        Bucket { storage, runtime }
    }

    fn read(&self, path: &str) -> Vec<u8> {
        self.runtime.block_on(async {
            let mut reader = self
                .storage
                .open_read(&VirtualPath::new(path), 0)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).await.unwrap();
            bytes
        })
    }

    fn names(&self, dir: &str) -> Vec<String> {
        self.runtime.block_on(async {
            let entries: Vec<_> = self
                .storage
                .list(&VirtualPath::new(dir))
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            let mut names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
            names.sort();
            names
        })
    }
}

/// Byte for byte, shown by length and first difference rather than in full.
#[track_caller]
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    let first_difference = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "{what}: {} bytes, expected {}; first difference at {first_difference:?}",
        got.len(),
        want.len()
    );
}

#[test]
fn curl_uploads_downloads_and_lists_on_s3() {
    if missing() {
        return;
    }
    if !have_tool("curl", &["--version"]) {
        return;
    }
    let (server, bucket, _) = s3_server();
    let work = tempfile::tempdir().unwrap();
    // Two whole parts and a bit: a multipart upload.
    let bytes = pattern(2 * PART + 300_000, 61);
    let local = work.path().join("up.bin");
    std::fs::write(&local, &bytes).unwrap();

    curl(&["-T", local.to_str().unwrap(), &server.url("/up.bin")]);
    assert_same(&bucket.read("/up.bin"), &bytes, "the stored object");
    curl(&[
        "--ftp-create-dirs",
        "-T",
        local.to_str().unwrap(),
        &server.url("/new/dir/x.bin"),
    ]);
    assert_same(&bucket.read("/new/dir/x.bin"), &bytes, "the stored x.bin");

    let listing = curl(&[&server.url("/")]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw") && l.ends_with(" up.bin")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("drwx") && l.ends_with(" new")),
        "{listing}"
    );
    let names = curl(&["--list-only", &server.url("/")]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["new", "up.bin"],
        "{names}"
    );

    let down = work.path().join("down.bin");
    curl(&["-o", down.to_str().unwrap(), &server.url("/up.bin")]);
    assert_same(&std::fs::read(&down).unwrap(), &bytes, "downloaded");
    // REST + RETR: a ranged GET from the offset.
    let partial = work.path().join("partial.bin");
    std::fs::write(&partial, &bytes[..PART + 17]).unwrap();
    curl(&[
        "-C",
        "-",
        "-o",
        partial.to_str().unwrap(),
        &server.url("/up.bin"),
    ]);
    assert_same(
        &std::fs::read(&partial).unwrap(),
        &bytes,
        "resumed download",
    );
}

#[test]
fn lftp_mirrors_a_tree_up_lists_it_and_mirrors_it_back_from_s3() {
    if missing() {
        return;
    }
    if !have_tool("lftp", &["--version"]) {
        return;
    }
    let (server, bucket, _) = s3_server();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let files: [(&str, Vec<u8>); 4] = [
        ("a.bin", pattern(PART + 123_456, 71)),
        ("empty", Vec::new()),
        ("sub/b.txt", b"beneath\n".to_vec()),
        ("sub/deeper/c.bin", pattern(200_000, 72)),
    ];
    for (name, bytes) in &files {
        let path = tree.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let back = work.path().join("back");
    // lftp sets each file's time with MFMT after the upload; S3 keeps its
    // own, and the reply says which.
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; \
         mirror -R --no-perms {tree} up; cls -l up up/sub up/sub/deeper; mirror up {back}; bye",
        tree = tree.display(),
        back = back.display(),
    );
    let out = run_ok(
        Command::new("lftp")
            .args(["-u", &format!("alice,{PASSWORD}"), "-e", &script])
            .arg(format!("ftp://{}", server.addr)),
    );
    for (name, bytes) in &files {
        let file_name = Path::new(name).file_name().unwrap().to_str().unwrap();
        assert!(out.contains(file_name), "{name} not listed:\n{out}");
        assert_same(
            &bucket.read(&format!("/up/{name}")),
            bytes,
            &format!("stored {name}"),
        );
        let mirrored = std::fs::read(back.join(name)).unwrap();
        assert_same(&mirrored, bytes, &format!("mirrored back {name}"));
    }
    assert_eq!(bucket.names("/up"), ["a.bin", "empty", "sub"]);
}

#[test]
fn rclone_copies_a_tree_up_and_back_through_its_connection_pool_on_s3() {
    if missing() {
        return;
    }
    if !have_tool("rclone", &["version"]) {
        return;
    }
    let (server, bucket, _) = s3_server();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let files: [(&str, Vec<u8>); 4] = [
        ("big.bin", pattern(2 * PART + 4_321, 81)),
        ("one.txt", b"one\n".to_vec()),
        ("sub/two.bin", pattern(300_000, 82)),
        ("sub/three.bin", pattern(70_000, 83)),
    ];
    for (name, bytes) in &files {
        let path = tree.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let config = work.path().join("rclone.conf");
    std::fs::write(&config, "").unwrap();
    let obscured = run_ok(Command::new("rclone").args(["obscure", PASSWORD]));
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--ftp-host",
        &server.addr.ip().to_string(),
        "--ftp-port",
        &server.addr.port().to_string(),
        "--ftp-user",
        "alice",
        "--ftp-pass",
        obscured.trim(),
        // A failure must show, not be retried away.
        "--retries",
        "1",
        "--low-level-retries",
        "1",
    ]
    .map(str::to_owned);
    // Its default pool: several files at once, each on its own connection.
    run_ok(
        Command::new("rclone")
            .arg("copy")
            .arg(&tree)
            .arg(":ftp:/up")
            .args(&args),
    );
    for (name, bytes) in &files {
        assert_same(
            &bucket.read(&format!("/up/{name}")),
            bytes,
            &format!("stored {name}"),
        );
    }
    let back = work.path().join("back");
    run_ok(
        Command::new("rclone")
            .arg("copy")
            .arg(":ftp:/up")
            .arg(&back)
            .args(&args),
    );
    for (name, bytes) in &files {
        let copied = std::fs::read(back.join(name)).unwrap();
        assert_same(&copied, bytes, &format!("copied back {name}"));
    }
}

/// Every command this backend does, and the ones it refuses with a 5xx.
const FTPLIB_S3: &str = r#"
import ftplib, io, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
f = ftplib.FTP()
f.connect(host, port, timeout=30)
f.login(user, password)
def refused(code, call, *args):
    try:
        call(*args)
    except ftplib.error_perm as e:
        assert str(e).startswith(code), (call, args, str(e))
    else:
        raise AssertionError(("accepted", call, args))
data = bytes(range(256)) * 45000
f.storbinary("STOR py.bin", io.BytesIO(data))
out = io.BytesIO()
f.retrbinary("RETR py.bin", out.write)
assert out.getvalue() == data, "round trip"
out = io.BytesIO()
f.retrbinary("RETR py.bin", out.write, rest=6000000)
assert out.getvalue() == data[6000000:], "REST + RETR"
assert f.size("py.bin") == len(data)
mdtm = f.sendcmd("MDTM py.bin")
assert mdtm.startswith("213 ") and len(mdtm) == 18, mdtm
refused("502", f.storbinary, "APPE py.bin", io.BytesIO(b"more"))
refused("502", f.storbinary, "STOR py.bin", io.BytesIO(b"x"), 8192, None, 10)
# S3 keeps the time the object was written: MFMT says so instead of failing.
kept = f.sendcmd("MFMT 20200101000000 py.bin")
assert kept == "213 Modify=" + mdtm[4:] + "; /py.bin", (kept, mdtm)
f.mkd("sub")
refused("550", f.mkd, "sub")
assert sorted(f.nlst()) == ["py.bin", "sub"], f.nlst()
f.cwd("sub")
assert f.pwd() == "/sub"
f.cwd("/")
f.rename("py.bin", "sub/moved.bin")
refused("550", f.size, "py.bin")
assert f.size("sub/moved.bin") == len(data)
out = io.BytesIO()
f.retrbinary("RETR sub/moved.bin", out.write)
assert out.getvalue() == data, "renamed"
facts = dict(f.mlsd("sub"))
assert facts["moved.bin"]["type"] == "file" and facts["moved.bin"]["size"] == str(len(data)), facts
refused("550", f.rmd, "sub")
f.mkd("sub/empty")
f.sendcmd("RNFR sub/empty")
refused("502", f.sendcmd, "RNTO renamed")
f.rmd("sub/empty")
f.delete("sub/moved.bin")
refused("550", f.delete, "sub/moved.bin")
f.rmd("sub")
assert f.nlst() == [], f.nlst()
f.quit()
print("ok")
"#;

#[test]
fn python_ftplib_on_s3_and_what_s3_refuses() {
    if missing() {
        return;
    }
    if !have_tool("python3", &["--version"]) {
        return;
    }
    let (server, bucket, _) = s3_server();
    let out = ftplib_script(FTPLIB_S3, server.addr, &[]);
    assert_eq!(out.trim(), "ok");
    assert!(bucket.names("/").is_empty(), "every object was deleted");
}

/// Polls `done` (bounded): what the daemon does on a task of its own after
/// its reply, such as aborting a multipart upload, is not ordered by it.
fn eventually(mut done: impl FnMut() -> bool, what: &str) {
    for _ in 0..200 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not after 10 s");
}

/// Two uploads over an old file, each broken off once parts went out: one
/// by `ABOR`, one by a reset data connection. (A data connection closed
/// cleanly is the end of the file in stream mode: a complete upload.)
#[test]
fn a_broken_upload_leaves_no_object_no_parts_and_the_old_object_intact() {
    if missing() {
        return;
    }
    let (server, bucket, prefix) = s3_server();
    let garage = garage();
    let old = pattern(100_000, 81);
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("TYPE I").code, 200);
    assert_eq!(c.upload("STOR f.bin", &old).code, 226);
    for ending in ["ABOR", "reset"] {
        let mut data = c.pasv();
        assert_eq!(c.cmd("STOR f.bin").code, 150);
        // Three parts' worth: the first two must go out while the third is
        // being filled, so the multipart upload is under way.
        data.write_all(&pattern(3 * PART, 82)).unwrap();
        eventually(
            || garage.multipart_uploads(&prefix) == 1,
            "a multipart upload under way",
        );
        if ending == "ABOR" {
            c.send("ABOR");
            assert_eq!(c.reply().code, 426, "{ending}");
            assert_eq!(c.reply().code, 226, "ABOR's own reply");
        } else {
            socket2::SockRef::from(&data)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(data);
            assert_eq!(c.reply().code, 426, "{ending}");
        }
        eventually(
            || garage.multipart_uploads(&prefix) == 0,
            "the multipart upload aborted",
        );
        assert_same(
            &bucket.read("/f.bin"),
            &old,
            &format!("the old object after {ending}"),
        );
        assert_eq!(bucket.names("/"), ["f.bin"], "{ending}");
        assert_eq!(c.cmd("NOOP").code, 200);
    }
}

/// Nothing listens at the endpoint: commands fail with 451, the session
/// goes on.
#[test]
fn an_unreachable_endpoint_answers_451() {
    if missing() {
        return;
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = server_on("unreachable/", &endpoint);
    let mut c = RawClient::connect(server.addr);
    c.login("alice", PASSWORD);
    for command in ["SIZE f.bin", "MKD d", "DELE f.bin", "MDTM f.bin", "CWD d"] {
        assert_eq!(c.cmd(command).code, 451, "{command}");
    }
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn a_quota_on_s3_refuses_the_upload_that_crosses_it_and_leaves_no_object() {
    if missing() {
        return;
    }
    let garage = garage();
    let prefix = garage.fresh_prefix();
    let server = server_with(&prefix, &garage.endpoint, "quota_bytes = \"12MiB\"");
    let bucket = Bucket::at(&prefix);
    let mut c = server.raw();
    c.login("alice", PASSWORD);
    assert_eq!(c.cmd("TYPE I").code, 200);
    let first = pattern(4 << 20, 71);
    assert_eq!(c.upload("STOR first.bin", &first).code, 226);
    // 4 MiB held, 8 MiB left: 10 MiB crosses it once its first 5 MiB part
    // is up; the multipart upload is aborted, nothing appears.
    let reply = c.upload("STOR second.bin", &pattern(10 << 20, 72));
    assert_eq!(reply.code, 552, "{reply:?}");
    assert_eq!(bucket.names("/"), vec!["first.bin".to_owned()]);
    assert_same(&bucket.read("/first.bin"), &first, "first.bin");
    // What is left still fits, and replacing a file counts its old bytes.
    assert_eq!(c.upload("STOR second.bin", &pattern(8 << 20, 73)).code, 226);
    assert_eq!(c.upload("STOR first.bin", &pattern(1 << 20, 74)).code, 226);
    assert_eq!(c.upload("STOR third.bin", &pattern(3 << 20, 75)).code, 226);
    assert_eq!(c.cmd("DELE third.bin").code, 250);
    assert_eq!(c.upload("STOR fourth.bin", &pattern(3 << 20, 76)).code, 226);
}
