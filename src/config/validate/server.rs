//! `[server]`: listeners, session behaviour, caps and bandwidth limits.

use std::net::SocketAddr;

use crate::config::schema::{ServerSection, UnitText};
use crate::config::units::ByteSize;
use crate::settings::{Limits, SessionSettings};
use crate::storage::UploadSync;

use super::{
    addresses, count, parse, rate, timeout, Problems, DEFAULT_LISTEN, MAX_BLOCK_SIZE,
    MAX_IDLE_TIMEOUT, MAX_WAIT_TIMEOUT, MIN_BLOCK_SIZE,
};

/// `server.listen`; it may be empty only when `others` (implicit-TLS or
/// proxied listeners) are configured.
pub(super) fn listen_addresses(
    server: &ServerSection,
    others: bool,
    problems: &mut Problems,
) -> Vec<SocketAddr> {
    let written = match &server.listen {
        Some(list) => list.clone(),
        None => vec![DEFAULT_LISTEN.to_owned()],
    };
    if written.is_empty() && !others {
        problems.add(
            "server.listen",
            "must name at least one address, such as \"0.0.0.0:21\" \
             (or listen through tls.implicit_listen or proxy_protocol.listen)",
        );
    }
    addresses("server.listen", &written, &[], problems)
}

/// `server.sync_uploads`: which uploads the fs backend flushes to the disk.
pub(super) fn upload_sync(server: &ServerSection, problems: &mut Problems) -> UploadSync {
    let parsed = match server.sync_uploads.as_deref().map(str::trim) {
        None => return UploadSync::default(),
        Some("always") => Ok(UploadSync::Always),
        Some("replaced") => Ok(UploadSync::Replaced),
        Some("never") => Ok(UploadSync::Never),
        Some(other) => Err(format!(
            "unknown value {other:?}: expected \"always\", \"replaced\" or \"never\""
        )),
    };
    problems
        .check("server.sync_uploads", parsed)
        .unwrap_or_default()
}

pub(super) fn session_settings(server: &ServerSection, problems: &mut Problems) -> SessionSettings {
    let defaults = SessionSettings::default();
    let banner = match &server.banner {
        Some(banner) if banner.chars().any(char::is_control) => {
            problems.add(
                "server.banner",
                "must be one line of text without control characters",
            );
            defaults.banner
        }
        Some(banner) => banner.clone(),
        None => defaults.banner,
    };
    let wait = |key: &str, written: &Option<UnitText>, problems: &mut Problems| {
        timeout(key, written, MAX_WAIT_TIMEOUT, problems)
    };
    let idle_timeout = timeout(
        "server.idle_timeout",
        &server.idle_timeout,
        MAX_IDLE_TIMEOUT,
        problems,
    )
    .unwrap_or(defaults.idle_timeout);
    let login_timeout = wait("server.login_timeout", &server.login_timeout, problems)
        .unwrap_or(defaults.login_timeout);
    let socket_timeout = wait("server.socket_timeout", &server.socket_timeout, problems)
        .unwrap_or(defaults.socket_timeout);
    let storage_timeout = wait("server.storage_timeout", &server.storage_timeout, problems)
        .unwrap_or(defaults.storage_timeout);
    let data_timeout = wait("server.data_timeout", &server.data_timeout, problems)
        .unwrap_or(defaults.data_timeout);
    let block_size = block_size(&server.block_size, problems).unwrap_or(defaults.block_size);
    let hash_max_size = server
        .hash_max_size
        .as_ref()
        .and_then(|text| problems.check("server.hash_max_size", parse::<ByteSize>(text)))
        .map_or(defaults.hash_max_size, |size| size.0);
    SessionSettings {
        banner,
        idle_timeout,
        data_timeout,
        block_size,
        atomic_uploads: server.atomic_uploads.unwrap_or(defaults.atomic_uploads),
        login_timeout,
        socket_timeout,
        storage_timeout,
        hash_max_size,
    }
}

/// `[server]` caps and bandwidth limits.
pub(super) fn limits(server: &ServerSection, problems: &mut Problems) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_connections: count("server.max_connections", server.max_connections, problems)
            .unwrap_or(defaults.max_connections),
        max_connections_per_ip: count(
            "server.max_connections_per_ip",
            server.max_connections_per_ip,
            problems,
        )
        .unwrap_or(defaults.max_connections_per_ip),
        download: rate("server.download_limit", &server.download_limit, problems),
        upload: rate("server.upload_limit", &server.upload_limit, problems),
        download_per_connection: rate(
            "server.download_limit_per_connection",
            &server.download_limit_per_connection,
            problems,
        ),
        upload_per_connection: rate(
            "server.upload_limit_per_connection",
            &server.upload_limit_per_connection,
            problems,
        ),
    }
}

/// A written block size, if present and within bounds.
fn block_size(written: &Option<UnitText>, problems: &mut Problems) -> Option<usize> {
    let key = "server.block_size";
    let size = problems.check(key, parse::<ByteSize>(written.as_ref()?))?;
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&size) {
        problems.add(
            key,
            format!(
                "{size} is out of range: must be between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"
            ),
        );
        return None;
    }
    // Within 16MiB, so it fits a usize on every supported platform.
    usize::try_from(size.0).ok()
}
