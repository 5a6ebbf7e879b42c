//! The manager over a real SQLite file, beside `[[users]]` from a real
//! config text. (Timeouts of a real database are the integration tests'.)

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::OnceLock;

use super::*;
use crate::config::load_str;
use crate::user_store::unix_now;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn hash(password: &str) -> &'static str {
    static HASHES: OnceLock<[String; 2]> = OnceLock::new();
    let [pw, other] = HASHES
        .get_or_init(|| ["pw", "other"].map(|p| crate::auth::hash_password(p).expect("hash")));
    if password == "pw" {
        pw
    } else {
        other
    }
}

/// A manager over `dir`'s users.db with `cache_lifetime`, and the config's
/// `[[users]]`: `carol` (password "other"), an anonymous user.
async fn manager(dir: &Path, cache_lifetime: &str) -> DatabaseUserManager {
    let text = format!(
        "[users_database]\nurl = \"sqlite:users.db\"\ncache_lifetime = \"{cache_lifetime}\"\n\
         [[users]]\nlogin = \"carol\"\npassword = \"{}\"\nstorage = \"memory\"\n\
         [[users]]\nstorage = \"memory\"\n",
        hash("other")
    );
    let loaded = load_str(&text, &dir.join("aioftpd.toml")).unwrap_or_else(|e| panic!("{e}"));
    let database = loaded.users_database.expect("[users_database]");
    let store = Arc::new(UserStore::open(&database.store).expect("open"));
    DatabaseUserManager::new(
        loaded.users,
        store,
        &database,
        loaded.settings.login.credential_cache,
    )
}

fn row(login: &str, password: &str) -> UserRecord {
    UserRecord::new(login, hash(password), "memory", unix_now())
}

async fn check(m: &DatabaseUserManager, login: &str, password: &str) -> LoginCheck {
    m.check_password(login, &Password::new(password), LOCAL)
        .await
}

fn accepted(check: &LoginCheck) -> bool {
    matches!(check, LoginCheck::Accepted(_))
}

#[tokio::test]
async fn a_row_added_while_running_logs_in_with_its_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), "30s").await;
    assert!(matches!(
        check(&m, "alice", "pw").await,
        LoginCheck::Refused
    ));
    m.store().insert(&row("alice", "pw")).await.unwrap();
    let LoginCheck::Accepted(user) = check(&m, "alice", "pw").await else {
        panic!("alice is in the database now");
    };
    assert_eq!(user.login.as_deref(), Some("alice"));
    assert!(matches!(
        check(&m, "alice", "wrong").await,
        LoginCheck::Refused
    ));
    assert_eq!(m.get_user("alice").await, LoginKind::PasswordRequired);
    assert_eq!(m.get_user("nobody").await, LoginKind::PasswordRequired);
}

#[tokio::test]
async fn the_config_answers_first_for_its_logins_and_the_anonymous_names() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), "30s").await;
    // Rows that try to take over the config's logins.
    m.store().insert(&row("carol", "pw")).await.unwrap();
    m.store().insert(&row("ftp", "pw")).await.unwrap();
    assert!(accepted(&check(&m, "carol", "other").await));
    assert!(matches!(
        check(&m, "carol", "pw").await,
        LoginCheck::Refused
    ));
    assert_eq!(m.get_user("ftp").await, LoginKind::Anonymous);
    let LoginCheck::Accepted(anonymous) = check(&m, "ftp", "me@example.com").await else {
        panic!("the anonymous user");
    };
    assert_eq!(anonymous.login, None);
}

