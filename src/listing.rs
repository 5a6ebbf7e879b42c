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

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// About six months: older (or future) times show the year instead of the time, as `ls` does.
const RECENT: Duration = Duration::from_secs(182 * 24 * 3600);

/// `rwx` for each value of a 3-bit permission group.
const RWX: [&[u8; 3]; 8] = [
    b"---", b"--x", b"-w-", b"-wx", b"r--", b"r-x", b"rw-", b"rwx",
];

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

const SECONDS_PER_DAY: u64 = 86_400;

/// Splits times into a UTC date and the seconds into that day, keeping the
/// date of the last time: working out a calendar date costs more than the
/// rest of a listing line, and the entries of a directory often share theirs.
#[derive(Debug, Default)]
struct DayCache {
    /// Days since the epoch, and that day's date.
    last: Option<(u64, Date)>,
}

impl DayCache {
    /// `time` as its date and the seconds into that day; `None` outside the
    /// years 0000–9999.
    fn split(&mut self, time: SystemTime) -> Option<(Date, u32)> {
        let Ok(since) = time.duration_since(SystemTime::UNIX_EPOCH) else {
            // Before the epoch: rare enough to go without the cache.
            let t = calendar(time)?;
            let (h, m, s) = t.to_hms();
            return Some((
                t.date(),
                u32::from(h) * 3600 + u32::from(m) * 60 + u32::from(s),
            ));
        };
        let (day, second) = (
            since.as_secs() / SECONDS_PER_DAY,
            (since.as_secs() % SECONDS_PER_DAY) as u32,
        );
        match self.last {
            Some((cached, date)) if cached == day => Some((date, second)),
            _ => {
                let date = calendar(time)?.date();
                self.last = Some((day, date));
                Some((date, second))
            }
        }
    }
}

