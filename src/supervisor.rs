//! The daemon's supervisor: binds (or inherits) the listeners, tells systemd
//! how things stand, reloads the config on SIGHUP and drains on SIGTERM/SIGINT.
//!
//! A reload validates the whole new file first; a bad one is logged with the
//! same file:line:key errors as `check-config` and the old config stays. Only
//! listeners whose address changed are rebound. The first SIGTERM drains; a
//! second one exits at once.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

use aioftpd::auth::UserManager;
use aioftpd::auth_hook::{HookUserManager, IssuedAccounts};
use aioftpd::config::{self, ConfigWarning, Loaded};
use aioftpd::database_users::DatabaseUserManager;
use aioftpd::metrics_endpoint;
use aioftpd::server::{self, Listener, Server};
use aioftpd::settings::{ListenerSpec, Settings};
use aioftpd::user_store::{StoreSettings, UserStore};

use crate::user_command::shadowed;

/// How often `STATUS=` is refreshed for `systemctl status`.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Where each configured listener is served: (configured address, implicit TLS) → bound address.
type Bound = HashMap<ListenerSpec, SocketAddr>;

/// Exit status when the users database cannot even be opened (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

/// The users database in use, kept across reloads that leave it as it is.
type OpenStore = Option<(StoreSettings, Arc<UserStore>)>;

