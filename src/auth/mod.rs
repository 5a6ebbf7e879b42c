//! Users, their permissions, and the `UserManager` trait (aioftp's `AbstractUserManager`).
//!
//! A session asks the manager who a login is and whether a password fits;
//! it never sees password hashes. Managers must make an unknown login cost
//! the same as a wrong password, so replies and timing reveal nothing.

mod config_users;
mod credential_cache;
mod password;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::path::VirtualPath;
use crate::quota::UserQuota;
use crate::storage::Storage;
use crate::throttle::Rate;
use crate::tls::TlsPolicy;

pub use config_users::{ConfigUserManager, DEFAULT_CREDENTIAL_CACHE};
pub use credential_cache::CredentialCache;
pub use password::{hash_password, PasswordHash, PasswordVerifier};

/// Bandwidth limits of one user (aioftp's `User(read_speed_limit, ...)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserLimits {
    /// All of the user's downloads together.
    pub download: Option<Rate>,
    /// All of the user's uploads together.
    pub upload: Option<Rate>,
    /// Each of the user's connections' downloads.
    pub download_per_connection: Option<Rate>,
    /// Each of the user's connections' uploads.
    pub upload_per_connection: Option<Rate>,
}

/// Logins that reach the anonymous user, when one is configured.
pub const ANONYMOUS_LOGINS: [&str; 2] = ["anonymous", "ftp"];

/// A password as typed by a client; hides itself from `Debug` and logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps the text a client sent with `PASS`.
    pub fn new(text: impl Into<String>) -> Self {
        Password(text.into())
    }

    /// The password text, for verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Read/write rights on a virtual path and everything beneath it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    /// The subtree this rule covers.
    pub path: VirtualPath,
    /// May list, enter and download.
    pub readable: bool,
    /// May upload, create, rename and delete.
    pub writable: bool,
}

/// The rights that apply to one path after the most specific rule has been picked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// May list, enter and download.
    pub readable: bool,
    /// May upload, create, rename and delete.
    pub writable: bool,
}

/// An authenticated user's account: where its files live and what it may do.
pub struct User {
    /// The login, or `None` for the anonymous user.
    pub login: Option<String>,
    /// The directory a session starts in.
    pub home: VirtualPath,
    /// Path rules; the most specific matching rule wins, no match means no access.
    pub permissions: Vec<Permission>,
    /// The user's file tree.
    pub storage: Arc<dyn Storage>,
    /// Overrides the server's `[tls] required` policy for this user.
    pub tls_required: Option<TlsPolicy>,
    /// Sessions this user may have logged in at once; `None`: no cap.
    pub max_connections: Option<usize>,
    /// The user's bandwidth limits.
    pub limits: UserLimits,
    /// How much the user's tree may hold, and what it holds; `None`: no quota.
    pub quota: Option<Arc<UserQuota>>,
}

impl User {
    /// The name used in logs: the login, or `anonymous`.
    pub fn display_name(&self) -> &str {
        self.login.as_deref().unwrap_or("anonymous")
    }

    /// Rights on `path`: those of the rule whose path is the longest prefix of it.
    pub fn access(&self, path: &VirtualPath) -> Access {
        self.permissions
            .iter()
            .filter(|rule| path.starts_with(&rule.path))
            .max_by_key(|rule| rule.path.components().count())
            .map(|rule| Access {
                readable: rule.readable,
                writable: rule.writable,
            })
            .unwrap_or_default()
    }

    /// Whether every path has the same rights (the common single rule on
    /// `/`): then no path, wherever a symlink leads it, has rights another
    /// lacks, and the rules need no look at where links lead.
    pub fn rights_are_uniform(&self) -> bool {
        let rights = |rule: &Permission| (rule.readable, rule.writable);
        self.permissions.iter().any(|rule| rule.path.is_root())
            && self
                .permissions
                .windows(2)
                .all(|pair| rights(&pair[0]) == rights(&pair[1]))
    }

    /// Whether the entry `path` may be created, removed or renamed: that
    /// changes its parent directory, so it needs write access there as well
    /// as on `path` itself. A rule's own directory entry belongs to its
    /// parent's rule: a writable `/up` under a read-only `/` lets the user
    /// write inside `/up`, not remove `/up` or put a file named `up` in `/`.
    pub fn may_change_entry(&self, path: &VirtualPath) -> bool {
        self.access(path).writable && self.access(&path.parent()).writable
    }

