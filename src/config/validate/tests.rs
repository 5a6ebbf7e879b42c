//! Checking whole parsed files: every problem found, on its key.

use std::path::Path;

use super::*;
use crate::auth::Permission;
use crate::config::build::{build, Built};
use crate::path::VirtualPath;

/// Both stages: checking, then building what passed.
fn built(text: &str, dir: &Path) -> Result<Built, Vec<Problem>> {
    let file: FileConfig = toml::from_str(text).expect("test text fits the schema");
    let mut problems = Problems::default();
    let checked = check(&file, &mut problems);
    build(checked, problems, dir)
}

fn problems(text: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().expect("temp dir");
    match built(text, dir.path()) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.into_iter().map(|p| (p.key, p.message)).collect(),
    }
}

fn has(found: &[(String, String)], key: &str, fragment: &str) -> bool {
    found.iter().any(|(k, m)| k == key && m.contains(fragment))
}

const ANONYMOUS: &str = "[[users]]\nstorage = \"memory\"\n";

#[test]
fn omitted_keys_take_the_documented_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let built = built(ANONYMOUS, dir.path()).unwrap_or_else(|p| panic!("{p:?}"));
    let s = &built.settings;
    assert_eq!(
        s.listen,
        vec!["0.0.0.0:21".parse::<SocketAddr>().expect("addr")]
    );
    assert_eq!(s.session.banner, "aioftpd ready");
    assert_eq!(s.session.idle_timeout.as_secs(), 300);
    assert_eq!(s.session.data_timeout.as_secs(), 30);
    assert_eq!(s.session.block_size, 512 * 1024);
    assert!(s.session.atomic_uploads);
    assert_eq!(s.passive.ports, None);
    assert_eq!(s.passive.public_address, None);
    let anonymous = built.anonymous.expect("anonymous user");
    assert_eq!(anonymous.home, VirtualPath::root());
    assert_eq!(
        anonymous.permissions,
        vec![Permission {
            path: VirtualPath::root(),
            readable: true,
            writable: false
        }]
    );
    assert!(built.named.is_empty());
}

#[test]
fn a_permission_is_readable_not_writable_unless_said() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = "[[users]]\nstorage = \"memory\"\nhome = \"/pub/../pub\"\npermissions = [{ path = \"/pub\" }, { path = \"/in\", readable = false, writable = true }]\n";
    let user = built(text, dir.path())
        .unwrap_or_else(|p| panic!("{p:?}"))
        .anonymous
        .expect("anonymous user");
    assert_eq!(user.home.as_str(), "/pub");
    assert!(user.permissions[0].readable && !user.permissions[0].writable);
    assert!(!user.permissions[1].readable && user.permissions[1].writable);
}

#[test]
fn server_values_out_of_range_are_refused() {
    let found = problems(
        "[server]\nlisten = []\nblock_size = \"1KiB\"\nidle_timeout = 0\ndata_timeout = \"0s\"\nbanner = \"two\\nlines\"\n[passive]\nports = \"80-90\"\npublic_address = \"::1\"\n[[users]]\nstorage = \"memory\"\n",
    );
    assert!(has(&found, "server.listen", "at least one"));
    assert!(has(&found, "server.block_size", "between 4KiB and 16MiB"));
    assert!(has(&found, "server.idle_timeout", "greater than zero"));
    assert!(has(&found, "server.data_timeout", "greater than zero"));
    assert!(has(&found, "server.banner", "one line"));
    assert!(has(&found, "passive.ports", "below 1024"));
    assert!(has(&found, "passive.public_address", "IPv4"));
    assert_eq!(found.len(), 7, "{found:?}");
    let found =
        problems("[passive]\npublic_address = \"0.0.0.0\"\n[[users]]\nstorage = \"memory\"\n");
    assert!(has(&found, "passive.public_address", "cannot be announced"));
}

