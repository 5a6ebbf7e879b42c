//! `[[hooks]]` and `[pre_upload]`: what is told of events, and what may
//! refuse an upload (docs/hooks.md). Every value is checked and every
//! problem recorded on its key; nothing is run or reached here.

use std::time::Duration;

use super::{timeout, Problems};
use crate::config::schema::{HookEntry, PreUploadSection, UnitText};
use crate::hooks::{Endpoint, EventKind, HookSettings, PreUploadSettings};

/// `timeout` of a hook: past ten minutes an attempt is a hang, not work.
const MAX_HOOK_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// `pre_upload.timeout`: the client waits this long for its `150`.
const MAX_PRE_UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// `retries`: past ten, a hook that keeps failing only takes slots.
const MAX_RETRIES: u64 = 10;

/// `queue`: events waiting per hook; each holds a few hundred bytes.
const MAX_QUEUE: u64 = 1 << 20;

/// `concurrency`: attempts (programs, requests) in flight per hook.
const MAX_CONCURRENCY: u64 = 256;

/// Every `[[hooks]]` entry that is wholly valid; the problems of the
/// others are recorded.
pub(super) fn hooks(entries: &[HookEntry], problems: &mut Problems) -> Vec<HookSettings> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| hook(&format!("hooks[{index}]"), entry, problems))
        .collect()
}

fn hook(key: &str, entry: &HookEntry, problems: &mut Problems) -> Option<HookSettings> {
    let events = events(key, entry.events.as_deref(), problems);
    let endpoint = endpoint(
        key,
        entry.command.as_deref(),
        entry.url.as_deref(),
        problems,
    );
    let timeout = timeout_or(
        &format!("{key}.timeout"),
        &entry.timeout,
        MAX_HOOK_TIMEOUT,
        HookSettings::DEFAULT_TIMEOUT,
        problems,
    );
    let retries = count_in(
        &format!("{key}.retries"),
        entry.retries,
        (0, MAX_RETRIES),
        u64::from(HookSettings::DEFAULT_RETRIES),
        problems,
    )
    .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let queue = count_in(
        &format!("{key}.queue"),
        entry.queue,
        (1, MAX_QUEUE),
        HookSettings::DEFAULT_QUEUE as u64,
        problems,
    )
    .map(as_usize);
    let concurrency = count_in(
        &format!("{key}.concurrency"),
        entry.concurrency,
        (1, MAX_CONCURRENCY),
        HookSettings::DEFAULT_CONCURRENCY as u64,
        problems,
    )
    .map(as_usize);
    Some(HookSettings {
        key: key.to_owned(),
        events: events?,
        endpoint: endpoint?,
        timeout: timeout?,
        retries: retries?,
        queue: queue?,
        concurrency: concurrency?,
    })
}

/// `[pre_upload]`, if valid.
pub(super) fn pre_upload(
    section: &PreUploadSection,
    problems: &mut Problems,
) -> Option<PreUploadSettings> {
    let endpoint = endpoint(
        "pre_upload",
        section.command.as_deref(),
        section.url.as_deref(),
        problems,
    );
    let timeout = timeout_or(
        "pre_upload.timeout",
        &section.timeout,
        MAX_PRE_UPLOAD_TIMEOUT,
        PreUploadSettings::DEFAULT_TIMEOUT,
        problems,
    );
    Some(PreUploadSettings {
        endpoint: endpoint?,
        timeout: timeout?,
    })
}

