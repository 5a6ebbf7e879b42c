//! Which TLS session a data connection may resume (RFC 4217 §10), and the
//! tags inside the server's tickets that let it tell.
//!
//! Every session the server issues (a TLS 1.3 ticket, a TLS 1.2 ticket or
//! session ID) carries a [`Tag`] inside the encrypted ticket or the
//! server-side cache entry: the control connection it was issued to, and for
//! a session handed out on a data connection, that data connection. A data
//! connection is admitted when the session it resumed was issued
//! - to its own control connection, or
//! - to another control connection of the same named user from the same
//!   address, open or closed within [`RETAIN_CLOSED`] of its last use (a
//!   sibling: rclone shares one session cache between its connections, and a
//!   ticket may outlive the connection it came from). The anonymous user has
//!   no siblings: two strangers behind one NAT share the address.
//!
//! A sibling that has made its TLS handshake but not yet logged in is waited
//! for (within the handshake timeout): a client's pool logs in several
//! connections at once, and the session a data connection offers may come
//! from one whose password is still being checked.
//!
//! A session handed out on a data connection counts only once that data
//! connection has itself been admitted: until then it is pending, and if the
//! connection is refused it is revoked. Tickets are minted only on data
//! connections that offered one of ours, so a full handshake there mints
//! nothing at all.
//!
//! Tickets are stateless (rustls' rotating AEAD ticketer), so a client may
//! resume one ticket any number of times (Go) or each once (OpenSSL). What
//! the server keeps is one small entry per control connection, and for closed
//! ones only those of named users, at most [`CLOSED_PER_USER`] per user and
//! [`CLOSED_IN_ALL`] in all.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::ServerConfig;
use tokio::sync::Notify;

/// How long a closed control connection's sessions stay valid after their last use.
pub const RETAIN_CLOSED: Duration = Duration::from_secs(60 * 60);
/// Closed control connections remembered per user; the oldest go first.
pub const CLOSED_PER_USER: usize = 64;
/// Closed control connections remembered in all.
pub const CLOSED_IN_ALL: usize = 16_384;
/// TLS 1.2 session IDs kept server-side, for clients that do not take tickets.
const SESSION_IDS: usize = 4096;
/// Sessions minted on data connections of one control connection that are
/// remembered as pending or revoked; past this, every earlier one is revoked.
const MINTS_TRACKED: usize = 16;

/// Who a session was issued to, stored in front of the session's own bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tag {
    /// The control connection.
    control: u64,
    /// The data connection it was handed out on, if it was.
    data: Option<u64>,
}

impl Tag {
    const LEN: usize = 16;

    fn prefix(self, session: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN + session.len());
        out.extend_from_slice(&self.control.to_be_bytes());
        out.extend_from_slice(&self.data.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(session);
        out
    }

    /// Splits a stored value into its tag and the session. Serials start at
    /// 1, so 0 means "not handed out on a data connection".
    fn split(stored: &[u8]) -> Option<(Tag, &[u8])> {
        let (control, rest) = stored.split_first_chunk::<8>()?;
        let (data, session) = rest.split_first_chunk::<8>()?;
        let data = u64::from_be_bytes(*data);
        let tag = Tag {
            control: u64::from_be_bytes(*control),
            data: (data != 0).then_some(data),
        };
        Some((tag, session))
    }
}

/// Who is logged in on a control connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Nobody yet (or nobody since `REIN`).
    Nobody,
    /// The anonymous user: never a sibling of anyone.
    Anonymous,
    /// A named user.
    Named(Arc<str>),
}

/// The server-wide state behind session resumption: the ticket key, the
/// TLS 1.2 session-ID cache and the control connections sessions were issued
/// to. One per server; config reloads keep it, so sessions survive them.
pub struct Resumption {
    /// `None` if the system's random source gave no key: TLS 1.3 sessions are
    /// then kept server-side, and TLS 1.2 clients that only take tickets (Go)
    /// cannot resume.
    ticketer: Option<Arc<dyn ProducesTickets>>,
    session_ids: Arc<ServerSessionMemoryCache>,
    registry: Mutex<Registry>,
    /// Woken whenever a verdict may have changed: a login, a logout, a close,
    /// a data connection settled.
    changed: Notify,
    next_serial: AtomicU64,
}