#[tokio::test]
async fn a_change_to_a_row_takes_effect_once_its_cache_lifetime_is_over() {
    let dir = tempfile::tempdir().unwrap();
    // Kept for an hour: the database is not asked again.
    let kept = manager(dir.path(), "1h").await;
    kept.store().insert(&row("alice", "pw")).await.unwrap();
    assert!(accepted(&check(&kept, "alice", "pw").await));
    let mut alice = kept.store().find("alice").await.unwrap().unwrap();
    alice.disabled = true;
    kept.store().update(&alice).await.unwrap();
    assert!(accepted(&check(&kept, "alice", "pw").await), "still cached");

    // Kept for no time: every login asks.
    let asked = manager(dir.path(), "0s").await;
    assert!(matches!(
        check(&asked, "alice", "pw").await,
        LoginCheck::Refused
    ));
    alice.disabled = false;
    alice.password_hash = hash("other").to_owned();
    asked.store().update(&alice).await.unwrap();
    assert!(
        matches!(check(&asked, "alice", "pw").await, LoginCheck::Refused),
        "the remembered old password does not fit the new hash"
    );
    assert!(accepted(&check(&asked, "alice", "other").await));
    asked.store().delete("alice").await.unwrap();
    assert!(matches!(
        check(&asked, "alice", "other").await,
        LoginCheck::Refused
    ));
}

#[tokio::test]
async fn an_invalid_row_refuses_its_login_and_never_lets_it_in() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), "30s").await;
    let mut alice = row("alice", "pw");
    alice.permissions = Some("[{ path = \"pub\" }]".into());
    m.store().insert(&alice).await.unwrap();
    let mut bob = row("bob", "pw");
    bob.password_hash = "pw".into();
    m.store().insert(&bob).await.unwrap();
    assert!(
        matches!(check(&m, "alice", "pw").await, LoginCheck::Unavailable),
        "the right password, a broken row: come back once it is fixed"
    );
    assert!(matches!(
        check(&m, "alice", "wrong").await,
        LoginCheck::Refused
    ));
    for password in ["pw", ""] {
        assert!(
            matches!(check(&m, "bob", password).await, LoginCheck::Refused),
            "a plain-text hash is no hash"
        );
    }
    assert!(m
        .authenticate("alice", &Password::new("pw"), LOCAL)
        .await
        .is_none());
}

#[tokio::test]
async fn unknown_logins_are_never_kept_and_cost_one_verification_each() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), "30s").await;
    m.store().insert(&row("alice", "pw")).await.unwrap();
    let before = m.verifier.verifications();
    for n in 0..20 {
        let login = format!("mallory{n}");
        assert!(matches!(check(&m, &login, "pw").await, LoginCheck::Refused));
    }
    assert_eq!(
        m.verifier.verifications() - before,
        20,
        "a decoy check each"
    );
    assert_eq!(m.cache.len(), 0);
    assert!(accepted(&check(&m, "alice", "pw").await));
    assert_eq!(m.cache.len(), 1);
}

#[tokio::test]
async fn a_database_that_cannot_answer_makes_its_logins_unavailable_and_not_the_configs() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[users_database]\nurl = \"postgres://aioftpd@127.0.0.1:1/ftp\"\ntimeout = \"300ms\"\n\
         [[users]]\nlogin = \"carol\"\npassword = \"{}\"\nstorage = \"memory\"\n",
        hash("other")
    );
    let loaded = load_str(&text, &dir.path().join("aioftpd.toml")).unwrap();
    let database = loaded.users_database.unwrap();
    let store = Arc::new(UserStore::open(&database.store).unwrap());
    let m = DatabaseUserManager::new(loaded.users, store, &database, None);
    assert!(matches!(
        check(&m, "alice", "pw").await,
        LoginCheck::Unavailable
    ));
    assert_eq!(m.tls_policy("alice").await, None);
    assert!(accepted(&check(&m, "carol", "other").await));
}

#[tokio::test]
async fn a_memory_tree_outlives_a_new_look_at_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), "0s").await;
    m.store().insert(&row("alice", "pw")).await.unwrap();
    let LoginCheck::Accepted(first) = check(&m, "alice", "pw").await else {
        panic!("alice");
    };
    let LoginCheck::Accepted(again) = check(&m, "alice", "pw").await else {
        panic!("alice");
    };
    assert!(Arc::ptr_eq(&first.storage, &again.storage));
}
