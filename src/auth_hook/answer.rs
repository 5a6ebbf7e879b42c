//! What a hook's body says: `{"allow": true, "user": {...}}` or
//! `{"allow": false}`, read strictly. Anything else is a [`BadAnswer`]
//! naming the field, and nobody gets in on it.

use std::fmt;

use serde_json::Value as Json;

use crate::config::json_kind;

/// A hook's verdict on one login.
#[derive(Debug, PartialEq)]
pub(super) enum Answer {
    /// Let the login in with the account `user` describes (a `[[users]]`
    /// entry's keys, still to be checked).
    Allow(Json),
    /// Refuse the login.
    Refuse,
}

/// Why a body is no answer: the field at fault (`answer` for the whole
/// body) and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadAnswer {
    pub field: String,
    pub message: String,
}

impl BadAnswer {
    fn new(field: &str, message: impl Into<String>) -> Self {
        BadAnswer {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for BadAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Reads the body of a 2xx answer.
pub(super) fn parse(body: &[u8]) -> Result<Answer, BadAnswer> {
    let json: Json = serde_json::from_slice(body)
        .map_err(|e| BadAnswer::new("answer", format!("not JSON: {e}")))?;
    let Json::Object(mut keys) = json else {
        return Err(BadAnswer::new(
            "answer",
            format!(
                "must be a JSON object such as {{\"allow\": false}}, not {}",
                json_kind(&json)
            ),
        ));
    };
    if let Some(unknown) = keys
        .keys()
        .find(|key| !["allow", "user"].contains(&key.as_str()))
    {
        return Err(BadAnswer::new(
            unknown,
            "unknown key: an answer has `allow` and, when allowed, `user`",
        ));
    }
    let allow = match keys.get("allow") {
        Some(Json::Bool(allow)) => *allow,
        Some(other) => {
            return Err(BadAnswer::new(
                "allow",
                format!("must be true or false, not {}", json_kind(other)),
            ))
        }
        None => return Err(BadAnswer::new("allow", "required: true or false")),
    };
    if !allow {
        return Ok(Answer::Refuse);
    }
    match keys.remove("user") {
        Some(user @ Json::Object(_)) => Ok(Answer::Allow(user)),
        Some(other) => Err(BadAnswer::new(
            "user",
            format!(
                "must be a JSON object of [[users]] keys, not {}",
                json_kind(&other)
            ),
        )),
        None => Err(BadAnswer::new(
            "user",
            "required when allow is true: the account's [[users]] keys, such as {\"base_path\": \"/srv/ftp/bob\"}",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bad(body: &str) -> BadAnswer {
        parse(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn a_yes_carries_the_user_and_a_no_needs_nothing_else() {
        assert_eq!(
            parse(br#"{"allow": true, "user": {"base_path": "/srv/bob"}}"#),
            Ok(Answer::Allow(json!({"base_path": "/srv/bob"})))
        );
        assert_eq!(parse(br#"{"allow": false}"#), Ok(Answer::Refuse));
        assert_eq!(
            parse(br#"{"allow": false, "user": 7}"#),
            Ok(Answer::Refuse),
            "a no is a no whatever else it says"
        );
    }

    #[test]
    fn a_malformed_answer_names_the_field() {
        for (body, field, says) in [
            ("", "answer", "not JSON"),
            ("<html>", "answer", "not JSON"),
            ("[true]", "answer", "not an array"),
            (r#"{"user": {}}"#, "allow", "required"),
            (r#"{"allow": "yes"}"#, "allow", "not a string"),
            (r#"{"allow": 1}"#, "allow", "not a number"),
            (r#"{"allow": null}"#, "allow", "not null"),
            (r#"{"allow": true}"#, "user", "required when allow is true"),
            (r#"{"allow": true, "user": "bob"}"#, "user", "not a string"),
            (
                r#"{"allow": true, "user": {}, "why": 1}"#,
                "why",
                "unknown key",
            ),
        ] {
            let found = bad(body);
            assert_eq!(found.field, field, "{body}: {found}");
            assert!(found.message.contains(says), "{body}: {found}");
        }
    }
}