impl fmt::Debug for Resumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = self.lock();
        f.debug_struct("Resumption")
            .field("tickets", &self.ticketer.is_some())
            .field("controls", &registry.controls.len())
            .field("closed", &registry.closed_total)
            .finish_non_exhaustive()
    }
}

impl Default for Resumption {
    fn default() -> Self {
        let ticketer = match rustls::crypto::ring::Ticketer::new() {
            Ok(ticketer) => Some(ticketer),
            Err(err) => {
                tracing::error!(%err, "no TLS ticket key: sessions are kept server-side");
                None
            }
        };
        Resumption {
            ticketer,
            session_ids: ServerSessionMemoryCache::new(SESSION_IDS),
            registry: Mutex::default(),
            changed: Notify::new(),
            next_serial: AtomicU64::new(1),
        }
    }
}

impl Resumption {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serial(&self) -> u64 {
        self.next_serial.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a control connection from `ip` about to make its TLS
    /// handshake; dropping the handle records that it closed.
    pub fn open_control(self: &Arc<Self>, ip: IpAddr) -> ControlTickets {
        let id = self.serial();
        self.lock().controls.insert(
            id,
            Control {
                ip: ip.to_canonical(),
                holder: Holder::Nobody,
                closed: false,
                last_used: Instant::now(),
                mints: Mints::default(),
            },
        );
        ControlTickets {
            id,
            resumption: self.clone(),
        }
    }

    /// The view of a data connection of control connection `control`, made
    /// from `ip`.
    pub fn data_connection(self: &Arc<Self>, control: &ControlTickets, ip: IpAddr) -> DataTickets {
        let serial = self.serial();
        DataTickets {
            books: Arc::new(Books {
                resumption: self.clone(),
                issue: Tag {
                    control: control.id,
                    data: Some(serial),
                },
                data: true,
                shown: Mutex::new(None),
                minted: AtomicBool::new(false),
            }),
            ip: ip.to_canonical(),
            settled: AtomicBool::new(false),
        }
    }

    fn install(&self, config: &mut ServerConfig, books: &Arc<Books>) {
        if let Some(inner) = &self.ticketer {
            config.ticketer = Arc::new(TaggedTickets {
                inner: inner.clone(),
                books: books.clone(),
            });
        }
        config.session_storage = Arc::new(TaggedSessions {
            inner: self.session_ids.clone(),
            books: books.clone(),
        });
    }

    fn set_holder(&self, control: u64, holder: Holder) {
        if let Some(entry) = self.lock().controls.get_mut(&control) {
            entry.holder = holder;
        }
        self.changed.notify_waiters();
    }

    fn close(&self, control: u64) {
        self.lock().close(control, Instant::now());
        self.changed.notify_waiters();
    }

    fn mint(&self, tag: Tag) {
        if let (Some(data), Some(entry)) = (tag.data, self.lock().controls.get_mut(&tag.control)) {
            entry.mints.pend(data);
        }
    }

    fn settle(&self, tag: Tag, admitted: bool) {
        if let (Some(data), Some(entry)) = (tag.data, self.lock().controls.get_mut(&tag.control)) {
            entry.mints.settle(data, admitted);
        }
        self.changed.notify_waiters();
    }

    /// Whether a data connection of control connection `own`, from `ip`, that
    /// resumed the session tagged `shown` may go on; waits until `deadline`
    /// while the answer depends on a login or a data connection in progress.
    async fn admit(
        &self,
        shown: Tag,
        own: u64,
        ip: IpAddr,
        deadline: tokio::time::Instant,
    ) -> bool {
        loop {
            // Registered before the check, so a change between the check and
            // the wait is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.lock().verdict(shown, own, ip, Instant::now()) {
                Verdict::Admit => return true,
                Verdict::Refuse => return false,
                Verdict::Wait => {}
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}

/// A control connection's place in the registry; closes it when dropped.
pub struct ControlTickets {
    id: u64,
    resumption: Arc<Resumption>,
}

impl fmt::Debug for ControlTickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlTickets")
            .field("id", &self.id)
            .finish()
    }
}

impl ControlTickets {
    /// Makes `config` (a control connection's) issue sessions tagged with
    /// this connection. A control connection may resume any session of ours:
    /// its password, not its session, is what lets it in.
    pub fn install(&self, config: &mut ServerConfig) {
        let books = Arc::new(Books {
            resumption: self.resumption.clone(),
            issue: Tag {
                control: self.id,
                data: None,
            },
            data: false,
            shown: Mutex::new(None),
            minted: AtomicBool::new(false),
        });
        self.resumption.install(config, &books);
    }

