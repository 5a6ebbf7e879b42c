//! argon2 password hashing and verification, off the async workers.
//!
//! Verification is CPU-heavy on purpose. It runs on blocking threads, at most
//! one per core at a time, taken in turns by client ([`ClientKey`]) so a flood
//! from some addresses cannot keep others waiting; clients with no recent
//! failure go first. Each verification's working memory is its own mapping,
//! returned to the system when it ends, so a burst of logins does not leave
//! the daemon big. A failed check takes as long as one against the costliest
//! hash configured, so timing does not tell an unknown login from a wrong
//! password. Logins that ask the same check at the same time (a client
//! opening many connections, a flood repeating one guess) wait for one
//! verification instead of each running its own.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher, Version};
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Password;
use crate::address::ClientKey;

/// Working memory is reserved with at least this capacity. Allocations this
/// big always get a mapping of their own (glibc maps anything above its
/// mmap threshold, which never grows past 32 MiB on 64-bit systems; musl
/// maps large allocations too) and it is unmapped when freed. Smaller ones
/// would be kept in the allocator's per-thread arenas once freed: one 19 MiB
/// block for every blocking thread that ever ran a verification. Capacity
/// that is never touched costs address space, not memory.
const OWN_MAPPING: usize = 33 << 20;

/// How long a client's failed verification makes it wait behind clients
/// without one.
const FAILURE_MEMORY: Duration = Duration::from_secs(600);

/// Clients remembered as having failed; past this the memory is forgotten.
const FAILED_CLIENTS: usize = 16_384;

/// A validated argon2 PHC string (`$argon2id$v=19$...`).
#[derive(Clone)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Accepts `phc` if it is an argon2 PHC string; plain-text passwords are refused.
    pub fn parse(phc: &str) -> Result<Self, String> {
        let parsed = argon2::PasswordHash::new(phc).map_err(|e| {
            format!("not an argon2 PHC string ({e}); create one with `aioftpd hash-password`")
        })?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(format!(
                "algorithm {} is not argon2; create a hash with `aioftpd hash-password`",
                parsed.algorithm
            ));
        }
        Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters: {e}"))?;
        Ok(PasswordHash(phc.to_owned()))
    }

    /// The PHC string, for keyed digests that must change with the hash.
    pub(super) fn phc(&self) -> &str {
        &self.0
    }

    fn params(&self) -> Option<Params> {
        let parsed = argon2::PasswordHash::new(&self.0).ok()?;
        Params::try_from(&parsed).ok()
    }

    /// What checking a password against this hash costs, in block passes.
    fn cost(&self) -> u64 {
        self.params()
            .map_or(0, |p| u64::from(p.m_cost()) * u64::from(p.t_cost()))
    }

    fn verify(&self, password: &str) -> bool {
        let Ok(hash) = argon2::PasswordHash::new(&self.0) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) =
            (Algorithm::try_from(hash.algorithm), Params::try_from(&hash))
        else {
            return false;
        };
        let version = match hash.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(version)) => version,
            Some(Err(_)) => return false,
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let mut memory = working_memory(params.block_count());
        let mut out = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
            .is_ok()
            // Output compares in constant time.
            && Output::new(&out).is_ok_and(|computed| computed == expected)
    }
}

/// `blocks` of argon2 working memory in a mapping of its own (see [`OWN_MAPPING`]).
fn working_memory(blocks: usize) -> Vec<Block> {
    let mut memory = Vec::with_capacity(blocks.max(OWN_MAPPING / Block::SIZE));
    memory.resize(blocks, Block::default());
    memory
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// Hashes `password` as an argon2id PHC string with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    hash_with(Argon2::default(), password)
}

