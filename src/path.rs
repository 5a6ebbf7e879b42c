//! Virtual paths: what a client names, normalised before anything touches storage.
//!
//! A [`VirtualPath`] is always absolute, uses `/` as separator, has no `.`/`..`
//! components and no trailing slash (except the root itself). `..` at the root
//! stays at the root, so no virtual path can ever name something above `/`.
//! This module never touches the disk; backends map virtual paths to storage.

use std::fmt;

/// An absolute, normalised POSIX-style path inside a user's virtual tree.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualPath(String);

impl VirtualPath {
    /// The root `/`.
    pub fn root() -> Self {
        VirtualPath("/".to_owned())
    }

    /// Normalises `path` as an absolute path (relative paths are taken from the root).
    pub fn new(path: &str) -> Self {
        Self::root().join(path)
    }

    /// Resolves `arg` against `self` the way a shell resolves `cd arg`:
    /// an absolute `arg` starts over from the root, `..` never climbs above it.
    pub fn join(&self, arg: &str) -> Self {
        let mut parts: Vec<&str> = if arg.starts_with('/') {
            Vec::new()
        } else {
            self.components().collect()
        };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name => parts.push(name),
            }
        }
        let mut out = String::with_capacity(arg.len() + self.0.len() + 1);
        for part in &parts {
            out.push('/');
            out.push_str(part);
        }
        if out.is_empty() {
            out.push('/');
        }
        VirtualPath(out)
    }

    /// The path as text, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path components, root first; empty for `/`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The last component, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// The containing directory; the root is its own parent.
    pub fn parent(&self) -> VirtualPath {
        self.join("..")
    }

    /// The path relative to the root (`""` for `/`), for backends that join it beneath a base.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// The rest of `self` below `ancestor` (`""` when they are equal), or
    /// `None` when `self` does not lie beneath it.
    pub fn beneath(&self, ancestor: &VirtualPath) -> Option<&str> {
        if !self.starts_with(ancestor) {
            None
        } else if ancestor.is_root() {
            Some(self.relative())
        } else {
            Some(self.0[ancestor.0.len()..].trim_start_matches('/'))
        }
    }

    /// Whether `self` is `ancestor` or lies beneath it, compared component by component.
    pub fn starts_with(&self, ancestor: &VirtualPath) -> bool {
        ancestor.is_root()
            || self.0 == ancestor.0
            || (self.0.starts_with(&ancestor.0) && self.0.as_bytes()[ancestor.0.len()] == b'/')
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::VirtualPath;

    fn resolve(cwd: &str, arg: &str) -> String {
        VirtualPath::new(cwd).join(arg).as_str().to_owned()
    }

    #[test]
    fn relative_paths_resolve_against_the_cwd() {
        assert_eq!(resolve("/a/b", "c"), "/a/b/c");
        assert_eq!(resolve("/a/b", "./c/"), "/a/b/c");
        assert_eq!(resolve("/", "c//d"), "/c/d");
    }

    #[test]
    fn absolute_paths_start_from_the_root() {
        assert_eq!(resolve("/a/b", "/x"), "/x");
        assert_eq!(resolve("/a/b", "/"), "/");
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        assert_eq!(resolve("/a", "../../.."), "/");
        assert_eq!(resolve("/", "../etc/passwd"), "/etc/passwd");
        assert_eq!(resolve("/a/b", "../c"), "/a/c");
        assert_eq!(resolve("/a", "b/../../.."), "/");
    }

    #[test]
    fn parent_and_file_name() {
        let p = VirtualPath::new("/a/b/c.txt");
        assert_eq!(p.file_name(), Some("c.txt"));
        assert_eq!(p.parent().as_str(), "/a/b");
        assert_eq!(VirtualPath::root().parent().as_str(), "/");
        assert_eq!(VirtualPath::root().file_name(), None);
        assert_eq!(p.relative(), "a/b/c.txt");
    }

    #[test]
    fn starts_with_compares_whole_components() {
        let p = VirtualPath::new("/logs/today");
        assert!(p.starts_with(&VirtualPath::new("/logs")));
        assert!(p.starts_with(&VirtualPath::root()));
        assert!(p.starts_with(&p));
        assert!(!VirtualPath::new("/logsX").starts_with(&VirtualPath::new("/logs")));
    }
}
