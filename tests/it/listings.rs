//! LIST, NLST, MLSD, MLST, SIZE, MDTM: formats clients parse, and no real path leaks.

use crate::support::TestServer;

fn populate(server: &TestServer) {
    std::fs::create_dir(server.path("dir")).unwrap();
    std::fs::write(server.path("dir/a.txt"), b"hello").unwrap();
    std::fs::write(server.path("dir/b b.bin"), vec![0u8; 1234]).unwrap();
    std::fs::create_dir(server.path("dir/sub")).unwrap();
}

#[test]
fn list_prints_ls_l_lines() {
    let server = TestServer::start();
    populate(&server);
    let mut c = server.raw_alice();
    let (reply, text) = c.fetch("LIST dir");
    assert_eq!(reply.code, 226);
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 3, "{text}");
    let a = lines.iter().find(|l| l.ends_with(" a.txt")).expect("a.txt");
    let fields: Vec<&str> = a.split_whitespace().collect();
    assert!(fields[0].starts_with("-rw"), "{a}");
    assert_eq!(fields[4], "5");
    assert_eq!(fields.len(), 9, "{a}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with('d') && l.ends_with(" sub")));
    assert!(lines.iter().any(|l| l.ends_with(" b b.bin")));
}

#[test]
fn list_ignores_ls_flags_and_lists_the_cwd() {
    let server = TestServer::start();
    populate(&server);
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("CWD dir").code, 250);
    let (reply, text) = c.fetch("LIST -la");
    assert_eq!(reply.code, 226);
    assert!(text.contains(" a.txt\r\n"), "{text}");
}

#[test]
fn list_of_a_file_shows_that_file() {
    let server = TestServer::start();
    populate(&server);
    let (reply, text) = server.raw_alice().fetch("LIST dir/a.txt");
    assert_eq!(reply.code, 226);
    assert!(
        text.ends_with(" a.txt\r\n") && text.lines().count() == 1,
        "{text}"
    );
}

#[test]
fn nlst_gives_bare_names() {
    let server = TestServer::start();
    populate(&server);
    let mut ftp = server.ftp();
    let mut names = ftp.nlst(Some("dir")).unwrap();
    names.sort();
    assert_eq!(names, ["a.txt", "b b.bin", "sub"]);
}

#[test]
fn listing_a_missing_directory_is_550() {
    let server = TestServer::start();
    let mut c = server.raw_alice();
    assert_eq!(c.cmd("PASV").code, 227);
    assert_eq!(c.cmd("LIST nope").code, 550);
    assert_eq!(c.cmd("MLSD nope").code, 550);
}

#[test]
fn mlsd_gives_rfc_3659_facts() {
    let server = TestServer::start();
    populate(&server);
    let mut ftp = server.ftp();
    let lines = ftp.mlsd(Some("dir")).unwrap();
    assert_eq!(lines.len(), 3);
    let a = lines.iter().find(|l| l.ends_with(" a.txt")).expect("a.txt");
    assert!(a.starts_with("type=file;size=5;modify="), "{a}");
    assert!(
        a.contains(";perm=radfw;") || a.contains(";perm=rwadf;"),
        "{a}"
    );
    assert!(a.contains(";unique=") && a.contains(";UNIX.mode=0"), "{a}");
    let sub = lines.iter().find(|l| l.ends_with(" sub")).expect("sub");
    assert!(sub.starts_with("type=dir;"), "{sub}");
}

#[test]
fn mlsd_on_a_file_is_501() {
    let server = TestServer::start();
    populate(&server);
    let mut c = server.raw_alice();
    c.cmd("PASV");
    assert_eq!(c.cmd("MLSD dir/a.txt").code, 501);
}

#[test]
fn mlst_describes_one_object_over_the_control_connection() {
    let server = TestServer::start();
    populate(&server);
    let mut c = server.raw_alice();
    let reply = c.cmd("MLST dir/a.txt");
    assert_eq!(reply.code, 250);
    assert_eq!(reply.lines.len(), 3);
    assert!(
        reply.lines[1].starts_with(" type=file;size=5;"),
        "{:?}",
        reply.lines
    );
    assert!(reply.lines[1].ends_with(" /dir/a.txt"));
    let dir = c.cmd("MLST");
    assert!(dir.lines[1].starts_with(" type=dir;"), "{:?}", dir.lines);
}

#[test]
fn size_and_mdtm() {
    let server = TestServer::start();
    populate(&server);
    let mut c = server.raw_alice();
    let size = c.cmd("SIZE dir/b b.bin");
    assert_eq!((size.code, size.text()), (213, "1234"));
    assert_eq!(c.cmd("SIZE dir").code, 550);
    assert_eq!(c.cmd("SIZE missing").code, 550);
    let mdtm = c.cmd("MDTM dir/a.txt");
    assert_eq!(mdtm.code, 213);
    assert_eq!(mdtm.text().len(), 14);
    assert!(mdtm.text().starts_with("20"), "{mdtm:?}");
}

