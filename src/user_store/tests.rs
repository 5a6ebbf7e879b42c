//! The store on a real SQLite file in a temporary directory (PostgreSQL is
//! driven by the integration tests, which start a server of their own).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::*;

fn settings(dir: &Path) -> StoreSettings {
    StoreSettings {
        backend: Backend::Sqlite {
            path: dir.join("users.db"),
        },
        timeout: Duration::from_secs(10),
    }
}

fn record(login: &str) -> UserRecord {
    UserRecord::new(
        login,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        "memory",
        1,
    )
}

#[test]
fn urls_name_sqlite_files_and_postgres_servers_and_never_carry_a_password() {
    assert_eq!(
        Backend::parse("sqlite:/var/lib/aioftpd/users.db"),
        Ok(Backend::Sqlite {
            path: PathBuf::from("/var/lib/aioftpd/users.db")
        })
    );
    assert_eq!(
        Backend::parse("sqlite:///var/lib/users.db"),
        Ok(Backend::Sqlite {
            path: PathBuf::from("/var/lib/users.db")
        })
    );
    assert_eq!(
        Backend::parse("sqlite:users.db"),
        Ok(Backend::Sqlite {
            path: PathBuf::from("users.db")
        })
    );
    assert!(matches!(
        Backend::parse("postgres://aioftpd@db.example/ftp"),
        Ok(Backend::Postgres { password: None, .. })
    ));
    assert!(Backend::parse("postgresql://aioftpd@127.0.0.1:5433/ftp?sslmode=require").is_ok());
    for bad in [
        "sqlite:",
        "sqlite::memory:",
        "sqlite:users.db?mode=ro",
        "mysql://a@b/c",
        "users.db",
        "",
    ] {
        assert!(Backend::parse(bad).is_err(), "{bad:?}");
    }
    let with_password = Backend::parse("postgres://aioftpd:hunter2@db/ftp").unwrap_err();
    assert!(with_password.contains("password_file"), "{with_password}");
    assert!(!with_password.contains("hunter2"), "{with_password}");
}

#[tokio::test]
async fn rows_go_in_come_back_change_and_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let store = UserStore::open(&settings(dir.path())).unwrap();
    assert_eq!(store.find("alice").await, Ok(None));
    let mut alice = record("alice");
    alice.home = Some("/pub".into());
    alice.max_connections = Some(3);
    assert_eq!(store.insert(&alice).await, Ok(true));
    assert_eq!(store.insert(&alice).await, Ok(false), "the login is taken");
    assert_eq!(store.insert(&record("bob")).await, Ok(true));
    assert_eq!(store.find("alice").await, Ok(Some(alice.clone())));
    assert_eq!(
        store.find("Alice").await,
        Ok(None),
        "logins compare exactly"
    );

    alice.disabled = true;
    alice.home = None;
    alice.updated_at = 2;
    assert_eq!(store.update(&alice).await, Ok(true));
    assert_eq!(store.find("alice").await, Ok(Some(alice.clone())));
    assert_eq!(store.update(&record("carol")).await, Ok(false));

    assert_eq!(store.logins_any_case("ALICE").await.unwrap(), ["alice"]);
    let logins: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.login)
        .collect();
    assert_eq!(logins, ["alice", "bob"]);
    assert_eq!(store.delete("alice").await, Ok(true));
    assert_eq!(store.delete("alice").await, Ok(false));
    assert_eq!(store.find("alice").await, Ok(None));
}

