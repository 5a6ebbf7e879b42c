//! Real clients against the real server: curl, Python's ftplib, lftp and
//! aioftp's client, over IPv4 and IPv6, passive and active.

use std::process::Command;

use crate::support::ftplib_script;
use crate::support::{curl, default_config, have_tool, pattern, run_ok, TestServer, PASSWORD};

#[test]
fn curl_lists_uploads_downloads_resumes_renames_and_deletes() {
    if !have_tool("curl", &["--version"]) {
        return;
    }
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let bytes = pattern(2_000_000, 21);
    let local = work.path().join("up.bin");
    std::fs::write(&local, &bytes).unwrap();

    curl(&["-T", local.to_str().unwrap(), &server.url("/up.bin")]);
    assert_eq!(std::fs::read(server.path("up.bin")).unwrap(), bytes);

    let listing = curl(&[&server.url("/")]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw") && l.ends_with(" up.bin")),
        "{listing}"
    );
    let names = curl(&["--list-only", &server.url("/")]);
    assert!(names.lines().any(|l| l == "up.bin"), "{names}");

    let down = work.path().join("down.bin");
    curl(&["-o", down.to_str().unwrap(), &server.url("/up.bin")]);
    assert_eq!(std::fs::read(&down).unwrap(), bytes);

    let partial = work.path().join("partial.bin");
    std::fs::write(&partial, &bytes[..700_000]).unwrap();
    curl(&[
        "-C",
        "-",
        "-o",
        partial.to_str().unwrap(),
        &server.url("/up.bin"),
    ]);
    assert_eq!(std::fs::read(&partial).unwrap(), bytes, "resumed download");

    std::fs::write(server.path("half.bin"), &bytes[..500_000]).unwrap();
    curl(&[
        "-C",
        "-",
        "-T",
        local.to_str().unwrap(),
        &server.url("/half.bin"),
    ]);
    assert_eq!(
        std::fs::read(server.path("half.bin")).unwrap(),
        bytes,
        "resumed upload"
    );

    curl(&[
        "--ftp-create-dirs",
        "-T",
        local.to_str().unwrap(),
        &server.url("/new/dir/x.bin"),
    ]);
    assert!(server.path("new/dir/x.bin").is_file());

    curl(&[
        "-Q",
        "RNFR up.bin",
        "-Q",
        "RNTO renamed.bin",
        "-Q",
        "DELE half.bin",
        &server.url("/"),
    ]);
    assert!(server.path("renamed.bin").is_file());
    assert!(!server.path("half.bin").exists());
}

#[test]
fn curl_active_mode_and_epsv_off() {
    if !have_tool("curl", &["--version"]) {
        return;
    }
    let server = TestServer::start();
    std::fs::write(server.path("f.txt"), b"active").unwrap();
    assert_eq!(curl(&["-P", "127.0.0.1", &server.url("/f.txt")]), "active");
    assert_eq!(
        curl(&["--disable-eprt", "-P", "127.0.0.1", &server.url("/f.txt")]),
        "active"
    );
    assert_eq!(curl(&["--disable-epsv", &server.url("/f.txt")]), "active");
}

#[test]
fn curl_over_ipv6_passive_and_active() {
    if !have_tool("curl", &["--version"]) || std::net::TcpListener::bind("[::1]:0").is_err() {
        return;
    }
    let server =
        TestServer::start_with(|root| default_config(root).replace("127.0.0.1:0", "[::1]:0"));
    assert!(server.addr.is_ipv6());
    std::fs::write(server.path("six.txt"), b"v6").unwrap();
    let url = format!(
        "ftp://alice:{PASSWORD}@[::1]:{}/six.txt",
        server.addr.port()
    );
    assert_eq!(curl(&["-g", &url]), "v6");
    assert_eq!(curl(&["-g", "-P", "::1", &url]), "v6");
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("PASV").code, 425, "PASV cannot describe IPv6");
}

#[test]
fn curl_reaches_the_anonymous_user() {
    if !have_tool("curl", &["--version"]) {
        return;
    }
    let server = TestServer::start();
    std::fs::write(server.path("pub/readme"), b"public").unwrap();
    assert_eq!(curl(&[&format!("ftp://{}/readme", server.addr)]), "public");
}