    /// Whether moving `from` to `to` gives nothing the rename carries more
    /// rights than it had: a rename must not lift a rule beneath `from`
    /// (a hidden or read-only subdirectory), nor make a write-only file
    /// readable (moving a file out of a drop box is reading it).
    ///
    /// Rights beneath a path change only where a rule starts, so comparing
    /// the two paths themselves and every rule's path beneath either of them
    /// (taken relative to it) covers everything the rename can carry.
    pub fn rename_keeps_rights(&self, from: &VirtualPath, to: &VirtualPath) -> bool {
        let beneath = |top: &VirtualPath| {
            self.permissions
                .iter()
                .filter_map(|rule| rule.path.beneath(top).map(str::to_owned))
                .collect::<Vec<_>>()
        };
        let mut places = beneath(from);
        places.extend(beneath(to));
        places.push(String::new());
        places.iter().all(|rest| {
            let before = self.access(&from.join(rest));
            let after = self.access(&to.join(rest));
            (before.readable || !after.readable) && (before.writable || !after.writable)
        })
    }

    /// Rights on the entries of directory `dir`, worked out once for a
    /// whole listing: `entry_access(dir).of(name)` is `access(&dir.join(name))`.
    pub fn entry_access(&self, dir: &VirtualPath) -> EntryAccess {
        let own = self
            .permissions
            .iter()
            .filter(|rule| !rule.path.is_root() && rule.path.parent() == *dir)
            .map(|rule| {
                let name = rule.path.file_name().unwrap_or_default().to_owned();
                let access = Access {
                    readable: rule.readable,
                    writable: rule.writable,
                };
                (name, access)
            })
            .collect();
        EntryAccess {
            inherited: self.access(dir),
            own,
        }
    }
}

/// Rights on the entries of one directory (see [`User::entry_access`]).
#[derive(Clone, Debug)]
pub struct EntryAccess {
    /// What an entry gets from the rules on the directory and above it.
    inherited: Access,
    /// Rules on entries of the directory, by name, in rule order.
    own: Vec<(String, Access)>,
}

impl EntryAccess {
    /// Rights on entry `name`. A name that is not one path component (a
    /// listing never has one) gets none.
    pub fn of(&self, name: &str) -> Access {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Access::default();
        }
        // A rule on the entry itself is more specific than any above it;
        // among equal rules the last wins, as in `User::access`.
        self.own
            .iter()
            .rev()
            .find(|(own, _)| own == name)
            .map_or(self.inherited, |&(_, access)| access)
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("login", &self.login)
            .field("home", &self.home)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

/// What `USER` learns about a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginKind {
    /// Ask for a password and check it (also returned for unknown logins).
    PasswordRequired,
    /// The anonymous user: ask for a password (by custom, an e-mail) and accept any.
    Anonymous,
}

/// What checking a login's password came to.
#[derive(Debug)]
pub enum LoginCheck {
    /// The password fits this account.
    Accepted(Arc<User>),
    /// An unknown login, a wrong password or a disabled account, alike.
    Refused,
    /// The password could not be checked now (the users database is down or
    /// too slow, or the account's own record is broken and logged): neither
    /// a success nor a failure, so the client is told to come back later.
    Unavailable,
}

/// Whether a manager has an account of a login, for one consulted after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginPresence {
    /// This manager answers for the login (a named user, a row, disabled
    /// or not, the anonymous user's names): no other may.
    Known,
    /// This manager has never heard of the login.
    Unknown,
    /// This manager cannot tell now (its database is out of reach).
    Unreachable,
}