    /// Records who is logged in now.
    pub fn set_holder(&self, holder: Holder) {
        self.resumption.set_holder(self.id, holder);
    }
}

impl Drop for ControlTickets {
    fn drop(&mut self) {
        self.resumption.close(self.id);
    }
}

/// One data connection's view: what it issues, what it was shown, and its
/// verdict; settles its minted sessions when dropped, if nothing did before.
pub struct DataTickets {
    books: Arc<Books>,
    ip: IpAddr,
    settled: AtomicBool,
}

impl fmt::Debug for DataTickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataTickets")
            .field("issue", &self.books.issue)
            .field("ip", &self.ip)
            .finish()
    }
}

impl DataTickets {
    /// Makes `config` (this data connection's) issue sessions tagged with
    /// this connection and record the session it resumes.
    pub fn install(&self, config: &mut ServerConfig) {
        self.books.resumption.install(config, &self.books);
    }

    /// After the handshake: whether the connection resumed a session it may
    /// use (waiting up to `deadline` for a sibling's login); settles the
    /// sessions it minted accordingly.
    pub async fn admit(&self, resumed: bool, deadline: tokio::time::Instant) -> bool {
        let shown = *self
            .books
            .shown
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let admitted = match shown {
            Some(shown) if resumed => {
                let own = self.books.issue.control;
                self.books
                    .resumption
                    .admit(shown, own, self.ip, deadline)
                    .await
            }
            _ => false,
        };
        self.settle(admitted);
        admitted
    }

    fn settle(&self, admitted: bool) {
        if !self.settled.swap(true, Ordering::AcqRel) && self.books.minted.load(Ordering::Acquire) {
            self.books.resumption.settle(self.books.issue, admitted);
        }
    }
}

impl Drop for DataTickets {
    fn drop(&mut self) {
        self.settle(false);
    }
}

/// What one connection's handshake issues and is shown.
struct Books {
    resumption: Arc<Resumption>,
    issue: Tag,
    data: bool,
    /// The tag of the session a data connection offered and we could read.
    shown: Mutex<Option<Tag>>,
    /// Whether this (data) connection handed out a session.
    minted: AtomicBool,
}

impl Books {
    /// Tags a session about to be handed out; `None` if it must not be: a
    /// data connection that offered none of our sessions mints nothing.
    fn tag(&self, session: &[u8]) -> Option<Vec<u8>> {
        if self.data {
            self.shown
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()?;
            // Pending before a byte of it leaves, so it cannot be used before
            // this connection is admitted.
            self.resumption.mint(self.issue);
            self.minted.store(true, Ordering::Release);
        }
        Some(self.issue.prefix(session))
    }

    /// Unwraps a stored session; a data connection remembers whose it was.
    fn untag(&self, stored: &[u8]) -> Option<Vec<u8>> {
        let (tag, session) = Tag::split(stored)?;
        if self.data {
            *self.shown.lock().unwrap_or_else(PoisonError::into_inner) = Some(tag);
        }
        Some(session.to_vec())
    }
}

/// The server's ticketer, tagging what one connection issues.
struct TaggedTickets {
    inner: Arc<dyn ProducesTickets>,
    books: Arc<Books>,
}

impl fmt::Debug for TaggedTickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaggedTickets")
            .field("issue", &self.books.issue)
            .finish_non_exhaustive()
    }
}

impl ProducesTickets for TaggedTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&self.books.tag(plain)?)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.books.untag(&self.inner.decrypt(cipher)?)
    }
}

/// The server's session-ID cache, tagging what one connection stores.
struct TaggedSessions {
    inner: Arc<ServerSessionMemoryCache>,
    books: Arc<Books>,
}

impl fmt::Debug for TaggedSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaggedSessions")
            .field("issue", &self.books.issue)
            .finish_non_exhaustive()
    }
}

impl StoresServerSessions for TaggedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        match self.books.tag(&value) {
            Some(tagged) => self.inner.put(key, tagged),
            None => false,
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.books.untag(&self.inner.get(key)?)
    }

    /// Asked for TLS 1.3 sessions kept server-side (only without a ticket
    /// key): FTP clients such as Go resume one session for many data
    /// connections, so it is not consumed.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// A control connection sessions were issued to.
