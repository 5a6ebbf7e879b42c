//! Every key of the schema, read from the serde structs themselves, gets a
//! bad value, and the loader must refuse each on its key and line.
//!
//! [`keys`] walks [`FileConfig`] with a deserializer that records what each
//! field asks for (a bool, an integer, a string, a value with a unit, a list,
//! a table), so a key added to `schema.rs` is tested without anyone listing
//! it. Each kind has bad values: a wrong TOML type always, and for kinds with
//! a domain, values of the right type outside it, of which each key must
//! refuse at least one (the schema does not say which strings a text key
//! takes, so several are tried).

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml_edit::{value, Array, DocumentMut, Item, TableLike, Value};

use super::load_str;
use super::schema::FileConfig;

/// What a key holds, as the schema asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Integer,
    Text,
    /// A duration, size, rate or port range (`UnitText`).
    WithUnit,
    /// A list of strings (`listen`).
    Texts,
}

/// One key: its path as the loader names it (`users[0].permissions[0].path`).
#[derive(Clone, Debug)]
struct Key {
    path: String,
    kind: Kind,
}

/// Every key of the schema, from the serde structs.
fn keys() -> Vec<Key> {
    let found = Rc::new(RefCell::new(Vec::new()));
    let probe = Probe {
        path: String::new(),
        found: Rc::clone(&found),
    };
    // The probe makes every field present with a harmless value.
    FileConfig::deserialize(probe).expect("the probe satisfies the schema");
    let keys = found.borrow().clone();
    keys
}

/// A deserializer that answers every request with a value of the asked-for
/// type and records, per key path, what was asked.
struct Probe {
    path: String,
    found: Rc<RefCell<Vec<Key>>>,
}

impl Probe {
    fn record(&self, kind: Kind) {
        self.found.borrow_mut().push(Key {
            path: self.path.clone(),
            kind,
        });
    }

    fn child(&self, path: String) -> Probe {
        Probe {
            path,
            found: Rc::clone(&self.found),
        }
    }
}

impl<'de> Deserializer<'de> for Probe {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        // Only `UnitText` asks for anything: a string or an integer.
        self.record(Kind::WithUnit);
        visitor.visit_str("1")
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Kind::Bool);
        visitor.visit_bool(true)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Kind::Integer);
        visitor.visit_u64(1)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Kind::Text);
        visitor.visit_str("x")
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(OneElement { probe: Some(self) })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(Fields {
            probe: self,
            fields: fields.iter(),
            current: None,
        })
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char bytes byte_buf unit
        unit_struct newtype_struct tuple tuple_struct map enum identifier ignored_any
    }
}

/// A list of one element, probed at `path[0]`.
struct OneElement {
    probe: Option<Probe>,
}

impl<'de> SeqAccess<'de> for OneElement {
    type Error = de::value::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let Some(list) = self.probe.take() else {
            return Ok(None);
        };
        let element = list.child(format!("{}[0]", list.path));
        match seed.deserialize(ElementProbe(element, &list)) {
            Ok(value) => Ok(Some(value)),
            Err(err) => Err(err),
        }
    }
}

/// An element of a list: a table is probed field by field under the
/// element's path; a plain value makes the list a list of strings.
struct ElementProbe<'a>(Probe, &'a Probe);

