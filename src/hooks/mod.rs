//! Event hooks and the pre-upload check (docs/hooks.md).
//!
//! A hook is a program (argv, never a shell) or a URL told of what sessions
//! do: uploads, downloads, deletes, renames, directories made and removed,
//! logins and failed logins. Each configured hook has one runner task and a
//! bounded queue; a session hands it an event with [`Hooks::emit`], which
//! never waits: a full queue drops the event and counts it, so a slow or
//! hung hook costs events, never a session's time or the daemon's memory.
//!
//! The pre-upload check ([`PreUpload`]) is the one call a session waits
//! for: it decides whether an upload may start, within its timeout, and
//! anything but a clear "yes" refuses the upload.
//!
//! This module never sees a session: events are plain data built by the
//! session, and everything a client chose in them (names, logins) is
//! passed as data — JSON-escaped, in environment values, in structured log
//! fields — never as a command line or a shell word.

mod deliver;
mod event;
mod pre_upload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use event::{Event, EventKind};
pub use pre_upload::{Decision, PreUpload, UploadRequest};

use deliver::Deliverer;

/// Where a hook goes: a program run with the event, or a URL it is posted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// An absolute program path and its arguments; run without a shell.
    Command(Vec<String>),
    /// An `http://` or `https://` URL, posted `application/json`.
    Url(String),
}

impl std::fmt::Display for Endpoint {
    /// The program, or the URL without any user or password in it: what
    /// log lines name a hook by.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Command(argv) => f.write_str(argv.first().map_or("", String::as_str)),
            Endpoint::Url(url) => match url::Url::parse(url) {
                Ok(mut shown) => {
                    let _ = shown.set_username("");
                    let _ = shown.set_password(None);
                    f.write_str(shown.as_str())
                }
                Err(_) => f.write_str("(url)"),
            },
        }
    }
}

/// One `[[hooks]]` entry, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSettings {
    /// Its key in the config (`hooks[0]`), for log lines.
    pub key: String,
    /// The events it hears of.
    pub events: Vec<EventKind>,
    /// What it runs or posts to.
    pub endpoint: Endpoint,
    /// How long one attempt may take; a program is killed then.
    pub timeout: Duration,
    /// Further attempts after a failed one.
    pub retries: u32,
    /// Events waiting for it before new ones are dropped.
    pub queue: usize,
    /// Attempts in flight at once.
    pub concurrency: usize,
}

impl HookSettings {
    /// The defaults for the keys an entry leaves out.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// `retries` when not written.
    pub const DEFAULT_RETRIES: u32 = 2;
    /// `queue` when not written.
    pub const DEFAULT_QUEUE: usize = 1024;
    /// `concurrency` when not written.
    pub const DEFAULT_CONCURRENCY: usize = 4;
}

/// `[pre_upload]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreUploadSettings {
    /// The program or URL that decides.
    pub endpoint: Endpoint,
    /// How long an upload waits for the decision; then it is refused.
    pub timeout: Duration,
}

impl PreUploadSettings {
    /// `timeout` when not written.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
}

/// One running hook: its queue and the runner that empties it. Dropped
/// (a reload that changed or removed it, once the old generation's
/// sessions have moved on), its runner delivers what is queued and ends.
struct Hook {
    settings: HookSettings,
    queue: mpsc::Sender<Arc<Event>>,
    /// Stops the runner taking new events (shutdown); it delivers the rest.
    closing: CancellationToken,
    runner: TaskTracker,
    dropped: AtomicU64,
}

/// The hooks of one config generation.
#[derive(Default)]
pub struct Hooks {
    running: Vec<Arc<Hook>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.running.iter().map(|hook| &hook.settings.key))
            .finish()
    }
}

