//! What every session of a server shares, in a room of its own: the server
//! makes it and swaps it on reload, sessions read it, and neither room
//! imports the other for it.

use std::sync::Arc;

use crate::auth::UserManager;
use crate::data::PassivePortPool;
use crate::hooks::{Hooks, PreUpload};
use crate::limits::{Admission, LoginFailures, UserSlots};
use crate::settings::Settings;
use crate::throttle::Bucket;
use crate::tls::resumption::Resumption;
use crate::transfer_log::TransferLog;

/// What every session of a server shares. A reload builds a new generation
/// (settings, users, passive ports, server-wide buckets) around the same
/// runtime state (connection counts, login failures, TLS sessions), so caps and
/// blocks survive it.
pub struct ServerContext {
    /// The settings in force.
    pub settings: Settings,
    /// Who may log in.
    pub users: Arc<dyn UserManager>,
    /// Ports for passive data connections.
    pub ports: Arc<PassivePortPool>,
    /// The server-wide download bucket.
    pub download: Option<Arc<Bucket>>,
    /// The server-wide upload bucket.
    pub upload: Option<Arc<Bucket>>,
    /// The TLS sessions issued and to whom, for data-connection resumption.
    pub resumption: Arc<Resumption>,
    /// The server-wide and per-address connection caps.
    pub admission: Arc<Admission>,
    /// Logged-in sessions per user, and the bandwidth buckets they share.
    pub user_slots: Arc<UserSlots>,
    /// Failed logins per address.
    pub login_failures: Arc<LoginFailures>,
    /// The log of finished transfers, if one is configured (and could be
    /// opened).
    pub transfer_log: Option<Arc<TransferLog>>,
    /// The runners of `[[hooks]]`; a hook a reload leaves as it was keeps
    /// its runner and queue.
    pub hooks: Arc<Hooks>,
    /// `[pre_upload]`, if configured.
    pub pre_upload: Option<Arc<PreUpload>>,
}

impl ServerContext {
    /// Shared state for a server with these settings and users.
    pub fn new(settings: Settings, users: Arc<dyn UserManager>) -> Arc<Self> {
        Arc::new(ServerContext {
            ports: PassivePortPool::new(settings.passive.ports.clone()),
            download: settings.limits.download.map(Bucket::new),
            upload: settings.limits.upload.map(Bucket::new),
            resumption: Arc::default(),
            admission: Admission::new(&settings.limits),
            user_slots: Arc::default(),
            login_failures: Arc::new(LoginFailures::new(&settings.login)),
            transfer_log: open_transfer_log(&settings, None),
            hooks: Arc::new(Hooks::start(&settings.hooks, None)),
            pre_upload: settings
                .pre_upload
                .as_ref()
                .map(|c| Arc::new(PreUpload::new(c))),
            settings,
            users,
        })
    }

    /// The next generation: new settings and users over the same runtime state.
    pub fn reloaded(&self, settings: Settings, users: Arc<dyn UserManager>) -> Arc<Self> {
        self.admission.set_limits(&settings.limits);
        self.login_failures.set_protection(&settings.login);
        let ports = if settings.passive.ports == self.settings.passive.ports {
            self.ports.clone()
        } else {
            PassivePortPool::new(settings.passive.ports.clone())
        };
        Arc::new(ServerContext {
            ports,
            download: settings.limits.download.map(Bucket::new),
            upload: settings.limits.upload.map(Bucket::new),
            resumption: self.resumption.clone(),
            admission: self.admission.clone(),
            user_slots: self.user_slots.clone(),
            login_failures: self.login_failures.clone(),
            transfer_log: open_transfer_log(&settings, self.transfer_log.as_ref()),
            hooks: Arc::new(Hooks::start(&settings.hooks, Some(&self.hooks))),
            pre_upload: settings
                .pre_upload
                .as_ref()
                .map(|c| Arc::new(PreUpload::new(c))),
            settings,
            users,
        })
    }
}

/// The transfer log `settings` ask for: `running` if it is that one, else
/// a new one. One that cannot be opened (checked at load, so it went away
/// since) is logged and left out: transfers go on.
fn open_transfer_log(
    settings: &Settings,
    running: Option<&Arc<TransferLog>>,
) -> Option<Arc<TransferLog>> {
    let wanted = settings.transfer_log.as_ref()?;
    if let Some(log) = running.filter(|log| log.settings() == wanted) {
        return Some(log.clone());
    }
    match TransferLog::open(wanted) {
        Ok(log) => Some(Arc::new(log)),
        Err(err) => {
            tracing::error!(%err, path = %wanted.path.display(), "cannot open the transfer log");
            None
        }
    }
}
