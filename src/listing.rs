//! Listing formats: `LIST` lines in `ls -l` style, `NLST` names, and RFC 3659
//! facts for `MLSD`/`MLST`, plus the `MDTM` timestamp form.
//!
//! Pure formatting: no I/O, and never a real path — only virtual names.

use std::time::{Duration, SystemTime};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::auth::Access;
use crate::storage::{FileKind, Metadata};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// About six months: older (or future) times show the year instead of the time, as `ls` does.
const RECENT: Duration = Duration::from_secs(182 * 24 * 3600);

/// One `LIST` line, CRLF-terminated, e.g.
/// `-rw-r--r-- 1 ftp ftp 1234 Nov 24 08:00 notes.txt`.
pub fn list_line(name: &str, meta: &Metadata, now: SystemTime) -> String {
    let kind = match meta.kind {
        FileKind::Dir => 'd',
        FileKind::File => '-',
        FileKind::Symlink => 'l',
    };
    let mut mode = String::with_capacity(10);
    mode.push(kind);
    for shift in [6, 3, 0] {
        let bits = (meta.mode >> shift) & 0o7;
        mode.push(if bits & 4 != 0 { 'r' } else { '-' });
        mode.push(if bits & 2 != 0 { 'w' } else { '-' });
        mode.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let modified = meta.modified.unwrap_or(SystemTime::UNIX_EPOCH);
    let date = OffsetDateTime::from(modified);
    let month = MONTHS[usize::from(u8::from(date.month())) - 1];
    let recent = match now.duration_since(modified) {
        Ok(age) => age < RECENT,
        Err(ahead) => ahead.duration() < Duration::from_secs(3600),
    };
    let when = if recent {
        format!(
            "{month} {:>2} {:02}:{:02}",
            date.day(),
            date.hour(),
            date.minute()
        )
    } else {
        format!("{month} {:>2} {:>5}", date.day(), date.year())
    };
    format!("{mode} 1 ftp ftp {:>12} {when} {name}\r\n", meta.size)
}

/// `YYYYMMDDHHMMSS` in UTC (RFC 3659 §2.3), as `MDTM` and the `modify` fact use it.
pub fn timestamp(time: SystemTime) -> String {
    let t = OffsetDateTime::from(time);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses `YYYYMMDDHHMMSS` (fractional seconds allowed and ignored) in UTC.
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let digits = text.split('.').next()?;
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| digits[range].parse::<u32>().ok();
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, u8::try_from(num(6..8)?).ok()?).ok()?;
    let time = Time::from_hms(
        u8::try_from(num(8..10)?).ok()?,
        u8::try_from(num(10..12)?).ok()?,
        u8::try_from(num(12..14)?).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc().into())
}

