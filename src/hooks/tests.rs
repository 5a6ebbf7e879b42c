//! The runners and deliveries, with real programs (`/bin/sh` scripts in a
//! temp dir); every wait is on an outcome, bounded.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use super::deliver::{run_program, Deliverer};
use super::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// Longer than any step below takes; reaching it fails the test.
const BOUND: Duration = Duration::from_secs(20);

fn settings(key: &str, argv: &[&str]) -> HookSettings {
    HookSettings {
        key: key.to_owned(),
        events: EventKind::ALL.to_vec(),
        endpoint: Endpoint::Command(argv.iter().map(|s| (*s).to_owned()).collect()),
        timeout: Duration::from_secs(10),
        retries: 0,
        queue: 16,
        concurrency: 1,
    }
}

/// `/bin/sh -c script`, with `$0` set to the temp dir.
fn shell(key: &str, dir: &Path, script: &str) -> HookSettings {
    settings(key, &["/bin/sh", "-c", script, &dir.display().to_string()])
}

fn upload(path: &str) -> Event {
    Event::new(EventKind::Upload, Some("alice".into()), CLIENT, true)
        .with_transfer(42, "ok")
        .with_path(path)
}

/// Waits until `file` has `lines` lines; its text.
async fn lines_in(file: &Path, lines: usize) -> String {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.lines().count() >= lines {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} has {text:?}, not {lines} lines",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn counted(event: &str, result: &str) -> u64 {
    crate::metrics::get()
        .hook_events
        .with_label_values(&[event, result])
        .get()
}

#[test]
fn a_full_queue_drops_the_event_and_counts_it_without_waiting() {
    let (queue, _events) = mpsc::channel(2);
    let hook = Hook {
        settings: settings("hooks[0]", &["/bin/true"]),
        queue,
        closing: CancellationToken::new(),
        runner: TaskTracker::new(),
        dropped: AtomicU64::new(0),
    };
    let event = Arc::new(Event::new(EventKind::Rmdir, None, CLIENT, false));
    let before = counted("rmdir", "dropped");
    for _ in 0..5 {
        hook.offer(&event);
    }
    assert_eq!(hook.dropped.load(Ordering::Relaxed), 3);
    assert!(counted("rmdir", "dropped") >= before + 3);
}

#[tokio::test]
async fn a_program_gets_the_event_as_json_on_stdin_and_in_a_clean_environment() {
    let dir = tempfile::tempdir().unwrap();
    let hook = shell("hooks[0]", dir.path(), r#"env > "$0/env"; cat > "$0/json""#);
    let deliverer = Deliverer::new(&hook, &mut None);
    let name = "/in \"quotes\"\n$(reboot)\0.txt";
    deliverer.deliver(&Arc::new(upload(name))).await;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("json")).unwrap()).unwrap();
    assert_eq!(json["event"], "upload");
    assert_eq!(json["user"], "alice");
    assert_eq!(json["address"], "192.0.2.7");
    assert_eq!(json["path"], name);
    assert_eq!(json["bytes"], 42);
    assert_eq!(json["complete"], true);
    assert_eq!(json["result"], "ok");
    assert_eq!(json["tls"], true);
    assert!(json["time"].as_str().unwrap().ends_with('Z'), "{json}");
    let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
    assert!(env.contains("AIOFTPD_EVENT=upload\n"), "{env}");
    assert!(env.contains("AIOFTPD_USER=alice\n"), "{env}");
    assert!(env.contains("AIOFTPD_BYTES=42\n"), "{env}");
    assert!(env.contains("AIOFTPD_COMPLETE=true\n"), "{env}");
    // The name is one value, exact but for the NUL no environment can hold.
    assert!(
        env.contains("AIOFTPD_PATH=/in \"quotes\"\n$(reboot)\u{FFFD}.txt\n"),
        "{env}"
    );
    // Only PATH and the event: nothing of the daemon's own environment.
    assert!(!env.contains("HOME="), "{env}");
    assert!(!env.contains("CARGO"), "{env}");
}

#[test]
fn an_anonymous_event_has_a_null_user_and_no_user_variable() {
    let event = Event::new(EventKind::Login, None, CLIENT, false);
    assert_eq!(event.json()["user"], serde_json::Value::Null);
    assert!(event.json().get("path").is_none());
    assert!(event.env().iter().all(|(name, _)| *name != "AIOFTPD_USER"));
    let rename =
        Event::new(EventKind::Rename, Some("bob".into()), CLIENT, false).with_rename("/a", "/b");
    let json = rename.json();
    assert_eq!(
        (&json["from"], &json["to"], &json["path"]),
        (&"/a".into(), &"/b".into(), &"/b".into())
    );
}