const FTPLIB_SCRIPT: &str = r#"
import ftplib, io, sys
host, port, user, password, active = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "active"
f = ftplib.FTP()
f.connect(host, port, timeout=30)
f.login(user, password)
f.set_pasv(not active)
data = bytes(range(256)) * 4096
f.storbinary("STOR py.bin", io.BytesIO(data))
out = io.BytesIO()
f.retrbinary("RETR py.bin", out.write)
assert out.getvalue() == data, "binary round trip"
out = io.BytesIO()
f.retrbinary("RETR py.bin", out.write, rest=1000)
assert out.getvalue() == data[1000:], "resumed download"
f.storlines("STOR lines.txt", io.BytesIO(b"one\ntwo\n"))
lines = []
f.retrlines("RETR lines.txt", lines.append)
assert lines == ["one", "two"], lines
f.mkd("sub")
f.cwd("sub")
assert f.pwd() == "/sub"
f.cwd("..")
f.rename("py.bin", "sub/moved.bin")
assert f.size("sub/moved.bin") == len(data)
facts = dict(f.mlsd("sub"))
assert facts["moved.bin"]["type"] == "file" and facts["moved.bin"]["size"] == str(len(data)), facts
assert "sub" in f.nlst()
listing = []
f.retrlines("LIST", listing.append)
assert any(l.endswith(" lines.txt") for l in listing), listing
f.delete("sub/moved.bin")
f.rmd("sub")
assert f.sendcmd("MDTM lines.txt").startswith("213 ")
f.quit()
print("ok")
"#;

fn ftplib(server: &TestServer, mode: &str) {
    let out = ftplib_script(FTPLIB_SCRIPT, server.addr, &[mode]);
    assert_eq!(out.trim(), "ok");
}

#[test]
fn python_ftplib_passive() {
    if !have_tool("python3", &["--version"]) {
        return;
    }
    ftplib(&TestServer::start(), "passive");
}

#[test]
fn python_ftplib_active() {
    if !have_tool("python3", &["--version"]) {
        return;
    }
    ftplib(&TestServer::start(), "active");
}

#[test]
fn python_ftplib_over_ipv6_passive_and_active() {
    if !have_tool("python3", &["--version"]) || std::net::TcpListener::bind("[::1]:0").is_err() {
        return;
    }
    let server =
        TestServer::start_with(|root| default_config(root).replace("127.0.0.1:0", "[::1]:0"));
    // ftplib speaks EPSV and EPRT on IPv6.
    ftplib(&server, "passive");
    ftplib(&server, "active");
}

#[test]
fn lftp_puts_gets_mirrors_and_lists() {
    lftp_round_trip(false);
}

#[test]
fn lftp_in_active_mode() {
    lftp_round_trip(true);
}

fn lftp_round_trip(active: bool) {
    if !have_tool("lftp", &["--version"]) {
        return;
    }
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let bytes = pattern(1_500_000, 33);
    std::fs::write(work.path().join("src.bin"), &bytes).unwrap();
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; \
         set ftp:passive-mode {passive}; \
         mkdir tree; put {src} -o tree/a.bin; put {src} -o tree/b.bin; \
         cls -l tree; get tree/a.bin -o {got}; mirror tree {mirror}; \
         mv tree/b.bin tree/c.bin; rm tree/a.bin; bye",
        src = work.path().join("src.bin").display(),
        got = work.path().join("got.bin").display(),
        mirror = work.path().join("mirror").display(),
        passive = !active,
    );
    let out = run_ok(
        Command::new("lftp")
            .args(["-u", &format!("alice,{PASSWORD}"), "-e", &script])
            .arg(format!("ftp://{}", server.addr)),
    );
    assert!(out.contains("a.bin") && out.contains("b.bin"), "{out}");
    assert_eq!(std::fs::read(work.path().join("got.bin")).unwrap(), bytes);
    assert_eq!(
        std::fs::read(work.path().join("mirror/b.bin")).unwrap(),
        bytes
    );
    assert!(server.path("tree/c.bin").is_file());
    assert!(!server.path("tree/a.bin").exists());
}