#[derive(Debug)]
struct Control {
    ip: IpAddr,
    holder: Holder,
    closed: bool,
    /// For a closed connection: when a data connection last resumed one of its sessions.
    last_used: Instant,
    mints: Mints,
}

impl Control {
    fn expired(&self, now: Instant) -> bool {
        self.closed && now.saturating_duration_since(self.last_used) > RETAIN_CLOSED
    }
}

/// The state of sessions minted on a control connection's data connections:
/// a serial not listed here (and not below `revoked_below`) is admitted.
#[derive(Debug, Default)]
struct Mints {
    pending: Vec<u64>,
    revoked: Vec<u64>,
    revoked_below: u64,
}

enum MintState {
    Admitted,
    Pending,
    Revoked,
}

impl Mints {
    fn state(&self, serial: u64) -> MintState {
        if serial < self.revoked_below || self.revoked.contains(&serial) {
            MintState::Revoked
        } else if self.pending.contains(&serial) {
            MintState::Pending
        } else {
            MintState::Admitted
        }
    }

    fn pend(&mut self, serial: u64) {
        if !self.pending.contains(&serial) {
            if self.pending.len() >= MINTS_TRACKED {
                let oldest = self.pending.remove(0);
                self.revoke(oldest);
            }
            self.pending.push(serial);
        }
    }

    fn settle(&mut self, serial: u64, admitted: bool) {
        self.pending.retain(|&s| s != serial);
        if !admitted {
            self.revoke(serial);
        }
    }

    fn revoke(&mut self, serial: u64) {
        self.revoked.push(serial);
        if self.revoked.len() > MINTS_TRACKED {
            // Too many to list: revoke everything up to the newest.
            self.revoked_below = self.revoked.iter().copied().max().unwrap_or(0) + 1;
            self.revoked.clear();
        }
    }

    /// A closed connection's data connections are gone: nothing pending will settle.
    fn abandon_pending(&mut self) {
        for serial in std::mem::take(&mut self.pending) {
            self.revoke(serial);
        }
    }
}

enum Verdict {
    Admit,
    Refuse,
    Wait,
}

/// Control connections by id, with closed ones remembered per user.
#[derive(Debug, Default)]
struct Registry {
    controls: HashMap<u64, Control>,
    closed: HashMap<Arc<str>, VecDeque<u64>>,
    closed_total: usize,
}

impl Registry {
    fn verdict(&mut self, shown: Tag, own: u64, ip: IpAddr, now: Instant) -> Verdict {
        let Some(me) = self.controls.get(&own).map(|c| c.holder.clone()) else {
            return Verdict::Refuse;
        };
        let Some(issuer) = self.controls.get_mut(&shown.control) else {
            return Verdict::Refuse;
        };
        if issuer.expired(now) || issuer.ip != ip {
            return Verdict::Refuse;
        }
        if let Some(serial) = shown.data {
            match issuer.mints.state(serial) {
                MintState::Admitted => {}
                MintState::Pending => return Verdict::Wait,
                MintState::Revoked => return Verdict::Refuse,
            }
        }
        let verdict = if shown.control == own {
            Verdict::Admit
        } else {
            match (&me, &issuer.holder) {
                (Holder::Named(mine), Holder::Named(theirs)) if mine == theirs => Verdict::Admit,
                (Holder::Named(_), Holder::Nobody) if !issuer.closed => Verdict::Wait,
                _ => Verdict::Refuse,
            }
        };
        if matches!(verdict, Verdict::Admit) {
            issuer.last_used = now;
        }
        verdict
    }

    /// Forgets a closed connection, or remembers it if its sessions may
    /// still serve a sibling: only a named user's are worth keeping.
    fn close(&mut self, id: u64, now: Instant) {
        let user = match self.controls.get_mut(&id) {
            Some(entry) => match &entry.holder {
                Holder::Named(user) => {
                    entry.closed = true;
                    entry.last_used = now;
                    entry.mints.abandon_pending();
                    user.clone()
                }
                Holder::Nobody | Holder::Anonymous => {
                    self.controls.remove(&id);
                    return;
                }
            },
            None => return,
        };
        let queue = self.closed.entry(user).or_default();
        queue.push_back(id);
        self.closed_total += 1;
        if queue.len() > CLOSED_PER_USER {
            if let Some(oldest) = queue.pop_front() {
                self.controls.remove(&oldest);
                self.closed_total -= 1;
            }
        }
        if self.closed_total > CLOSED_IN_ALL {
            self.prune(now);
        }
    }