#[tokio::test]
async fn a_failing_program_is_tried_again_then_counted_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut hook = shell("hooks[0]", dir.path(), r#"echo try >> "$0/tries"; exit 1"#);
    hook.retries = 2;
    let before = counted("delete", "failed");
    let event = Event::new(EventKind::Delete, None, CLIENT, false).with_path("/f");
    Deliverer::new(&hook, &mut None)
        .deliver(&Arc::new(event))
        .await;
    let tries = std::fs::read_to_string(dir.path().join("tries")).unwrap();
    assert_eq!(tries.lines().count(), 3);
    assert!(counted("delete", "failed") > before);
}

#[tokio::test]
async fn a_program_that_outlives_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"sleep 600 & echo $! > "$0/child"; wait"#;
    let argv: Vec<String> = ["/bin/sh", "-c", script, &dir.path().display().to_string()]
        .map(str::to_owned)
        .to_vec();
    let error = run_program(&argv, &[], b"{}", Duration::from_millis(500), 0)
        .await
        .err()
        .expect("a timeout");
    assert!(error.contains("timed out"), "{error}");
    let child = lines_in(&dir.path().join("child"), 1).await;
    let proc = format!("/proc/{}/stat", child.trim());
    // Killed: gone, or a zombie until whoever adopted it reaps it.
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        match std::fs::read_to_string(&proc) {
            Err(_) => break,
            Ok(stat) if stat.contains(") Z ") => break,
            Ok(stat) => assert!(
                tokio::time::Instant::now() < deadline,
                "still running: {stat}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_program_cannot_pin_memory_by_writing_a_lot() {
    let argv: Vec<String> = ["/bin/sh", "-c", "yes ${0}${0}${0}${0}", "xxxxxxxxxxxxxxxx"]
        .map(str::to_owned)
        .to_vec();
    // It writes forever: the first line is kept, then its stdout closes
    // and `yes` ends on EPIPE.
    let ran = run_program(&argv, &[], b"", BOUND, 200).await.unwrap();
    assert!(ran.stdout.len() <= 200);
    assert!(ran.stdout.starts_with(b"xxxx"));
}

#[tokio::test]
async fn a_hook_unchanged_by_a_reload_keeps_its_runner_and_a_changed_one_gets_a_new_one() {
    let kept = settings("hooks[0]", &["/bin/true"]);
    let changed = settings("hooks[1]", &["/bin/true"]);
    let first = Hooks::start(&[kept.clone(), changed.clone()], None);
    let mut changed_now = changed;
    changed_now.retries = 3;
    let second = Hooks::start(&[kept, changed_now], Some(&first));
    assert!(Arc::ptr_eq(&first.running[0], &second.running[0]));
    assert!(!Arc::ptr_eq(&first.running[1], &second.running[1]));
}

#[tokio::test]
async fn a_replaced_runner_delivers_what_it_has_queued_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let hook = shell(
        "hooks[0]",
        dir.path(),
        r#"cat >> "$0/events"; echo >> "$0/events""#,
    );
    let hooks = Hooks::start(&[hook], None);
    let runner = hooks.running[0].runner.clone();
    for index in 0..5 {
        hooks.emit(upload(&format!("/f{index}")));
    }
    drop(hooks);
    tokio::time::timeout(BOUND, runner.wait())
        .await
        .expect("the runner ends");
    let text = std::fs::read_to_string(dir.path().join("events")).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
}

#[tokio::test]
async fn finishing_at_shutdown_delivers_the_queue_and_refuses_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let hook = shell(
        "hooks[0]",
        dir.path(),
        r#"cat >> "$0/events"; echo >> "$0/events""#,
    );
    let hooks = Hooks::start(&[hook], None);
    for index in 0..3 {
        hooks.emit(upload(&format!("/f{index}")));
    }
    hooks.finish(tokio::time::Instant::now() + BOUND).await;
    assert_eq!(
        lines_in(&dir.path().join("events"), 3)
            .await
            .lines()
            .count(),
        3
    );
    assert!(hooks.running[0].runner.is_closed() && hooks.running[0].runner.is_empty());
    let before = hooks.running[0].dropped.load(Ordering::Relaxed);
    hooks.emit(upload("/late"));
    assert_eq!(hooks.running[0].dropped.load(Ordering::Relaxed), before + 1);
}

#[tokio::test]
async fn only_the_hooks_of_an_event_hear_it() {
    let mut logins = settings("hooks[0]", &["/bin/true"]);
    logins.events = vec![EventKind::Login, EventKind::LoginFailed];
    let hooks = Hooks::start(&[logins], None);
    assert!(hooks.wants(EventKind::LoginFailed));
    assert!(!hooks.wants(EventKind::Upload));
    assert!(!Hooks::default().wants(EventKind::Login));
}