/// Appends `n` in decimal, padded on the left with `pad` to `width`
/// bytes (at most [`NUMBER_FIELD`]).
fn push_number(out: &mut Vec<u8>, n: u64, width: usize, pad: u8) {
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
fn push_two_digits(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// The widest field [`push_number`] writes: every digit of a `u64`, or 24 of padding.
const NUMBER_FIELD: usize = 24;

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

/// Lines the formatters wrote, as text: they write only `&str` and ASCII.
fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// Appends `time` as `YYYYMMDDHHMMSS` in UTC; `false` (nothing appended)
/// for a time outside the years 0000–9999.
fn push_timestamp(out: &mut Vec<u8>, days: &mut DayCache, time: SystemTime) -> bool {
    let Some((date, second)) = days.split(time) else {
        return false;
    };
    push_number(out, date.year().unsigned_abs().into(), 4, b'0');
    push_two_digits(out, u32::from(u8::from(date.month())));
    push_two_digits(out, u32::from(date.day()));
    push_two_digits(out, second / 3600);
    push_two_digits(out, second / 60 % 60);
    push_two_digits(out, second % 60);
    true
}

/// `YYYYMMDDHHMMSS` in UTC (RFC 3659 §2.3), as `MDTM` and the `modify` fact
/// use it; a time outside the years 0000–9999 shows as the epoch.
pub fn timestamp(time: SystemTime) -> String {
    let mut out = Vec::with_capacity(14);
    let mut days = DayCache::default();
    if !push_timestamp(&mut out, &mut days, time) {
        push_timestamp(&mut out, &mut days, SystemTime::UNIX_EPOCH);
    }
    into_text(out)
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
/// Keeps the calendar date of the previous line (see [`DayCache`]).
#[derive(Debug)]
pub struct FactsFormatter {
    facts: FactSet,
    days: DayCache,
}

impl FactsFormatter {
    /// A formatter of the facts in `facts`.
    pub fn new(facts: FactSet) -> Self {
        FactsFormatter {
            facts,
            days: DayCache::default(),
        }
    }

    /// Appends the facts of `name`, without a line ending.
    pub fn write(&mut self, out: &mut Vec<u8>, name: &str, meta: &Metadata, access: Access) {
        let on = self.facts.0;
        if on[TYPE] {
            // RFC 3659 §7.7.4: MLST of a directory says `type=dir`; this server
            // lists no `cdir`/`pdir` entries in MLSD.
            out.extend_from_slice(match meta.kind {
                FileKind::Dir => b"type=dir;",
                FileKind::File => b"type=file;",
                FileKind::Symlink => b"type=OS.unix=symlink;",
            });
        }
        if on[SIZE] {
            out.extend_from_slice(b"size=");
            push_number(out, meta.size, 0, b' ');
            out.push(b';');
        }
        if on[MODIFY] {
            if let Some(modified) = meta.modified {
                let start = out.len();
                out.extend_from_slice(b"modify=");
                if push_timestamp(out, &mut self.days, modified) {
                    out.push(b';');
                } else {
                    // A time that cannot be shown is left out, like an unknown one.
                    out.truncate(start);
                }
            }
        }
        if on[PERM] {
            // RFC 3659 §7.5.5
            out.extend_from_slice(b"perm=");
            out.extend_from_slice(match (meta.kind, access.readable, access.writable) {
                (FileKind::Dir, true, true) => b"elcmpdf",
                (FileKind::Dir, true, false) => b"el",
                (FileKind::Dir, false, true) => b"cmpdf",
                (_, true, true) => b"rwadf",
                (_, true, false) => b"r",
                (_, false, true) => b"wadf",
                (_, false, false) => b"",
            });
            out.push(b';');
        }
        if on[UNIQUE] {
            if let Some(unique) = &meta.unique {
                out.extend_from_slice(b"unique=");
                out.extend_from_slice(unique.as_bytes());
                out.push(b';');
            }
        }
        if on[UNIX_MODE] {
            out.extend_from_slice(b"UNIX.mode=");
            for shift in [9, 6, 3, 0] {
                out.push(b'0' + ((meta.mode >> shift) & 0o7) as u8);
            }
            out.push(b';');
        }
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
    }
}

/// The facts of one object, `fact=value;` repeated, followed by a space and `name`.
pub fn facts_line(name: &str, meta: &Metadata, access: Access, facts: FactSet) -> String {
    let mut out = Vec::with_capacity(96 + name.len());
    FactsFormatter::new(facts).write(&mut out, name, meta, access);
    into_text(out)
}

/// About how many bytes of lines [`LineChunks`] gathers before it yields them.
pub const CHUNK_SIZE: usize = 16 * 1024;

/// Listing lines as a stream of byte chunks: `write_line` appends the line
/// (or lines) of each item of `items` to the current chunk, which goes out
/// once it holds [`CHUNK_SIZE`] bytes or no further item is ready yet, so
/// lines are neither sent one by one nor held back while the storage is slow.
/// An error from `items` ends the stream, dropping the unsent chunk.
pub struct LineChunks<S, F> {
    items: S,
    write_line: F,
    chunk: Vec<u8>,
    /// `items` has ended (or failed) and must not be polled again.
    done: bool,
}

impl<S, F> LineChunks<S, F> {
    /// Chunks of the lines `write_line` makes of `items`.
    pub fn new(items: S, write_line: F) -> Self {
        LineChunks {
            items,
            write_line,
            chunk: Vec::new(),
            done: false,
        }
    }
}

impl<S, F, T, E> Stream for LineChunks<S, F>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    F: FnMut(T, &mut Vec<u8>) + Unpin,
{
    type Item = Result<Vec<u8>, E>;

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

    #[test]
    fn the_day_cache_agrees_with_the_calendar() {
        let mut days = DayCache::default();
        let start = at("20231231200000");
        // Steps of 7 h 13 min 7 s cross midnights and repeat days, both ways.
        for i in (0..400).chain((0..50).rev()) {
            let t = start + Duration::from_secs(i * 25_987);
            let full = calendar(t).unwrap();
            let (h, m, sec) = full.to_hms();
            let second = u32::from(h) * 3600 + u32::from(m) * 60 + u32::from(sec);
            assert_eq!(days.split(t), Some((full.date(), second)), "{full}");
        }
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
        let lines = LineChunks::new(stream::iter(items), |n: usize, out: &mut Vec<u8>| {
            out.extend_from_slice(format!("line {n}\r\n").as_bytes());
        });
        let chunks: Vec<Vec<u8>> = block_on(lines.try_collect()).unwrap();
        assert!(chunks.len() > 1, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < CHUNK_SIZE + 16));
        let expected: String = (0..5000).map(|n| format!("line {n}\r\n")).collect();
        assert_eq!(chunks.concat(), expected.as_bytes());

        // An error ends the stream; nothing is polled after it.
        let failing = stream::iter(vec![Ok(1), Err("disk"), Ok(2)]);
        let mut lines = LineChunks::new(failing, |n: usize, out: &mut Vec<u8>| {
            out.extend_from_slice(n.to_string().as_bytes());
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
