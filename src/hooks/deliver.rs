//! One delivery of an event to its hook: attempts, each bounded by the
//! hook's timeout, with a short backoff between them, and a log line and a
//! count for the outcome. Also the two ways to reach a program or a URL
//! that the pre-upload check shares.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Endpoint, Event, HookSettings};

/// The `PATH` a hook program gets: the system's directories, not the daemon's.
const PROGRAM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The first backoff between attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a program's attempt or a URL's answer went wrong, for the log line.
pub(super) type Failure = String;

/// What a hook's runner delivers with.
pub(super) struct Deliverer {
    key: String,
    endpoint: Endpoint,
    timeout: Duration,
    retries: u32,
    client: Result<reqwest::Client, String>,
}

impl Deliverer {
    /// For `settings`; a URL hook shares `client` with the generation's
    /// other URL hooks (made here for the first).
    pub(super) fn new(
        settings: &HookSettings,
        client: &mut Option<Result<reqwest::Client, String>>,
    ) -> Self {
        let client = match settings.endpoint {
            Endpoint::Url(_) => client.get_or_insert_with(http_client).clone(),
            Endpoint::Command(_) => Err("not a URL hook".to_owned()),
        };
        Deliverer {
            key: settings.key.clone(),
            endpoint: settings.endpoint.clone(),
            timeout: settings.timeout,
            retries: settings.retries,
            client,
        }
    }

    /// Delivers `event`: up to `1 + retries` attempts; logs a failure with
    /// the hook, the event and why.
    pub(super) async fn deliver(&self, event: &Arc<Event>) {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let error = match self.attempt(event).await {
                Ok(()) => break "ok",
                Err(error) => error,
            };
            if attempt > self.retries {
                tracing::warn!(
                    hook = self.key,
                    target = %self.endpoint,
                    event = event.kind.name(),
                    user = event.user.as_deref().unwrap_or(""),
                    path = event.path.as_deref().unwrap_or(""),
                    attempts = attempt,
                    error,
                    "hook failed"
                );
                break "failed";
            }
            tracing::debug!(
                hook = self.key,
                event = event.kind.name(),
                attempt,
                error,
                "hook attempt failed; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        crate::metrics::get()
            .hook_events
            .with_label_values(&[event.kind.name(), outcome])
            .inc();
    }

    async fn attempt(&self, event: &Event) -> Result<(), Failure> {
        let body = event.json().to_string();
        match &self.endpoint {
            Endpoint::Command(argv) => {
                let ran = run_program(argv, &event.env(), body.as_bytes(), self.timeout, 0).await?;
                match ran.status.code() {
                    Some(0) => Ok(()),
                    _ => Err(exit_failure(ran.status)),
                }
            }
            Endpoint::Url(url) => {
                let client = self.client.as_ref().map_err(Clone::clone)?;
                post(client, url, body, self.timeout, 0).await.map(drop)
            }
        }
    }
}

/// What a program that did not exit 0 did, for a log line.
pub(super) fn exit_failure(status: ExitStatus) -> Failure {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "killed by a signal".to_owned(),
    }
}

/// What a finished program left: how it ended, and the first bytes it wrote.
pub(super) struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
}

/// Runs `argv` (no shell) with a clean environment (`PATH` and `env`),
/// `input` on its stdin, stderr discarded and at most `keep_stdout` bytes
/// of its first stdout line kept (none: stdout discarded), in a process
/// group of its own. Past `timeout` the whole group is killed.
pub(super) async fn run_program(
    argv: &[String],
    env: &[(&'static str, String)],
    input: &[u8],
    timeout: Duration,
    keep_stdout: usize,
) -> Result<Ran, Failure> {
    let Some((program, args)) = argv.split_first() else {
        return Err("no program".to_owned());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", PROGRAM_PATH)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::piped())
        .stdout(if keep_stdout > 0 {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|err| format!("cannot start {program}: {err}"))?;
    let group = child.id();
    let work = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read its stdin may close it: not a failure.
            let _ = stdin.write_all(input).await;
        }
        let mut stdout = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            let mut chunk = [0u8; 256];
            while stdout.len() < keep_stdout && !stdout.contains(&b'\n') {
                match out.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => stdout.extend_from_slice(&chunk[..n]),
                }
            }
            stdout.truncate(keep_stdout);
            // Dropped here: what it writes from now on fails (EPIPE),
            // never fills memory or blocks it for long.
        }
        child.wait().await.map(|status| Ran { status, stdout })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(ran)) => Ok(ran),
        Ok(Err(err)) => Err(format!("cannot wait for {program}: {err}")),
        Err(_) => {
            if let Some(group) = group.and_then(|pid| i32::try_from(pid).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(group),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(format!(
                "timed out after {}s: killed",
                timeout.as_secs_f64()
            ))
        }
    }
}

/// Posts `body` (JSON) to `url`; a 2xx answer's first `keep_body` bytes,
/// or why it failed. The whole exchange is bounded by `timeout`.
pub(super) async fn post(
    client: &reqwest::Client,
    url: &str,
    body: String,
    timeout: Duration,
    keep_body: usize,
) -> Result<Vec<u8>, Failure> {
    let exchange = async {
        let mut response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(http_failure)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered HTTP {}", status.as_u16()));
        }
        let mut kept = Vec::new();
        while kept.len() < keep_body {
            match response.chunk().await.map_err(http_failure)? {
                Some(chunk) => kept.extend_from_slice(&chunk),
                None => break,
            }
        }
        kept.truncate(keep_body);
        Ok(kept)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {}s", timeout.as_secs_f64())),
    }
}

/// A client error without the URL (it may hold a password), with its cause.
fn http_failure(err: reqwest::Error) -> Failure {
    let err = err.without_url();
    match std::error::Error::source(&err) {
        Some(cause) => format!("{err}: {cause}"),
        None => err.to_string(),
    }
}

/// The HTTP client hooks post with: rustls with ring (the provider the
/// listeners use), the platform's roots, no redirects followed.
pub(super) fn http_client() -> Result<reqwest::Client, String> {
    let tls = crate::tls::https_client_config()?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
