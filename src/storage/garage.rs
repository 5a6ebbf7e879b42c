//! A throw-away single-node Garage S3 server for tests: one per test
//! binary, started on first use, with one key and one bucket. Each test
//! takes a fresh key prefix of that bucket, so tests never see each
//! other's objects.
//!
//! Garage runs under `setpriv --pdeathsig KILL`, spawned by a thread that
//! lives as long as the test process: when the process ends, however it
//! ends, the kernel kills Garage, and no server is left behind. Its files
//! are in a temporary directory named after the test process; directories
//! of processes that are gone are removed at the next start.
//!
//! The binary is `$GARAGE`, else [`CACHED_GARAGE`]. Without either the S3
//! tests skip, saying how to install it, as tests of a missing client do,
//! and fail under CI (see [`missing`]).

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use super::s3::{normalize_prefix, S3Config, S3Credentials, S3Storage, MIN_PART_SIZE};

/// Where .ci/run installs Garage.
pub const CACHED_GARAGE: &str = "/var/cache/aioftpd-tools/garage-2.5.0/bin/garage";

/// How Garage gets installed where it is missing (what .ci/run does).
const INSTALL: &str = "cargo install --locked garage --version 2.5.0 --no-default-features \
     --features bundled-libs,lmdb,sqlite --root /var/cache/aioftpd-tools/garage-2.5.0";

/// The region Garage signs for.
pub const REGION: &str = "garage";
/// The one bucket.
pub const BUCKET: &str = "aioftpd-tests";

/// Readiness polls: at most this many tries, this far apart (Garage starts
/// in well under a second; the bound only keeps a broken start from
/// hanging the tests).
const POLLS: u32 = 300;
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The running Garage.
#[derive(Debug)]
pub struct Garage {
    /// `http://127.0.0.1:<port>`, its S3 API.
    pub endpoint: String,
    /// A credentials file holding the key, in the AWS form (mode 0600).
    pub credentials_file: PathBuf,
    credentials: S3Credentials,
    key_id: String,
    secret: String,
    next_prefix: AtomicUsize,
}

/// The test binary's Garage, started on first use.
pub fn garage() -> &'static Garage {
    static GARAGE: OnceLock<Garage> = OnceLock::new();
    GARAGE.get_or_init(Garage::start)
}