    /// Drops expired closed connections; if that is not enough, the oldest
    /// of the user with the most.
    fn prune(&mut self, now: Instant) {
        let controls = &mut self.controls;
        for queue in self.closed.values_mut() {
            queue.retain(|id| match controls.get(id) {
                Some(entry) if !entry.expired(now) => true,
                _ => {
                    controls.remove(id);
                    false
                }
            });
        }
        self.closed.retain(|_, queue| !queue.is_empty());
        self.closed_total = self.closed.values().map(VecDeque::len).sum();
        while self.closed_total > CLOSED_IN_ALL {
            let Some(queue) = self.closed.values_mut().max_by_key(|q| q.len()) else {
                break;
            };
            if let Some(oldest) = queue.pop_front() {
                self.controls.remove(&oldest);
            }
            self.closed_total -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn named(user: &str) -> Holder {
        Holder::Named(Arc::from(user))
    }

    /// A control connection from `ip` with `holder`, and a session it issued.
    fn control(resumption: &Arc<Resumption>, from: &str, holder: Holder) -> (ControlTickets, Tag) {
        let control = resumption.open_control(ip(from));
        control.set_holder(holder);
        let tag = Tag {
            control: control.id,
            data: None,
        };
        (control, tag)
    }

    fn verdict(resumption: &Resumption, shown: Tag, own: &ControlTickets, from: &str) -> bool {
        matches!(
            resumption
                .lock()
                .verdict(shown, own.id, ip(from), Instant::now()),
            Verdict::Admit
        )
    }

    #[test]
    fn a_tag_survives_the_round_trip_and_short_values_are_refused() {
        for tag in [
            Tag {
                control: 7,
                data: None,
            },
            Tag {
                control: u64::MAX,
                data: Some(9),
            },
        ] {
            let stored = tag.prefix(b"session");
            assert_eq!(Tag::split(&stored), Some((tag, &b"session"[..])));
        }
        assert_eq!(Tag::split(&[0; 15]), None);
    }

    #[test]
    fn own_sessions_and_those_of_the_same_named_user_from_the_same_address_are_admitted() {
        let resumption = Arc::new(Resumption::default());
        let (alice, alices) = control(&resumption, "10.0.0.1", named("alice"));
        let (sibling, siblings) = control(&resumption, "10.0.0.1", named("alice"));
        let (_bob, bobs) = control(&resumption, "10.0.0.1", named("bob"));
        let (_far, far_alices) = control(&resumption, "10.0.0.2", named("alice"));
        assert!(verdict(&resumption, alices, &alice, "10.0.0.1"));
        assert!(verdict(&resumption, siblings, &alice, "10.0.0.1"));
        assert!(!verdict(&resumption, bobs, &alice, "10.0.0.1"));
        assert!(!verdict(&resumption, far_alices, &alice, "10.0.0.1"));
        assert!(
            !verdict(&resumption, alices, &alice, "10.0.0.2"),
            "from another address"
        );
        drop(sibling);
        assert!(
            verdict(&resumption, siblings, &alice, "10.0.0.1"),
            "a closed sibling's sessions stay valid"
        );
    }

    #[test]
    fn anonymous_sessions_are_nobodys_siblings() {
        let resumption = Arc::new(Resumption::default());
        let (one, ones) = control(&resumption, "10.0.0.1", Holder::Anonymous);
        let (other, others) = control(&resumption, "10.0.0.1", Holder::Anonymous);
        assert!(verdict(&resumption, ones, &one, "10.0.0.1"));
        assert!(!verdict(&resumption, others, &one, "10.0.0.1"));
        assert!(!verdict(&resumption, ones, &other, "10.0.0.1"));
        drop(one);
        assert!(
            !resumption.lock().controls.contains_key(&ones.control),
            "an anonymous connection is forgotten when it closes"
        );
    }

    #[tokio::test]
    async fn a_sibling_still_logging_in_is_waited_for() {
        let resumption = Arc::new(Resumption::default());
        let (alice, _) = control(&resumption, "10.0.0.1", named("alice"));
        let (pending, pendings) = control(&resumption, "10.0.0.1", Holder::Nobody);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let admit = resumption.admit(pendings, alice.id, ip("10.0.0.1"), deadline);
        tokio::pin!(admit);
        tokio::select! {
            biased;
            _ = &mut admit => panic!("decided before the sibling logged in"),
            () = std::future::ready(()) => {}
        }
        pending.set_holder(named("alice"));
        assert!(admit.await);

        let (mallory, mallorys) = control(&resumption, "10.0.0.1", Holder::Nobody);
        let admit = resumption.admit(mallorys, alice.id, ip("10.0.0.1"), deadline);
        tokio::pin!(admit);
        tokio::select! {
            biased;
            _ = &mut admit => panic!("decided before the sibling logged in"),
            () = std::future::ready(()) => {}
        }
        mallory.set_holder(named("mallory"));
        assert!(!admit.await, "the sibling turned out to be someone else");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sibling_that_never_logs_in_is_refused_at_the_deadline() {
        let resumption = Arc::new(Resumption::default());
        let (alice, _) = control(&resumption, "10.0.0.1", named("alice"));
        let (_silent, silents) = control(&resumption, "10.0.0.1", Holder::Nobody);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        assert!(
            !resumption
                .admit(silents, alice.id, ip("10.0.0.1"), deadline)
                .await
        );
    }

    #[test]
    fn a_session_minted_on_a_data_connection_counts_once_that_connection_is_admitted() {
        let resumption = Arc::new(Resumption::default());
        let (alice, _) = control(&resumption, "10.0.0.1", named("alice"));
        let minted = |serial| Tag {
            control: alice.id,
            data: Some(serial),
        };
        resumption.mint(minted(100));
        assert!(matches!(
            resumption
                .lock()
                .verdict(minted(100), alice.id, ip("10.0.0.1"), Instant::now()),
            Verdict::Wait
        ));
        resumption.settle(minted(100), true);
        assert!(verdict(&resumption, minted(100), &alice, "10.0.0.1"));
        resumption.mint(minted(101));
        resumption.settle(minted(101), false);
        assert!(!verdict(&resumption, minted(101), &alice, "10.0.0.1"));
        for serial in 200..200 + MINTS_TRACKED as u64 + 1 {
            resumption.mint(minted(serial));
            resumption.settle(minted(serial), false);
        }
        assert!(
            !verdict(&resumption, minted(101), &alice, "10.0.0.1"),
            "still revoked once too many to list"
        );
        assert!(!verdict(&resumption, minted(100), &alice, "10.0.0.1"));
    }

    #[test]
    fn a_data_connection_that_was_shown_nothing_mints_nothing() {
        let resumption = Arc::new(Resumption::default());
        let (alice, _) = control(&resumption, "10.0.0.1", named("alice"));
        let data = resumption.data_connection(&alice, ip("10.0.0.1"));
        assert_eq!(data.books.tag(b"session"), None);
        let shown = Tag {
            control: alice.id,
            data: None,
        }
        .prefix(b"old");
        assert_eq!(data.books.untag(&shown), Some(b"old".to_vec()));
        let minted = data.books.tag(b"new").expect("minted once shown ours");
        assert_eq!(Tag::split(&minted).unwrap().0, data.books.issue);
        drop(data);
        assert!(
            !verdict(
                &resumption,
                Tag::split(&minted).unwrap().0,
                &alice,
                "10.0.0.1"
            ),
            "a data connection dropped before its verdict leaves its sessions revoked"
        );
    }

    #[test]
    fn closed_connections_are_remembered_per_user_within_bounds() {
        let resumption = Arc::new(Resumption::default());
        let mut first = None;
        for _ in 0..CLOSED_PER_USER + 1 {
            let (c, tag) = control(&resumption, "10.0.0.1", named("alice"));
            first.get_or_insert(tag);
            drop(c);
        }
        let registry = resumption.lock();
        assert_eq!(registry.closed_total, CLOSED_PER_USER);
        assert!(!registry.controls.contains_key(&first.unwrap().control));
    }

    #[test]
    fn a_closed_connection_expires_after_its_last_use() {
        let resumption = Arc::new(Resumption::default());
        let (alice, _) = control(&resumption, "10.0.0.1", named("alice"));
        let (sibling, siblings) = control(&resumption, "10.0.0.1", named("alice"));
        drop(sibling);
        let later = Instant::now() + RETAIN_CLOSED + Duration::from_secs(1);
        assert!(matches!(
            resumption
                .lock()
                .verdict(siblings, alice.id, ip("10.0.0.1"), later),
            Verdict::Refuse
        ));
    }
}
