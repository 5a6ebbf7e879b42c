//! The pre-upload check: asked before an upload is accepted, it allows or
//! refuses it. Anything but a clear answer within the timeout (a crash, a
//! hang, a malformed reply) is a failure, and a failure refuses too.

use std::net::IpAddr;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::deliver::{exit_failure, http_client, post, run_program, Failure};
use super::event::env_value;
use super::{Endpoint, PreUploadSettings};

/// The most of a refusal's message that reaches the client.
const MESSAGE_LIMIT: usize = 200;

/// The most of a URL's answer that is read.
const ANSWER_LIMIT: usize = 8 * 1024;

/// Checks run at once at most; more uploads wait for one to end, within
/// their timeout. Without a bound, every session of every client uploading
/// at once would start a program (or a request) of its own.
const IN_FLIGHT: usize = 32;

/// What the check is asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRequest {
    /// The login; `None` for the anonymous user.
    pub user: Option<String>,
    /// The client.
    pub address: IpAddr,
    /// The control connection is protected by TLS.
    pub tls: bool,
    /// The file, as the client's tree names it.
    pub path: String,
    /// `STOR`, `APPE` or `STOU`.
    pub verb: &'static str,
    /// Where writing starts (`REST`), 0 for the start.
    pub offset: u64,
    /// The size a preceding `ALLO` announced, if one did.
    pub size: Option<u64>,
    /// The size of the file the upload replaces or extends, if it exists.
    pub existing_size: Option<u64>,
}

impl UploadRequest {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "event": "pre_upload",
            "user": self.user,
            "address": self.address.to_canonical().to_string(),
            "tls": self.tls,
            "path": self.path,
            "verb": self.verb,
            "offset": self.offset,
            "size": self.size,
            "existing_size": self.existing_size,
        })
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("AIOFTPD_EVENT", "pre_upload".to_owned()),
            ("AIOFTPD_ADDRESS", self.address.to_canonical().to_string()),
            ("AIOFTPD_TLS", self.tls.to_string()),
            ("AIOFTPD_PATH", env_value(&self.path)),
            ("AIOFTPD_VERB", self.verb.to_owned()),
            ("AIOFTPD_OFFSET", self.offset.to_string()),
        ];
        if let Some(user) = &self.user {
            vars.push(("AIOFTPD_USER", env_value(user)));
        }
        if let Some(size) = self.size {
            vars.push(("AIOFTPD_SIZE", size.to_string()));
        }
        if let Some(size) = self.existing_size {
            vars.push(("AIOFTPD_EXISTING_SIZE", size.to_string()));
        }
        vars
    }
}

/// The check's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The upload may go on.
    Allow,
    /// The upload is refused, with the check's message if it gave one
    /// (one line, printable, bounded).
    Refuse(Option<String>),
    /// The check could not decide (it failed, timed out, or answered
    /// something malformed); the upload is refused.
    Failed(String),
}

/// The configured check.
pub struct PreUpload {
    settings: PreUploadSettings,
    client: Result<reqwest::Client, String>,
    slots: Semaphore,
}

impl std::fmt::Debug for PreUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreUpload")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PreUpload {
    /// The check `settings` describe.
    pub fn new(settings: &PreUploadSettings) -> Self {
        let client = match settings.endpoint {
            Endpoint::Url(_) => http_client(),
            Endpoint::Command(_) => Err("not a URL check".to_owned()),
        };
        PreUpload {
            settings: settings.clone(),
            client,
            slots: Semaphore::new(IN_FLIGHT),
        }
    }

    /// Asks about `request`, within the timeout; every outcome but
    /// `Allow` is logged with the user, the path and why, and counted.
    pub async fn check(&self, request: &UploadRequest) -> Decision {
        let decision = match self.ask(request).await {
            Ok(decision) => decision,
            Err(error) => Decision::Failed(error),
        };
        let label = match &decision {
            Decision::Allow => "allowed",
            Decision::Refuse(message) => {
                tracing::info!(
                    check = %self.settings.endpoint,
                    user = request.user.as_deref().unwrap_or(""),
                    path = request.path,
                    verb = request.verb,
                    message = message.as_deref().unwrap_or(""),
                    "upload refused by the pre-upload check"
                );
                "refused"
            }
            Decision::Failed(error) => {
                tracing::warn!(
                    check = %self.settings.endpoint,
                    user = request.user.as_deref().unwrap_or(""),
                    path = request.path,
                    verb = request.verb,
                    error,
                    "pre-upload check failed: upload refused"
                );
                "failed"
            }
        };
        crate::metrics::get()
            .pre_upload
            .with_label_values(&[label])
            .inc();
        decision
    }

    /// The decision, within the timeout: waiting for a slot and asking,
    /// together.
    async fn ask(&self, request: &UploadRequest) -> Result<Decision, Failure> {
        let start = Instant::now();
        let limit = self.settings.timeout;
        let _slot = tokio::time::timeout(limit, self.slots.acquire())
            .await
            .map_err(|_| {
                format!("{IN_FLIGHT} checks were running and none ended within {limit:?}")
            })?
            .map_err(|_| "the check is closed".to_owned())?;
        let timeout = limit.saturating_sub(start.elapsed());
        let body = request.json().to_string();
        match &self.settings.endpoint {
            Endpoint::Command(argv) => {
                let ran = run_program(
                    argv,
                    &request.env(),
                    body.as_bytes(),
                    timeout,
                    MESSAGE_LIMIT,
                )
                .await?;
                match ran.status.code() {
                    Some(0) => Ok(Decision::Allow),
                    Some(1) => Ok(Decision::Refuse(message(&String::from_utf8_lossy(
                        &ran.stdout,
                    )))),
                    _ => Err(format!(
                        "{} (0 allows, 1 refuses)",
                        exit_failure(ran.status)
                    )),
                }
            }
            Endpoint::Url(url) => {
                let client = self.client.as_ref().map_err(Clone::clone)?;
                let answer = post(client, url, body, timeout, ANSWER_LIMIT).await?;
                read_answer(&answer)
            }
        }
    }
}