impl Garage {
    fn start() -> Garage {
        let binary = binary();
        let dir = std::env::temp_dir().join(format!("aioftpd-garage-{}", std::process::id()));
        remove_dirs_of_ended_runs();
        // A directory of an earlier process with this pid, or of this one
        // restarted: Garage must start empty.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the Garage directory");
        let [rpc, s3, admin] = free_ports();
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                dir = dir.display(),
                secret = random_hex(32),
            ),
        )
        .expect("the Garage config");
        serve(&binary, &config, &dir);
        wait_for(
            || TcpStream::connect(("127.0.0.1", rpc)).is_ok(),
            "its RPC port",
        );
        let cli = |args: &[&str]| garage_cli(&binary, &config, args);
        let node = cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap_or_default().to_owned();
        cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        cli(&["layout", "apply", "--version", "1"]);
        let (key_id, secret) = (format!("GK{}", random_hex(12)), random_hex(32));
        cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "aioftpd-tests",
            &key_id,
            &secret,
        ]);
        cli(&["bucket", "create", BUCKET]);
        cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", &key_id,
        ]);
        let credentials_file = dir.join("s3.key");
        write_private(
            &credentials_file,
            &format!("[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"),
        );
        let garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3}"),
            credentials: S3Credentials::new(&key_id, &secret).expect("a valid key"),
            credentials_file,
            key_id,
            secret,
            next_prefix: AtomicUsize::new(0),
        };
        // The layout takes effect in the background; the bucket answers once it has.
        wait_for(
            || {
                garage
                    .s3_get(&format!("/{BUCKET}?list-type=2&max-keys=1"))
                    .is_some()
            },
            "its S3 API",
        );
        garage
    }

    /// A prefix no other test of this binary uses (`t0/`, `t1/`, ...).
    pub fn fresh_prefix(&self) -> String {
        format!("t{}/", self.next_prefix.fetch_add(1, Ordering::Relaxed))
    }

    /// The config of a storage at `prefix` of the bucket, with S3's
    /// smallest parts, so that multipart uploads are cheap to test.
    pub fn config(&self, prefix: &str) -> S3Config {
        S3Config {
            endpoint: self.endpoint.clone(),
            bucket: BUCKET.to_owned(),
            region: REGION.to_owned(),
            prefix: normalize_prefix(prefix).expect("a valid prefix"),
            credentials: self.credentials.clone(),
            part_size: MIN_PART_SIZE,
            parts_in_flight: 2,
        }
    }

    /// A storage at `prefix`.
    pub fn storage_at(&self, prefix: &str) -> S3Storage {
        S3Storage::new(self.config(prefix)).expect("an S3 storage")
    }

    /// A storage at a fresh prefix, and that prefix.
    pub fn storage_and_prefix(&self) -> (S3Storage, String) {
        let prefix = self.fresh_prefix();
        (self.storage_at(&prefix), prefix)
    }

    /// A storage at a fresh prefix: an empty tree.
    pub fn storage(&self) -> S3Storage {
        self.storage_and_prefix().0
    }

    /// How many multipart uploads under `prefix` are begun and neither
    /// completed nor aborted (S3 ListMultipartUploads).
    pub fn multipart_uploads(&self, prefix: &str) -> usize {
        let listing = self
            .s3_get(&format!(
                "/{BUCKET}?prefix={}&uploads=",
                prefix.replace('/', "%2F")
            ))
            .expect("ListMultipartUploads");
        listing.matches("<Upload>").count()
    }

    /// The body of a signed `GET` of `path_and_query` on the S3 API, or
    /// `None` if it failed. curl signs it (AWS SigV4): no S3 client in the
    /// tests but the backend under test.
    fn s3_get(&self, path_and_query: &str) -> Option<String> {
        // The hash of an empty body, which SigV4 wants named for S3.
        const EMPTY_SHA256: &str =
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let output = Command::new("curl")
            .args(["--silent", "--fail", "--max-time", "10"])
            .args(["--aws-sigv4", &format!("aws:amz:{REGION}:s3")])
            .args(["--user", &format!("{}:{}", self.key_id, self.secret)])
            .args(["-H", &format!("x-amz-content-sha256: {EMPTY_SHA256}")])
            .arg(format!("{}{path_and_query}", self.endpoint))
            .output()
            .expect("curl, to sign requests to Garage, is installed");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// The Garage binary, or a failure that says how to install it.
fn binary() -> PathBuf {
    let binary = binary_path();
    assert!(
        binary.is_file(),
        "the S3 tests need Garage 2.5.0 at {} (set GARAGE to its path, or install it: {INSTALL})",
        binary.display()
    );
    binary
}

fn binary_path() -> PathBuf {
    std::env::var_os("GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CACHED_GARAGE))
}

/// Whether Garage is missing, so an S3 test is to be skipped: as with a
/// missing client, it says so and skips, except under CI (`CI` set), where
/// it fails, saying how to install it.
pub fn missing() -> bool {
    if binary_path().is_file() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the S3 tests need Garage 2.5.0 under CI (set GARAGE to its path, or install it: {INSTALL})"
    );
    eprintln!(
        "skipping: no Garage at {} (set GARAGE, or install it: {INSTALL})",
        binary_path().display()
    );
    true
}

/// Starts `garage server` from a thread that waits on it for as long as
/// the process lives: the parent-death signal is tied to that thread.
fn serve(binary: &Path, config: &Path, dir: &Path) {
    let log = std::fs::File::create(dir.join("garage.log")).expect("the Garage log");
    let err_log = log.try_clone().expect("the Garage log");
    let mut command = Command::new("setpriv");
    command
        .args(["--pdeathsig", "KILL", "--"])
        .arg(binary)
        .arg("-c")
        .arg(config)
        .arg("server")
        .env("RUST_LOG", "garage=warn")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    let (started, spawned) = mpsc::channel();
    std::thread::Builder::new()
        .name("garage".to_owned())
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = started.send(Ok(()));
                // Parks this thread for good: it is Garage's parent.
                let _ = child.wait();
            }
            Err(err) => {
                let _ = started.send(Err(err));
            }
        })
        .expect("the thread that runs Garage");
    spawned
        .recv()
        .expect("the Garage thread answers")
        .unwrap_or_else(|e| panic!("cannot start Garage under setpriv (util-linux): {e}"));
}

/// Runs a `garage` CLI command against the node; its standard output.
fn garage_cli(binary: &Path, config: &Path, args: &[&str]) -> String {
    let output = Command::new(binary)
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("the garage CLI runs");
    assert!(
        output.status.success(),
        "garage {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `ready` until it holds; fails the tests if it never does.
fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    for _ in 0..POLLS {
        if ready() {
            return;
        }
        std::thread::sleep(POLL_EVERY);
    }
    panic!("Garage did not open {what} in {:?}", POLL_EVERY * POLLS);
}

/// Three ports free on 127.0.0.1 now (bound together, so distinct).
fn free_ports() -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    let port = |l: &TcpListener| {
        l.local_addr()
            .map(|a: SocketAddr| a.port())
            .expect("its port")
    };
    [
        port(&listeners[0]),
        port(&listeners[1]),
        port(&listeners[2]),
    ]
}

/// `bytes` random bytes, as hex.
fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .expect("/dev/urandom");
    random.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Removes the Garage directories of test processes that have ended: their
/// Garage died with them, and nothing else removes the files.
fn remove_dirs_of_ended_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("aioftpd-garage-"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
