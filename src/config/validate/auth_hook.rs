//! `[auth_hook]`: where the authentication hook is, how long a login waits
//! for it, how long its yes is remembered, and the file of the token it is
//! sent. Nothing is read or contacted here: `config::build` reads the
//! token, the daemon makes the HTTP client.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::schema::AuthHookSection;

use super::{duration, timeout, Problems, MAX_CACHE_LIFETIME, MAX_DATABASE_TIMEOUT};

/// How long a login waits for the hook unless the config says otherwise.
pub(in crate::config) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an accepted answer is reused unless the config says otherwise:
/// short, so a password changed or an account closed behind the hook takes
/// effect soon.
pub(in crate::config) const DEFAULT_HOOK_CACHE_LIFETIME: Duration = Duration::from_secs(30);

/// `[auth_hook]` as checked: the token's file not read.
pub(in crate::config) struct HookSpec {
    /// `None` when `url` was missing or wrong (already recorded).
    pub url: Option<String>,
    pub timeout: Duration,
    pub cache_lifetime: Duration,
    pub bearer_token_file: Option<PathBuf>,
}

/// `[auth_hook]`.
pub(super) fn auth_hook(section: &AuthHookSection, problems: &mut Problems) -> HookSpec {
    let url = match section.url.as_deref() {
        None => {
            problems.add(
                "auth_hook.url",
                "required: the endpoint logins are posted to, such as \"http://127.0.0.1:8080/login\"",
            );
            None
        }
        Some(written) => problems.check("auth_hook.url", hook_url(written)),
    };
    let bearer_token_file = match section.bearer_token_file.as_deref() {
        None => None,
        Some(written) if written.is_empty() || written.chars().any(char::is_control) => {
            problems.add(
                "auth_hook.bearer_token_file",
                "must name a file, without control characters; omit it to send no token",
            );
            None
        }
        Some(written) => Some(PathBuf::from(written)),
    };
    HookSpec {
        url,
        // A login is refused at once, without asking, when this is zero:
        // that is no setting anyone means.
        timeout: timeout(
            "auth_hook.timeout",
            &section.timeout,
            MAX_DATABASE_TIMEOUT,
            problems,
        )
        .unwrap_or(DEFAULT_HOOK_TIMEOUT),
        // Zero is allowed: every login asks the hook.
        cache_lifetime: duration(
            "auth_hook.cache_lifetime",
            &section.cache_lifetime,
            MAX_CACHE_LIFETIME,
            problems,
        )
        .unwrap_or(DEFAULT_HOOK_CACHE_LIFETIME),
        bearer_token_file,
    }
}

/// An `http://` or `https://` URL with a host and no user or password in
/// it (a secret there would show wherever the URL does: use
/// `bearer_token_file`), as written.
fn hook_url(written: &str) -> Result<String, String> {
    let written = written.trim();
    if written.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{written:?} must not contain whitespace"));
    }
    let url = url::Url::parse(written)
        .map_err(|e| format!("{written:?} is not a URL ({e}): expected such as \"https://auth.example.com/ftp-login\""))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{written:?} must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{written:?} names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not carry a user or password: it would show in logs and `check-config --print`; put a token in bearer_token_file".to_owned(),
        );
    }
    if url.fragment().is_some() {
        return Err(format!("{written:?} has a #fragment, which is never sent"));
    }
    Ok(written.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_url_is_http_or_https_with_a_host_and_no_secret() {
        for good in [
            "http://127.0.0.1:8080/login",
            "https://auth.example.com/ftp?site=a",
            "http://[::1]:9000/",
        ] {
            assert_eq!(hook_url(good).as_deref(), Ok(good), "{good}");
        }
        for (bad, says) in [
            ("", "not a URL"),
            ("auth.example.com/login", "not a URL"),
            ("ftp://auth.example.com/", "http:// or https://"),
            ("file:///etc/passwd", "http:// or https://"),
            ("https://user:pw@auth.example.com/", "bearer_token_file"),
            ("https://auth.example.com/ login", "whitespace"),
            ("https://auth.example.com/#x", "fragment"),
        ] {
            let err = hook_url(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn every_problem_of_the_section_is_recorded_on_its_key() {
        let section = AuthHookSection {
            url: Some("gopher://x/".into()),
            timeout: Some(crate::config::schema::UnitText("0s".into())),
            cache_lifetime: Some(crate::config::schema::UnitText("2h".into())),
            bearer_token_file: Some(String::new()),
        };
        let mut problems = Problems::default();
        let spec = auth_hook(&section, &mut problems);
        let keys: Vec<&str> = problems.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "auth_hook.url",
                "auth_hook.bearer_token_file",
                "auth_hook.timeout",
                "auth_hook.cache_lifetime"
            ]
        );
        assert!(spec.url.is_none());
        let mut problems = Problems::default();
        auth_hook(&AuthHookSection::default(), &mut problems);
        assert_eq!(problems.0.len(), 1);
        assert!(problems.0[0].message.starts_with("required"));
    }

    #[test]
    fn defaults_are_a_short_timeout_and_a_short_cache() {
        let section = AuthHookSection {
            url: Some("http://127.0.0.1:1/".into()),
            ..AuthHookSection::default()
        };
        let mut problems = Problems::default();
        let spec = auth_hook(&section, &mut problems);
        assert!(problems.0.is_empty());
        assert_eq!(spec.timeout, DEFAULT_HOOK_TIMEOUT);
        assert_eq!(spec.cache_lifetime, DEFAULT_HOOK_CACHE_LIFETIME);
        assert_eq!(spec.bearer_token_file, None);
    }
}
