//! The rooms of the library and the one way their imports go: each room
//! may use only rooms of a lower rank, so the module graph has no cycles.
//! docs/architecture.md draws the same table; the test below reads every
//! `crate::` path in the sources and fails on an arrow that points up or
//! sideways.

/// Rooms by rank, lowest first; a room may import any room of a lower rank.
const ROOMS: &[(&str, u8)] = &[
    ("path", 0),
    ("deadline", 0),
    ("address", 0),
    ("throttle", 0),
    ("tls", 0),
    ("proxy_protocol", 0),
    ("metrics", 0),
    ("transfer_log", 0),
    ("storage", 1),
    ("user_store", 1),
    ("hooks", 1),
    ("quota", 2),
    ("auth", 3),
    ("settings", 4),
    ("config", 5),
    ("limits", 5),
    ("listing", 5),
    ("data", 5),
    ("context", 6),
    ("reply", 6),
    ("database_users", 6),
    ("auth_hook", 6),
    ("session", 7),
    ("server", 8),
    ("metrics_endpoint", 9),
];

#[cfg(test)]
mod tests {
    use super::ROOMS;
    use std::path::Path;

    fn rank(room: &str) -> Option<u8> {
        ROOMS
            .iter()
            .find(|(name, _)| *name == room)
            .map(|&(_, r)| r)
    }

    /// The rooms a line of code names as `crate::room`, also inside
    /// `crate::{room::...}` groups; comments are skipped.
    fn named_rooms(line: &str) -> Vec<String> {
        let code = line.split("//").next().unwrap_or_default();
        let mut rooms = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let group = rest
                .strip_prefix('{')
                .map(|g| g.split('}').next().unwrap_or(g));
            let names: Vec<&str> = match group {
                Some(group) => group.split(',').map(str::trim).collect(),
                None => vec![rest],
            };
            for name in names {
                let room: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !room.is_empty() {
                    rooms.push(room);
                }
            }
        }
        rooms
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_import_goes_to_a_lower_room() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut wrong = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap();
            let room = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
            // The crate root and this table see every room; the binary's
            // modules use the library by its name.
            if ["lib", "rooms", "main", "cli", "supervisor", "user_command"].contains(&room) {
                continue;
            }
            let Some(own) = rank(room) else {
                wrong.push(format!("{room}: a room missing from ROOMS"));
                continue;
            };
            let text = std::fs::read_to_string(&file).unwrap();
            for (number, line) in text.lines().enumerate() {
                for named in named_rooms(line) {
                    if named == room {
                        continue;
                    }
                    match rank(&named) {
                        Some(other) if other < own => {}
                        _ => wrong.push(format!(
                            "{}:{}: {room} uses {named}",
                            relative.display(),
                            number + 1
                        )),
                    }
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "imports against the rooms' order:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn groups_and_paths_name_their_rooms() {
        assert_eq!(named_rooms("use crate::auth::User;"), ["auth"]);
        assert_eq!(
            named_rooms("use crate::{path::VirtualPath, storage::Storage};"),
            ["path", "storage"]
        );
        assert!(named_rooms("// see crate::server").is_empty());
    }
}
