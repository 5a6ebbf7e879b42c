//! Config errors: every problem found, each located as `file:line: key: message`.
//!
//! The format is the one compilers use, so editors and `grep` can jump to the
//! line. This module only formats; finding lines is `locate`'s job.

use std::fmt;
use std::path::PathBuf;

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file the problem is in.
    pub file: PathBuf,
    /// The 1-based line of the offending key, when it could be located.
    pub line: Option<usize>,
    /// The key path, e.g. `users[1].base_path` (array indexes are 0-based); empty when
    /// the problem is not about one key (a syntax error, an unreadable file).
    pub key: String,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    /// `/etc/aioftpd.toml:12: users[1].base_path: directory does not exist`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A config that cannot be used, with every problem found in it (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    issues: Vec<ConfigIssue>,
}

impl ConfigError {
    /// Wraps the issues found; callers only build one when there is at least one.
    pub(super) fn new(issues: Vec<ConfigIssue>) -> Self {
        ConfigError { issues }
    }

    /// The problems, in file order where lines are known.
    pub fn issues(&self) -> &[ConfigIssue] {
        &self.issues
    }
}

impl fmt::Display for ConfigError {
    /// One issue per line, no trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(line: Option<usize>, key: &str) -> ConfigIssue {
        ConfigIssue {
            file: PathBuf::from("/etc/aioftpd.toml"),
            line,
            key: key.to_owned(),
            message: "directory does not exist".to_owned(),
        }
    }

    #[test]
    fn issues_print_as_file_line_key_message() {
        assert_eq!(
            issue(Some(12), "users[1].base_path").to_string(),
            "/etc/aioftpd.toml:12: users[1].base_path: directory does not exist"
        );
        assert_eq!(
            issue(None, "").to_string(),
            "/etc/aioftpd.toml: directory does not exist"
        );
    }

    #[test]
    fn an_error_prints_one_issue_per_line() {
        let err = ConfigError::new(vec![issue(Some(1), "a"), issue(Some(2), "b")]);
        assert_eq!(err.to_string().lines().count(), 2);
    }
}
