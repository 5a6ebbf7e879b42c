//! The hook manager against a small HTTP endpoint of the test's own, on
//! 127.0.0.1 port 0: what reaches the hook, and what its answers come to.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::auth::{hash_password, ConfigUserManager, PasswordHash};
use crate::path::VirtualPath;
use crate::storage::MemoryStorage;

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// What the endpoint answers a request: an HTTP status and body, or
/// nothing at all (it holds the connection open).
type Reply = Box<dyn Fn(&Json) -> Option<(u16, String)> + Send + Sync>;

/// An endpoint that records every request's JSON body.
struct Endpoint {
    url: String,
    requests: Arc<Mutex<Vec<Json>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    async fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/login", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, reply) = (requests.clone(), Arc::new(reply));
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let Some(body) = read_request(&mut socket).await else {
                    continue;
                };
                seen.lock().unwrap().push(body.clone());
                match reply(&body) {
                    Some((status, text)) => {
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            text.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(text.as_bytes()).await;
                    }
                    None => held.push(socket),
                }
            }
        });
        Endpoint {
            url,
            requests,
            task,
        }
    }

    fn logins(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|body| body["login"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// One request's JSON body (by its Content-Length).
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Json> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return serde_json::from_slice(&data[end + 4..end + 4 + length]).ok();
            }
        }
    }
}

/// Answers yes to bob with `pw`, with a memory tree and a read-only root.
fn bob_only() -> Reply {
    Box::new(|body| {
        let yes = body["login"] == "bob" && body["password"] == "pw";
        let answer = if yes {
            json!({"allow": true, "user": {"storage": "memory", "home": "/in",
                   "permissions": [{"path": "/"}, {"path": "/in", "writable": true}]}})
        } else {
            json!({"allow": false})
        };
        Some((200, answer.to_string()))
    })
}

fn fixed(status: u16, body: &'static str) -> Reply {
    Box::new(move |_| Some((status, body.to_owned())))
}

fn alice() -> Arc<dyn UserManager> {
    let hash = PasswordHash::parse(&hash_password("alice-pw").unwrap()).unwrap();
    let user = User {
        login: Some("alice".into()),
        home: VirtualPath::root(),
        permissions: Vec::new(),
        storage: Arc::new(MemoryStorage::new()),
        tls_required: None,
        max_connections: None,
        limits: Default::default(),
        quota: None,
    };
    Arc::new(ConfigUserManager::new(vec![(user, hash)], None))
}

fn manager(url: &str, timeout: Duration, cache_lifetime: Duration) -> HookUserManager {
    let hook = AuthHook {
        url: url.to_owned(),
        timeout,
        cache_lifetime,
        bearer_token: None,
        accounts: AccountRules::standalone(std::env::temp_dir()),
    };
    HookUserManager::new(alice(), &hook, IssuedAccounts::new()).unwrap()
}

const SECOND: Duration = Duration::from_secs(1);

async fn check(m: &HookUserManager, login: &str, password: &str) -> LoginCheck {
    m.check_password(login, &Password::new(password), FROM)
        .await
}

#[tokio::test]
async fn a_login_only_the_hook_knows_gets_the_account_of_its_answer() {
    let endpoint = Endpoint::start(bob_only()).await;
    let m = manager(&endpoint.url, 10 * SECOND, Duration::ZERO);
    let LoginCheck::Accepted(user) = check(&m, "bob", "pw").await else {
        panic!("bob refused");
    };
    assert_eq!(user.login.as_deref(), Some("bob"));
    assert_eq!(user.home, VirtualPath::new("/in"));
    assert!(!user.access(&VirtualPath::new("/x")).writable);
    assert!(user.access(&VirtualPath::new("/in/x")).writable);
    let sent = endpoint.requests.lock().unwrap()[0].clone();
    assert_eq!(
        sent,
        json!({"login": "bob", "password": "pw", "address": "192.0.2.7"})
    );
    assert!(matches!(
        check(&m, "bob", "nope").await,
        LoginCheck::Refused
    ));
    assert!(matches!(
        check(&m, "carol", "pw").await,
        LoginCheck::Refused
    ));
}

#[tokio::test]
async fn a_login_of_the_file_never_reaches_the_hook() {
    let endpoint = Endpoint::start(Box::new(|_| {
        Some((
            200,
            json!({"allow": true, "user": {"storage": "memory"}}).to_string(),
        ))
    }))
    .await;
    let m = manager(&endpoint.url, 10 * SECOND, Duration::ZERO);
    assert!(matches!(
        check(&m, "alice", "alice-pw").await,
        LoginCheck::Accepted(_)
    ));
    assert!(
        matches!(check(&m, "alice", "wrong").await, LoginCheck::Refused),
        "a hook that says yes to anything does not decide a login of the file"
    );
    assert!(endpoint.logins().is_empty(), "{:?}", endpoint.logins());
}

