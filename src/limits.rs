//! Connection caps and login-failure accounting, as RAII permits: a slot is
//! taken when a connection (or login) is admitted and given back the moment
//! its guard is dropped, however the session ends.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use tokio::time::Instant;

use crate::address::ClientKey;
use crate::auth::{Password, User};
use crate::deadline;
use crate::settings::{Limits, LoginProtection};
use crate::throttle::Bucket;

/// Entries kept in the per-IP failure table before expired ones are swept.
const FAILURE_TABLE_SWEEP: usize = 4096;

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` reached.
    ServerFull,
    /// `max_connections_per_ip` reached for this address.
    AddressFull,
    /// The address failed to log in too often and is blocked for now.
    AddressBlocked,
}

/// Admission of control connections: the server-wide and per-address caps.
#[derive(Debug)]
pub struct Admission {
    state: Mutex<AdmissionState>,
}

#[derive(Debug)]
struct AdmissionState {
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
    max: usize,
    max_per_ip: usize,
}

/// A control connection's place; returned when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    ip: IpAddr,
    admission: Arc<Admission>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        state.open -= 1;
        if let Some(count) = state.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    /// Caps from the settings.
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Admission {
            state: Mutex::new(AdmissionState {
                open: 0,
                per_ip: HashMap::new(),
                max: limits.max_connections,
                max_per_ip: limits.max_connections_per_ip,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AdmissionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// New caps (on reload); connections already open keep their places.
    pub fn set_limits(&self, limits: &Limits) {
        let mut state = self.lock();
        state.max = limits.max_connections;
        state.max_per_ip = limits.max_connections_per_ip;
    }

    /// Takes a place for a connection from `ip`, or says why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let ip = ip.to_canonical();
        let mut state = self.lock();
        if state.open >= state.max {
            return Err(Refusal::ServerFull);
        }
        let max_per_ip = state.max_per_ip;
        let count = state.per_ip.entry(ip).or_insert(0);
        if *count >= max_per_ip {
            return Err(Refusal::AddressFull);
        }
        *count += 1;
        state.open += 1;
        Ok(ConnectionPermit {
            ip,
            admission: self.clone(),
        })
    }

    /// Connections open now, for status lines.
    pub fn open(&self) -> usize {
        self.lock().open
    }
}

/// What all sessions of one user share: a count and the user's bandwidth buckets.
#[derive(Debug)]
struct UserShare {
    sessions: usize,
    download: Option<Arc<Bucket>>,
    upload: Option<Arc<Bucket>>,
}

/// Logged-in sessions per user, with the buckets they share.
#[derive(Debug, Default)]
pub struct UserSlots {
    users: Mutex<HashMap<String, UserShare>>,
}

/// A logged-in session's place among its user's sessions; returned when dropped.
#[derive(Debug)]
pub struct UserSlot {
    slots: Arc<UserSlots>,
    name: String,
    /// The user's download bucket, shared by all its sessions.
    pub download: Option<Arc<Bucket>>,
    /// The user's upload bucket, shared by all its sessions.
    pub upload: Option<Arc<Bucket>>,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut users = self
            .slots
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(share) = users.get_mut(&self.name) {
            share.sessions -= 1;
            if share.sessions == 0 {
                users.remove(&self.name);
            }
        }
    }
}

impl UserSlots {
    /// A place for one more session of `user`, or `None` at its `max_connections`.
    pub fn claim(self: &Arc<Self>, user: &User) -> Option<UserSlot> {
        let name = user.display_name().to_owned();
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let share = users.entry(name.clone()).or_insert_with(|| UserShare {
            sessions: 0,
            download: user.limits.download.map(Bucket::new),
            upload: user.limits.upload.map(Bucket::new),
        });
        if user
            .max_connections
            .is_some_and(|max| share.sessions >= max)
        {
            if share.sessions == 0 {
                users.remove(&name);
            }
            return None;
        }
        share.sessions += 1;
        Some(UserSlot {
            slots: self.clone(),
            download: share.download.clone(),
            upload: share.upload.clone(),
            name,
        })
    }
}

#[derive(Debug, Default)]
struct FailureRecord {
    failures: VecDeque<Instant>,
    /// The guesses being checked now, each holding one unit of the budget
    /// however many connections send it.
    in_flight: HashMap<Guess, Sharers>,
    blocked_until: Option<Instant>,
}

/// A login and password as a keyed hash (the key is random and lives only
/// in this process): what tells one guess from another.
type Guess = [u8; 16];

/// The attempts that send one guess at once.
#[derive(Debug, Default)]
struct Sharers {
    count: u32,
    /// One of them failed or was abandoned: the guess counts as a failure.
    failed: bool,
}

/// Failed logins per address over a sliding window; too many block the
/// address. Every guess counts while it is checked, so parallel
/// connections cannot take more guesses than the budget allows. The same
/// login and password sent on many connections at once (a client fleet
/// reconnecting, a mirror opening its parallel sessions) is one guess: it
/// teaches a guesser nothing more than sending it once.
#[derive(Debug)]
pub struct LoginFailures {
    table: Mutex<FailureTable>,
    key: [u8; 32],
}

#[derive(Debug)]
struct FailureTable {
    records: HashMap<ClientKey, FailureRecord>,
    max_failures: u32,
    window: Duration,
    block: Duration,
}

/// Why a login attempt is not even checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptRefused {
    /// The address is blocked.
    Blocked,
    /// Failures and attempts under way already use up the address's budget.
    BudgetInUse,
}

/// One `PASS` being checked; it counts against its address's budget until
/// it is settled. Dropped unsettled, it counts as a failure.
#[derive(Debug)]
pub struct LoginAttempt {
    failures: Arc<LoginFailures>,
    key: ClientKey,
    guess: Guess,
    settled: bool,
}

impl LoginAttempt {
    /// The password was right: the attempt gives its unit back.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.failures.settle(self.key, self.guess, false);
    }

    /// The password could not be checked (the users database is down): no
    /// guess was judged, so nothing counts against the address.
    pub fn not_checked(self) {
        self.succeeded();
    }

    /// The password was wrong; `true` if that used up the budget (the
    /// address is now blocked).
    pub fn failed(mut self) -> bool {
        self.settled = true;
        self.failures.settle(self.key, self.guess, true)
    }
}

impl Drop for LoginAttempt {
    fn drop(&mut self) {
        if !self.settled {
            self.failures.settle(self.key, self.guess, true);
        }
    }
}

impl FailureTable {
    fn record(&mut self, key: ClientKey, now: Instant) -> &mut FailureRecord {
        if self.records.len() >= FAILURE_TABLE_SWEEP {
            let window = self.window;
            self.records.retain(|_, r| {
                !r.in_flight.is_empty()
                    || r.blocked_until.is_some_and(|until| until > now)
                    || r.failures
                        .back()
                        .is_some_and(|&t| now.duration_since(t) < window)
            });
        }
        let window = self.window;
        let record = self.records.entry(key).or_default();
        while record
            .failures
            .front()
            .is_some_and(|&t| now.duration_since(t) >= window)
        {
            record.failures.pop_front();
        }
        record
    }
}

impl LoginFailures {
    /// Accounting by the settings' per-address budget.
    pub fn new(protection: &LoginProtection) -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        LoginFailures {
            table: Mutex::new(FailureTable {
                records: HashMap::new(),
                max_failures: protection.max_failures_per_ip,
                window: protection.failure_window,
                block: protection.block_duration,
            }),
            key,
        }
    }

    fn guess(&self, login: &str, password: &Password) -> Guess {
        // A 32-byte key always fits Blake2b's key size.
        let mut mac = <Blake2bMac<U16> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!());
        mac.update(login.as_bytes());
        mac.update(&[0]);
        mac.update(password.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FailureTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new budget (on reload); failures and blocks already recorded stay.
    pub fn set_protection(&self, protection: &LoginProtection) {
        let mut table = self.lock();
        table.max_failures = protection.max_failures_per_ip;
        table.window = protection.failure_window;
        table.block = protection.block_duration;
    }

    /// Whether the client at `ip` is blocked now.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.lock()
            .records
            .get(&ClientKey::of(ip))
            .and_then(|r| r.blocked_until)
            .is_some_and(|until| until > now)
    }

    /// Takes a unit of the budget of the client at `ip` for `PASS
    /// password` of `login` (or shares the unit of the same guess under
    /// way), or says why the attempt is not to be checked at all.
    pub fn begin(
        self: &Arc<Self>,
        ip: IpAddr,
        login: &str,
        password: &Password,
    ) -> Result<LoginAttempt, AttemptRefused> {
        let now = Instant::now();
        let key = ClientKey::of(ip);
        let guess = self.guess(login, password);
        let mut table = self.lock();
        let max_failures = table.max_failures;
        let record = table.record(key, now);
        if record.blocked_until.is_some_and(|until| until > now) {
            return Err(AttemptRefused::Blocked);
        }
        let in_use = record.failures.len() as u64 + record.in_flight.len() as u64;
        if !record.in_flight.contains_key(&guess) && in_use >= u64::from(max_failures) {
            return Err(AttemptRefused::BudgetInUse);
        }
        record.in_flight.entry(guess).or_default().count += 1;
        Ok(LoginAttempt {
            failures: self.clone(),
            key,
            guess,
            settled: false,
        })
    }

    /// Ends an attempt; the last of a guess's attempts to end records its
    /// failure, which may use up the budget and block the address.
    fn settle(&self, key: ClientKey, guess: Guess, failed: bool) -> bool {
        let now = Instant::now();
        let mut table = self.lock();
        let (max_failures, block) = (table.max_failures, table.block);
        let record = table.record(key, now);
        let Some(sharers) = record.in_flight.get_mut(&guess) else {
            return false;
        };
        sharers.count -= 1;
        sharers.failed |= failed;
        if sharers.count > 0 {
            return false;
        }
        let failed = sharers.failed;
        record.in_flight.remove(&guess);
        if !failed {
            return false;
        }
        record.failures.push_back(now);
        if record.failures.len() >= max_failures as usize {
            record.failures.clear();
            record.blocked_until = Some(deadline::after(now, block));
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserLimits;
    use crate::path::VirtualPath;
    use crate::storage::MemoryStorage;
    use crate::throttle::Rate;

    fn limits(max: usize, per_ip: usize) -> Limits {
        Limits {
            max_connections: max,
            max_connections_per_ip: per_ip,
            ..Limits::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_server_cap_and_the_address_cap_hold_and_slots_come_back() {
        let admission = Admission::new(&limits(3, 2));
        let a1 = admission.admit(ip("10.0.0.1")).unwrap();
        let _a2 = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::AddressFull
        );
        let _b1 = admission.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.3")).unwrap_err(),
            Refusal::ServerFull
        );
        drop(a1);
        assert_eq!(admission.open(), 2);
        assert!(
            admission.admit(ip("::ffff:10.0.0.1")).is_ok(),
            "mapped IPv4 counts as IPv4"
        );
    }

    fn user(max_connections: Option<usize>) -> User {
        User {
            login: Some("alice".into()),
            home: VirtualPath::root(),
            permissions: Vec::new(),
            storage: Arc::new(MemoryStorage::new()),
            tls_required: None,
            max_connections,
            limits: UserLimits {
                download: Rate::new(1000),
                ..UserLimits::default()
            },
            quota: None,
        }
    }

    #[test]
    fn a_users_sessions_share_one_bucket_up_to_its_cap() {
        let slots = Arc::new(UserSlots::default());
        let alice = user(Some(2));
        let first = slots.claim(&alice).unwrap();
        let second = slots.claim(&alice).unwrap();
        assert!(slots.claim(&alice).is_none());
        let (a, b) = (
            first.download.clone().unwrap(),
            second.download.clone().unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b));
        drop(first);
        drop(second);
        let again = slots.claim(&alice).unwrap();
        assert!(
            !Arc::ptr_eq(&again.download.clone().unwrap(), &a),
            "a fresh share after all left"
        );
    }

    fn protection(max: u32) -> LoginProtection {
        LoginProtection {
            max_failures_per_ip: max,
            failure_window: Duration::from_secs(60),
            block_duration: Duration::from_secs(600),
            ..LoginProtection::default()
        }
    }

    fn try_guess(
        failures: &Arc<LoginFailures>,
        from: IpAddr,
        password: &str,
    ) -> Result<LoginAttempt, AttemptRefused> {
        failures.begin(from, "alice", &Password::new(password))
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_over_its_failure_budget_is_blocked_for_a_while() {
        let failures = Arc::new(LoginFailures::new(&protection(3)));
        let bad = ip("192.0.2.9");
        assert!(!try_guess(&failures, bad, "wrong").unwrap().failed());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(
            !try_guess(&failures, bad, "wrong").unwrap().failed(),
            "the first failure left the window"
        );
        assert!(!try_guess(&failures, bad, "wrong").unwrap().failed());
        assert!(try_guess(&failures, bad, "wrong").unwrap().failed());
        assert!(failures.is_blocked(bad));
        assert_eq!(
            try_guess(&failures, bad, "wrong").unwrap_err(),
            AttemptRefused::Blocked
        );
        assert!(!failures.is_blocked(ip("192.0.2.10")));
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(!failures.is_blocked(bad));
    }

    #[test]
    fn a_block_too_long_for_the_clock_still_blocks() {
        let failures = Arc::new(LoginFailures::new(&LoginProtection {
            block_duration: Duration::MAX,
            ..protection(1)
        }));
        let bad = ip("192.0.2.9");
        assert!(try_guess(&failures, bad, "wrong").unwrap().failed());
        assert!(failures.is_blocked(bad));
    }

    #[test]
    fn attempts_under_way_count_against_the_budget() {
        let failures = Arc::new(LoginFailures::new(&protection(3)));
        let bad = ip("192.0.2.9");
        let parallel: Vec<_> = (0..3)
            .map(|n| try_guess(&failures, bad, &format!("wrong{n}")).unwrap())
            .collect();
        assert_eq!(
            try_guess(&failures, bad, "wrong").unwrap_err(),
            AttemptRefused::BudgetInUse
        );
        let mut parallel = parallel.into_iter();
        parallel.next().unwrap().succeeded();
        let fourth = try_guess(&failures, bad, "wrong").expect("a success gives its unit back");
        drop(fourth);
        drop(parallel);
        assert!(
            failures.is_blocked(bad),
            "abandoned attempts count as failures"
        );
    }

    #[test]
    fn one_guess_sent_on_many_connections_at_once_holds_one_unit() {
        let failures = Arc::new(LoginFailures::new(&protection(3)));
        let from = ip("192.0.2.9");
        let fleet: Vec<_> = (0..64)
            .map(|_| try_guess(&failures, from, "right").expect("the same guess shares its unit"))
            .collect();
        let others: Vec<_> = (0..2)
            .map(|n| try_guess(&failures, from, &format!("other{n}")).unwrap())
            .collect();
        assert_eq!(
            try_guess(&failures, from, "a fourth").unwrap_err(),
            AttemptRefused::BudgetInUse,
            "three guesses under way use up the budget"
        );
        assert_eq!(
            failures
                .begin(from, "bob", &Password::new("right"))
                .unwrap_err(),
            AttemptRefused::BudgetInUse,
            "another login with the same password is another guess"
        );
        for attempt in fleet {
            attempt.succeeded();
        }
        drop(others);
        assert!(
            !failures.is_blocked(from),
            "two failed guesses, not 66: the budget of 3 is not used up"
        );
        let mut again: Vec<_> = (0..5)
            .map(|_| try_guess(&failures, from, "wrong").unwrap())
            .collect();
        let last = again.pop().unwrap();
        assert!(
            again.into_iter().all(|a| !a.failed()),
            "a guess counts once, when its last attempt ends"
        );
        assert!(last.failed(), "the third failed guess blocks the address");
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let failures = Arc::new(LoginFailures::new(&protection(2)));
        assert!(!try_guess(&failures, ip("2001:db8::1"), "wrong")
            .unwrap()
            .failed());
        assert!(try_guess(&failures, ip("2001:db8::ffff:2"), "wrong")
            .unwrap()
            .failed());
        assert!(failures.is_blocked(ip("2001:db8::99")));
        assert!(!failures.is_blocked(ip("2001:db8:0:1::1")), "another /64");
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.1")),
            ClientKey::of(ip("192.0.2.1"))
        );
    }
}