/// A URL's answer: `{"allow": bool, "message": optional string}`.
fn read_answer(answer: &[u8]) -> Result<Decision, Failure> {
    let value: serde_json::Value = serde_json::from_slice(answer).map_err(|err| {
        format!("the answer is not JSON ({err}): expected {{\"allow\": true or false}}")
    })?;
    let Some(fields) = value.as_object() else {
        return Err("the answer is not a JSON object: expected {\"allow\": true or false}".into());
    };
    let allow = match fields.get("allow") {
        Some(serde_json::Value::Bool(allow)) => *allow,
        Some(_) => return Err("field \"allow\" is not a boolean".into()),
        None => return Err("field \"allow\" is missing".into()),
    };
    let message = match fields.get("message") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => message(text),
        Some(_) => return Err("field \"message\" is not a string".into()),
    };
    Ok(if allow {
        Decision::Allow
    } else {
        Decision::Refuse(message)
    })
}

/// A refusal's message as a reply may carry it: its first line, printable
/// characters only, bounded; `None` if nothing is left.
fn message(text: &str) -> Option<String> {
    let line = text.lines().next().unwrap_or_default();
    let shown: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MESSAGE_LIMIT)
        .collect();
    let shown = shown.trim();
    (!shown.is_empty()).then(|| shown.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> UploadRequest {
        UploadRequest {
            user: Some("alice".into()),
            address: IpAddr::from([127, 0, 0, 1]),
            tls: false,
            path: "/f.txt".into(),
            verb: "STOR",
            offset: 0,
            size: None,
            existing_size: None,
        }
    }

    #[tokio::test]
    async fn an_upload_past_the_bound_waits_for_a_slot_and_starts_nothing_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let ran = dir.path().join("ran");
        let check = PreUpload::new(&PreUploadSettings {
            endpoint: Endpoint::Command(vec!["/usr/bin/touch".into(), ran.display().to_string()]),
            timeout: std::time::Duration::from_millis(200),
        });
        let taken = check.slots.acquire_many(IN_FLIGHT as u32).await.unwrap();
        let refused = check.ask(&request()).await.unwrap_err();
        assert!(refused.contains("checks were running"), "{refused}");
        assert!(!ran.exists(), "no program was started");
        drop(taken);
        assert_eq!(check.ask(&request()).await, Ok(Decision::Allow));
        assert!(ran.exists());
    }

    #[test]
    fn an_answer_must_say_allow_as_a_boolean_and_the_error_names_the_field() {
        assert_eq!(read_answer(br#"{"allow": true}"#), Ok(Decision::Allow));
        assert_eq!(
            read_answer(br#"{"allow": false, "message": "no .exe\r\n250 ok"}"#),
            Ok(Decision::Refuse(Some("no .exe".into())))
        );
        let missing = read_answer(br#"{"allowed": true}"#).unwrap_err();
        assert!(missing.contains("\"allow\" is missing"), "{missing}");
        let wrong = read_answer(br#"{"allow": "yes"}"#).unwrap_err();
        assert!(wrong.contains("\"allow\" is not a boolean"), "{wrong}");
        let message = read_answer(br#"{"allow": false, "message": 5}"#).unwrap_err();
        assert!(message.contains("\"message\""), "{message}");
        assert!(read_answer(b"allow").unwrap_err().contains("not JSON"));
        assert!(read_answer(b"[true]")
            .unwrap_err()
            .contains("not a JSON object"));
    }

    #[test]
    fn a_message_is_one_printable_bounded_line() {
        assert_eq!(
            message("\u{1b}[2Jbad\tname\nsecond"),
            Some("[2Jbadname".into())
        );
        assert_eq!(message(""), None);
        assert_eq!(
            message(&"x".repeat(1000)).map(|m| m.len()),
            Some(MESSAGE_LIMIT)
        );
    }
}