const AIOFTP_SCRIPT: &str = r#"
import asyncio, sys, aioftp
async def main(host, port, user, password, local, back):
    async with aioftp.Client.context(host, int(port), user, password) as c:
        await c.upload(local, "ai.bin", write_into=True)
        await c.download("ai.bin", back, write_into=True)
        stat = await c.stat("ai.bin")
        assert stat["type"] == "file", stat
        names = [str(p) for p, _ in await c.list()]
        assert "ai.bin" in names, names
        await c.make_directory("d")
        assert await c.is_dir("d")
        await c.rename("ai.bin", "d/ai2.bin")
        await c.remove("d")
        try:
            async with c.download_stream("pub"):
                pass
        except aioftp.StatusCodeError as e:
            assert "550" in str(e.received_codes), e
        else:
            raise AssertionError("RETR of a directory succeeded")
    print("ok")
asyncio.run(main(*sys.argv[1:]))
"#;

#[test]
fn aioftp_client_round_trip() {
    if !have_tool("python3", &["-c", "import aioftp"]) {
        return;
    }
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let bytes = pattern(700_000, 44);
    let local = work.path().join("ai.bin");
    let back = work.path().join("back.bin");
    std::fs::write(&local, &bytes).unwrap();
    let out = run_ok(
        Command::new("python3")
            .args([
                "-c",
                AIOFTP_SCRIPT,
                "127.0.0.1",
                &server.addr.port().to_string(),
                "alice",
                PASSWORD,
            ])
            .args([&local, &back]),
    );
    assert_eq!(out.trim(), "ok");
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
    assert!(!server.path("d").exists(), "remove() deleted the tree");
}

#[test]
fn bsd_ftp_client_puts_gets_and_mgets_in_passive_and_active_mode() {
    if !have_tool("sh", &["-c", "command -v ftp"]) {
        return;
    }
    let server = TestServer::start();
    std::fs::write(server.path("one.txt"), b"1").unwrap();
    std::fs::write(server.path("two.txt"), b"2").unwrap();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("local.bin");
    let bytes = pattern(200_000, 55);
    std::fs::write(&local, &bytes).unwrap();
    let script = format!(
        "user alice {PASSWORD}\nbinary\nput {} up.bin\nget up.bin back.bin\nmget *.txt\npassive\nget one.txt active.txt\nquit\n",
        local.display()
    );
    let mut child = Command::new("ftp")
        .args(["-inv", "127.0.0.1", &server.addr.port().to_string()])
        .current_dir(work.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        transcript.contains("200 EPRT command successful"),
        "active mode was used: {transcript}"
    );
    assert_eq!(std::fs::read(server.path("up.bin")).unwrap(), bytes);
    assert_eq!(std::fs::read(work.path().join("back.bin")).unwrap(), bytes);
    assert_eq!(std::fs::read(work.path().join("one.txt")).unwrap(), b"1");
    assert_eq!(std::fs::read(work.path().join("two.txt")).unwrap(), b"2");
    assert_eq!(std::fs::read(work.path().join("active.txt")).unwrap(), b"1");
}

/// `ftplib.FTP.abort()` sends `ABOR\r\n` as urgent data (MSG_OOB).
const FTPLIB_ABORT: &str = r#"
import ftplib, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
f = ftplib.FTP()
f.connect(host, port, timeout=10)
f.login(user, password)
assert f.abort().startswith("226"), "idle"
f.voidcmd("TYPE I")
data = f.transfercmd("RETR big.bin")
assert data.recv(65536), "the download started"
assert f.abort().startswith("426"), "during a download"
data.close()
assert f.getresp().startswith("226"), "ABOR's own reply"
assert f.voidcmd("NOOP").startswith("200")
f.quit()
print("ok")
"#;

#[test]
fn python_ftplib_abort_is_heard_idle_and_during_a_download() {
    if !have_tool("python3", &["--version"]) {
        return;
    }
    let server = TestServer::start();
    std::fs::write(server.path("big.bin"), vec![7u8; 64 << 20]).unwrap();
    let out = ftplib_script(FTPLIB_ABORT, server.addr, &[]);
    assert_eq!(out.trim(), "ok");
}
