//! Properties over arbitrary client input: path normalisation never leaves
//! `/`, the disk backend never serves a byte from outside its base, and
//! command parsing round-trips PORT/EPRT and never panics.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use aioftpd::path::VirtualPath;
use aioftpd::session::{Command, ParseError};
use aioftpd::storage::{FileKind, FsStorage, Storage};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::io::AsyncReadExt;

/// Path components a hostile client would try, mixed with ordinary and odd names.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("...".to_owned()),
        Just("\\".to_owned()),
        Just("..\\..".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("a\0b".to_owned()),
        Just("é文🦀".to_owned()),
        Just(" ".to_owned()),
        "[a-z.]{1,4}",
        any::<String>(),
    ]
}

/// A path-like string: components joined by `/`, sometimes absolute, sometimes with `//`.
fn path_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        (
            any::<bool>(),
            prop::collection::vec(component(), 0..10),
            any::<bool>()
        )
            .prop_map(|(absolute, parts, trailing)| {
                let mut s = if absolute {
                    "/".to_owned()
                } else {
                    String::new()
                };
                s.push_str(&parts.join("/"));
                if trailing {
                    s.push('/');
                }
                s
            }),
    ]
}

fn assert_normalised(p: &VirtualPath) -> Result<(), TestCaseError> {
    let s = p.as_str();
    prop_assert!(s.starts_with('/'), "{s:?} is not absolute");
    if s != "/" {
        prop_assert!(!s.ends_with('/'), "{s:?} has a trailing slash");
        for part in s[1..].split('/') {
            prop_assert!(
                !matches!(part, "" | "." | ".."),
                "{s:?} has the component {part:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config::with_cases(512))]

    #[test]
    fn a_normalised_path_is_absolute_without_dot_or_empty_components(s in path_string()) {
        assert_normalised(&VirtualPath::new(&s))?;
        assert_normalised(&VirtualPath::root().join(&s))?;
    }

    #[test]
    fn joining_any_two_strings_gives_a_normalised_path(a in path_string(), b in path_string()) {
        let p = VirtualPath::new(&a).join(&b);
        assert_normalised(&p)?;
        prop_assert!(p.starts_with(&VirtualPath::root()));
    }

    #[test]
    fn normalising_twice_changes_nothing(s in path_string()) {
        let p = VirtualPath::new(&s);
        prop_assert_eq!(&p.join(p.as_str()), &p);
        prop_assert_eq!(&VirtualPath::new(p.as_str()), &p);
        prop_assert_eq!(&VirtualPath::root().join(p.as_str()), &p);
    }

    #[test]
    fn a_relative_path_without_dot_dot_stays_beneath_the_cwd(
        cwd in path_string(),
        rel in prop::collection::vec("[a-z.]{0,3}", 0..6),
    ) {
        let rel = rel.join("/");
        prop_assume!(!rel.starts_with('/') && !rel.split('/').any(|c| c == ".."));
        let cwd = VirtualPath::new(&cwd);
        prop_assert!(cwd.join(&rel).starts_with(&cwd));
    }

    #[test]
    fn port_arguments_round_trip(ip in any::<[u8; 4]>(), port in 1024u16..=65535) {
        let line = format!(
            "PORT {},{},{},{},{},{}",
            ip[0], ip[1], ip[2], ip[3], port >> 8, port & 0xff
        );
        let expected = SocketAddr::from((Ipv4Addr::from(ip), port));
        prop_assert_eq!(Command::parse(&line).map(|(c, _)| c), Ok(Command::Port(expected)));
    }

    #[test]
    fn eprt_arguments_round_trip(
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u16; 8]>(),
        port in 1024u16..=65535,
        delim in prop::sample::select(vec!['|', '!', '#', '$', '~']),
    ) {
        let v4 = Ipv4Addr::from(v4);
        let line = format!("EPRT {delim}1{delim}{v4}{delim}{port}{delim}");
        prop_assert_eq!(
            Command::parse(&line).map(|(c, _)| c),
            Ok(Command::Eprt(SocketAddr::from((v4, port))))
        );
        let v6 = Ipv6Addr::from(v6);
        let line = format!("eprt |2|{v6}|{port}|");
        prop_assert_eq!(
            Command::parse(&line).map(|(c, _)| c),
            Ok(Command::Eprt(SocketAddr::from((v6, port))))
        );
    }

    #[test]
    fn parsing_any_line_never_panics_and_errors_are_one_line_5xx(line in command_line()) {
        if let Err(ParseError(reply)) = Command::parse(&line) {
            prop_assert!((500..600).contains(&reply.code().number()), "{line:?}: {}", reply.code().number());
            let wire = reply.to_wire();
            prop_assert_eq!(wire.matches("\r\n").count(), 1, "{:?}", wire);
            prop_assert!(!wire.trim_end_matches("\r\n").contains(['\r', '\n']), "{:?}", wire);
        }
    }
}

/// Arbitrary text, and arbitrary arguments after every real verb in any case.
fn command_line() -> impl Strategy<Value = String> {
    let verbs: Vec<&'static str> = aioftpd::session::COMMANDS.iter().map(|s| s.verb).collect();
    prop_oneof![
        any::<String>(),
        (prop::sample::select(verbs), any::<bool>(), any::<String>()).prop_map(
            |(verb, lower, arg)| {
                let verb = if lower {
                    verb.to_ascii_lowercase()
                } else {
                    verb.to_owned()
                };
                format!("{verb} {arg}")
            }
        ),
    ]
}

const SECRET: &[u8] = b"outside: must never be served";

/// `tmp/base` (served) next to `tmp/outside/secret`, with links from one to the other.
fn escape_fixture(tmp: &Path) -> Vec<Vec<u8>> {
    let base = tmp.join("base");
    let outside = tmp.join("outside");
    std::fs::create_dir_all(base.join("dir/sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), SECRET).unwrap();
    let inside: Vec<(&str, &[u8])> = vec![
        ("a.txt", b"inside a"),
        ("dir/b.txt", b"inside b, longer"),
        ("dir/sub/c", b""),
    ];
    for (name, bytes) in &inside {
        std::fs::write(base.join(name), bytes).unwrap();
    }
    let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, base.join(name));
    link(&outside, "out").unwrap();
    link(&outside.join("secret"), "secret").unwrap();
    link(Path::new("../outside"), "up").unwrap();
    link(Path::new("../../outside/secret"), "dir/up-secret").unwrap();
    link(Path::new("a.txt"), "alias").unwrap();
    link(Path::new("/"), "root").unwrap();
    inside.iter().map(|(_, bytes)| bytes.to_vec()).collect()
}

/// Paths built from the fixture's names, `..`, `.` and odd separators.
fn fixture_path() -> impl Strategy<Value = String> {
    let names = prop::sample::select(vec![
        "",
        ".",
        "..",
        "out",
        "up",
        "secret",
        "up-secret",
        "root",
        "alias",
        "dir",
        "sub",
        "a.txt",
        "b.txt",
        "c",
        "outside",
        "base",
        "tmp",
        "\\..",
        "..\\outside",
    ]);
    prop_oneof![
        1 => path_string(),
        4 => (any::<bool>(), prop::collection::vec(names, 0..8)).prop_map(|(absolute, parts)| {
            let joined = parts.join("/");
            if absolute {
                format!("/{joined}")
            } else {
                joined
            }
        }),
    ]
}

#[test]
fn no_path_string_reads_a_file_outside_the_base() {
    let tmp = tempfile::tempdir().unwrap();
    let inside = escape_fixture(tmp.path());
    let storage = FsStorage::new(&tmp.path().join("base")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&fixture_path(), |s| {
            let path = VirtualPath::new(&s);
            runtime.block_on(async {
                if let Ok(meta) = storage.metadata(&path).await {
                    if meta.kind == FileKind::File {
                        prop_assert!(
                            inside.iter().any(|b| b.len() as u64 == meta.size),
                            "{s:?}: a file of {} bytes is not one of ours",
                            meta.size
                        );
                    }
                }
                if let Ok(mut read) = storage.open_read(&path, 0).await {
                    let mut bytes = Vec::new();
                    if read.read_to_end(&mut bytes).await.is_ok() {
                        prop_assert!(
                            inside.contains(&bytes),
                            "{s:?} read {:?}",
                            String::from_utf8_lossy(&bytes)
                        );
                    }
                }
                if let Ok(mut entries) = storage.list(&path).await {
                    while let Some(entry) = entries.next().await {
                        if let Ok(entry) = entry {
                            prop_assert!(
                                entry.name != "secret" || entry.metadata.kind == FileKind::Symlink,
                                "{s:?} lists the outside file"
                            );
                        }
                    }
                }
                Ok(())
            })
        })
        .unwrap();
}