#[tokio::test]
async fn values_are_bound_never_spliced_into_the_sql() {
    let dir = tempfile::tempdir().unwrap();
    let store = UserStore::open(&settings(dir.path())).unwrap();
    store.insert(&record("alice")).await.unwrap();
    for hostile in [
        "x' OR '1'='1",
        "alice'; DROP TABLE aioftpd_users; --",
        "%",
        "_lice",
    ] {
        assert_eq!(store.find(hostile).await, Ok(None), "{hostile}");
        assert_eq!(store.delete(hostile).await, Ok(false), "{hostile}");
    }
    let odd = record("o'brien\"; --");
    assert_eq!(store.insert(&odd).await, Ok(true));
    assert_eq!(store.find(&odd.login).await, Ok(Some(odd)));
    assert_eq!(store.list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_new_database_file_is_not_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = UserStore::open(&settings(dir.path())).unwrap();
    store.ready().await.unwrap();
    let mode = std::fs::metadata(dir.path().join("users.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o007, 0, "{mode:o}");
}

#[tokio::test]
async fn a_schema_from_a_newer_aioftpd_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = UserStore::open(&settings(dir.path())).unwrap();
        store.insert(&record("alice")).await.unwrap();
        on_pool!(store, pool => sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (999, 'from the future', TRUE, x'00', 0)"
        ).execute(pool).await.map(drop)).unwrap();
        store.close().await;
    }
    let store = UserStore::open(&settings(dir.path())).unwrap();
    let err = store.find("alice").await.unwrap_err();
    assert!(matches!(err, StoreError::Schema { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("schema version 999 is unknown to this aioftpd"),
        "{message}"
    );
    assert!(message.contains("upgrade aioftpd"), "{message}");
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let missing = StoreSettings {
        backend: Backend::Sqlite {
            path: dir.path().join("no/such/dir/users.db"),
        },
        timeout: Duration::from_secs(5),
    };
    assert!(matches!(
        UserStore::open(&missing).err(),
        Some(StoreError::Unavailable { .. })
    ));
    // Nothing listens on port 1 of loopback: the pool retries until the timeout.
    let down = StoreSettings {
        backend: Backend::parse("postgres://aioftpd@127.0.0.1:1/ftp").unwrap(),
        timeout: Duration::from_millis(300),
    };
    let store = UserStore::open(&down).unwrap();
    assert!(matches!(
        store.find("alice").await,
        Err(StoreError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn a_database_of_the_first_schema_is_brought_to_this_one_keeping_its_users() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    // What an aioftpd that knew only the first migration made.
    let first = dir.path().join("first");
    std::fs::create_dir(&first).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/0001_users.sql"),
        first.join("0001_users.sql"),
    )
    .unwrap();
    let options = SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    Migrator::new(first.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO aioftpd_users (login, password_hash, storage, storage_settings, \
         disabled, created_at, updated_at) VALUES ('old', 'h', 'memory', '{}', FALSE, 1, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = UserStore::open(&settings(dir.path())).unwrap();
    let old = store.find("old").await.unwrap().expect("kept");
    assert_eq!((&old.quota_bytes, old.quota_files), (&None, None));
    let scope = old.usage_scope();
    assert_eq!(store.usage("old", &scope).await.unwrap(), None);
    assert_eq!(
        store.start_usage("old", &scope, (10, 1)).await.unwrap(),
        (10, 1)
    );
    store.close().await;
}

#[tokio::test]
async fn a_usage_grows_only_within_its_limits_and_shrinks_always() {
    let dir = tempfile::tempdir().unwrap();
    let store = UserStore::open(&settings(dir.path())).unwrap();
    assert!(store.insert(&record("alice")).await.unwrap());
    let scope = "memory {}";
    assert_eq!(
        store.start_usage("alice", scope, (90, 1)).await.unwrap(),
        (90, 1)
    );
    // Another instance counting too keeps the first count.
    assert_eq!(
        store.start_usage("alice", scope, (0, 0)).await.unwrap(),
        (90, 1)
    );
    let limits = Some((Some(100), Some(2)));
    assert!(store
        .add_usage("alice", scope, (10, 1), limits)
        .await
        .unwrap());
    assert!(!store
        .add_usage("alice", scope, (1, 0), limits)
        .await
        .unwrap());
    assert!(!store
        .add_usage("alice", scope, (0, 1), limits)
        .await
        .unwrap());
    assert!(store
        .add_usage("alice", scope, (-500, -5), limits)
        .await
        .unwrap());
    assert_eq!(store.usage("alice", scope).await.unwrap(), Some((0, 0)));
    // Counted in another tree: counted again there.
    assert_eq!(store.usage("alice", "fs {}").await.unwrap(), None);
    assert_eq!(
        store.start_usage("alice", "fs {}", (7, 7)).await.unwrap(),
        (7, 7)
    );
    assert!(store.delete("alice").await.unwrap());
    assert_eq!(store.usage("alice", "fs {}").await.unwrap(), None);
    store.close().await;
}
