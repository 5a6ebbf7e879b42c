//! The scale-out test bed (tests/scale-out/testbed.sh): two aioftpd
//! instances behind HAProxy on one bucket of a 3-node Garage cluster. One
//! test, in steps: the bed has fixed loopback addresses, and later steps
//! kill parts of it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use crate::support::daemon::BIN;
use crate::support::{have_tool, pattern, tcp_from, RawClient, IO_TIMEOUT};

/// How long the bed may take to start: three Garage nodes agreeing on a
/// layout, HAProxy, two instances.
const BED_START: std::time::Duration = std::time::Duration::from_secs(120);

struct Bed {
    child: Child,
    dir: PathBuf,
    env: HashMap<String, String>,
    _tmp: tempfile::TempDir,
}

impl Bed {
    fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scale-out/testbed.sh");
        // If this test dies, the bed dies with it.
        let mut child = Command::new("setpriv")
            .args(["--pdeathsig", "TERM"])
            .arg(&script)
            .arg(&dir)
            .env("AIOFTPD", BIN)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("testbed.sh");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let ready = rx.recv_timeout(BED_START);
        assert_eq!(ready.as_deref(), Ok("ready"), "the test bed did not start");
        let env = std::fs::read_to_string(dir.join("env"))
            .unwrap()
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Bed {
            child,
            dir,
            env,
            _tmp: tmp,
        }
    }

    fn var(&self, name: &str) -> &str {
        &self.env[name]
    }

    fn front(&self, port_var: &str) -> SocketAddr {
        let ip: IpAddr = self.var("FTP_HOST").parse().unwrap();
        SocketAddr::new(ip, self.var(port_var).parse().unwrap())
    }

    /// A logged-in binary-mode session from `client` through `port_var`.
    fn session(&self, client: &str, port_var: &str) -> RawClient {
        let mut c = RawClient::connect_from(client.parse().unwrap(), self.front(port_var));
        assert_eq!(c.greeting.code, 220, "{:?}", c.greeting);
        c.login(self.var("FTP_USER"), self.var("FTP_PASS"));
        assert_eq!(c.cmd("TYPE I").code, 200);
        c
    }

    /// Kills `name` (a file in DIR/pids) with `signal`.
    fn kill(&self, name: &str, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.join("pids").join(name)).unwrap();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), pid.trim()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {name}");
    }

    /// A signed request to the S3 API through HAProxy; the body if it
    /// succeeded.
    fn s3(&self, method: &str, path_and_query: &str) -> Option<String> {
        const EMPTY_SHA256: &str =
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let out = Command::new("curl")
            .args(["--silent", "--fail", "--max-time", "20", "-X", method])
            .args([
                "--aws-sigv4",
                &format!("aws:amz:{}:s3", self.var("S3_REGION")),
            ])
            .args([
                "--user",
                &format!("{}:{}", self.var("S3_KEY_ID"), self.var("S3_SECRET")),
            ])
            .args(["-H", &format!("x-amz-content-sha256: {EMPTY_SHA256}")])
            .arg(format!("{}{path_and_query}", self.var("S3_ENDPOINT")))
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Multipart uploads begun under the user's prefix and neither
    /// completed nor aborted.
    fn open_multipart_uploads(&self) -> usize {
        let listing = self
            .s3(
                "GET",
                &format!(
                    "/{}?prefix={}&uploads=",
                    self.var("S3_BUCKET"),
                    self.var("S3_PREFIX").replace('/', "%2F")
                ),
            )
            .expect("ListMultipartUploads");
        listing.matches("<Upload>").count()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The data port a `227` announces.
fn pasv(c: &mut RawClient) -> SocketAddr {
    let reply = c.cmd("PASV");
    assert_eq!(reply.code, 227, "{reply:?}");
    let text = reply.text();
    let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
    let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
    SocketAddr::from((
        [n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8],
        n[4] * 256 + n[5],
    ))
}

fn local_ip(c: &RawClient) -> IpAddr {
    c.local_addr().ip()
}

/// STOR `name` with `body`; the final reply's code.
fn put(c: &mut RawClient, name: &str, body: &[u8]) -> u16 {
    let data = pasv(c);
    c.send(&format!("STOR {name}"));
    let mut conn = tcp_from(local_ip(c), data);
    let first = c.reply();
    if first.code != 150 {
        return first.code;
    }
    conn.write_all(body).unwrap();
    drop(conn);
    c.reply().code
}

/// RETR `name`: the bytes, if the transfer completed.
fn get(c: &mut RawClient, name: &str) -> Option<Vec<u8>> {
    let data = pasv(c);
    c.send(&format!("RETR {name}"));
    let mut conn = tcp_from(local_ip(c), data);
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    if c.reply().code != 150 {
        return None;
    }
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    (c.reply().code == 226).then_some(got)
}

#[test]
fn two_instances_behind_haproxy_share_one_garage_bucket_and_survive_losing_parts() {
    let garage = std::env::var("GARAGE")
        .unwrap_or_else(|_| "/var/cache/aioftpd-tools/garage-2.5.0/bin/garage".to_owned());
    if !have_tool("haproxy", &["-v"]) || !have_tool(&garage, &["--version"]) {
        return;
    }
    let bed = Bed::start();

    // Uploaded through instance a, listed and read back through b.
    let body = pattern(3 << 20, 1);
    let mut a = bed.session("127.0.0.50", "FTP_PORT_A");
    assert_eq!(put(&mut a, "via-a.bin", &body), 226);
    let mut b = bed.session("127.0.0.51", "FTP_PORT_B");
    let (reply, names) = b.fetch("NLST");
    assert_eq!(reply.code, 226);
    assert!(names.lines().any(|n| n == "via-a.bin"), "{names}");
    assert!(
        get(&mut b, "via-a.bin") == Some(body.clone()),
        "b reads what a wrote"
    );

    // 20 clients at once over the balanced frontend, each its own file.
    let clients: Vec<_> = (0..20u8)
        .map(|i| {
            let client = format!("127.0.0.{}", 60 + i);
            let mut session = bed.session(&client, "FTP_PORT");
            std::thread::spawn(move || {
                let mine = pattern(512 * 1024 + usize::from(i) * 4099, u64::from(i) + 100);
                let name = format!("client-{i}.bin");
                assert_eq!(put(&mut session, &name, &mine), 226, "{name}");
                assert!(get(&mut session, &name) == Some(mine), "{name} read back");
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }

    // Both instances upload one name at once: one upload is whole.
    let (one, two) = (pattern(2 << 20, 7), pattern(2 << 20, 8));
    let uploads: Vec<_> = [("FTP_PORT_A", one.clone()), ("FTP_PORT_B", two.clone())]
        .into_iter()
        .enumerate()
        .map(|(i, (port, bytes))| {
            let mut session = bed.session(&format!("127.0.0.{}", 90 + i), port);
            std::thread::spawn(move || put(&mut session, "same.bin", &bytes))
        })
        .collect();
    for upload in uploads {
        assert_eq!(upload.join().unwrap(), 226);
    }
    let stored = get(&mut b, "same.bin").expect("same.bin");
    assert!(stored == one || stored == two, "a mix of both uploads");

    // Instance a killed outright in the middle of replacing a file: the
    // old object stays, and the upload it began is left for the cleanup.
    let old = pattern(1 << 20, 9);
    assert_eq!(put(&mut a, "keep.bin", &old), 226);
    let data = pasv(&mut a);
    a.send("STOR keep.bin");
    let mut conn = tcp_from(local_ip(&a), data);
    assert_eq!(a.reply().code, 150);
    // Past two 8 MiB parts (OpenDAL holds a full part back until the next
    // one is full too); killed once the multipart upload is under way
    // (each poll is one ListMultipartUploads, bounded).
    conn.write_all(&pattern(20 << 20, 10)).unwrap();
    let begun = (0..500).any(|_| bed.open_multipart_uploads() >= 1);
    assert!(begun, "no multipart upload began");
    bed.kill("aioftpd-a", "KILL");
    drop(conn);
    assert!(
        get(&mut b, "keep.bin") == Some(old),
        "the old object is intact"
    );
    assert!(
        bed.open_multipart_uploads() >= 1,
        "the killed instance could not abort its upload"
    );
    // The documented cleanup (docs/scale-out.md): Garage drops incomplete
    // uploads older than the age given. An upload begun within the second
    // may not count as older yet, and a listing through another node may
    // lag the abort: run it until the listing is empty, a bounded number
    // of times.
    let cleaned = (0..100).any(|_| {
        let out = Command::new(bed.dir.join("garage-cli"))
            .args(["bucket", "cleanup-incomplete-uploads", "--older-than", "0s"])
            .arg(bed.var("S3_BUCKET"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bed.open_multipart_uploads() == 0
    });
    assert!(cleaned, "the cleanup left the killed instance's upload");

    // One Garage node stopped while b uploads: what was acknowledged (226)
    // is all there afterwards, and the cluster goes on serving.
    let mut acknowledged = Vec::new();
    let mut refused_after_stop = 0;
    for i in 0..8u64 {
        if i == 3 {
            bed.kill("garage2", "TERM");
        }
        let bytes = pattern(768 * 1024, 200 + i);
        let name = format!("during-{i}.bin");
        match put(&mut b, &name, &bytes) {
            226 => acknowledged.push((name, bytes)),
            // The one under way as the node went may fail, and says so.
            code if i >= 3 => {
                assert!((400..600).contains(&code), "{name}: {code}");
                refused_after_stop += 1;
            }
            code => panic!("{name}: {code} with every node up"),
        }
    }
    assert!(
        refused_after_stop <= 1,
        "{refused_after_stop} uploads failed after the stop"
    );
    for (name, bytes) in acknowledged {
        assert!(
            get(&mut b, &name) == Some(bytes),
            "{name} after the node stopped"
        );
    }
}
