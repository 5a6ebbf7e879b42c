//! Microbenchmarks of the per-command and per-entry hot paths, so that a
//! regression shows: the command parser, virtual path resolution and the
//! listing formats.
//!
//! `cargo bench --bench micro` (a filter narrows it: `cargo bench --bench
//! micro -- listing`). Under `cargo test --all-targets` each benchmark runs
//! once as a smoke test. Figures: docs/performance.md, "Microbenchmarks".

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aioftpd::auth::UserLimits;
use aioftpd::auth::{Access, Permission, User};
use aioftpd::listing::{facts_line, list_line, FactSet, FactsFormatter, ListFormatter};
use aioftpd::path::VirtualPath;
use aioftpd::session::Command;
use aioftpd::storage::{fs::beneath, DirEntry, FileKind, MemoryStorage, Metadata};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Entries in the "whole directory" cases, like the side-by-side benchmark's directory.
const ENTRIES: usize = 10_000;

fn parser(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (label, line) in [
        ("retr", "RETR some/file.bin"),
        ("port", "PORT 127,0,0,1,4,1"),
        ("eprt", "EPRT |2|::1|5282|"),
        ("mlsd", "MLSD"),
        ("junk", "XQZT \u{1}\u{7f} plugh, a line no server knows"),
    ] {
        group.bench_function(label, |b| b.iter(|| Command::parse(black_box(line))));
    }
    group.finish();
}

fn paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("path");
    let cwd = VirtualPath::new("/home/alice/projects/aioftpd");
    for (label, arg) in [
        ("join_relative", "docs/2026/report.pdf"),
        ("join_absolute", "/pub/releases/aioftpd-1.0.tar.gz"),
        (
            "join_dotdot",
            "../../x/../y/./z/../../../../../../etc/passwd",
        ),
    ] {
        group.bench_function(label, |b| b.iter(|| black_box(&cwd).join(black_box(arg))));
    }
    let deep = cwd.join("docs/2026/report.pdf");
    group.bench_function("fs_beneath", |b| b.iter(|| beneath(black_box(&deep))));
    let user = user_with_rules();
    group.bench_function("access", |b| b.iter(|| user.access(black_box(&deep))));
    group.finish();
}

/// A user with the kind of rules a config has: the root, a read-only and a hidden subtree.
fn user_with_rules() -> User {
    let rule = |path: &str, readable, writable| Permission {
        path: VirtualPath::new(path),
        readable,
        writable,
    };
    User {
        login: Some("alice".into()),
        home: VirtualPath::root(),
        permissions: vec![
            rule("/", true, true),
            rule("/home/alice/projects/readonly", true, false),
            rule("/secret", false, false),
        ],
        storage: Arc::new(MemoryStorage::new()),
        tls_required: None,
        max_connections: None,
        limits: UserLimits::default(),
        quota: None,
    }
}

/// `ENTRIES` empty files named like the side-by-side benchmark's, modified
/// `spacing` apart (zero: all in the same second, as a freshly filled directory).
fn directory(now: SystemTime, spacing: Duration) -> Vec<DirEntry> {
    (1..=ENTRIES)
        .map(|i| DirEntry {
            name: format!("file-{i:05}.txt"),
            metadata: Metadata {
                kind: FileKind::File,
                size: (i as u64 * 7919) % 100_000,
                modified: Some(now - Duration::from_secs(86_400) - spacing * i as u32),
                mode: 0o644,
                unique: Some(format!("803g{:x}", 1_000_000 + i)),
            },
        })
        .collect()
}

fn listing(c: &mut Criterion) {
    let now = SystemTime::now();
    let access = Access {
        readable: true,
        writable: false,
    };
    let facts = FactSet::default();
    let one = &directory(now, Duration::ZERO)[0];

    let mut group = c.benchmark_group("listing_one_entry");
    group.bench_function("list_line", |b| {
        b.iter(|| list_line(black_box(&one.name), black_box(&one.metadata), now))
    });
    group.bench_function("facts_line", |b| {
        b.iter(|| {
            facts_line(
                black_box(&one.name),
                black_box(&one.metadata),
                access,
                facts,
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("listing_10k_entries");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    for (label, spacing) in [
        ("same_second", Duration::ZERO),
        ("minutes_apart", Duration::from_secs(61)),
    ] {
        let entries = directory(now, spacing);
        let mut out = Vec::with_capacity(1 << 20);
        group.bench_function(format!("list_formatter/{label}"), |b| {
            b.iter(|| {
                out.clear();
                let mut format = ListFormatter::new(now);
                for e in &entries {
                    format.write(&mut out, &e.name, &e.metadata);
                }
                out.len()
            })
        });
        group.bench_function(format!("facts_formatter/{label}"), |b| {
            b.iter(|| {
                out.clear();
                let mut format = FactsFormatter::new(facts);
                for e in &entries {
                    format.write(&mut out, &e.name, &e.metadata, access);
                    out.extend_from_slice(b"\r\n");
                }
                out.len()
            })
        });
        // A String per line, as listings were made before the formatters.
        group.bench_function(format!("list_line_per_entry/{label}"), |b| {
            b.iter(|| {
                out.clear();
                for e in &entries {
                    out.extend_from_slice(list_line(&e.name, &e.metadata, now).as_bytes());
                }
                out.len()
            })
        });
        group.bench_function(format!("facts_line_per_entry/{label}"), |b| {
            b.iter(|| {
                out.clear();
                for e in &entries {
                    let mut line = facts_line(&e.name, &e.metadata, access, facts);
                    line.push_str("\r\n");
                    out.extend_from_slice(line.as_bytes());
                }
                out.len()
            })
        });
    }
    let entries = directory(now, Duration::ZERO);
    let user = user_with_rules();
    let dir = VirtualPath::new("/home/alice/projects/aioftpd");
    group.bench_function("mlsd_access/entry_access", |b| {
        b.iter(|| {
            let rights = user.entry_access(&dir);
            entries
                .iter()
                .filter(|e| rights.of(&e.name).readable)
                .count()
        })
    });
    group.bench_function("mlsd_access/join_per_entry", |b| {
        b.iter(|| {
            entries
                .iter()
                .filter(|e| user.access(&dir.join(&e.name)).readable)
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, parser, paths, listing);
criterion_main!(benches);
