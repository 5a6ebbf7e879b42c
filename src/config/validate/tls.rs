//! `[tls]`: the certificate, the key and the policies.

use std::net::SocketAddr;
use std::path::Path;

use crate::config::schema::TlsSection;
use crate::tls::{MinVersion, TlsLoadError, TlsPolicy, TlsSettings};

use super::{addresses, timeout, tls_policy, Problems, MAX_HANDSHAKE_TIMEOUT};

/// `[tls]`: loads the certificate and key (relative paths from the config's
/// directory) and reads the policies.
pub(super) fn tls_settings(
    section: &TlsSection,
    listen: &[SocketAddr],
    config_dir: &Path,
    problems: &mut Problems,
) -> Option<TlsSettings> {
    let required = match &section.required {
        None => Some(TlsPolicy::Optional),
        Some(written) => problems.check("tls.required", tls_policy(written)),
    };
    let min_version = match section.min_version.as_deref().map(str::trim) {
        None | Some("1.2") => Some(MinVersion::Tls12),
        Some("1.3") => Some(MinVersion::Tls13),
        Some(other) => {
            problems.add(
                "tls.min_version",
                format!("unsupported version {other:?}: expected \"1.2\" or \"1.3\""),
            );
            None
        }
    };
    let implicit_listen = addresses(
        "tls.implicit_listen",
        section.implicit_listen.as_deref().unwrap_or_default(),
        listen,
        problems,
    );
    let handshake_timeout = timeout(
        "tls.handshake_timeout",
        &section.handshake_timeout,
        MAX_HANDSHAKE_TIMEOUT,
        problems,
    );
    let mut file = |key: &str, written: &Option<String>| match written {
        Some(path) if !path.trim().is_empty() => Some(config_dir.join(path)),
        _ => {
            problems.add(key, "required in [tls]: the path of a PEM file");
            None
        }
    };
    let certificate = file("tls.certificate", &section.certificate);
    let private_key = file("tls.private_key", &section.private_key);
    // The files are checked even when min_version is wrong; the version only
    // shapes the rustls config, which is thrown away then.
    let loaded = TlsSettings::load(
        &certificate?,
        &private_key?,
        min_version.unwrap_or(MinVersion::Tls12),
    )
    .map_err(|err| match err {
        TlsLoadError::PrivateKey(message) => problems.add("tls.private_key", message),
        TlsLoadError::Certificate(message) | TlsLoadError::Config(message) => {
            problems.add("tls.certificate", message)
        }
    })
    .ok()?;
    min_version?;
    let mut settings = loaded;
    settings.required = required?;
    settings.require_session_reuse = section.require_session_reuse.unwrap_or(true);
    settings.handshake_timeout = handshake_timeout.unwrap_or(settings.handshake_timeout);
    settings.implicit_listen = implicit_listen;
    Some(settings)
}