impl<'de> Deserializer<'de> for ElementProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.1.record(Kind::Texts);
        visitor.visit_str("x")
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_struct(name, fields, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// A table's fields, each probed under `path.field`.
struct Fields {
    probe: Probe,
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = de::value::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(&field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = Some(field);
        seed.deserialize(de::value::StrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let field = self.current.take().unwrap_or_default();
        let path = match self.probe.path.as_str() {
            "" => field.to_owned(),
            parent => format!("{parent}.{field}"),
        };
        seed.deserialize(self.probe.child(path))
    }
}

/// Wrong TOML types for a key of `kind`: always an error.
fn wrong_types(kind: Kind) -> Vec<Value> {
    match kind {
        Kind::Bool => vec!["yes".into()],
        Kind::Integer => vec!["ten".into(), 1.5.into()],
        Kind::Text => vec![7.into()],
        Kind::WithUnit => vec![true.into()],
        Kind::Texts => vec!["127.0.0.1:21".into(), Value::Array(Array::from_iter([7]))],
    }
}

/// Values of the right type for a key of `kind` that its domain excludes;
/// a key is checked with each and must refuse at least one (for text, the
/// schema does not say which strings a key takes, so several are tried).
fn outside_the_domain(kind: Kind) -> Vec<Value> {
    match kind {
        Kind::Bool => Vec::new(),
        // Past every key's bound; `retries` takes 0.
        Kind::Integer => vec![0.into(), 1_000_000_000_000_i64.into()],
        Kind::WithUnit => vec!["banana".into(), "-5".into()],
        Kind::Text => vec![
            "".into(),
            "no such value".into(),
            "/nonexistent/aioftpd-every-key".into(),
            "relative/path".into(),
            "a\u{1}b".into(),
        ],
        Kind::Texts => vec![Value::Array(Array::from_iter(["no such address"]))],
    }
}

/// A valid file with every section and one entry of each list, so any key
/// can be set in it: TLS with a real certificate, a proxied listener, one
/// named user with a rule. The keys of a user's `s3` table are set in a
/// second file, where that user's storage is s3 (with an access key in a
/// file).
struct Base {
    text: String,
    s3_text: String,
    _dir: tempfile::TempDir,
}

impl Base {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
        std::fs::set_permissions(
            &key_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod key");
        let s3_key = dir.path().join("s3.key");
        std::fs::write(
            &s3_key,
            "aws_access_key_id = GKexample\naws_secret_access_key = secret\n",
        )
        .expect("write s3 key");
        std::fs::set_permissions(&s3_key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod s3 key");
        let password = dir.path().join("db-password");
        std::fs::write(&password, "pw\n").expect("write password");
        std::fs::set_permissions(
            &password,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod password");
        let token = dir.path().join("hook-token");
        std::fs::write(&token, "t0ken\n").expect("write token");
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod token");
        let hash = crate::auth::hash_password("pw").expect("hash");
        let head = format!(
            "[server]\n[passive]\n\
             [[passive.overrides]]\nnetworks = [\"192.168.1.0/24\"]\naddress = \"192.168.1.2\"\n\
             [login]\n\
             [tls]\ncertificate = \"{cert}\"\nprivate_key = \"{key}\"\n\
             [proxy_protocol]\nlisten = [\"127.0.0.11:2121\"]\ntrusted = [\"10.0.0.2\"]\n\
             [transfer_log]\npath = \"{log}\"\nformat = \"xferlog\"\n\
             [metrics]\nlisten = \"127.0.0.1:9187\"\n\
             [users_database]\nurl = \"postgres://aioftpd@127.0.0.1/ftp\"\npassword_file = \"{password}\"\n\
             [auth_hook]\nurl = \"http://127.0.0.1:9/login\"\nbearer_token_file = \"{token}\"\n\
             [[hooks]]\nevents = [\"upload\"]\ncommand = [\"/bin/true\"]\n\
             [pre_upload]\ncommand = [\"/bin/true\"]\n\
             [[users]]\nlogin = \"alice\"\npassword = \"{hash}\"\n",
            cert = cert_path.display(),
            key = key_path.display(),
            log = dir.path().join("xferlog").display(),
            password = password.display(),
            token = token.display(),
        );
        let rule = "permissions = [{ path = \"/\" }]\n";
        let text = format!(
            "{head}base_path = \"{base}\"\n{rule}",
            base = dir.path().display()
        );
        let s3_text = format!(
            "{head}storage = \"s3\"\n{rule}\
             [users.s3]\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"files\"\n\
             region = \"garage\"\nprefix = \"alice/\"\ncredentials_file = \"{s3_key}\"\n\
             part_size = \"8MiB\"\nparts_in_flight = 2\n",
            s3_key = s3_key.display()
        );
        Base {
            text,
            s3_text,
            _dir: dir,
        }
    }

    /// The base file with `key` set to `bad`.
    fn with(&self, key: &str, bad: &Value) -> String {
        let base = if key.starts_with("users[0].s3.") {
            &self.s3_text
        } else {
            &self.text
        };
        let mut doc: DocumentMut = base.parse().expect("base parses");
        set(doc.as_table_mut(), key, bad.clone());
        doc.to_string()
    }
}

/// Sets the key at `path` (`a.b[0].c`) of `table` to `new`; the tables and
/// list entries on the way are the base file's.
fn set(table: &mut dyn TableLike, path: &str, new: Value) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let (name, index) = match head.split_once('[') {
        Some((name, index)) => (name, index.trim_end_matches(']').parse::<usize>().ok()),
        None => (head, None),
    };
    let Some(rest) = rest else {
        table.insert(name, value(new));
        return;
    };
    let child = table
        .get_mut(name)
        .unwrap_or_else(|| panic!("{path}: not in the base file"));
    match (index, child) {
        (Some(i), Item::ArrayOfTables(tables)) => {
            set(tables.get_mut(i).expect("entry"), rest, new);
        }
        (Some(i), Item::Value(Value::Array(array))) => match array.get_mut(i) {
            Some(Value::InlineTable(entry)) => set(entry, rest, new),
            _ => panic!("{path}: not a list of tables"),
        },
        (None, Item::Table(section)) => set(section, rest, new),
        _ => panic!("{path}: not a table in the base file"),
    }
}

#[test]
fn every_key_of_the_schema_refuses_its_bad_values_on_its_line() {
    let keys = keys();
    assert!(keys.len() > 40, "the probe found only {keys:?}");
    let base = Base::new();
    for text in [&base.text, &base.s3_text] {
        load_str(text, Path::new("/etc/aioftpd.toml")).expect("the base file is valid");
    }
    let mut failures = Vec::new();
    for key in &keys {
        let refused_on_its_line = |bad: &Value| -> bool {
            let text = base.with(&key.path, bad);
            match load_str(&text, Path::new("/etc/aioftpd.toml")) {
                Ok(_) => false,
                // A list's problem may name its element: `listen[0]`.
                Err(err) => err.issues().iter().any(|issue| {
                    let on_key =
                        issue.key == key.path || issue.key.starts_with(&format!("{}[", key.path));
                    on_key && issue.line.is_some()
                }),
            }
        };
        for bad in wrong_types(key.kind) {
            if !refused_on_its_line(&bad) {
                failures.push(format!("{} = {bad}: a wrong type was accepted", key.path));
            }
        }
        // A key that takes every value of its type would need its own case
        // here: none does today.
        let domain = outside_the_domain(key.kind);
        if !domain.is_empty() && !domain.iter().any(refused_on_its_line) {
            failures.push(format!(
                "{}: every value tried of the right type was accepted ({})",
                key.path,
                domain
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
