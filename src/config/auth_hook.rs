//! `[auth_hook]` as loaded, and an authentication hook's answer checked as
//! a `[[users]]` entry. The answer's `user` object is made into the entry
//! with the same keys and values (the login the client sent, no password:
//! the hook has judged it) and goes through the file's own reading,
//! checking and building, so a value means the same and is refused with
//! the same message as in the file or a users-database row. Only the key
//! names differ: a problem names the answer's field (`user.permissions[0].path`).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value as Json;
use toml_edit::{value, Array, InlineTable, Item, Table, Value};

use super::account::{entry_document, AccountRules, FieldProblem};
use crate::auth::User;
use crate::storage::Storage;

/// `[auth_hook]` as loaded: where logins are posted, how long each may
/// take, how long a yes is reused, the token sent, and how an answer
/// becomes an account under this config.
#[derive(Clone, Debug)]
pub struct AuthHook {
    /// The `http://` or `https://` endpoint, as written.
    pub url: String,
    /// How long one login waits for the hook (a free request slot, the
    /// connection, the answer) before it is refused.
    pub timeout: Duration,
    /// How long an accepted answer is reused for the same login and
    /// password; zero asks every time.
    pub cache_lifetime: Duration,
    /// Sent as `Authorization: Bearer ...`, if `bearer_token_file` is set.
    pub bearer_token: Option<BearerToken>,
    /// How an answer's `user` becomes an account.
    pub accounts: AccountRules,
}

/// The hook's token, read from `bearer_token_file`; hides itself from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// A token, as its file's first line holds it.
    pub(super) fn new(text: &str) -> Self {
        BearerToken(text.to_owned())
    }

    /// The token, to be sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

/// What the answer's fields are named after: `user.home`.
const ANSWER: &str = "user";

impl AccountRules {
    /// The account a hook's answer gives `login`: `user` checked as the
    /// `[[users]]` entry with its keys; or every problem of it, each on the
    /// answer's field (`user.permissions[0].path`). Opens the storage (a
    /// directory for fs), so it blocks: run it off the async workers. With
    /// `storage` (a storage this returned before, for an answer with the
    /// same storage keys), that one is used instead.
    pub fn answered_account(
        &self,
        login: &str,
        user: &Json,
        storage: Option<Arc<dyn Storage>>,
    ) -> Result<User, Vec<FieldProblem>> {
        let text = answer_entry(login, user)?;
        self.entry_account(&text, storage)
            .map(|(user, _)| user)
            .map_err(|problems| {
                problems
                    .into_iter()
                    .map(|problem| match problem.field.as_str() {
                        // The client's login, not the answer's.
                        "login" => problem,
                        "" => FieldProblem::new(ANSWER, problem.message),
                        field => FieldProblem::new(&format!("{ANSWER}.{field}"), problem.message),
                    })
                    .collect()
            })
    }
}

/// The keys of `user` that say where an account's files are: two answers
/// that agree on these may share one opened storage.
pub fn storage_keys(user: &Json) -> Json {
    let mut keys = serde_json::Map::new();
    for key in ["storage", "base_path", "s3"] {
        if let Some(found) = user.get(key) {
            keys.insert(key.to_owned(), found.clone());
        }
    }
    Json::Object(keys)
}

/// A hash the entry's `password` key takes: never checked, since an entry
/// made from an answer is never asked for its password.
fn placeholder_hash() -> Result<&'static str, FieldProblem> {
    static HASH: OnceLock<Result<String, String>> = OnceLock::new();
    HASH.get_or_init(|| crate::auth::hash_password("aioftpd auth hook placeholder"))
        .as_deref()
        .map_err(|e| FieldProblem::new("", format!("cannot make the account: {e}")))
}

