//! `LIST` lines in `ls -l` style.

use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::time_format::DayCache;
use super::{into_text, push_number, push_two_digits};
use crate::storage::{FileKind, Metadata};

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// About six months: older (or future) times show the year instead of the time, as `ls` does.
const RECENT: Duration = Duration::from_secs(182 * 24 * 3600);

/// `rwx` for each value of a 3-bit permission group.
const RWX: [&[u8; 3]; 8] = [
    b"---", b"--x", b"-w-", b"-wx", b"r--", b"r-x", b"rw-", b"rwx",
];

/// Writes `LIST` lines (`ls -l` style) into a caller's buffer, e.g.
/// `-rw-r--r-- 1 ftp ftp         1234 Nov 24 08:00 notes.txt`.
///
/// Keeps the calendar date of the previous line (see [`DayCache`]).
#[derive(Debug)]
pub struct ListFormatter {
    now: SystemTime,
    days: DayCache,
}

impl ListFormatter {
    /// A formatter that judges recency against `now`.
    pub fn new(now: SystemTime) -> Self {
        ListFormatter {
            now,
            days: DayCache::default(),
        }
    }

    /// Appends the line for `name`, CRLF-terminated.
    pub fn write(&mut self, out: &mut Vec<u8>, name: &str, meta: &Metadata) {
        out.push(match meta.kind {
            FileKind::Dir => b'd',
            FileKind::File => b'-',
            FileKind::Symlink => b'l',
        });
        for shift in [6, 3, 0] {
            out.extend_from_slice(RWX[((meta.mode >> shift) & 0o7) as usize]);
        }
        out.extend_from_slice(b" 1 ftp ftp ");
        push_number(out, meta.size, 12, b' ');
        out.push(b' ');
        self.push_date(out, meta.modified.unwrap_or(SystemTime::UNIX_EPOCH));
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// `Nov 24 08:00` for a recent time, `Feb 15  2023` for an older (or
    /// future) one; a time that cannot be shown shows as the epoch.
    fn push_date(&mut self, out: &mut Vec<u8>, modified: SystemTime) {
        let recent = match self.now.duration_since(modified) {
            Ok(age) => age < RECENT,
            Err(ahead) => ahead.duration() < Duration::from_secs(3600),
        };
        let (date, second) = self
            .days
            .split(modified)
            .unwrap_or((OffsetDateTime::UNIX_EPOCH.date(), 0));
        out.extend_from_slice(MONTHS[usize::from(u8::from(date.month())) - 1]);
        out.push(b' ');
        push_number(out, u64::from(date.day()), 2, b' ');
        out.push(b' ');
        if recent {
            push_two_digits(out, second / 3600);
            out.push(b':');
            push_two_digits(out, second / 60 % 60);
        } else {
            // `DayCache` keeps years within 0..=9999.
            push_number(out, date.year().unsigned_abs().into(), 5, b' ');
        }
    }
}

/// One `LIST` line, CRLF-terminated (see [`ListFormatter`]).
pub fn list_line(name: &str, meta: &Metadata, now: SystemTime) -> String {
    let mut out = Vec::with_capacity(64 + name.len());
    ListFormatter::new(now).write(&mut out, name, meta);
    into_text(out)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::test_support::{at, meta};
    use super::super::{facts_line, FactSet, FactsFormatter};
    use super::*;
    use crate::auth::Access;

    #[test]
    fn recent_files_show_the_time_old_ones_the_year() {
        let now = at("20261124080000");
        let recent = list_line(
            "a.txt",
            &meta(FileKind::File, 42, at("20261101093000")),
            now,
        );
        assert_eq!(
            recent,
            "-rw-r--r-- 1 ftp ftp           42 Nov  1 09:30 a.txt\r\n"
        );
        let old = list_line("pub", &meta(FileKind::Dir, 4096, at("20230215000000")), now);
        assert_eq!(
            old,
            "drwxr-xr-x 1 ftp ftp         4096 Feb 15  2023 pub\r\n"
        );
    }

    /// `line` for each of `metas`, each from a fresh formatter.
    fn fresh_lines(metas: &[Metadata], now: SystemTime) -> String {
        metas
            .iter()
            .enumerate()
            .map(|(i, m)| list_line(&format!("f{i}"), m, now))
            .collect()
    }

    #[test]
    fn a_reused_formatter_writes_what_fresh_ones_write() {
        let now = at("20261124080000");
        // Same minute, next minute, same minute but old, recent again,
        // the boundary of "recent", in the future, before the epoch, unknown.
        let times = [
            Some(at("20261101093000")),
            Some(at("20261101093059")),
            Some(at("20261101093100")),
            Some(at("20230215000000")),
            Some(at("20230215000030")),
            Some(at("20261101093101")),
            Some(now - RECENT),
            Some(now - RECENT + Duration::from_secs(1)),
            Some(now + Duration::from_secs(7200)),
            Some(SystemTime::UNIX_EPOCH - Duration::from_secs(86_400 * 400)),
            None,
            Some(at("20261101093000")),
        ];
        let metas: Vec<Metadata> = times
            .iter()
            .enumerate()
            .map(|(i, &modified)| Metadata {
                modified,
                ..meta(FileKind::File, i as u64 * 1000, now)
            })
            .collect();
        let mut format = ListFormatter::new(now);
        let mut reused = Vec::new();
        for (i, m) in metas.iter().enumerate() {
            format.write(&mut reused, &format!("f{i}"), m);
        }
        let reused = String::from_utf8(reused).unwrap();
        assert_eq!(reused, fresh_lines(&metas, now));
        assert!(reused.contains(" Nov 27  1968 f9\r\n"), "{reused}");
        assert!(reused.contains(" Jan  1  1970 f10\r\n"), "{reused}");

        let access = Access {
            readable: true,
            writable: true,
        };
        let mut facts = FactsFormatter::new(FactSet::default());
        let mut reused = Vec::new();
        let mut fresh = String::new();
        for (i, m) in metas.iter().enumerate() {
            facts.write(&mut reused, &format!("f{i}"), m, access);
            fresh.push_str(&facts_line(&format!("f{i}"), m, access, FactSet::default()));
        }
        assert_eq!(String::from_utf8(reused).unwrap(), fresh);
    }
}