/// Whether a name is a wildcard pattern (`*` or `?`), as `mget` and `mdelete` send.
pub fn has_wildcard(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// Shell-style match of one name: `*` is any run of characters, `?` any one.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and which name position it is trying to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The RFC 3659 facts this server knows, in the order it lists them.
pub const FACTS: [&str; 6] = ["type", "size", "modify", "perm", "unique", "UNIX.mode"];

/// Which facts `MLSD`/`MLST` include (`OPTS MLST` changes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactSet([bool; FACTS.len()]);

impl Default for FactSet {
    fn default() -> Self {
        FactSet([true; FACTS.len()])
    }
}

impl FactSet {
    /// Selects the known facts named in `list` (`type;size;`), ignoring unknown ones (RFC 3659 §7.9).
    pub fn select(list: &str) -> Self {
        let wanted: Vec<&str> = list.split(';').map(str::trim).collect();
        let mut set = [false; FACTS.len()];
        for (i, fact) in FACTS.iter().enumerate() {
            set[i] = wanted.iter().any(|w| w.eq_ignore_ascii_case(fact));
        }
        FactSet(set)
    }

    /// `type;size;` form of the selected facts, for the `OPTS MLST` reply.
    pub fn names(&self) -> String {
        FACTS
            .iter()
            .zip(self.0)
            .filter(|(_, on)| *on)
            .map(|(f, _)| format!("{f};"))
            .collect()
    }

    /// The FEAT line: every fact, the selected ones starred.
    pub fn feature_line(&self) -> String {
        let facts: String = FACTS
            .iter()
            .zip(self.0)
            .map(|(f, on)| format!("{f}{};", if on { "*" } else { "" }))
            .collect();
        format!("MLST {facts}")
    }

    fn has(&self, fact: &str) -> bool {
        FACTS.iter().zip(self.0).any(|(f, on)| on && *f == fact)
    }
}

/// The facts of one object, `fact=value;` repeated, followed by a space and `name`.
pub fn facts_line(name: &str, meta: &Metadata, access: Access, facts: FactSet) -> String {
    let mut out = String::with_capacity(96 + name.len());
    if facts.has("type") {
        // RFC 3659 §7.7.4: MLST of a directory says `type=dir`; this server
        // lists no `cdir`/`pdir` entries in MLSD.
        let kind = match meta.kind {
            FileKind::Dir => "dir",
            FileKind::File => "file",
            FileKind::Symlink => "OS.unix=symlink",
        };
        out.push_str(&format!("type={kind};"));
    }
    if facts.has("size") {
        out.push_str(&format!("size={};", meta.size));
    }
    if facts.has("modify") {
        if let Some(modified) = meta.modified {
            out.push_str(&format!("modify={};", timestamp(modified)));
        }
    }
    if facts.has("perm") {
        // RFC 3659 §7.5.5
        let perm = match (meta.kind, access.readable, access.writable) {
            (FileKind::Dir, r, w) => format!(
                "{}{}",
                if r { "el" } else { "" },
                if w { "cmpdf" } else { "" }
            ),
            (_, r, w) => format!(
                "{}{}",
                if r { "r" } else { "" },
                if w { "wadf" } else { "" }
            ),
        };
        out.push_str(&format!("perm={perm};"));
    }
    if facts.has("unique") {
        if let Some(unique) = &meta.unique {
            out.push_str(&format!("unique={unique};"));
        }
    }
    if facts.has("UNIX.mode") {
        out.push_str(&format!("UNIX.mode={:04o};", meta.mode & 0o7777));
    }
    out.push(' ');
    out.push_str(name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: FileKind, size: u64, modified: SystemTime) -> Metadata {
        Metadata {
            kind,
            size,
            modified: Some(modified),
            mode: if kind == FileKind::Dir { 0o755 } else { 0o644 },
            unique: Some("1g2".into()),
        }
    }

    fn at(text: &str) -> SystemTime {
        parse_timestamp(text).unwrap()
    }

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

    #[test]
    fn wildcards_match_like_a_shell() {
        assert!(wildcard_match("*.txt", "a.txt"));
        assert!(wildcard_match("*.txt", ".txt"));
        assert!(!wildcard_match("*.txt", "a.txt.gz"));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(wildcard_match("*a*b*", "xxaxxbxx"));
        assert!(!wildcard_match("?", ""));
        assert!(wildcard_match("*", ""));
        assert!(has_wildcard("*.log") && !has_wildcard("plain"));
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(timestamp(at("20261124080102")), "20261124080102");
        assert_eq!(timestamp(at("19991231235959.123")), "19991231235959");
        assert!(parse_timestamp("2026112408010").is_none());
        assert!(parse_timestamp("20261324080102").is_none());
    }

    #[test]
    fn facts_follow_rfc_3659() {
        let access = Access {
            readable: true,
            writable: false,
        };
        let file = facts_line(
            "a",
            &meta(FileKind::File, 3, at("20261124080102")),
            access,
            FactSet::default(),
        );
        assert_eq!(
            file,
            "type=file;size=3;modify=20261124080102;perm=r;unique=1g2;UNIX.mode=0644; a"
        );
        let rw = Access {
            readable: true,
            writable: true,
        };
        let only = FactSet::select("type;perm;bogus;");
        let dir = facts_line(
            "/x",
            &meta(FileKind::Dir, 0, at("20261124080102")),
            rw,
            only,
        );
        assert_eq!(dir, "type=dir;perm=elcmpdf; /x");
        assert_eq!(only.names(), "type;perm;");
        assert!(only
            .feature_line()
            .starts_with("MLST type*;size;modify;perm*;"));
    }
}