#[tokio::test]
async fn every_failure_of_the_hook_is_a_refusal() {
    let too_large: &'static str = Box::leak(
        format!(r#"{{"allow": false, "pad": "{}"}}"#, "x".repeat(MAX_BODY)).into_boxed_str(),
    );
    for reply in [
        fixed(200, "not json"),
        fixed(200, r#"{"allow": "true", "user": {"storage": "memory"}}"#),
        fixed(200, r#"{"allow": true}"#),
        fixed(
            200,
            r#"{"allow": true, "user": {"storage": "memory", "permissions": [{"path": 5}]}}"#,
        ),
        fixed(500, r#"{"allow": true, "user": {"storage": "memory"}}"#),
        fixed(302, ""),
        fixed(200, too_large),
    ] {
        let endpoint = Endpoint::start(reply).await;
        let m = manager(&endpoint.url, 10 * SECOND, Duration::from_secs(60));
        assert!(matches!(check(&m, "bob", "pw").await, LoginCheck::Refused));
        assert_eq!(endpoint.logins(), ["bob"]);
    }
}

#[tokio::test]
async fn a_hook_that_is_down_or_silent_is_a_refusal_at_the_timeout() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    let m = manager(&closed, 10 * SECOND, Duration::ZERO);
    assert!(matches!(check(&m, "bob", "pw").await, LoginCheck::Refused));

    let silent = Endpoint::start(Box::new(|_| None)).await;
    let m = manager(&silent.url, Duration::from_millis(200), Duration::ZERO);
    assert!(matches!(check(&m, "bob", "pw").await, LoginCheck::Refused));
}

#[tokio::test]
async fn a_flood_of_logins_opens_no_more_than_the_request_slots() {
    let silent = Endpoint::start(Box::new(|_| None)).await;
    let m = Arc::new(manager(&silent.url, 60 * SECOND, Duration::ZERO));
    let logins: Vec<_> = (0..MAX_REQUESTS + 8)
        .map(|n| {
            let m = m.clone();
            tokio::spawn(async move { check(&m, &format!("user{n}"), "pw").await })
        })
        .collect();
    // Bounded poll: until every slot holds a request the hook keeps.
    for _ in 0..1000 {
        if silent.logins().len() >= MAX_REQUESTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // No slot is given back before a request ends, and none can end
    // before the hook answers or the minute is up: the rest are waiting.
    assert_eq!(silent.logins().len(), MAX_REQUESTS);
    assert_eq!(m.client.slots_free(), 0);
    // The hook goes away: every request ends, every login is refused.
    drop(silent);
    for login in futures::future::join_all(logins).await {
        assert!(matches!(login.unwrap(), LoginCheck::Refused));
    }
    assert_eq!(m.client.slots_free(), MAX_REQUESTS);
}

#[tokio::test]
async fn a_yes_is_reused_within_the_lifetime_and_a_wrong_password_always_asks() {
    let endpoint = Endpoint::start(bob_only()).await;
    let m = manager(&endpoint.url, 10 * SECOND, Duration::from_secs(60));
    assert!(matches!(
        check(&m, "bob", "pw").await,
        LoginCheck::Accepted(_)
    ));
    assert!(matches!(
        check(&m, "bob", "pw").await,
        LoginCheck::Accepted(_)
    ));
    assert_eq!(endpoint.logins(), ["bob"], "the second login was not asked");
    assert!(matches!(
        check(&m, "bob", "wrong").await,
        LoginCheck::Refused
    ));
    assert!(matches!(
        check(&m, "bob", "wrong").await,
        LoginCheck::Refused
    ));
    assert_eq!(endpoint.logins(), ["bob", "bob", "bob"]);
}

#[tokio::test]
async fn a_reload_keeps_a_hook_account_and_drops_a_removed_file_account() {
    let endpoint = Endpoint::start(bob_only()).await;
    let issued = IssuedAccounts::new();
    let hook = AuthHook {
        url: endpoint.url.clone(),
        timeout: 10 * SECOND,
        cache_lifetime: Duration::ZERO,
        bearer_token: None,
        accounts: AccountRules::standalone(std::env::temp_dir()),
    };
    let before = HookUserManager::new(alice(), &hook, issued.clone()).unwrap();
    let LoginCheck::Accepted(bob) = check(&before, "bob", "pw").await else {
        panic!("bob refused");
    };
    let LoginCheck::Accepted(alice_account) = check(&before, "alice", "alice-pw").await else {
        panic!("alice refused");
    };
    // The reloaded file has no alice any more.
    let empty: Arc<dyn UserManager> = Arc::new(ConfigUserManager::new(Vec::new(), None));
    let after = HookUserManager::new(empty, &hook, issued).unwrap();
    assert!(after
        .refresh(&bob)
        .await
        .is_some_and(|kept| Arc::ptr_eq(&kept, &bob)));
    assert!(after.refresh(&alice_account).await.is_none());
}

#[tokio::test]
async fn a_login_the_hook_knows_gets_the_servers_tls_policy_before_its_password() {
    let endpoint = Endpoint::start(bob_only()).await;
    let m = manager(&endpoint.url, 10 * SECOND, Duration::ZERO);
    assert_eq!(m.tls_policy("bob").await, None);
    assert_eq!(m.get_user("bob").await, LoginKind::PasswordRequired);
    assert!(
        endpoint.logins().is_empty(),
        "USER asks nothing of the hook"
    );
}