fn hash_with(argon2: Argon2<'_>, password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Runs argon2 verifications on blocking threads, in fair turns.
#[derive(Clone)]
pub struct PasswordVerifier {
    turns: Arc<Turns>,
    /// Checked when a login is unknown: the costliest parameters configured,
    /// so an unknown login costs what the slowest wrong password does.
    decoy: PasswordHash,
    /// How long a decoy check takes, recently: every failure takes at least this.
    decoy_time: Arc<Mutex<Duration>>,
    /// The checks running now, for logins asking the same one to join.
    running: Arc<Running>,
    /// Verifications run (argon2 computations, decoys included).
    verifications: Arc<AtomicU64>,
}

impl PasswordVerifier {
    /// A verifier for these hashes, with as many checks at once as there are cores.
    pub fn new<'a>(hashes: impl IntoIterator<Item = &'a PasswordHash>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let costliest = hashes
            .into_iter()
            .max_by_key(|hash| hash.cost())
            .and_then(PasswordHash::params);
        let argon2 = match costliest {
            Some(params)
                if params.block_count() > Params::default().block_count()
                    || params.t_cost() > Params::default().t_cost() =>
            {
                Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            }
            _ => Argon2::default(),
        };
        let started = std::time::Instant::now();
        let decoy = hash_with(argon2, "aioftpd decoy password")
            .ok()
            .and_then(|phc| PasswordHash::parse(&phc).ok())
            .unwrap_or_else(|| PasswordHash(String::new()));
        PasswordVerifier {
            turns: Arc::new(Turns::new(cores)),
            decoy,
            decoy_time: Arc::new(Mutex::new(started.elapsed())),
            running: Arc::new(Running::new()),
            verifications: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many argon2 verifications have run.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Whether `password` matches `hash`; with `None` it checks against the
    /// decoy and fails. `client` is whose turn it is. A check that is
    /// already running for the same hash and password is joined, not run
    /// again: its answer would be the same.
    pub async fn verify(
        &self,
        hash: Option<&PasswordHash>,
        password: &Password,
        client: ClientKey,
    ) -> bool {
        let id = self.running.id(hash, password);
        let start = || {
            let this = self.clone();
            let hash = hash.cloned();
            let password = password.clone();
            async move { this.verify_alone(hash.as_ref(), &password, client).await }.boxed()
        };
        self.running.join(id, start).await
    }

    async fn verify_alone(
        &self,
        hash: Option<&PasswordHash>,
        password: &Password,
        client: ClientKey,
    ) -> bool {
        let asked = Instant::now();
        let metrics = crate::metrics::get();
        let queued = Queued::new(&metrics.password_queue);
        let Some(turn) = self.turns.wait(client).await else {
            return false;
        };
        drop(queued);
        let started = Instant::now();
        metrics.password_checks.inc();
        metrics
            .password_wait
            .observe(started.duration_since(asked).as_secs_f64());
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).clone();
        let password = password.clone();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = tokio::task::spawn_blocking(move || hash.verify(password.expose()))
            .await
            .unwrap_or(false);
        drop(turn);
        let took = started.elapsed();
        let pad_to = {
            let mut decoy_time = self
                .decoy_time
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !known {
                // A moving average, so the padding follows the machine's load.
                *decoy_time = (*decoy_time * 3 + took) / 4;
            }
            *decoy_time
        };
        if known && matched {
            return true;
        }
        self.turns.failed(client);
        tokio::time::sleep_until(started + pad_to).await;
        false
    }
}

type Check = Shared<BoxFuture<'static, bool>>;

/// One check waiting for its turn, in `aioftpd_password_queue` until it
/// gets it or its login gives up.
struct Queued<'a>(&'a prometheus::IntGauge);

impl<'a> Queued<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Queued(gauge)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The checks running now, by a keyed hash of what they check (the key is
/// random and lives only in this process, so neither passwords nor their
/// plain hashes are kept). An entry lives while someone waits for it: a
/// check every client gave up on is dropped with its place in the turns.
struct Running {
    key: [u8; 32],
    checks: Mutex<HashMap<[u8; 32], WeakShared<BoxFuture<'static, bool>>>>,
}

impl Running {
    fn new() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Running {
            key,
            checks: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], WeakShared<BoxFuture<'static, bool>>>> {
        self.checks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What identifies a check: the hash it is against (`None`: the decoy)
    /// and the password.
    fn id(&self, hash: Option<&PasswordHash>, password: &Password) -> [u8; 32] {
        // A 32-byte key always fits Blake2b's key size.
        let mut mac = <Blake2bMac<U32> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!());
        mac.update(hash.map_or("", |h| h.0.as_str()).as_bytes());
        mac.update(&[0]);
        mac.update(password.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Waits for check `id`: the one running, or a new one from `start`.
    async fn join(
        self: &Arc<Self>,
        id: [u8; 32],
        start: impl FnOnce() -> BoxFuture<'static, bool>,
    ) -> bool {
        let check = {
            let mut checks = self.lock();
            match checks.get(&id).and_then(WeakShared::upgrade) {
                Some(check) => check,
                None => {
                    let check = start().shared();
                    if let Some(weak) = check.downgrade() {
                        checks.insert(id, weak);
                    }
                    check
                }
            }
        };
        let mut waiting = Waiting {
            running: self.clone(),
            id,
            check,
        };
        (&mut waiting.check).await
    }
}

/// One login waiting for a check; the last to leave (done or gone) takes
/// the check's entry away.
struct Waiting {
    running: Arc<Running>,
    id: [u8; 32],
    check: Check,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        // `None` once the check is done; otherwise how many wait, this one too.
        let last = self.check.strong_count().is_none_or(|waiting| waiting <= 1);
        if !last {
            return;
        }
        let mut checks = self.running.lock();
        let ours = checks
            .get(&self.id)
            .is_some_and(|weak| weak.upgrade().is_none_or(|c| c.ptr_eq(&self.check)));
        if ours {
            checks.remove(&self.id);
        }
    }
}

