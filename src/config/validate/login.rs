//! `[login]`: brute-force protection.

use crate::config::schema::LoginSection;
use crate::settings::LoginProtection;

use super::{
    count, duration, timeout, Problems, MAX_BLOCK_DURATION, MAX_CREDENTIAL_CACHE, MAX_FAILURE_DELAY,
};

/// `[login]`.
pub(super) fn login_protection(login: &LoginSection, problems: &mut Problems) -> LoginProtection {
    let defaults = LoginProtection::default();
    let failures = |key: &str, written: Option<u64>, problems: &mut Problems| {
        count(key, written, problems).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    LoginProtection {
        // Zero is allowed here: it turns the delay off.
        failure_delay: duration(
            "login.failure_delay",
            &login.failure_delay,
            MAX_FAILURE_DELAY,
            problems,
        )
        .unwrap_or(defaults.failure_delay),
        max_failures_per_connection: failures(
            "login.max_failures_per_connection",
            login.max_failures_per_connection,
            problems,
        )
        .unwrap_or(defaults.max_failures_per_connection),
        max_failures_per_ip: failures(
            "login.max_failures_per_ip",
            login.max_failures_per_ip,
            problems,
        )
        .unwrap_or(defaults.max_failures_per_ip),
        failure_window: timeout(
            "login.failure_window",
            &login.failure_window,
            MAX_BLOCK_DURATION,
            problems,
        )
        .unwrap_or(defaults.failure_window),
        block_duration: timeout(
            "login.block_duration",
            &login.block_duration,
            MAX_BLOCK_DURATION,
            problems,
        )
        .unwrap_or(defaults.block_duration),
        // "0s" turns the cache off.
        credential_cache: duration(
            "login.credential_cache",
            &login.credential_cache,
            MAX_CREDENTIAL_CACHE,
            problems,
        )
        .map_or(defaults.credential_cache, |d| (!d.is_zero()).then_some(d)),
    }
}