#[test]
fn listen_addresses_must_parse_and_not_repeat() {
    let found = problems(
        "[server]\nlisten = [\"0.0.0.0:21\", \"localhost:21\", \"[::]:21\", \"0.0.0.0:21\"]\n[[users]]\nstorage = \"memory\"\n",
    );
    assert!(has(&found, "server.listen[1]", "invalid address"));
    assert!(has(&found, "server.listen[3]", "listed twice"));
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn logins_must_be_unique_and_printable() {
    let hash = crate::auth::hash_password("pw").expect("hash");
    let text = format!(
        "[[users]]\nlogin = \"alice\"\npassword = \"{hash}\"\nstorage = \"memory\"\n\
         [[users]]\nlogin = \"alice\"\npassword = \"{hash}\"\nstorage = \"memory\"\n\
         [[users]]\nlogin = \"\"\npassword = \"{hash}\"\nstorage = \"memory\"\n\
         [[users]]\nlogin = \"bob smith\"\npassword = \"{hash}\"\nstorage = \"memory\"\n\
         [[users]]\nlogin = \"ftp\"\npassword = \"{hash}\"\nstorage = \"memory\"\n"
    );
    let found = problems(&text);
    assert!(has(
        &found,
        "users[1].login",
        "already the login of users[0]"
    ));
    assert!(has(&found, "users[2].login", "must not be empty"));
    assert!(has(&found, "users[3].login", "whitespace"));
    assert_eq!(found.len(), 3, "{found:?}");
}

#[test]
fn anonymous_users_are_unique_and_take_no_password() {
    let found = problems(
        "[[users]]\nstorage = \"memory\"\n[[users]]\nstorage = \"memory\"\npassword = \"x\"\n",
    );
    assert!(has(&found, "users[1]", "already the anonymous user"));
    assert!(has(&found, "users[1].password", "takes no password"));
}

#[test]
fn named_users_need_an_argon2_hash() {
    let found = problems(
        "[[users]]\nlogin = \"a\"\nstorage = \"memory\"\n\
         [[users]]\nlogin = \"b\"\npassword = \"hunter2\"\nstorage = \"memory\"\n\
         [[users]]\nlogin = \"c\"\npassword = \"$2b$12$abcdefghijklmnopqrstuv\"\nstorage = \"memory\"\n",
    );
    assert!(has(&found, "users[0].password", "required"));
    assert!(has(&found, "users[1].password", "aioftpd hash-password"));
    assert!(has(&found, "users[1].password", "plain-text"));
    assert!(has(&found, "users[2].password", "aioftpd hash-password"));
}

#[test]
fn storage_and_base_path_must_agree() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "x").expect("write");
    let text = format!(
        "[[users]]\nlogin = \"a\"\npassword = \"$argon2id$x\"\n\
         [[users]]\nstorage = \"memory\"\nbase_path = \"/tmp\"\n\
         [[users]]\nlogin = \"c\"\nstorage = \"s3\"\n\
         [[users]]\nlogin = \"d\"\nbase_path = {:?}\n\
         [[users]]\nlogin = \"e\"\nbase_path = \"missing\"\n\
         [[users]]\nlogin = \"f\"\nstorage = \"sftp\"\n",
        file.display()
    );
    let found: Vec<(String, String)> = match built(&text, dir.path()) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.into_iter().map(|p| (p.key, p.message)).collect(),
    };
    assert!(has(&found, "users[0].base_path", "required for fs storage"));
    assert!(has(
        &found,
        "users[1].base_path",
        "not used by memory storage"
    ));
    assert!(has(&found, "users[2].s3", "required for s3 storage"));
    assert!(has(&found, "users[5].storage", "unknown storage \"sftp\""));
    assert!(has(&found, "users[3].base_path", "not a directory"));
    assert!(has(
        &found,
        "users[4].base_path",
        "directory does not exist (resolved to"
    ));
}

/// A user `login` with `storage = "s3"` and the table `s3` (TOML inline).
fn s3_user(login: &str, s3: &str) -> String {
    format!("[[users]]\nlogin = \"{login}\"\npassword = \"$argon2id$x\"\nstorage = \"s3\"\ns3 = {{ {s3} }}\n")
}

#[test]
fn an_s3_table_is_checked_key_by_key() {
    let good = "endpoint = \"http://127.0.0.1:3900\", bucket = \"files\", region = \"garage\"";
    let text = [
        s3_user("a", "bucket = \"files\""),
        s3_user("b", "endpoint = \"ftp://x\", bucket = \"No_Such\", region = \"us east\""),
        s3_user("c", &format!("{good}, prefix = \"a//b\", part_size = \"1MiB\", parts_in_flight = 99")),
        s3_user("d", &format!("{good}, credentials_file = \"\", parts_in_flight = 0")),
        "[[users]]\nlogin = \"e\"\npassword = \"$argon2id$x\"\nstorage = \"memory\"\ns3 = { bucket = \"files\" }\n".to_owned(),
        format!("[[users]]\nlogin = \"f\"\npassword = \"$argon2id$x\"\nstorage = \"s3\"\nbase_path = \"/srv\"\ns3 = {{ {good} }}\n"),
    ]
    .concat();
    let found = problems(&text);
    assert!(has(
        &found,
        "users[0].s3.endpoint",
        "required for s3 storage"
    ));
    assert!(has(&found, "users[0].s3.region", "required for s3 storage"));
    assert!(has(&found, "users[1].s3.endpoint", "http:// or https://"));
    assert!(has(&found, "users[1].s3.bucket", "not a bucket name"));
    assert!(has(&found, "users[1].s3.region", "whitespace"));
    assert!(has(&found, "users[2].s3.prefix", "component \"\""));
    assert!(has(&found, "users[2].s3.part_size", "S3's smallest part"));
    assert!(has(&found, "users[2].s3.parts_in_flight", "at most 16"));
    assert!(has(
        &found,
        "users[3].s3.credentials_file",
        "must not be empty"
    ));
    assert!(has(&found, "users[3].s3.parts_in_flight", "at least 1"));
    assert!(has(&found, "users[4].s3", "not used by memory storage"));
    assert!(has(&found, "users[5].base_path", "not used by s3 storage"));
}