/// The `[[users]]` entry holding `user`'s keys for `login`, as TOML text.
fn answer_entry(login: &str, user: &Json) -> Result<String, Vec<FieldProblem>> {
    let Json::Object(keys) = user else {
        return Err(vec![FieldProblem::new(
            ANSWER,
            format!("must be a JSON object, not {}", kind(user)),
        )]);
    };
    let mut problems = Vec::new();
    let mut entry = Table::new();
    entry.insert("login", value(login));
    match placeholder_hash() {
        Ok(hash) => {
            entry.insert("password", value(hash));
        }
        Err(problem) => problems.push(problem),
    }
    for (key, json) in keys {
        let field = format!("{ANSWER}.{key}");
        if ["login", "password", "password_hash"].contains(&key.as_str()) {
            problems.push(FieldProblem::new(
                &field,
                "not part of an answer: the login is the one the client sent, and the hook has judged the password",
            ));
            continue;
        }
        match toml_value(json, &field) {
            Ok(converted) => {
                entry.insert(key, Item::Value(converted));
            }
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(entry_document(entry))
}

/// `json` as the TOML value of the same meaning; `null` has none.
fn toml_value(json: &Json, field: &str) -> Result<Value, FieldProblem> {
    Ok(match json {
        Json::Null => {
            return Err(FieldProblem::new(
                field,
                "null is no value here: leave the key out for its default",
            ))
        }
        Json::Bool(flag) => Value::from(*flag),
        Json::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(integer), _) => Value::from(integer),
            (None, Some(_)) if number.is_u64() => {
                return Err(FieldProblem::new(
                    field,
                    format!("{number} is out of range"),
                ))
            }
            (None, Some(float)) => Value::from(float),
            (None, None) => {
                return Err(FieldProblem::new(
                    field,
                    format!("{number} is not a number"),
                ))
            }
        },
        Json::String(text) => Value::from(text.as_str()),
        Json::Array(items) => {
            let mut array = Array::new();
            for (index, item) in items.iter().enumerate() {
                array.push(toml_value(item, &format!("{field}[{index}]"))?);
            }
            Value::Array(array)
        }
        Json::Object(keys) => {
            let mut table = InlineTable::new();
            for (key, item) in keys {
                table.insert(key, toml_value(item, &format!("{field}.{key}"))?);
            }
            Value::InlineTable(table)
        }
    })
}

/// What a JSON value is, for messages.
pub fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::VirtualPath;
    use serde_json::json;

    fn rules(dir: &std::path::Path) -> AccountRules {
        AccountRules::standalone(dir.to_owned())
    }

    #[test]
    fn an_answer_becomes_the_account_its_keys_say() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bob")).unwrap();
        let user = json!({
            "base_path": "bob",
            "home": "/in",
            "permissions": [{ "path": "/" }, { "path": "/in", "writable": true }],
            "max_connections": 2,
            "download_limit": "1MiB",
        });
        let account = rules(dir.path())
            .answered_account("bob", &user, None)
            .expect("valid");
        assert_eq!(account.login.as_deref(), Some("bob"));
        assert_eq!(account.home, VirtualPath::new("/in"));
        assert_eq!(account.permissions.len(), 2);
        assert!(account.permissions[1].writable && !account.permissions[0].writable);
        assert_eq!(account.max_connections, Some(2));
        assert!(account.limits.download.is_some());
    }

    #[test]
    fn every_problem_of_an_answer_names_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let user = json!({
            "base_path": "missing",
            "permissions": [{ "path": 7 }],
            "max_connections": 0,
            "colour": "blue",
            "home": null,
            "password": "x",
        });
        let problems = rules(dir.path())
            .answered_account("bob", &user, None)
            .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for field in ["user.home", "user.password"] {
            assert!(fields.contains(&field), "{field} not in {problems:?}");
        }
        let user = json!({
            "base_path": "missing",
            "permissions": [{ "path": 7 }],
            "max_connections": 0,
            "colour": "blue",
        });
        let problems = rules(dir.path())
            .answered_account("bob", &user, None)
            .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for field in ["user.permissions[0].path", "user.colour"] {
            assert!(fields.contains(&field), "{field} not in {problems:?}");
        }
    }

    #[test]
    fn a_rule_the_file_refuses_is_refused_with_the_files_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bob")).unwrap();
        let user = json!({ "base_path": "bob", "max_connections": 0 });
        let problems = rules(dir.path())
            .answered_account("bob", &user, None)
            .expect_err("invalid");
        assert_eq!(
            problems,
            [FieldProblem::new(
                "user.max_connections",
                "must be at least 1"
            )]
        );
        let problems = rules(dir.path())
            .answered_account("bob", &json!("bob"), None)
            .expect_err("not an object");
        assert_eq!(problems[0].field, "user");
        assert!(problems[0].message.contains("a string"), "{problems:?}");
    }

    #[test]
    fn storage_keys_are_where_the_files_are() {
        let user = json!({ "base_path": "a", "home": "/x", "s3": { "bucket": "b" } });
        assert_eq!(
            storage_keys(&user),
            json!({ "base_path": "a", "s3": { "bucket": "b" } })
        );
    }

    #[test]
    fn a_token_does_not_show_in_debug() {
        assert_eq!(
            format!("{:?}", BearerToken::new("t0ken")),
            "BearerToken(***)"
        );
    }
}
