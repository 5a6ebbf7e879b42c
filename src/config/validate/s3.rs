//! A user's `s3` table: the bucket, endpoint and region behind `storage =
//! "s3"`, and where its access key is. Nothing is read or contacted here;
//! `config::build` reads the key and makes the storage.

use std::path::PathBuf;

use crate::config::schema::S3Section;
use crate::config::units::ByteSize;
use crate::storage::s3::{
    normalize_prefix, DEFAULT_PARTS_IN_FLIGHT, DEFAULT_PART_SIZE, MAX_PARTS_IN_FLIGHT,
    MAX_PART_SIZE, MIN_PART_SIZE,
};

use super::{count, parse, Problems, S3Spec};

/// The table under `key` (`users[0].s3`) as checked; `None` when a key of
/// it is wrong (already recorded).
pub(in crate::config) fn s3_spec(
    key: &str,
    section: &S3Section,
    problems: &mut Problems,
) -> Option<S3Spec> {
    let named = |name: &str| format!("{key}.{name}");
    let endpoint = required(&named("endpoint"), &section.endpoint, problems)
        .and_then(|written| problems.check(named("endpoint"), endpoint(written)));
    let bucket = required(&named("bucket"), &section.bucket, problems)
        .and_then(|written| problems.check(named("bucket"), bucket(written)));
    let region = required(&named("region"), &section.region, problems)
        .and_then(|written| problems.check(named("region"), region(written)));
    let prefix = match section.prefix.as_deref() {
        None => Some(String::new()),
        Some(written) => problems.check(named("prefix"), normalize_prefix(written)),
    };
    let credentials_file = match section.credentials_file.as_deref() {
        None => Some(None),
        Some(written) => problems
            .check(named("credentials_file"), file_path(written))
            .map(Some),
    };
    let part_size = match &section.part_size {
        None => Some(DEFAULT_PART_SIZE),
        Some(written) => problems.check(
            named("part_size"),
            parse::<ByteSize>(written).and_then(part_size),
        ),
    };
    let parts_in_flight = match section.parts_in_flight {
        None => Some(DEFAULT_PARTS_IN_FLIGHT),
        Some(_) => {
            count(&named("parts_in_flight"), section.parts_in_flight, problems).and_then(|n| {
                if n > MAX_PARTS_IN_FLIGHT {
                    problems.add(
                        named("parts_in_flight"),
                        format!("{n} is out of range: must be at most {MAX_PARTS_IN_FLIGHT}"),
                    );
                    return None;
                }
                Some(n)
            })
        }
    };
    Some(S3Spec {
        key: key.to_owned(),
        endpoint: endpoint?,
        bucket: bucket?,
        region: region?,
        prefix: prefix?,
        credentials_file: credentials_file?,
        part_size: part_size?,
        parts_in_flight: parts_in_flight?,
    })
}

fn required<'a>(
    key: &str,
    written: &'a Option<String>,
    problems: &mut Problems,
) -> Option<&'a str> {
    let written = written.as_deref();
    if written.is_none() {
        problems.add(key, "required for s3 storage");
    }
    written
}

/// An `http://` or `https://` URL with a host, as written (no trailing slash).
fn endpoint(written: &str) -> Result<String, String> {
    let rest = written
        .strip_prefix("https://")
        .or_else(|| written.strip_prefix("http://"))
        .ok_or_else(|| format!("{written:?} must be an http:// or https:// URL"))?;
    if written.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{written:?} must not contain whitespace"));
    }
    if rest.trim_end_matches('/').is_empty() || rest.starts_with('/') {
        return Err(format!("{written:?} names no host"));
    }
    Ok(written.trim_end_matches('/').to_owned())
}

/// S3's rules for a bucket name: 3 to 63 lowercase letters, digits, dots
/// and hyphens, starting and ending with a letter or digit.
fn bucket(written: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if (3..=63).contains(&written.len())
        && written.chars().all(allowed)
        && ends_ok(written.chars().next())
        && ends_ok(written.chars().last())
    {
        Ok(written.to_owned())
    } else {
        Err(format!(
            "{written:?} is not a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
        ))
    }
}

/// A region name the requests are signed for (`us-east-1`, `garage`).
fn region(written: &str) -> Result<String, String> {
    if written.is_empty() {
        return Err(
            "must not be empty (Garage's default is \"garage\", AWS's \"us-east-1\")".to_owned(),
        );
    }
    if written.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{written:?} must not contain whitespace"));
    }
    Ok(written.to_owned())
}

fn file_path(written: &str) -> Result<PathBuf, String> {
    if written.is_empty() {
        return Err("must not be empty; omit it to take the key from the environment".to_owned());
    }
    if written.chars().any(char::is_control) {
        return Err(format!("{written:?} must not contain control characters"));
    }
    Ok(PathBuf::from(written))
}

fn part_size(size: ByteSize) -> Result<usize, String> {
    let (min, max) = (
        ByteSize(MIN_PART_SIZE as u64),
        ByteSize(MAX_PART_SIZE as u64),
    );
    if !(min..=max).contains(&size) {
        return Err(format!(
            "{size} is out of range: must be between {min} (S3's smallest part) and {max}"
        ));
    }
    // Within 512MiB, so it fits a usize on every supported platform.
    usize::try_from(size.0).map_err(|_| format!("{size} is too large"))
}
