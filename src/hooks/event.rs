//! What a hook hears: one event, as JSON (a program's stdin, a URL's body)
//! and as environment variables (a program's).

use std::net::IpAddr;
use std::time::SystemTime;

use time::OffsetDateTime;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A file upload (STOR, APPE, STOU) ended; `complete` says whether well.
    Upload,
    /// A file download (RETR) ended; `complete` says whether well.
    Download,
    /// DELE removed a file.
    Delete,
    /// RNFR and RNTO renamed an entry.
    Rename,
    /// MKD made a directory.
    Mkdir,
    /// RMD removed a directory.
    Rmdir,
    /// PASS was accepted (also for the anonymous user).
    Login,
    /// PASS was refused: a wrong password or an unknown login.
    LoginFailed,
}

impl EventKind {
    /// Every kind, in the order docs/hooks.md lists them.
    pub const ALL: [EventKind; 8] = [
        EventKind::Upload,
        EventKind::Download,
        EventKind::Delete,
        EventKind::Rename,
        EventKind::Mkdir,
        EventKind::Rmdir,
        EventKind::Login,
        EventKind::LoginFailed,
    ];

    /// Its name in the config, in `"event"` and in `AIOFTPD_EVENT`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Upload => "upload",
            EventKind::Download => "download",
            EventKind::Delete => "delete",
            EventKind::Rename => "rename",
            EventKind::Mkdir => "mkdir",
            EventKind::Rmdir => "rmdir",
            EventKind::Login => "login",
            EventKind::LoginFailed => "login_failed",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// One event. Names and logins are the client's: they are carried exactly
/// in JSON, and as environment values with any NUL (which an environment
/// cannot hold) replaced by U+FFFD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub time: SystemTime,
    /// The login; `None` for the anonymous user. For `login_failed`, the
    /// login that was tried.
    pub user: Option<String>,
    /// The client.
    pub address: IpAddr,
    /// The control connection is protected by TLS.
    pub tls: bool,
    /// The file or directory, as the client's tree names it (for a
    /// rename, where it is now).
    pub path: Option<String>,
    /// Bytes moved (transfers).
    pub bytes: Option<u64>,
    /// A rename's old name.
    pub from: Option<String>,
    /// A rename's new name.
    pub to: Option<String>,
    /// A transfer's result: `ok`, `failed` or `aborted`.
    pub result: Option<&'static str>,
}

impl Event {
    /// An event of `kind` now, by `user` from `address`.
    pub fn new(kind: EventKind, user: Option<String>, address: IpAddr, tls: bool) -> Self {
        Event {
            kind,
            time: SystemTime::now(),
            user,
            address: address.to_canonical(),
            tls,
            path: None,
            bytes: None,
            from: None,
            to: None,
            result: None,
        }
    }

    /// With the path it is about.
    pub fn with_path(mut self, path: &str) -> Self {
        self.path = Some(path.to_owned());
        self
    }

    /// A transfer's bytes and result.
    pub fn with_transfer(mut self, bytes: u64, result: &'static str) -> Self {
        self.bytes = Some(bytes);
        self.result = Some(result);
        self
    }

    /// A rename from `from` to `to` (also its path).
    pub fn with_rename(mut self, from: &str, to: &str) -> Self {
        self.from = Some(from.to_owned());
        self.to = Some(to.to_owned());
        self.path = Some(to.to_owned());
        self
    }

    /// The event as one JSON object; fields that do not apply are left out
    /// (`user` is `null` for the anonymous user).
    pub fn json(&self) -> serde_json::Value {
        let mut fields = serde_json::Map::new();
        fields.insert("event".into(), self.kind.name().into());
        fields.insert("time".into(), rfc3339(self.time).into());
        fields.insert("user".into(), self.user.clone().into());
        fields.insert("address".into(), self.address.to_string().into());
        fields.insert("tls".into(), self.tls.into());
        for (name, value) in [("path", &self.path), ("from", &self.from), ("to", &self.to)] {
            if let Some(value) = value {
                fields.insert(name.into(), value.clone().into());
            }
        }
        if let Some(bytes) = self.bytes {
            fields.insert("bytes".into(), bytes.into());
        }
        if let Some(result) = self.result {
            fields.insert("result".into(), result.into());
            fields.insert("complete".into(), (result == "ok").into());
        }
        fields.into()
    }

    /// The event as `AIOFTPD_*` variables: those of the JSON fields that
    /// apply, `AIOFTPD_USER` unset for the anonymous user.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("AIOFTPD_EVENT", self.kind.name().to_owned()),
            ("AIOFTPD_TIME", rfc3339(self.time)),
            ("AIOFTPD_ADDRESS", self.address.to_string()),
            ("AIOFTPD_TLS", self.tls.to_string()),
        ];
        let texts = [
            ("AIOFTPD_USER", &self.user),
            ("AIOFTPD_PATH", &self.path),
            ("AIOFTPD_FROM", &self.from),
            ("AIOFTPD_TO", &self.to),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                vars.push((name, env_value(value)));
            }
        }
        if let Some(bytes) = self.bytes {
            vars.push(("AIOFTPD_BYTES", bytes.to_string()));
        }
        if let Some(result) = self.result {
            vars.push(("AIOFTPD_RESULT", result.to_owned()));
            vars.push(("AIOFTPD_COMPLETE", (result == "ok").to_string()));
        }
        vars
    }
}

/// RFC 3339, UTC, as the transfer log writes it.
pub(super) fn rfc3339(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A client's text as an environment value: all of it but NUL, which
/// would end it (and make the program fail to start).
pub(super) fn env_value(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}
