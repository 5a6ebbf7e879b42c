//! RFC 3659 facts for `MLSD` and `MLST`, and the fact set `OPTS MLST` selects.

use super::time_format::{push_timestamp, DayCache};
use super::{into_text, push_number};
use crate::auth::Access;
use crate::storage::{FileKind, Metadata};

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

#[cfg(test)]
mod tests {
    use super::super::test_support::{at, meta};
    use super::*;

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
