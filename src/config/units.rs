//! Human-friendly units in the config file: durations, byte sizes, port ranges.
//!
//! Each is a newtype parsed once, here, from the text an admin wrote; the
//! rest of the crate sees only `Duration`, `u64` and `RangeInclusive<u16>`.
//! Parsers return a message meant for a `file:line: key: message` line and
//! never judge whether a value is sensible for its key (that is `validate`'s job).

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

/// A duration such as `30s`, `5m`, `1h`, `500ms` or `2h30m`; a bare integer counts seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HumanDuration(pub(super) Duration);

/// Units accepted in a duration, longest spelling first so `ms` is not read as `m`.
const DURATION_UNITS: [(&str, u64); 4] = [("ms", 1), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)];

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let invalid = |why: &str| {
            format!("invalid duration {text:?}: {why} (examples: \"30s\", \"5m\", \"2h30m\", \"500ms\")")
        };
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let seconds = text.parse::<u64>().map_err(|_| invalid("too large"))?;
            return Ok(HumanDuration(Duration::from_secs(seconds)));
        }
        let mut millis: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid("expected a number before each unit"));
            }
            let number = rest[..digits]
                .parse::<u64>()
                .map_err(|_| invalid("too large"))?;
            rest = &rest[digits..];
            let (unit, scale) = DURATION_UNITS
                .iter()
                .find(|(unit, _)| rest.starts_with(unit))
                .ok_or_else(|| invalid("each number needs a unit: ms, s, m or h"))?;
            rest = &rest[unit.len()..];
            millis = number
                .checked_mul(*scale)
                .and_then(|part| millis.checked_add(part))
                .ok_or_else(|| invalid("too large"))?;
        }
        Ok(HumanDuration(Duration::from_millis(millis)))
    }
}

impl fmt::Display for HumanDuration {
    /// In the largest unit that shows it exactly (`168h`, `90s`, `250ms`), so
    /// a message can quote a bound the admin can write back as it is. Parsed
    /// durations are whole milliseconds; anything finer is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        let (unit, scale) = DURATION_UNITS
            .iter()
            .filter(|(_, scale)| millis.is_multiple_of(u128::from(*scale)))
            .max_by_key(|(_, scale)| *scale)
            .unwrap_or(&("ms", 1));
        write!(f, "{}{unit}", millis / u128::from(*scale))
    }
}

/// A number of bytes such as `128KiB`, `1MiB`, `64KB` (decimal) or `4096`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ByteSize(pub(super) u64);

impl ByteSize {
    /// One kibibyte.
    pub(super) const KIB: ByteSize = ByteSize(1024);
    /// One mebibyte.
    pub(super) const MIB: ByteSize = ByteSize(1024 * 1024);
}

/// Size units: binary (`KiB` = 1024) and decimal (`KB` = 1000), as written on the box.
const SIZE_UNITS: [(&str, u64); 10] = [
    ("B", 1),
    ("KB", 1_000),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let invalid = |why: &str| {
            format!(
                "invalid size {text:?}: {why} (examples: \"4096\", \"64KB\", \"128KiB\", \"1MiB\")"
            )
        };
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid(
                "expected a whole number of bytes, optionally with a unit",
            ));
        }
        let number = text[..digits]
            .parse::<u64>()
            .map_err(|_| invalid("too large"))?;
        let unit = text[digits..].trim_start();
        let scale = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(|| {
                    invalid("unit must be one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB")
                })?
        };
        number
            .checked_mul(scale)
            .map(ByteSize)
            .ok_or_else(|| invalid("too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        const GIB: u64 = 1 << 30;
        if bytes >= GIB && bytes.is_multiple_of(GIB) {
            write!(f, "{}GiB", bytes / GIB)
        } else if bytes >= Self::MIB.0 && bytes.is_multiple_of(Self::MIB.0) {
            write!(f, "{}MiB", bytes / Self::MIB.0)
        } else if bytes >= Self::KIB.0 && bytes.is_multiple_of(Self::KIB.0) {
            write!(f, "{}KiB", bytes / Self::KIB.0)
        } else {
            write!(f, "{bytes} bytes")
        }
    }
}

/// Passive data ports: `"50000-50100"` or a single `"50000"`, all at or above 1024.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PortRange(pub(super) RangeInclusive<u16>);

