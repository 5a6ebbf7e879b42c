//! `YYYYMMDDHHMMSS` in UTC (RFC 3659 §2.3), as `MDTM`, `MFMT` and the
//! `modify` fact use it, and the calendar dates `LIST` lines show.

use std::time::SystemTime;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::{into_text, push_number, push_two_digits};

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
pub(super) struct DayCache {
    /// Days since the epoch, and that day's date.
    last: Option<(u64, Date)>,
}

impl DayCache {
    /// `time` as its date and the seconds into that day; `None` outside the
    /// years 0000–9999.
    pub(super) fn split(&mut self, time: SystemTime) -> Option<(Date, u32)> {
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

/// Appends `time` as `YYYYMMDDHHMMSS` in UTC; `false` (nothing appended)
/// for a time outside the years 0000–9999.
pub(super) fn push_timestamp(out: &mut Vec<u8>, days: &mut DayCache, time: SystemTime) -> bool {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::at;
    use super::*;

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
    fn timestamps_round_trip() {
        assert_eq!(timestamp(at("20261124080102")), "20261124080102");
        assert_eq!(timestamp(at("19991231235959.123")), "19991231235959");
        assert!(parse_timestamp("2026112408010").is_none());
        assert!(parse_timestamp("20261324080102").is_none());
    }
}