/// Turns at the verification threads: at most `max` at once; waiting
/// clients take turns one verification each, those without a recent failure
/// first.
struct Turns {
    max: usize,
    state: Mutex<TurnState>,
}

#[derive(Default)]
struct TurnState {
    running: usize,
    waiting: HashMap<ClientKey, VecDeque<oneshot::Sender<Turn>>>,
    /// Clients with waiters, in turn order: [without a recent failure, with one].
    order: [VecDeque<ClientKey>; 2],
    failed: HashMap<ClientKey, Instant>,
}

impl TurnState {
    fn class(&self, client: ClientKey, now: Instant) -> usize {
        let recent = self
            .failed
            .get(&client)
            .is_some_and(|&at| now.saturating_duration_since(at) < FAILURE_MEMORY);
        usize::from(recent)
    }
}

/// One verification's place; the next client in turn gets it when dropped.
struct Turn {
    turns: Arc<Turns>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.turns.pass_on();
    }
}

impl Turns {
    fn new(max: usize) -> Self {
        Turns {
            max: max.max(1),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn wait(self: &Arc<Self>, client: ClientKey) -> Option<Turn> {
        let ready = {
            let mut state = self.lock();
            if state.running < self.max && state.waiting.is_empty() {
                state.running += 1;
                return Some(Turn {
                    turns: self.clone(),
                });
            }
            let (tx, rx) = oneshot::channel();
            let now = Instant::now();
            let class = state.class(client, now);
            let queue = state.waiting.entry(client).or_default();
            queue.push_back(tx);
            if queue.len() == 1 {
                state.order[class].push_back(client);
            }
            rx
        };
        ready.await.ok()
    }

    /// A turn ended: hands it to the next waiter in order, or frees it.
    fn pass_on(self: &Arc<Self>) {
        let next = {
            let mut state = self.lock();
            let now = Instant::now();
            let mut next = None;
            while next.is_none() {
                let Some(client) = state.order[0]
                    .pop_front()
                    .or_else(|| state.order[1].pop_front())
                else {
                    break;
                };
                let Some(queue) = state.waiting.get_mut(&client) else {
                    continue;
                };
                // Waiters that gave up are skipped.
                while let Some(tx) = queue.pop_front() {
                    if !tx.is_closed() {
                        next = Some(tx);
                        break;
                    }
                }
                if queue.is_empty() {
                    state.waiting.remove(&client);
                } else {
                    let class = state.class(client, now);
                    state.order[class].push_back(client);
                }
            }
            if next.is_none() {
                state.running -= 1;
            }
            next
        };
        // Sent outside the lock: a waiter gone since hands it on in turn.
        if let Some(tx) = next {
            let _ = tx.send(Turn {
                turns: self.clone(),
            });
        }
    }

    /// Records that `client` failed a check: it waits behind the others for a while.
    fn failed(&self, client: ClientKey) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.failed.len() >= FAILED_CLIENTS {
            state
                .failed
                .retain(|_, at| now.saturating_duration_since(*at) < FAILURE_MEMORY);
            if state.failed.len() >= FAILED_CLIENTS {
                state.failed.clear();
            }
        }
        state.failed.insert(client, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u8) -> ClientKey {
        ClientKey::of(std::net::IpAddr::from([192, 0, 2, n]))
    }

    #[test]
    fn plain_text_is_not_a_password_hash() {
        assert!(PasswordHash::parse("secret").is_err());
        assert!(PasswordHash::parse("$2b$12$abcdefghijklmnopqrstuv").is_err());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hash = PasswordHash::parse(&hash_password("s3cret").unwrap()).unwrap();
        let verifier = PasswordVerifier::new([&hash]);
        let c = client(1);
        assert!(
            verifier
                .verify(Some(&hash), &Password::new("s3cret"), c)
                .await
        );
        assert!(
            !verifier
                .verify(Some(&hash), &Password::new("wrong"), c)
                .await
        );
        assert!(
            !verifier
                .verify(None, &Password::new("aioftpd decoy password"), c)
                .await
        );
    }

    #[test]
    fn hashes_with_other_parameters_verify_and_the_decoy_costs_as_much_as_the_costliest() {
        let params = Params::new(65536, 3, 4, None).unwrap();
        let imported = hash_with(
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            "pw",
        )
        .unwrap();
        let imported = PasswordHash::parse(&imported).unwrap();
        assert!(imported.verify("pw"));
        assert!(!imported.verify("pw2"));
        let ours = PasswordHash::parse(&hash_password("pw").unwrap()).unwrap();
        let verifier = PasswordVerifier::new([&ours, &imported]);
        assert_eq!(verifier.decoy.cost(), imported.cost());
        assert!(verifier.decoy.cost() > ours.cost());
    }

    #[tokio::test]
    async fn waiting_clients_take_turns_and_those_without_failures_go_first() {
        let turns = Arc::new(Turns::new(1));
        let (flood, other, failing) = (client(1), client(2), client(3));
        turns.failed(failing);
        let running = turns.wait(flood).await.unwrap();
        let (served_tx, mut served) = tokio::sync::mpsc::unbounded_channel();
        for who in [flood, flood, flood, failing, other] {
            let turns = turns.clone();
            let served_tx = served_tx.clone();
            tokio::spawn(async move {
                let turn = turns.wait(who).await;
                let _ = served_tx.send(who);
                drop(turn);
            });
            // Queued in this order before the next one asks.
            tokio::task::yield_now().await;
        }
        drop(running);
        let mut order = Vec::new();
        for _ in 0..5 {
            order.push(served.recv().await.unwrap());
        }
        let position = |who| order.iter().position(|&c| c == who).unwrap();
        assert!(
            position(other) < 2,
            "a new client is not stuck behind a flood: {order:?}"
        );
        assert!(position(failing) > position(other), "{order:?}");
    }

    #[tokio::test]
    async fn checks_of_other_passwords_run_apart_and_leave_nothing_behind() {
        let hash = PasswordHash::parse(&hash_password("pw").unwrap()).unwrap();
        let verifier = PasswordVerifier::new([&hash]);
        let checks = ["a", "b", "pw", "a"].map(|p| {
            let (verifier, hash) = (&verifier, &hash);
            async move {
                verifier
                    .verify(Some(hash), &Password::new(p), client(1))
                    .await
            }
        });
        let results = futures::future::join_all(checks).await;
        assert_eq!(results, [false, false, true, false]);
        assert_eq!(
            verifier.verifications(),
            3,
            "the second \"a\" joined the first"
        );
        assert!(verifier.running.lock().is_empty());
    }

    #[tokio::test]
    async fn a_check_every_login_gave_up_on_is_forgotten() {
        let hash = PasswordHash::parse(&hash_password("pw").unwrap()).unwrap();
        let verifier = PasswordVerifier::new([&hash]);
        // Every turn taken, so the check below waits and can be given up.
        let mut held = Vec::new();
        for _ in 0..verifier.turns.max {
            held.push(verifier.turns.wait(client(9)).await);
        }
        let given_up = {
            let verifier = verifier.clone();
            let hash = hash.clone();
            tokio::spawn(async move {
                verifier
                    .verify(Some(&hash), &Password::new("pw"), client(1))
                    .await
            })
        };
        tokio::task::yield_now().await;
        given_up.abort();
        let _ = given_up.await;
        assert!(verifier.running.lock().is_empty());
        drop(held);
        assert!(
            verifier
                .verify(Some(&hash), &Password::new("pw"), client(1))
                .await
        );
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_its_turn() {
        let turns = Arc::new(Turns::new(1));
        let running = turns.wait(client(1)).await.unwrap();
        let gave_up = tokio::spawn({
            let turns = turns.clone();
            async move { turns.wait(client(2)).await.is_some() }
        });
        tokio::task::yield_now().await;
        gave_up.abort();
        let _ = gave_up.await;
        drop(running);
        assert!(turns.wait(client(3)).await.is_some(), "the turn came back");
    }
}
