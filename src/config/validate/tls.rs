//! `[tls]`: the certificate, the key and the policies.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::schema::TlsSection;
use crate::tls::{MinVersion, TlsPolicy};

use super::{addresses, timeout, tls_policy, Problems, TlsSpec, MAX_HANDSHAKE_TIMEOUT};

/// `[tls]`: the paths of the certificate and key (loaded by the second
/// stage) and the policies.
pub(super) fn tls_settings(
    section: &TlsSection,
    listen: &[SocketAddr],
    problems: &mut Problems,
) -> TlsSpec {
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
        Some(path) if !path.trim().is_empty() => Some(PathBuf::from(path)),
        _ => {
            problems.add(key, "required in [tls]: the path of a PEM file");
            None
        }
    };
    TlsSpec {
        certificate: file("tls.certificate", &section.certificate),
        private_key: file("tls.private_key", &section.private_key),
        min_version,
        required,
        require_session_reuse: section.require_session_reuse.unwrap_or(true),
        handshake_timeout,
        implicit_listen,
    }
}
