//! Maps key paths (`users[1].base_path`) to lines of the original text, and back.
//!
//! Built once per file from `toml_edit`'s spans: every key, table, array element
//! and inline-table entry becomes a node with its path and byte ranges. Validation
//! asks "which line is this key on?", serde errors ask "which key is at this byte?".
//! This module never judges values; it only knows where things are.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// One located node of the document.
struct Node {
    /// Key path, e.g. `server.listen` or `users[0].permissions[1].path`.
    path: String,
    /// Where the node starts for line purposes: its key, or the value for array elements.
    anchor: Range<usize>,
    /// From the key to the end of the value: the bytes an error inside this node may point at.
    extent: Range<usize>,
}

/// Key paths and where they are in one config text.
pub(super) struct Locator {
    nodes: Vec<Node>,
    /// Byte offset at which each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
}

impl Locator {
    /// Indexes `doc`, parsed from `text`.
    pub(super) fn new(text: &str, doc: &ImDocument<&str>) -> Self {
        let mut locator = Locator {
            nodes: Vec::new(),
            line_starts: Self::line_starts(text),
        };
        locator.walk_table(doc.as_table(), "");
        locator
    }

    /// A locator that knows no keys, for text that did not parse.
    pub(super) fn lines_only(text: &str) -> Self {
        Locator {
            nodes: Vec::new(),
            line_starts: Self::line_starts(text),
        }
    }

    fn line_starts(text: &str) -> Vec<usize> {
        std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect()
    }

    /// The 1-based line holding byte `offset`.
    pub(super) fn line_at(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// The line of `path`, or of its nearest written ancestor when the key itself is
    /// absent (a missing required key is reported on its table's header).
    pub(super) fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(node) = self.nodes.iter().find(|node| node.path == path) {
                return Some(self.line_at(node.anchor.start));
            }
            path = parent_path(path)?;
        }
    }

    /// The innermost key path whose key or value contains byte `offset`.
    pub(super) fn path_at(&self, offset: usize) -> Option<&str> {
        self.nodes
            .iter()
            .filter(|node| node.extent.contains(&offset) || node.extent.start == offset)
            .min_by_key(|node| node.extent.len())
            .map(|node| node.path.as_str())
    }

    fn push(&mut self, path: String, anchor: Option<Range<usize>>, value: Option<Range<usize>>) {
        let Some(anchor) = anchor.or_else(|| value.clone()) else {
            return;
        };
        let end = value.map_or(anchor.end, |v| v.end.max(anchor.end));
        self.nodes.push(Node {
            path,
            extent: anchor.start..end,
            anchor,
        });
    }

    fn walk_table(&mut self, table: &Table, prefix: &str) {
        for (name, item) in table.iter() {
            let path = join_key(prefix, name);
            let key_span = table.key(name).and_then(|key| key.span());
            self.walk_item(item, path, key_span);
        }
    }

    fn walk_item(&mut self, item: &Item, path: String, key_span: Option<Range<usize>>) {
        match item {
            Item::None => {}
            Item::Value(value) => {
                self.push(path.clone(), key_span, value.span());
                self.walk_value(value, &path);
            }
            Item::Table(table) => {
                // A `[header]` table spans its header; a dotted or implicit one has no span.
                self.push(path.clone(), table.span().or(key_span), None);
                self.walk_table(table, &path);
            }
            Item::ArrayOfTables(tables) => {
                self.push(path.clone(), key_span, tables.span());
                for (index, table) in tables.iter().enumerate() {
                    let element = format!("{path}[{index}]");
                    self.push(element.clone(), table.span(), None);
                    self.walk_table(table, &element);
                }
            }
        }
    }

    fn walk_value(&mut self, value: &Value, path: &str) {
        match value {
            Value::Array(array) => {
                for (index, element) in array.iter().enumerate() {
                    let element_path = format!("{path}[{index}]");
                    self.push(element_path.clone(), None, element.span());
                    self.walk_value(element, &element_path);
                }
            }
            Value::InlineTable(table) => {
                for (name, entry) in table.iter() {
                    let entry_path = join_key(path, name);
                    let key_span = table.key(name).and_then(|key| key.span());
                    self.push(entry_path.clone(), key_span, entry.span());
                    self.walk_value(entry, &entry_path);
                }
            }
            _ => {}
        }
    }
}

fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `users[1].base_path` → `users[1]` → `users` → none.
fn parent_path(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"[server]
listen = ["0.0.0.0:21",
  "[::]:21"]

[[users]]
login = "alice"
permissions = [ { path = "/", readable = true } ]

[[users]]
base_path = "/srv"
"#;

    fn locator() -> Locator {
        let doc = ImDocument::parse(TEXT).expect("test text parses");
        Locator::new(TEXT, &doc)
    }

    #[test]
    fn keys_are_found_on_their_lines() {
        let at = locator();
        assert_eq!(at.line_of("server"), Some(1));
        assert_eq!(at.line_of("server.listen"), Some(2));
        assert_eq!(at.line_of("server.listen[1]"), Some(3));
        assert_eq!(at.line_of("users[0]"), Some(5));
        assert_eq!(at.line_of("users[0].login"), Some(6));
        assert_eq!(at.line_of("users[0].permissions[0].readable"), Some(7));
        assert_eq!(at.line_of("users[1].base_path"), Some(10));
    }

    #[test]
    fn a_missing_key_is_placed_on_its_table() {
        assert_eq!(locator().line_of("users[1].password"), Some(9));
        assert_eq!(locator().line_of("passive.ports"), None);
    }

    #[test]
    fn offsets_lead_back_to_the_innermost_key() {
        let at = locator();
        let offset = TEXT.find("readable").expect("present");
        assert_eq!(at.path_at(offset), Some("users[0].permissions[0].readable"));
        let offset = TEXT.find("\"/srv\"").expect("present");
        assert_eq!(at.path_at(offset), Some("users[1].base_path"));
        assert_eq!(at.line_at(0), 1);
        assert_eq!(at.line_at(TEXT.find("login").expect("present")), 6);
    }
}
