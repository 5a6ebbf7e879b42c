//! Listing formats: `LIST` lines in `ls -l` style, `NLST` names, and RFC 3659
//! facts for `MLSD`/`MLST`, and the `YYYYMMDDHHMMSS` times that `MDTM`,
//! `MFMT` and the `modify` fact share.
//!
//! Pure formatting: no I/O, and never a real path — only virtual names.
//! Listings write their lines into a reused buffer ([`ListFormatter`],
//! [`FactsFormatter`], [`LineChunks`]) so a line costs no allocation.
//!
//! | file | owns |
//! |---|---|
//! | `ls.rs` | `LIST` lines |
//! | `facts.rs` | RFC 3659 facts, the fact set `OPTS MLST` selects |
//! | `time_format.rs` | `YYYYMMDDHHMMSS` in UTC, both ways, and calendar dates |
//! | `glob.rs` | the wildcards of `NLST *.txt` |
//! | `chunks.rs` | listing lines gathered into data-connection writes |

mod chunks;
mod facts;
mod glob;
mod ls;
pub mod time_format;

pub use chunks::{LineChunks, CHUNK_SIZE};
pub use facts::{facts_line, FactSet, FactsFormatter, FACTS};
pub use glob::{has_wildcard, wildcard_match};
pub use ls::{list_line, ListFormatter};

/// Appends `n` in decimal, padded on the left with `pad` to `width`
/// bytes (at most [`NUMBER_FIELD`]).
pub(crate) fn push_number(out: &mut Vec<u8>, n: u64, width: usize, pad: u8) {
    let mut field = [pad; NUMBER_FIELD];
    let mut start = field.len();
    let mut rest = n;
    loop {
        start -= 1;
        field[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = start.min(field.len() - width.min(field.len()));
    out.extend_from_slice(&field[start..]);
}

/// Appends `n` (below 100) as two digits.
pub(crate) fn push_two_digits(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// The widest field [`push_number`] writes: every digit of a `u64`, or 24 of padding.
const NUMBER_FIELD: usize = 24;

/// Lines the formatters wrote, as text: they write only `&str` and ASCII.
pub(crate) fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::time::SystemTime;

    use super::time_format::parse_timestamp;
    use crate::storage::{FileKind, Metadata};

    pub(super) fn meta(kind: FileKind, size: u64, modified: SystemTime) -> Metadata {
        Metadata {
            kind,
            size,
            modified: Some(modified),
            mode: if kind == FileKind::Dir { 0o755 } else { 0o644 },
            unique: Some("1g2".into()),
        }
    }

    pub(super) fn at(text: &str) -> SystemTime {
        parse_timestamp(text).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::test_support::at;
    use super::test_support::meta;
    use super::time_format::timestamp;
    use super::*;
    use crate::auth::Access;
    use crate::storage::FileKind;

    #[test]
    fn times_beyond_year_9999_do_not_panic() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        let m = meta(FileKind::File, 1, far);
        let now = at("20261124080000");
        assert_eq!(
            list_line("far", &m, now),
            "-rw-r--r-- 1 ftp ftp            1 Jan  1  1970 far\r\n"
        );
        let facts = facts_line("far", &m, Access::default(), FactSet::default());
        assert_eq!(
            facts,
            "type=file;size=1;perm=;unique=1g2;UNIX.mode=0644; far"
        );
        assert_eq!(timestamp(far), "19700101000000");
    }
}