#[test]
fn listings_never_show_the_real_base_directory() {
    let server = TestServer::start();
    populate(&server);
    let real = server.root.path().to_string_lossy().into_owned();
    let mut c = server.raw_alice();
    for cmd in ["LIST", "LIST dir", "NLST dir", "MLSD dir"] {
        let (_, text) = c.fetch(cmd);
        assert!(!text.contains(&real), "{cmd} leaked {real}");
    }
    for cmd in ["MLST dir", "PWD", "STAT dir", "CWD dir"] {
        let reply = c.cmd(cmd);
        assert!(
            reply.lines.iter().all(|l| !l.contains(&real)),
            "{cmd} leaked {real}"
        );
    }
}

#[test]
fn non_utf8_names_on_disk_are_listed_without_killing_the_session() {
    use std::os::unix::ffi::OsStrExt;
    let server = TestServer::start();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(server.path("").join(name), b"x").unwrap();
    let mut c = server.raw_alice();
    let (reply, text) = c.fetch("NLST");
    assert_eq!(reply.code, 226);
    assert!(text.contains("caf\u{fffd}.txt"), "{text}");
    let (reply, _) = c.fetch("MLSD");
    assert_eq!(reply.code, 226);
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn nlst_and_list_expand_wildcards_as_mget_expects() {
    let server = TestServer::start();
    populate(&server);
    std::fs::write(server.path("dir/c.txt"), b"c").unwrap();
    let mut c = server.raw_alice();
    let (reply, text) = c.fetch("NLST dir/*.txt");
    assert_eq!(reply.code, 226);
    let mut names: Vec<&str> = text.split_terminator("\r\n").collect();
    names.sort();
    assert_eq!(names, ["dir/a.txt", "dir/c.txt"]);
    assert_eq!(c.cmd("CWD dir").code, 250);
    let (_, text) = c.fetch("LIST ?.bin");
    assert!(text.is_empty(), "{text}");
    let (_, text) = c.fetch("LIST b*");
    assert!(text.ends_with(" b b.bin\r\n"), "{text}");
    let (reply, _) = c.fetch("NLST nothere/*.txt");
    assert_eq!(reply.code, 550);
}

/// NLST reads names only (no metadata); it must still list exactly what the
/// detailed listings list: every kind of entry, links that lead outside and
/// dangling ones included, uploads in progress left out.
#[test]
fn nlst_names_exactly_what_list_and_mlsd_list() {
    let server = TestServer::start();
    populate(&server);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    let link = |target: &std::path::Path, name: &str| {
        std::os::unix::fs::symlink(target, server.path(name)).unwrap();
    };
    link("a.txt".as_ref(), "dir/to-file");
    link("sub".as_ref(), "dir/to-sub");
    link(outside.path(), "dir/escape");
    link("nowhere".as_ref(), "dir/dangling");
    std::fs::write(server.path("dir/.hidden"), b"").unwrap();
    std::fs::write(server.path("dir/.aioftpd-upload.1.2.tmp"), b"half").unwrap();
    // More entries than the fs backend sends in one batch (512, or 2048 names).
    for i in 0..2100 {
        std::fs::write(server.path(&format!("dir/f{i:04}")), b"").unwrap();
    }
    let mut expected: Vec<String> = [
        "a.txt", "b b.bin", "sub", "to-file", "to-sub", "escape", "dangling", ".hidden",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain((0..2100).map(|i| format!("f{i:04}")))
    .collect();
    expected.sort();

    let mut c = server.raw_alice();
    let (reply, text) = c.fetch("NLST dir");
    assert_eq!(reply.code, 226);
    let mut nlst: Vec<&str> = text.split_terminator("\r\n").collect();
    nlst.sort();
    assert_eq!(nlst, expected);

    let (reply, text) = c.fetch("MLSD dir");
    assert_eq!(reply.code, 226);
    let mut mlsd: Vec<&str> = text
        .split_terminator("\r\n")
        .map(|line| line.split_once(' ').expect("facts, a space, the name").1)
        .collect();
    mlsd.sort();
    assert_eq!(mlsd, expected);

    let (reply, text) = c.fetch("LIST dir");
    assert_eq!(reply.code, 226);
    let list: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(list.len(), expected.len(), "{text}");
    for name in &expected {
        assert!(
            list.iter().any(|l| l.ends_with(&format!(" {name}"))),
            "{name}"
        );
    }

    let (reply, text) = c.fetch("NLST dir/a.txt");
    assert_eq!((reply.code, text.as_str()), (226, "a.txt\r\n"));
}
