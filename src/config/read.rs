//! Reads a config text into the schema, reporting every key that does not fit.
//!
//! serde stops at the first unknown key or wrong type. To report them all, each
//! misfit is recorded, its key is set aside, and the rest is read again, until
//! what remains fits. A key set aside is not judged again, so validation does
//! not also call it missing. Values are not checked here; that is `validate`'s job.

use toml::{Table, Value};
use toml_edit::ImDocument;

use super::locate::Locator;
use super::schema::FileConfig;
use super::validate::Problem;

/// The schema read from a text, and what did not fit it.
pub(super) struct Read {
    /// What fits, once every misfit is set aside; `None` when a misfit could
    /// not be set aside, so the rest would be judged on a wrong picture.
    pub file: Option<FileConfig>,
    /// Unknown keys, wrong types and missing required keys, in the order serde met them.
    pub misfits: Vec<Problem>,
    /// The keys removed before reading again.
    pub set_aside: SetAside,
}

/// Key paths set aside as misfits.
#[derive(Default)]
pub(super) struct SetAside(Vec<String>);

impl SetAside {
    /// Whether `key` is, or is inside, a key that was set aside.
    pub(super) fn covers(&self, key: &str) -> bool {
        self.0.iter().any(|aside| {
            key.strip_prefix(aside.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }
}

/// Reads `text`, which is valid TOML.
pub(super) fn read(text: &str) -> Read {
    let mut read = Read {
        file: None,
        misfits: Vec::new(),
        set_aside: SetAside::default(),
    };
    let Ok(mut table) = text.parse::<Table>() else {
        return read;
    };
    let mut rendered = text.to_owned();
    // Each round removes a key, so this ends after at most one round per key.
    loop {
        let err = match toml::from_str::<FileConfig>(&rendered) {
            Ok(file) => {
                read.file = Some(file);
                return read;
            }
            Err(err) => err,
        };
        let key = err
            .span()
            .zip(ImDocument::parse(rendered.as_str()).ok())
            .and_then(|(span, doc)| {
                Locator::new(&rendered, &doc)
                    .path_at(span.start)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        read.misfits.push(Problem {
            key: key.clone(),
            message: err.message().trim().to_owned(),
        });
        let aside = removable(&key);
        if aside.is_empty() || read.set_aside.covers(aside) {
            return read;
        }
        if !remove(&mut table, aside) {
            return read;
        }
        read.set_aside.0.push(aside.to_owned());
        rendered = match toml::to_string(&table) {
            Ok(text) => text,
            Err(_) => return read,
        };
    }
}

/// The key to remove for a misfit at `key`: the key itself, or for an array
/// element the whole array, since removing one element would renumber the rest.
fn removable(key: &str) -> &str {
    let mut key = key;
    while let Some(element) = key.strip_suffix(']') {
        match element.rfind('[') {
            Some(open) => key = &element[..open],
            None => break,
        }
    }
    key
}

/// Removes the value at `path` (`users[0].permissions`); whether it was there.
fn remove(root: &mut Table, path: &str) -> bool {
    let Some((parent, last)) = path.rsplit_once('.') else {
        return root.remove(path).is_some();
    };
    let mut steps = parent.split('.');
    let Some(mut at) = steps.next().and_then(|first| step(root, first)) else {
        return false;
    };
    for name in steps {
        let Some(next) = at.as_table_mut().and_then(|table| step(table, name)) else {
            return false;
        };
        at = next;
    }
    at.as_table_mut()
        .is_some_and(|table| table.remove(last).is_some())
}

/// The value at `name` in `table`, where `name` is a key with optional `[n]` indexes.
fn step<'a>(table: &'a mut Table, name: &str) -> Option<&'a mut Value> {
    let mut parts = name.split('[');
    let mut at = table.get_mut(parts.next()?)?;
    for index in parts {
        let index: usize = index.strip_suffix(']')?.parse().ok()?;
        at = at.as_array_mut()?.get_mut(index)?;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        read(text).misfits.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn every_misfit_is_found_and_the_rest_still_read() {
        let text = "[server]\nidle_timout = \"5m\"\natomic_uploads = \"yes\"\nbanner = \"hi\"\n\n[[users]]\nstorage = 5\nlogin = \"a\"\npermissions = [{ path = \"/\", writeable = true }, { readable = false }]\n";
        let read = read(text);
        let mut found: Vec<&str> = read.misfits.iter().map(|p| p.key.as_str()).collect();
        found.sort_unstable();
        assert_eq!(
            found,
            [
                "server.atomic_uploads",
                "server.idle_timout",
                "users[0].permissions[0].writeable",
                "users[0].permissions[1]",
                "users[0].storage",
            ]
        );
        let file = read.file.expect("the rest fits");
        assert_eq!(file.server.banner.as_deref(), Some("hi"));
        assert_eq!(file.users[0].login.as_deref(), Some("a"));
        assert!(read.set_aside.covers("users[0].permissions[1].path"));
        assert!(read.set_aside.covers("server.atomic_uploads"));
        assert!(!read.set_aside.covers("server.atomic"));
        assert!(!read.set_aside.covers("server.banner"));
    }

    #[test]
    fn a_section_of_the_wrong_type_is_set_aside_whole() {
        assert_eq!(
            keys("server = 5\n[[users]]\nstorage = \"memory\"\n"),
            ["server"]
        );
        assert_eq!(
            keys("[server]\nlisten = [\"0.0.0.0:21\", 21, 22]\n"),
            ["server.listen[1]"]
        );
    }

    #[test]
    fn a_fitting_text_has_no_misfits() {
        let read = read("[[users]]\nstorage = \"memory\"\n");
        assert!(read.misfits.is_empty());
        assert!(read.file.is_some());
    }
}