fn events(
    key: &str,
    written: Option<&[String]>,
    problems: &mut Problems,
) -> Option<Vec<EventKind>> {
    let key = format!("{key}.events");
    let known = || {
        EventKind::ALL
            .iter()
            .map(|kind| format!("{:?}", kind.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(written) = written.filter(|list| !list.is_empty()) else {
        problems.add(
            key,
            format!(
                "required: the events the hook hears of, some of {}",
                known()
            ),
        );
        return None;
    };
    let mut kinds = Vec::new();
    let mut valid = true;
    for (index, name) in written.iter().enumerate() {
        match EventKind::from_name(name.trim()) {
            Some(kind) if kinds.contains(&kind) => {
                problems.add(
                    format!("{key}[{index}]"),
                    format!("{name:?} is listed twice"),
                );
                valid = false;
            }
            Some(kind) => kinds.push(kind),
            None => {
                problems.add(
                    format!("{key}[{index}]"),
                    format!("unknown event {name:?}: expected one of {}", known()),
                );
                valid = false;
            }
        }
    }
    valid.then_some(kinds)
}

/// Exactly one of `command` (an absolute program and its arguments) and
/// `url` (http or https).
fn endpoint(
    key: &str,
    command: Option<&[String]>,
    url: Option<&str>,
    problems: &mut Problems,
) -> Option<Endpoint> {
    let command = command.map(|argv| program(&format!("{key}.command"), argv, problems));
    let url = url.map(|url| address(&format!("{key}.url"), url, problems));
    match (command, url) {
        (Some(command), None) => command.map(Endpoint::Command),
        (None, Some(url)) => url.map(Endpoint::Url),
        (Some(_), Some(_)) => {
            problems.add(format!("{key}.url"), "give either command or url, not both");
            None
        }
        (None, None) => {
            problems.add(
                key,
                "required: command = [\"/absolute/program\", ...] or url = \"https://...\"",
            );
            None
        }
    }
}

fn program(key: &str, argv: &[String], problems: &mut Problems) -> Option<Vec<String>> {
    let Some(first) = argv.first() else {
        problems.add(
            key,
            "must name a program: [\"/absolute/program\", \"argument\", ...]",
        );
        return None;
    };
    let mut valid = true;
    if !first.starts_with('/') {
        problems.add(
            format!("{key}[0]"),
            format!("{first:?} is not an absolute path: programs are run without a shell or PATH search"),
        );
        valid = false;
    }
    for (index, arg) in argv.iter().enumerate() {
        if arg.contains('\0') || (index == 0 && arg.chars().any(char::is_control)) {
            problems.add(
                format!("{key}[{index}]"),
                "must not hold NUL or, for the program, control characters",
            );
            valid = false;
        }
    }
    valid.then(|| argv.to_vec())
}

fn address(key: &str, written: &str, problems: &mut Problems) -> Option<String> {
    let parsed = url::Url::parse(written.trim());
    match parsed {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Some(url.to_string())
        }
        Ok(url) => {
            problems.add(
                key,
                format!("{:?} is not an http or https URL with a host", url.scheme()),
            );
            None
        }
        Err(err) => {
            problems.add(
                key,
                format!("invalid URL {written:?}: {err}; expected \"https://host/path\""),
            );
            None
        }
    }
}

/// A timeout key: `default` if not written; `None` if written wrong (recorded).
fn timeout_or(
    key: &str,
    written: &Option<UnitText>,
    max: Duration,
    default: Duration,
    problems: &mut Problems,
) -> Option<Duration> {
    match written {
        None => Some(default),
        Some(_) => timeout(key, written, max, problems),
    }
}

/// A count within `(min, max)`: `default` if not written; `None` if out
/// of range (recorded).
fn count_in(
    key: &str,
    written: Option<u64>,
    (min, max): (u64, u64),
    default: u64,
    problems: &mut Problems,
) -> Option<u64> {
    let n = written.unwrap_or(default);
    if n < min || n > max {
        problems.add(key, format!("{n} is out of range: must be {min} to {max}"));
        return None;
    }
    Some(n)
}

fn as_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::load_str;
    use crate::hooks::{Endpoint, EventKind};

    /// An anonymous user, so that the files load.
    const USER: &str = "[[users]]\nstorage = \"memory\"\npermissions = [{ path = \"/\" }]\n";

    fn load(text: &str) -> crate::config::Loaded {
        load_str(&format!("{text}{USER}"), Path::new("/etc/aioftpd.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn errors(text: &str) -> String {
        load_str(text, Path::new("/etc/aioftpd.toml"))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_hook_is_read_with_its_defaults() {
        let text = "[[hooks]]\nevents = [\"upload\", \"login_failed\"]\ncommand = [\"/bin/true\", \"--x\"]\n\
                    [[hooks]]\nevents = [\"rename\"]\nurl = \"https://hooks.example/in\"\ntimeout = \"3s\"\nretries = 0\n\
                    [pre_upload]\ncommand = [\"/bin/true\"]\n";
        let settings = load(text).settings;
        let first = &settings.hooks[0];
        assert_eq!(first.key, "hooks[0]");
        assert_eq!(first.events, [EventKind::Upload, EventKind::LoginFailed]);
        assert_eq!(
            first.endpoint,
            Endpoint::Command(vec!["/bin/true".into(), "--x".into()])
        );
        assert_eq!(
            (first.retries, first.queue, first.concurrency),
            (2, 1024, 4)
        );
        let second = &settings.hooks[1];
        assert_eq!(second.retries, 0);
        assert_eq!(second.timeout, std::time::Duration::from_secs(3));
        assert_eq!(
            settings.pre_upload.unwrap().timeout,
            std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn every_hook_problem_is_reported_on_its_line() {
        let text = "[[hooks]]\n\
                    events = [\"upload\", \"uplaod\"]\n\
                    command = [\"on-upload\"]\n\
                    timeout = \"0s\"\n\
                    queue = 0\n\
                    [[hooks]]\n\
                    events = []\n\
                    command = [\"/bin/true\"]\n\
                    url = \"ftp://example.org/\"\n\
                    [pre_upload]\n\
                    url = \"not a url\"\n\
                    [[hooks]]\n\
                    events = [\"login\"]\n\
                    command = [\"/nonexistent/aioftpd-hook\"]\n";
        let shown = errors(text);
        for expected in [
            "/etc/aioftpd.toml:2: hooks[0].events[1]: unknown event \"uplaod\"",
            "/etc/aioftpd.toml:3: hooks[0].command[0]: \"on-upload\" is not an absolute path",
            "/etc/aioftpd.toml:4: hooks[0].timeout: must be greater than zero",
            "/etc/aioftpd.toml:5: hooks[0].queue: 0 is out of range",
            "/etc/aioftpd.toml:7: hooks[1].events: required",
            "/etc/aioftpd.toml:9: hooks[1].url:",
            "/etc/aioftpd.toml:11: pre_upload.url: invalid URL",
            "/etc/aioftpd.toml:14: hooks[2].command[0]: cannot run /nonexistent/aioftpd-hook",
        ] {
            assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
        }
    }

    #[test]
    fn a_plain_http_hook_off_loopback_is_a_warning_and_loopback_is_not() {
        let text = "[[hooks]]\nevents = [\"upload\"]\nurl = \"http://user:pw@10.0.0.9/in\"\n\
                    [[hooks]]\nevents = [\"upload\"]\nurl = \"http://127.0.0.1:8080/in\"\n";
        let loaded = load(text);
        let shown: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        let hooks: Vec<&String> = shown.iter().filter(|w| w.contains("hooks[")).collect();
        assert_eq!(hooks.len(), 1, "{shown:#?}");
        assert!(
            hooks[0].contains(":3: hooks[0].url: warning: http://10.0.0.9/in is plain HTTP"),
            "{}",
            hooks[0]
        );
        assert!(!hooks[0].contains("pw"));
    }

    #[test]
    fn the_printed_config_loads_again_to_the_same_hooks() {
        let text = "[[hooks]]\nevents = [\"mkdir\", \"rmdir\"]\ncommand = [\"/bin/true\", \"a \\\"b\\\"\"]\nconcurrency = 2\n\
                    [pre_upload]\nurl = \"https://check.example/\"\ntimeout = \"2s\"\n";
        let first = load(text);
        let printed = first.effective.clone().unwrap();
        let again = load_str(&printed, Path::new("/etc/aioftpd.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(first.settings.hooks, again.settings.hooks, "{printed}");
        assert_eq!(first.settings.pre_upload, again.settings.pre_upload);
    }
}
