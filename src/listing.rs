//! Listing formats: `LIST` lines in `ls -l` style, `NLST` names, and RFC 3659
//! facts for `MLSD`/`MLST`, plus the `MDTM` timestamp form.
//!
//! Pure formatting: no I/O, and never a real path — only virtual names.
//! Listings write their lines into a reused buffer ([`ListFormatter`],
//! [`FactsFormatter`], [`LineChunks`]) so a line costs no allocation.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::auth::Access;
use crate::storage::{FileKind, Metadata};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// About six months: older (or future) times show the year instead of the time, as `ls` does.
const RECENT: Duration = Duration::from_secs(182 * 24 * 3600);

/// `rwx` for each value of a 3-bit permission group.
const RWX: [&str; 8] = ["---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"];

/// `time` as a UTC calendar date; `None` outside the years 0000–9999 that
/// the formats (and the `time` crate) can show.
fn calendar(time: SystemTime) -> Option<OffsetDateTime> {
    let since = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => time::Duration::try_from(after).ok()?,
        Err(before) => -time::Duration::try_from(before.duration()).ok()?,
    };
    OffsetDateTime::UNIX_EPOCH
        .checked_add(since)
        .filter(|t| t.year() >= 0)
}

/// Whole seconds since the epoch, the key of the formatters' caches
/// (`None` before the epoch: those are formatted without caching).
fn unix_seconds(time: SystemTime) -> Option<u64> {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Appends `n` in decimal, padded on the left with `pad` to `width` characters.
fn push_number(out: &mut String, n: u64, width: usize, pad: char) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for _ in digits.len() - start..width {
        out.push(pad);
    }
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// Writes `LIST` lines (`ls -l` style) into a caller's buffer, e.g.
/// `-rw-r--r-- 1 ftp ftp         1234 Nov 24 08:00 notes.txt`.
///
/// Keeps the date column of the previous line: the entries of a directory
/// often share their minute, and the calendar arithmetic behind a date
/// costs more than the rest of the line.
#[derive(Debug)]
pub struct ListFormatter {
    now: SystemTime,
    /// The minute since the epoch and the recency `date` was made for.
    date_key: Option<(u64, bool)>,
    date: String,
}

impl ListFormatter {
    /// A formatter that judges recency against `now`.
    pub fn new(now: SystemTime) -> Self {
        ListFormatter {
            now,
            date_key: None,
            date: String::with_capacity(16),
        }
    }

    /// Appends the line for `name`, CRLF-terminated.
    pub fn write(&mut self, out: &mut String, name: &str, meta: &Metadata) {
        out.push(match meta.kind {
            FileKind::Dir => 'd',
            FileKind::File => '-',
            FileKind::Symlink => 'l',
        });
        for shift in [6, 3, 0] {
            out.push_str(RWX[((meta.mode >> shift) & 0o7) as usize]);
        }
        out.push_str(" 1 ftp ftp ");
        push_number(out, meta.size, 12, ' ');
        out.push(' ');
        out.push_str(self.date(meta.modified.unwrap_or(SystemTime::UNIX_EPOCH)));
        out.push(' ');
        out.push_str(name);
        out.push_str("\r\n");
    }

    /// `Nov 24 08:00` for a recent time, `Feb 15  2023` for an older (or future) one.
    fn date(&mut self, modified: SystemTime) -> &str {
        let recent = match self.now.duration_since(modified) {
            Ok(age) => age < RECENT,
            Err(ahead) => ahead.duration() < Duration::from_secs(3600),
        };
        let key = unix_seconds(modified).map(|s| (s / 60, recent));
        if key.is_none() || key != self.date_key {
            self.date.clear();
            let date = calendar(modified).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            self.date
                .push_str(MONTHS[usize::from(u8::from(date.month())) - 1]);
            self.date.push(' ');
            push_number(&mut self.date, u64::from(date.day()), 2, ' ');
            self.date.push(' ');
            if recent {
                push_number(&mut self.date, u64::from(date.hour()), 2, '0');
                self.date.push(':');
                push_number(&mut self.date, u64::from(date.minute()), 2, '0');
            } else {
                // `calendar` keeps years within 0..=9999.
                push_number(&mut self.date, date.year().unsigned_abs().into(), 5, ' ');
            }
            self.date_key = key;
        }
        &self.date
    }
}

/// One `LIST` line, CRLF-terminated (see [`ListFormatter`]).
pub fn list_line(name: &str, meta: &Metadata, now: SystemTime) -> String {
    let mut out = String::with_capacity(64 + name.len());
    ListFormatter::new(now).write(&mut out, name, meta);
    out
}

/// Appends `time` as `YYYYMMDDHHMMSS` in UTC; `false` (nothing appended)
/// for a time outside the years 0000–9999.
fn push_timestamp(out: &mut String, time: SystemTime) -> bool {
    let Some(t) = calendar(time) else {
        return false;
    };
    push_number(out, t.year().unsigned_abs().into(), 4, '0');
    for part in [
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    ] {
        push_number(out, part.into(), 2, '0');
    }
    true
}

/// `YYYYMMDDHHMMSS` in UTC (RFC 3659 §2.3), as `MDTM` and the `modify` fact
/// use it; a time outside the years 0000–9999 shows as the epoch.
pub fn timestamp(time: SystemTime) -> String {
    let mut out = String::with_capacity(14);
    if !push_timestamp(&mut out, time) {
        push_timestamp(&mut out, SystemTime::UNIX_EPOCH);
    }
    out
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

/// Indices into [`FACTS`].
const TYPE: usize = 0;
const SIZE: usize = 1;
const MODIFY: usize = 2;
const PERM: usize = 3;
const UNIQUE: usize = 4;
const UNIX_MODE: usize = 5;

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
}

/// Writes RFC 3659 facts lines (`fact=value;` repeated, a space, the name)
/// into a caller's buffer, for `MLSD` and `MLST`.
///
/// Keeps the `modify` value of the previous line, for the same reason as
/// [`ListFormatter`] keeps its date.
#[derive(Debug)]
pub struct FactsFormatter {
    facts: FactSet,
    /// The second since the epoch `modify` was made for.
    modify_key: Option<u64>,
    modify: String,
}

impl FactsFormatter {
    /// A formatter of the facts in `facts`.
    pub fn new(facts: FactSet) -> Self {
        FactsFormatter {
            facts,
            modify_key: None,
            modify: String::with_capacity(14),
        }
    }

    /// Appends the facts of `name`, without a line ending.
    pub fn write(&mut self, out: &mut String, name: &str, meta: &Metadata, access: Access) {
        let on = self.facts.0;
        if on[TYPE] {
            // RFC 3659 §7.7.4: MLST of a directory says `type=dir`; this server
            // lists no `cdir`/`pdir` entries in MLSD.
            out.push_str(match meta.kind {
                FileKind::Dir => "type=dir;",
                FileKind::File => "type=file;",
                FileKind::Symlink => "type=OS.unix=symlink;",
            });
        }
        if on[SIZE] {
            out.push_str("size=");
            push_number(out, meta.size, 0, ' ');
            out.push(';');
        }
        if on[MODIFY] {
            if let Some(modify) = meta.modified.and_then(|t| self.modify(t)) {
                out.push_str("modify=");
                out.push_str(modify);
                out.push(';');
            }
        }
        if on[PERM] {
            // RFC 3659 §7.5.5
            out.push_str("perm=");
            out.push_str(match (meta.kind, access.readable, access.writable) {
                (FileKind::Dir, true, true) => "elcmpdf",
                (FileKind::Dir, true, false) => "el",
                (FileKind::Dir, false, true) => "cmpdf",
                (_, true, true) => "rwadf",
                (_, true, false) => "r",
                (_, false, true) => "wadf",
                (_, false, false) => "",
            });
            out.push(';');
        }
        if on[UNIQUE] {
            if let Some(unique) = &meta.unique {
                out.push_str("unique=");
                out.push_str(unique);
                out.push(';');
            }
        }
        if on[UNIX_MODE] {
            out.push_str("UNIX.mode=");
            for shift in [9, 6, 3, 0] {
                out.push(char::from(b'0' + ((meta.mode >> shift) & 0o7) as u8));
            }
            out.push(';');
        }
        out.push(' ');
        out.push_str(name);
    }

    /// The `modify` value of `time`, or `None` when it cannot be shown.
    fn modify(&mut self, time: SystemTime) -> Option<&str> {
        let key = unix_seconds(time);
        if key.is_none() || key != self.modify_key {
            self.modify.clear();
            self.modify_key = None;
            if !push_timestamp(&mut self.modify, time) {
                return None;
            }
            self.modify_key = key;
        }
        Some(&self.modify)
    }
}

/// The facts of one object, `fact=value;` repeated, followed by a space and `name`.
pub fn facts_line(name: &str, meta: &Metadata, access: Access, facts: FactSet) -> String {
    let mut out = String::with_capacity(96 + name.len());
    FactsFormatter::new(facts).write(&mut out, name, meta, access);
    out
}

/// About how many bytes of lines [`LineChunks`] gathers before it yields them.
pub const CHUNK_SIZE: usize = 16 * 1024;

/// Listing lines as a stream of text chunks: `write_line` appends the line
/// (or lines) of each item of `items` to the current chunk, which goes out
/// once it holds [`CHUNK_SIZE`] bytes or no further item is ready yet, so
/// lines are neither sent one by one nor held back while the storage is slow.
/// An error from `items` ends the stream, dropping the unsent chunk.
pub struct LineChunks<S, F> {
    items: S,
    write_line: F,
    chunk: String,
    /// `items` has ended (or failed) and must not be polled again.
    done: bool,
}

impl<S, F> LineChunks<S, F> {
    /// Chunks of the lines `write_line` makes of `items`.
    pub fn new(items: S, write_line: F) -> Self {
        LineChunks {
            items,
            write_line,
            chunk: String::new(),
            done: false,
        }
    }
}

impl<S, F, T, E> Stream for LineChunks<S, F>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    F: FnMut(T, &mut String) + Unpin,
{
    type Item = Result<String, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.done && this.chunk.len() < CHUNK_SIZE {
            match this.items.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(item))) => {
                    if this.chunk.capacity() == 0 {
                        this.chunk.reserve(CHUNK_SIZE + 512);
                    }
                    (this.write_line)(item, &mut this.chunk);
                }
                Poll::Ready(Some(Err(err))) => {
                    this.done = true;
                    this.chunk.clear();
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => this.done = true,
                Poll::Pending if this.chunk.is_empty() => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        if this.chunk.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(std::mem::take(&mut this.chunk))))
    }
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
        let mut reused = String::new();
        for (i, m) in metas.iter().enumerate() {
            format.write(&mut reused, &format!("f{i}"), m);
        }
        assert_eq!(reused, fresh_lines(&metas, now));
        assert!(reused.contains(" Nov 27  1968 f9\r\n"), "{reused}");
        assert!(reused.contains(" Jan  1  1970 f10\r\n"), "{reused}");

        let access = Access {
            readable: true,
            writable: true,
        };
        let mut facts = FactsFormatter::new(FactSet::default());
        let mut reused = String::new();
        let mut fresh = String::new();
        for (i, m) in metas.iter().enumerate() {
            facts.write(&mut reused, &format!("f{i}"), m, access);
            fresh.push_str(&facts_line(&format!("f{i}"), m, access, FactSet::default()));
        }
        assert_eq!(reused, fresh);
    }

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

    #[test]
    fn line_chunks_carry_every_line_in_order() {
        use futures::executor::block_on;
        use futures::stream::{self, TryStreamExt};

        let items: Vec<Result<usize, ()>> = (0..5000).map(Ok).collect();
        let lines = LineChunks::new(stream::iter(items), |n: usize, out: &mut String| {
            out.push_str(&format!("line {n}\r\n"));
        });
        let chunks: Vec<String> = block_on(lines.try_collect()).unwrap();
        assert!(chunks.len() > 1, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < CHUNK_SIZE + 16));
        let expected: String = (0..5000).map(|n| format!("line {n}\r\n")).collect();
        assert_eq!(chunks.concat(), expected);

        // An error ends the stream; nothing is polled after it.
        let failing = stream::iter(vec![Ok(1), Err("disk"), Ok(2)]);
        let mut lines = LineChunks::new(failing, |n: usize, out: &mut String| {
            out.push_str(&n.to_string());
        });
        assert_eq!(block_on(lines.next()), Some(Err("disk")));
        assert_eq!(block_on(lines.next()), None);
        assert_eq!(block_on(lines.next()), None);
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