/// The key is read when the file is loaded, from the file the table names
/// (relative to the config) or else from the environment.
#[test]
fn an_s3_access_key_comes_from_its_file_or_the_environment() {
    use crate::config::build::open_s3;
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = |file: Option<&str>| {
        let text = s3_user(
            "a",
            &match file {
                Some(file) => format!("endpoint = \"http://127.0.0.1:3900\", bucket = \"files\", region = \"garage\", credentials_file = \"{file}\""),
                None => "endpoint = \"http://127.0.0.1:3900\", bucket = \"files\", region = \"garage\"".to_owned(),
            },
        );
        let file: FileConfig = toml::from_str(&text).expect("fits the schema");
        let section = file.users[0].s3.as_ref().expect("an s3 table");
        crate::config::validate::s3_spec("users[0].s3", section, &mut Problems::default())
            .expect("a valid table")
    };
    let no_env = |_: &str| None;
    let open = |spec, env: &dyn Fn(&str) -> Option<String>| {
        let mut problems = Problems::default();
        let opened = open_s3(spec, dir.path(), env, &mut problems);
        (opened.is_some(), problems.0)
    };
    let (opened, found) = open(spec(Some("missing.key")), &no_env);
    assert!(!opened);
    assert_eq!(found[0].key, "users[0].s3.credentials_file");
    assert!(found[0].message.contains("missing.key"), "{found:?}");
    std::fs::write(
        dir.path().join("s3.key"),
        "aws_access_key_id = GK1\naws_secret_access_key = s\n",
    )
    .expect("write");
    std::fs::set_permissions(
        dir.path().join("s3.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    assert_eq!(open(spec(Some("s3.key")), &no_env), (true, Vec::new()));
    let (opened, found) = open(spec(None), &no_env);
    assert!(!opened);
    assert!(found[0].message.contains("AWS_ACCESS_KEY_ID"), "{found:?}");
    let env = |name: &str| Some(format!("{name}-value"));
    assert_eq!(open(spec(None), &env), (true, Vec::new()));
}

#[test]
fn virtual_paths_must_be_absolute_and_rules_distinct() {
    let found = problems(
        "[[users]]\nstorage = \"memory\"\nhome = \"pub\"\npermissions = [{ path = \"/a\" }, { path = \"b\" }, { path = \"/a/\" }]\n\
         [[users]]\nlogin = \"x\"\npassword = \"$argon2id$x\"\nstorage = \"memory\"\npermissions = []\n",
    );
    assert!(has(
        &found,
        "users[0].home",
        "must be an absolute virtual path"
    ));
    assert!(has(
        &found,
        "users[0].permissions[1].path",
        "must be an absolute"
    ));
    assert!(has(
        &found,
        "users[0].permissions[2].path",
        "already has a rule"
    ));
    assert!(has(&found, "users[1].permissions", "access nothing"));
}

#[test]
fn a_per_user_tls_policy_needs_a_tls_section_and_a_known_value() {
    let found = problems("[[users]]\nstorage = \"memory\"\ntls_required = \"login\"\n");
    assert!(has(&found, "users[0].tls_required", "[tls]"));
    assert_eq!(tls_policy(" data "), Ok(TlsPolicy::Data));
    assert!(tls_policy("always").is_err());
}

#[test]
fn port_zero_may_repeat_since_each_bind_gets_a_fresh_port() {
    let found = problems(
        "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n[[users]]\nstorage = \"memory\"\n",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_file_without_users_is_refused() {
    assert!(has(&problems(""), "users", "nobody could log in"));
}

/// Checking reads no disk: a directory and PEM files that do not exist are
/// plain paths to it, and only building, which opens them, finds out.
#[test]
fn checking_opens_nothing_and_building_reports_what_it_cannot_open() {
    let text =
        "[tls]\ncertificate = \"/nonexistent/cert.pem\"\nprivate_key = \"/nonexistent/key.pem\"\n\
                [[users]]\nbase_path = \"/nonexistent/served\"\n";
    let file: FileConfig = toml::from_str(text).expect("fits the schema");
    let mut problems = Problems::default();
    let checked = check(&file, &mut problems);
    assert!(problems.0.is_empty(), "{:?}", problems.0);
    assert!(matches!(
        checked.storages.as_slice(),
        [Some(StorageSpec::Fs { .. })]
    ));
    let keys: Vec<String> = build(checked, problems, Path::new("/"))
        .err()
        .expect("nothing to open")
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&"users[0].base_path".to_owned()), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("tls.")), "{keys:?}");
}

#[test]
fn multicast_and_broadcast_addresses_are_refused_where_a_client_must_connect() {
    let found = problems(
        "[server]\nlisten = [\"224.0.0.1:21\", \"255.255.255.255:21\", \"[ff02::1]:21\", \"127.0.0.1:21\"]\n[passive]\npublic_address = \"239.1.1.1\"\n[[users]]\nstorage = \"memory\"\n",
    );
    for key in ["server.listen[0]", "server.listen[1]", "server.listen[2]"] {
        assert!(
            has(&found, key, "multicast or broadcast"),
            "{key}: {found:?}"
        );
    }
    assert!(has(
        &found,
        "passive.public_address",
        "multicast or broadcast"
    ));
    assert_eq!(found.len(), 4, "{found:?}");
    let found = problems(
        "[passive]\npublic_address = \"255.255.255.255\"\n[[users]]\nstorage = \"memory\"\n",
    );
    assert!(has(
        &found,
        "passive.public_address",
        "multicast or broadcast"
    ));
}

#[test]
fn virtual_paths_with_control_characters_are_refused() {
    let found = problems(
        "[[users]]\nstorage = \"memory\"\nhome = \"/in\\tbox\"\npermissions = [{ path = \"/\" }, { path = \"/a\\u0000b\" }]\n",
    );
    assert!(has(&found, "users[0].home", "control characters"));
    assert!(has(
        &found,
        "users[0].permissions[1].path",
        "control characters"
    ));
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn a_users_database_takes_the_place_of_users_and_has_documented_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let built = built("[users_database]\nurl = \"sqlite:users.db\"\n", dir.path())
        .unwrap_or_else(|p| panic!("{p:?}"));
    let database = built.database.expect("a users database");
    assert_eq!(
        database.store.backend,
        crate::user_store::Backend::Sqlite {
            path: dir.path().join("users.db")
        },
        "relative to the config's directory, made absolute"
    );
    assert_eq!(database.cache_lifetime.as_secs(), 30);
    assert_eq!(database.store.timeout.as_secs(), 5);
    assert!(built.named.is_empty() && built.anonymous.is_none());
}

#[test]
fn users_database_values_are_checked() {
    let found = problems("[users_database]\ncache_lifetime = \"2h\"\ntimeout = \"0s\"\n");
    assert!(has(&found, "users_database.url", "required"));
    assert!(has(&found, "users_database.cache_lifetime", "at most 1h"));
    assert!(has(&found, "users_database.timeout", "greater than zero"));
    assert_eq!(found.len(), 3, "{found:?}");
    let found = problems(
        "[users_database]\nurl = \"sqlite:/nonexistent/aioftpd/users.db\"\npassword_file = \"pw\"\n",
    );
    assert!(has(
        &found,
        "users_database.url",
        "/nonexistent/aioftpd does not exist"
    ));
    assert!(has(
        &found,
        "users_database.password_file",
        "only used with a postgres"
    ));
    let found = problems("[users_database]\nurl = \"postgres://a:secret@db/ftp\"\n");
    assert!(has(&found, "users_database.url", "holds a password"));
}

#[test]
fn a_database_password_file_must_be_readable_by_no_one_else() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret\nignored\n").unwrap();
    let text = "[users_database]\nurl = \"postgres://aioftpd@db/ftp\"\npassword_file = \"pw\"\n";
    std::fs::set_permissions(&file, PermissionsExt::from_mode(0o644)).unwrap();
    let found = match built(text, dir.path()) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    };
    assert!(
        found
            .iter()
            .any(|p| p.key == "users_database.password_file" && p.message.contains("chmod 600")),
        "{found:?}"
    );
    std::fs::set_permissions(&file, PermissionsExt::from_mode(0o640)).unwrap();
    let database = built(text, dir.path())
        .unwrap_or_else(|p| panic!("{p:?}"))
        .database
        .expect("database");
    assert_eq!(
        database.store.backend,
        crate::user_store::Backend::Postgres {
            url: "postgres://aioftpd@db/ftp".into(),
            password: Some(crate::user_store::DatabasePassword::new("s3cret")),
        }
    );
}