/// Looks up users and checks their passwords (aioftp's `AbstractUserManager`).
#[async_trait]
pub trait UserManager: Send + Sync + 'static {
    /// Tells `USER` how to proceed. Must not reveal whether a login exists.
    async fn get_user(&self, login: &str) -> LoginKind;
    /// Checks `password` for `login`, sent by a client at `from`; `None` for
    /// an unknown login or a wrong password, at the same cost either way.
    async fn authenticate(
        &self,
        login: &str,
        password: &Password,
        from: IpAddr,
    ) -> Option<Arc<User>>;
    /// [`UserManager::authenticate`], able to say that the password could
    /// not be checked now: `PASS` asks this. A manager whose users live
    /// somewhere that can be out of reach overrides it (and answers `None`
    /// from `authenticate` then); by default every `None` is a refusal.
    async fn check_password(&self, login: &str, password: &Password, from: IpAddr) -> LoginCheck {
        match self.authenticate(login, password, from).await {
            Some(user) => LoginCheck::Accepted(user),
            None => LoginCheck::Refused,
        }
    }
    /// Called once when a logged-in session ends.
    async fn notify_logout(&self, user: &User);
    /// Whether this manager answers for `login`, so that one consulted
    /// after it (the auth hook) never decides a login this one has. By
    /// default every login is this manager's.
    async fn presence(&self, _login: &str) -> LoginPresence {
        LoginPresence::Known
    }
    /// The TLS policy for `login` when it differs from the server's (asked at
    /// `USER`, before any password is sent). Unknown logins get the server's.
    async fn tls_policy(&self, _login: &str) -> Option<TlsPolicy> {
        None
    }
    /// After a reload: the current account of a logged-in `user` (new
    /// permissions, home, limits), or `None` if it was removed. By default the
    /// session keeps the account it logged in with.
    async fn refresh(&self, user: &Arc<User>) -> Option<Arc<User>> {
        Some(user.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    fn user(rules: &[(&str, bool, bool)]) -> User {
        User {
            login: Some("alice".into()),
            home: VirtualPath::root(),
            permissions: rules
                .iter()
                .map(|&(path, readable, writable)| Permission {
                    path: VirtualPath::new(path),
                    readable,
                    writable,
                })
                .collect(),
            storage: Arc::new(MemoryStorage::new()),
            tls_required: None,
            max_connections: None,
            limits: UserLimits::default(),
            quota: None,
        }
    }

    #[test]
    fn rights_are_uniform_only_when_every_path_gets_the_same() {
        assert!(user(&[("/", true, false)]).rights_are_uniform());
        assert!(user(&[("/", true, true), ("/a", true, true)]).rights_are_uniform());
        assert!(!user(&[("/", true, true), ("/a", true, false)]).rights_are_uniform());
        // Outside every rule there is no access at all.
        assert!(!user(&[("/pub", true, false)]).rights_are_uniform());
    }

    #[test]
    fn the_most_specific_rule_wins_whatever_its_order() {
        let u = user(&[
            ("/logs", true, false),
            ("/", true, true),
            ("/logs/old", false, false),
        ]);
        let at = |p: &str| u.access(&VirtualPath::new(p));
        assert_eq!(
            at("/a.txt"),
            Access {
                readable: true,
                writable: true
            }
        );
        assert_eq!(
            at("/logs"),
            Access {
                readable: true,
                writable: false
            }
        );
        assert_eq!(
            at("/logs/x"),
            Access {
                readable: true,
                writable: false
            }
        );
        assert_eq!(at("/logs/old/y"), Access::default());
        assert_eq!(
            at("/logsX"),
            Access {
                readable: true,
                writable: true
            }
        );
    }

    #[test]
    fn a_rename_may_not_carry_anything_into_more_rights() {
        let u = user(&[
            ("/", true, true),
            ("/home/secret", false, false),
            ("/home/reports", true, false),
            ("/drop", false, true),
            ("/drop2", false, true),
            ("/drop2/d/peek", true, true),
        ]);
        let ok = |from: &str, to: &str| {
            u.rename_keeps_rights(&VirtualPath::new(from), &VirtualPath::new(to))
        };
        assert!(!ok("/home", "/h2"), "lifts /home/secret and /home/reports");
        assert!(ok("/home/a.txt", "/h2/a.txt"));
        assert!(
            !ok("/drop/other.txt", "/home/stolen.txt"),
            "makes it readable"
        );
        assert!(ok("/drop/a", "/drop/b"));
        assert!(ok("/home/a.txt", "/drop/a.txt"), "fewer rights are fine");
        assert!(
            !ok("/drop/d", "/drop2/d"),
            "a rule beneath the target would make /drop/d/peek readable"
        );
    }

    #[test]
    fn an_entry_belongs_to_its_parents_rule_too() {
        let u = user(&[("/", true, false), ("/up", true, true)]);
        let may = |p: &str| u.may_change_entry(&VirtualPath::new(p));
        assert!(!may("/up"), "the rule's own directory entry is in /");
        assert!(may("/up/file"));
        assert!(may("/up/sub"));
        assert!(!may("/other"));
    }

    #[test]
    fn no_matching_rule_means_no_access() {
        let u = user(&[("/pub", true, false)]);
        assert_eq!(u.access(&VirtualPath::new("/private")), Access::default());
        assert_eq!(u.access(&VirtualPath::root()), Access::default());
    }

    #[test]
    fn entry_access_agrees_with_access_of_the_joined_path() {
        let u = user(&[
            ("/", true, false),
            ("/pub", true, true),
            ("/pub/ro", true, false),
            ("/pub/hidden", false, false),
            ("/pub/ro/deeper", true, true),
            ("/pub/hidden", true, true),
            ("/logs", false, true),
        ]);
        let names = ["ro", "hidden", "deeper", "x", "pub", "logs", "ro2", "r"];
        for dir in ["/", "/pub", "/pub/ro", "/pub/hidden", "/logs", "/other/x"] {
            let dir = VirtualPath::new(dir);
            let entries = u.entry_access(&dir);
            for name in names {
                assert_eq!(entries.of(name), u.access(&dir.join(name)), "{dir} {name}");
            }
            for odd in ["", ".", "..", "a/b"] {
                assert_eq!(entries.of(odd), Access::default(), "{dir} {odd:?}");
            }
        }
    }

    #[test]
    fn passwords_do_not_show_in_debug() {
        assert_eq!(format!("{:?}", Password::new("secret")), "Password(***)");
    }
}