/// Ports below this need privileges and belong to well-known services.
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let port = |part: &str| {
            part.trim().parse::<u16>().map_err(|_| {
                format!("invalid port range {text:?}: {part:?} is not a port number (1024-65535); write \"50000-50100\" or \"50000\"")
            })
        };
        let (start, end) = match text.split_once('-') {
            Some((start, end)) => (port(start)?, port(end)?),
            None => {
                let single = port(text)?;
                (single, single)
            }
        };
        if start > end {
            return Err(format!(
                "invalid port range {text:?}: the first port is above the last"
            ));
        }
        if start < FIRST_UNPRIVILEGED_PORT {
            return Err(format!(
                "invalid port range {text:?}: ports below {FIRST_UNPRIVILEGED_PORT} are refused (they need privileges and belong to well-known services)"
            ));
        }
        Ok(PortRange(start..=end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(text: &str) -> Result<Duration, String> {
        text.parse::<HumanDuration>().map(|d| d.0)
    }

    fn size(text: &str) -> Result<u64, String> {
        text.parse::<ByteSize>().map(|s| s.0)
    }

    #[test]
    fn durations_accept_units_combinations_and_bare_seconds() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2h30m"), Ok(Duration::from_secs(9000)));
        assert_eq!(duration("1m30s250ms"), Ok(Duration::from_millis(90_250)));
        assert_eq!(duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(duration(" 10s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn durations_refuse_what_they_cannot_read() {
        for bad in [
            "",
            "s",
            "5x",
            "1.5s",
            "-3s",
            "5 m",
            "m5",
            "99999999999999999999s",
        ] {
            let err = duration(bad).expect_err(bad);
            assert!(err.starts_with("invalid duration"), "{err}");
        }
        assert!(duration("18446744073709551615h").is_err());
    }

    #[test]
    fn durations_display_in_the_largest_exact_unit_and_read_back() {
        for (shown, secs) in [("168h", 7 * 86_400), ("90s", 90), ("2m", 120), ("0s", 0)] {
            let duration = HumanDuration(Duration::from_secs(secs));
            assert_eq!(duration.to_string(), shown);
            assert_eq!(shown.parse(), Ok(duration));
        }
        assert_eq!(
            HumanDuration(Duration::from_millis(1_250)).to_string(),
            "1250ms"
        );
    }

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("128KiB"), Ok(128 * 1024));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("1GiB"), Ok(1 << 30));
        assert_eq!(size("64KB"), Ok(64_000));
        assert_eq!(size("64kB"), Ok(64_000));
        assert_eq!(size("2 MB"), Ok(2_000_000));
        assert_eq!(size("10B"), Ok(10));
    }

    #[test]
    fn sizes_refuse_unknown_units_and_fractions() {
        for bad in [
            "",
            "KiB",
            "12XB",
            "1.5MiB",
            "-1",
            "12 kib",
            "99999999999TiB",
        ] {
            let err = size(bad).expect_err(bad);
            assert!(err.starts_with("invalid size"), "{err}");
        }
    }

    #[test]
    fn sizes_display_in_the_largest_exact_binary_unit() {
        assert_eq!(ByteSize(4096).to_string(), "4KiB");
        assert_eq!(ByteSize(16 << 20).to_string(), "16MiB");
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 bytes");
    }

    #[test]
    fn port_ranges_accept_a_range_or_a_single_port() {
        assert_eq!("50000-50100".parse(), Ok(PortRange(50000..=50100)));
        assert_eq!("50000 - 50100".parse(), Ok(PortRange(50000..=50100)));
        assert_eq!("50000".parse(), Ok(PortRange(50000..=50000)));
        assert_eq!("1024-65535".parse(), Ok(PortRange(1024..=65535)));
    }

    #[test]
    fn port_ranges_refuse_privileged_reversed_and_malformed_ports() {
        let err = |t: &str| t.parse::<PortRange>().expect_err(t);
        assert!(err("21-100").contains("below 1024"));
        assert!(err("80").contains("below 1024"));
        assert!(err("50100-50000").contains("above the last"));
        assert!(err("50000-70000").contains("not a port number"));
        assert!(err("abc").contains("not a port number"));
        assert!(err("").contains("not a port number"));
    }
}