impl Hooks {
    /// Runners for `wanted`: a hook of `running` with the same settings is
    /// kept (its queue and what is in it), any other gets a new runner.
    /// Outside a tokio runtime nothing can run: the hooks are logged and
    /// left out.
    pub fn start(wanted: &[HookSettings], running: Option<&Hooks>) -> Hooks {
        if wanted.is_empty() {
            return Hooks::default();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("hooks need a tokio runtime: none of them runs");
            return Hooks::default();
        };
        let mut client = None;
        let running = wanted
            .iter()
            .map(|settings| {
                let kept = running
                    .and_then(|hooks| hooks.running.iter().find(|hook| hook.settings == *settings));
                match kept {
                    Some(hook) => hook.clone(),
                    None => Hook::start(settings.clone(), &runtime, &mut client),
                }
            })
            .collect();
        Hooks { running }
    }

    /// Whether any hook hears of `kind`: a session builds no event nobody hears.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.running
            .iter()
            .any(|hook| hook.settings.events.contains(&kind))
    }

    /// Queues `event` for every hook that hears of its kind; never waits.
    pub fn emit(&self, event: Event) {
        let event = Arc::new(event);
        for hook in &self.running {
            if hook.settings.events.contains(&event.kind) {
                hook.offer(&event);
            }
        }
    }

    /// Shutdown: each runner takes no new events and delivers what is
    /// queued, until `until`; what is left then is dropped (logged and
    /// counted).
    pub async fn finish(&self, until: Instant) {
        for hook in &self.running {
            hook.closing.cancel();
        }
        for hook in &self.running {
            if tokio::time::timeout_at(until, hook.runner.wait())
                .await
                .is_err()
            {
                let left = hook.queue.max_capacity() - hook.queue.capacity();
                tracing::warn!(
                    hook = hook.settings.key,
                    target = %hook.settings.endpoint,
                    left,
                    "shutdown_timeout reached: hook events still queued are dropped"
                );
            }
        }
    }
}

impl Hook {
    fn start(
        settings: HookSettings,
        runtime: &tokio::runtime::Handle,
        client: &mut Option<Result<reqwest::Client, String>>,
    ) -> Arc<Hook> {
        let (queue, events) = mpsc::channel(settings.queue.max(1));
        let deliverer = Deliverer::new(&settings, client);
        let hook = Arc::new(Hook {
            queue,
            closing: CancellationToken::new(),
            runner: TaskTracker::new(),
            dropped: AtomicU64::new(0),
            settings,
        });
        let _guard = runtime.enter();
        hook.runner.spawn(run(
            deliverer,
            events,
            hook.closing.clone(),
            hook.settings.concurrency,
        ));
        hook.runner.close();
        hook
    }

    fn offer(&self, event: &Arc<Event>) {
        if self.queue.try_send(event.clone()).is_ok() {
            return;
        }
        // Full, or closed by shutdown: either way the session goes on.
        crate::metrics::get()
            .hook_events
            .with_label_values(&[event.kind.name(), "dropped"])
            .inc();
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::warn!(
                hook = self.settings.key,
                target = %self.settings.endpoint,
                dropped,
                "hook behind the events: its queue is full, events dropped"
            );
        }
    }
}

/// The runner: takes events in order and delivers up to `concurrency` at
/// once; ends when the queue is closed (by `closing`, or every sender
/// dropped) and everything taken is delivered.
async fn run(
    deliverer: Deliverer,
    mut events: mpsc::Receiver<Arc<Event>>,
    closing: CancellationToken,
    concurrency: usize,
) {
    let deliverer = Arc::new(deliverer);
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let attempts = TaskTracker::new();
    let mut closed = false;
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = closing.cancelled(), if !closed => {
                events.close();
                closed = true;
                continue;
            }
        };
        let Some(event) = event else { break };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let deliverer = deliverer.clone();
        attempts.spawn(async move {
            deliverer.deliver(&event).await;
            drop(slot);
        });
    }
    attempts.close();
    attempts.wait().await;
}

#[cfg(test)]
mod tests;