/// Runs the daemon until it is told to stop; the exit code to return.
pub(crate) async fn run(
    loaded: Loaded,
    config_path: Option<&Path>,
    listen_override: &[SocketAddr],
) -> ExitCode {
    log_warnings(&loaded.warnings);
    let mut store: OpenStore = None;
    let issued = IssuedAccounts::new();
    let (settings, users) = match users(loaded, &mut store, &issued).await {
        Ok(running) => running,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let mut signals = match signal_hook_tokio::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1]) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    let server = Arc::new(Server::new(settings.clone(), users));
    let activated = match inherited_listeners() {
        Ok(activated) => activated,
        Err(err) => {
            eprintln!("cannot use the sockets systemd passed: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut bound = Bound::new();
    if activated.is_empty() {
        match bind_new(&server, &settings, &bound) {
            Ok(added) => bound = added,
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        for listener in activated {
            serve(&server, listener, None);
        }
    }
    let metrics = match settings.metrics {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "metrics listening");
                Some(tokio::spawn(metrics_endpoint::serve(
                    listener,
                    server.clone(),
                )))
            }
            Err(err) => {
                eprintln!("cannot listen for metrics on {addr}: {err}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    notify(&[NotifyState::Ready]);
    let status = tokio::spawn(report_status(server.clone()));
    loop {
        match signals.next().await {
            Some(SIGUSR1) => reopen_transfer_log(&server),
            Some(SIGHUP) => {
                // logrotate's postrotate may send either signal.
                reopen_transfer_log(&server);
                let Some(path) = config_path else {
                    tracing::info!("SIGHUP: no --config file to reload");
                    continue;
                };
                reload(
                    &server,
                    path,
                    listen_override,
                    &mut bound,
                    &mut store,
                    &issued,
                )
                .await;
            }
            Some(signal) => {
                tracing::info!(signal, "signal received");
                break;
            }
            None => break,
        }
    }
    notify(&[NotifyState::Stopping]);
    // Health checks fail from now on, so a balancer sends no new clients;
    // the metrics stay up while transfers drain.
    aioftpd::metrics::get().set_draining();
    status.abort();
    let grace = server.context().settings.shutdown_timeout;
    let exit = tokio::select! {
        () = server.shutdown(grace) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Some(signal) = signals.next() => {
            tracing::warn!(signal, "second signal: exiting without waiting for transfers");
            ExitCode::FAILURE
        }
    };
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    exit
}

/// SIGUSR1 (and SIGHUP): the transfer log goes to a fresh file of its
/// name, after the lines already queued, as logrotate expects.
fn reopen_transfer_log(server: &Server) {
    if let Some(log) = &server.context().transfer_log {
        log.reopen();
    }
}

fn count_reload(result: &str) {
    aioftpd::metrics::get()
        .reloads
        .with_label_values(&[result])
        .inc();
}

/// SIGHUP: load and validate the file, rebind what changed, swap the config.
async fn reload(
    server: &Server,
    path: &Path,
    listen_override: &[SocketAddr],
    bound: &mut Bound,
    store: &mut OpenStore,
    issued: &Arc<IssuedAccounts>,
) {
    notify(&[NotifyState::Reloading, monotonic_now()]);
    match config::load_file(path) {
        Err(err) => {
            count_reload("refused");
            tracing::error!("reload rejected, the old config stays in force:\n{err}");
        }
        Ok(loaded) => {
            log_warnings(&loaded.warnings);
            // Opened before anything is swapped: a database that cannot be
            // opened leaves the old config in force, listeners and all.
            let mut reopened = store.clone();
            match users(loaded, &mut reopened, issued).await {
                Err(message) => {
                    count_reload("refused");
                    tracing::error!("reload rejected, the old config stays in force: {message}")
                }
                Ok((mut settings, users)) => {
                    if !listen_override.is_empty() {
                        settings.listen = listen_override.to_vec();
                    }
                    match rebind(server, &settings, bound) {
                        Err(message) => {
                            count_reload("refused");
                            tracing::error!(
                                "reload rejected, the old config stays in force: {message}"
                            )
                        }
                        Ok(()) => {
                            if settings.metrics != server.context().settings.metrics {
                                tracing::warn!(
                                    "metrics.listen changed: it takes effect at the next start"
                                );
                            }
                            count_reload("ok");
                            *store = reopened;
                            server.reload(settings, users);
                            tracing::info!(config = %path.display(), "config reloaded");
                        }
                    }
                }
            }
        }
    }
    notify(&[NotifyState::Ready]);
}

/// The settings of `loaded`, and who may log in under it: its
/// `[[users]]`, its users database if it has one, then its `[auth_hook]`
/// if it has one for the logins neither has (the accounts the hook gives
/// recorded in `issued`, which outlives reloads).
async fn users(
    mut loaded: Loaded,
    store: &mut OpenStore,
    issued: &Arc<IssuedAccounts>,
) -> Result<(Settings, Arc<dyn UserManager>), String> {
    let hook = loaded.auth_hook.take();
    let (settings, users) = stored_users(loaded, store).await?;
    let Some(hook) = hook else {
        return Ok((settings, users));
    };
    let manager = HookUserManager::new(users, &hook, issued.clone())?;
    tracing::info!(url = hook.url, "auth hook ready");
    Ok((settings, Arc::new(manager)))
}

/// The settings of `loaded`, and its `[[users]]` and users database
/// (`store`, reused when its settings are unchanged, else opened and put
/// there). The database is
/// asked once here, to create or migrate its schema and for the logins
/// `[[users]]` shadows; it being down is logged, not fatal: its logins get
/// 421 until it answers.
async fn stored_users(
    loaded: Loaded,
    store: &mut OpenStore,
) -> Result<(Settings, Arc<dyn UserManager>), String> {
    let Some(database) = &loaded.users_database else {
        *store = None;
        return Ok((loaded.settings, Arc::new(loaded.users)));
    };
    let open = match store
        .as_ref()
        .filter(|(settings, _)| *settings == database.store)
    {
        Some((_, open)) => open.clone(),
        None => {
            let open = Arc::new(UserStore::open(&database.store).map_err(|e| e.to_string())?);
            *store = Some((database.store.clone(), open.clone()));
            open
        }
    };
    match shadowed(&loaded, &open).await {
        Ok(warnings) => {
            tracing::info!(database = open.name(), "users database ready");
            log_warnings(&warnings);
        }
        Err(err) => tracing::error!("{err}; its users cannot log in until it answers"),
    }
    let credential_cache = loaded.settings.login.credential_cache;
    let Loaded {
        settings,
        users,
        users_database: Some(database),
        ..
    } = loaded
    else {
        unreachable!("checked above");
    };
    let manager = DatabaseUserManager::new(users, open, &database, credential_cache);
    Ok((settings, Arc::new(manager)))
}

/// Risky settings are logged, not refused: the config is valid, and the
/// admin decides (`check-config` lists the same).
fn log_warnings(warnings: &[ConfigWarning]) {
    for warning in warnings {
        tracing::warn!("{warning}");
    }
}

/// Binds and serves every wanted listener not in `bound`; all or nothing.
fn bind_new(server: &Server, settings: &Settings, bound: &Bound) -> Result<Bound, String> {
    let mut fresh = Vec::new();
    for spec in settings
        .listeners()
        .into_iter()
        .filter(|spec| !bound.contains_key(spec))
    {
        let socket = server::bind(spec.addr).map_err(|err| bind_failure(spec.addr, &err))?;
        fresh.push((
            spec,
            Listener {
                socket,
                implicit_tls: spec.implicit_tls,
                proxied: spec.proxied,
            },
        ));
    }
    let mut added = Bound::new();
    for (spec, listener) in fresh {
        if let Some(addr) = serve(server, listener, Some(spec.addr)) {
            added.insert(spec, addr);
        }
    }
    Ok(added)
}

/// What to tell the admin when `addr` cannot be bound: the error, and for
/// the usual mistake, a port below 1024 without the capability, the ways out.
fn bind_failure(addr: SocketAddr, err: &io::Error) -> String {
    let message = format!("cannot listen on {addr}: {err}");
    if err.kind() != io::ErrorKind::PermissionDenied || addr.port() >= 1024 {
        return message;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| "aioftpd".into());
    format!(
        "{message}: ports below 1024 need CAP_NET_BIND_SERVICE. The packaged systemd unit grants it; \
         otherwise run `setcap cap_net_bind_service=+ep {}`, listen on a port of 1024 or above, \
         or let systemd bind it (socket activation: aioftpd.socket)",
        exe.display()
    )
}

/// Stops serving listeners no longer wanted and starts the new ones.
fn rebind(server: &Server, settings: &Settings, bound: &mut Bound) -> Result<(), String> {
    if bound.is_empty() {
        // Inherited from systemd: those sockets are the unit's business.
        return Ok(());
    }
    let added = bind_new(server, settings, bound)?;
    let wanted = settings.listeners();
    bound.retain(|key, addr| {
        let keep = wanted.contains(key);
        if !keep {
            tracing::info!(addr = %addr, "no longer listening");
            server.stop_serving(*addr);
        }
        keep
    });
    bound.extend(added);
    Ok(())
}

fn serve(
    server: &Server,
    listener: Listener,
    configured: Option<SocketAddr>,
) -> Option<SocketAddr> {
    let kind = match (listener.implicit_tls, listener.proxied) {
        (true, _) => "implicit TLS",
        (false, true) => "behind a proxy (PROXY protocol), plain and explicit TLS",
        (false, false) => "plain and explicit TLS",
    };
    match server.serve(listener) {
        Ok(addr) => {
            tracing::info!(%addr, kind, "listening");
            Some(addr)
        }
        Err(err) => {
            tracing::error!(?configured, %err, "cannot serve a listener");
            None
        }
    }
}

/// Sockets passed by systemd socket activation (`LISTEN_FDS`); those whose
/// `FileDescriptorName=` contains `implicit` or `ftps` speak implicit TLS,
/// those whose name contains `proxy` take PROXY headers from
/// `[proxy_protocol] trusted`.
fn inherited_listeners() -> io::Result<Vec<Listener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|names| names.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut listeners = Vec::new();
    for index in 0..fds.len() {
        let Some(socket) = fds.take_tcp_listener(index)? else {
            continue;
        };
        socket.set_nonblocking(true)?;
        let name = names.get(index).map(String::as_str).unwrap_or("");
        let implicit_tls = name.contains("implicit") || name.contains("ftps");
        listeners.push(Listener {
            socket: tokio::net::TcpListener::from_std(socket)?,
            implicit_tls,
            proxied: !implicit_tls && name.contains("proxy"),
        });
    }
    Ok(listeners)
}

/// Keeps `systemctl status` showing how many connections are open.
async fn report_status(server: Arc<Server>) {
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    loop {
        tick.tick().await;
        let status = format!("{} connections", server.connections());
        notify(&[NotifyState::Status(&status)]);
    }
}

fn monotonic_now() -> NotifyState<'static> {
    NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0))
}

/// Tells systemd, when it is listening (`NOTIFY_SOCKET`); a no-op otherwise.
fn notify(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(false, states) {
        tracing::debug!(%err, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_port_below_1024_names_the_capability_and_the_ways_out() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let message = bind_failure("0.0.0.0:21".parse().unwrap(), &denied);
        assert!(
            message.starts_with("cannot listen on 0.0.0.0:21: "),
            "{message}"
        );
        for hint in [
            "ports below 1024 need CAP_NET_BIND_SERVICE",
            "setcap cap_net_bind_service=+ep ",
            "socket activation",
        ] {
            assert!(message.contains(hint), "{hint:?} missing from {message:?}");
        }
    }

    #[test]
    fn other_bind_failures_carry_no_capability_hint() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let in_use = io::Error::from(io::ErrorKind::AddrInUse);
        for (addr, err) in [("0.0.0.0:2121", &denied), ("0.0.0.0:21", &in_use)] {
            let message = bind_failure(addr.parse().unwrap(), err);
            assert_eq!(message, format!("cannot listen on {addr}: {err}"));
        }
    }
}
