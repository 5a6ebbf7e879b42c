//! Asking the hook: one POST per login, its answer read bounded, all of it
//! within the hook's timeout, at most [`MAX_REQUESTS`] at once.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tokio::sync::Semaphore;

use super::answer::{self, Answer, BadAnswer};
use crate::auth::Password;
use crate::config::{AuthHook, BearerToken};

/// Requests to the hook in flight at most. A flood of logins waits for a
/// slot (within its timeout) instead of opening a connection each.
pub const MAX_REQUESTS: usize = 32;

/// The largest answer read: an account's keys fit many times over.
pub const MAX_BODY: usize = 64 * 1024;

/// Why the hook gave no usable answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// No answer within the timeout (waiting for a slot included).
    TimedOut(Duration),
    /// The request could not be sent or the answer not read.
    Request(String),
    /// An answer other than 2xx.
    Status(u16),
    /// A body larger than [`MAX_BODY`].
    TooLarge,
    /// A 2xx body that is no answer.
    Bad(BadAnswer),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TimedOut(after) => write!(f, "no answer within {after:?}"),
            Failure::Request(err) => write!(f, "{err}"),
            Failure::Status(code) => write!(f, "answered HTTP {code}, not 2xx"),
            Failure::TooLarge => write!(f, "answered more than {MAX_BODY} bytes"),
            Failure::Bad(bad) => write!(f, "malformed answer: {bad}"),
        }
    }
}

/// The hook's endpoint and what every request to it carries.
pub(super) struct HookClient {
    http: reqwest::Client,
    url: reqwest::Url,
    token: Option<BearerToken>,
    timeout: Duration,
    slots: Semaphore,
}

impl HookClient {
    /// A client for `hook`; nothing is sent yet.
    pub(super) fn new(hook: &AuthHook) -> Result<Self, String> {
        let url = reqwest::Url::parse(&hook.url)
            .map_err(|e| format!("auth_hook.url {:?}: {e}", hook.url))?;
        Ok(HookClient {
            http: http_client(hook.timeout)?,
            url,
            token: hook.bearer_token.clone(),
            timeout: hook.timeout,
            slots: Semaphore::new(MAX_REQUESTS),
        })
    }

    /// What the hook says of `login` with `password`, sent by a client at `from`.
    pub(super) async fn ask(
        &self,
        login: &str,
        password: &Password,
        from: IpAddr,
    ) -> Result<Answer, Failure> {
        tokio::time::timeout(self.timeout, self.exchange(login, password, from))
            .await
            .unwrap_or(Err(Failure::TimedOut(self.timeout)))
    }

    /// Request slots free now.
    #[cfg(test)]
    pub(super) fn slots_free(&self) -> usize {
        self.slots.available_permits()
    }

    async fn exchange(
        &self,
        login: &str,
        password: &Password,
        from: IpAddr,
    ) -> Result<Answer, Failure> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| Failure::Request("the hook's client is closed".to_owned()))?;
        let body = serde_json::json!({
            "login": login,
            "password": password.expose(),
            "address": from.to_canonical().to_string(),
        });
        let mut request = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body.to_string());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let mut response = request.send().await.map_err(request_failure)?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BODY as u64)
        {
            return Err(Failure::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_failure)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Failure::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        answer::parse(&body).map_err(Failure::Bad)
    }
}

/// reqwest's error with its causes, which say what went wrong (refused,
/// reset, a certificate not trusted).
fn request_failure(err: reqwest::Error) -> Failure {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure::Request(text)
}

/// The HTTP client: rustls with ring and the platform's roots, as the S3
/// backend's; no redirects (a redirect would carry the password to
/// wherever it points) and no proxy from the environment (the hook is
/// the admin's own service, reached directly).
fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let tls = crate::tls::https_client_config()?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_max_idle_per_host(MAX_REQUESTS)
        .build()
        .map_err(|e| format!("cannot build the auth hook's HTTP client: {e}"))
}
