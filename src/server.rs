//! Listeners and sessions: binds control sockets, accepts connections and
//! runs one session task per connection until shutdown drains them.
//!
//! Bind outside, serve inside: [`Server::serve`] and [`Server::run`] take bound
//! listeners, so tests bind `127.0.0.1:0` and never guess ports; the
//! supervisor in the binary adds and drops listeners and swaps the config on
//! reload through the same handle.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::UserManager;
use crate::context::ServerContext;
use crate::limits::Refusal;
use crate::proxy_protocol;
use crate::reply::Reply;
use crate::session::{PlainControl, Session};
use crate::settings::Settings;

/// A bound control listener and how its connections start.
pub struct Listener {
    /// The bound socket.
    pub socket: TcpListener,
    /// Implicit FTPS: TLS from the first byte, before the greeting.
    pub implicit_tls: bool,
    /// Connections come from trusted proxies, each with a PROXY header
    /// first (`[proxy_protocol] listen`).
    pub proxied: bool,
}

/// An FTP server: listeners come and go, the config can be swapped, and
/// shutdown drains the sessions.
pub struct Server {
    contexts: watch::Sender<Arc<ServerContext>>,
    /// Stops accepting, and tells sessions to close once idle.
    stop: CancellationToken,
    /// Ends every session at once.
    force: CancellationToken,
    sessions: TaskTracker,
    acceptors: TaskTracker,
    /// Listening addresses with the token that stops each one.
    listening: Mutex<Vec<(SocketAddr, CancellationToken)>>,
}

impl Server {
    /// A server with these settings and users, serving nothing yet.
    pub fn new(settings: Settings, users: Arc<dyn UserManager>) -> Self {
        let (contexts, _) = watch::channel(ServerContext::new(settings, users));
        Server {
            contexts,
            stop: CancellationToken::new(),
            force: CancellationToken::new(),
            sessions: TaskTracker::new(),
            acceptors: TaskTracker::new(),
            listening: Mutex::new(Vec::new()),
        }
    }

    /// The generation in force.
    pub fn context(&self) -> Arc<ServerContext> {
        self.contexts.borrow().clone()
    }

    /// Starts accepting on `listener` (inside a tokio runtime); returns its address.
    pub fn serve(&self, listener: Listener) -> io::Result<SocketAddr> {
        let addr = listener.socket.local_addr()?;
        set_session_options(&listener.socket)?;
        let stop_this = self.stop.child_token();
        self.listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((addr, stop_this.clone()));
        self.acceptors.spawn(accept_loop(
            listener,
            self.contexts.subscribe(),
            self.sessions.clone(),
            Tokens {
                stop: self.stop.clone(),
                stop_accepting: stop_this,
                force: self.force.clone(),
            },
        ));
        Ok(addr)
    }

    /// Stops accepting on `addr`; sessions that came in through it go on.
    pub fn stop_serving(&self, addr: SocketAddr) {
        let mut listening = self
            .listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listening.retain(|(a, token)| {
            if *a == addr {
                token.cancel();
            }
            *a != addr
        });
    }

    /// Swaps in new settings and users: new connections get them at once,
    /// running sessions at their next command.
    pub fn reload(&self, settings: Settings, users: Arc<dyn UserManager>) {
        let next = self.context().reloaded(settings, users);
        self.contexts.send_replace(next);
    }

    /// Control connections open now.
    pub fn connections(&self) -> usize {
        self.context().admission.open()
    }

    /// Stops accepting, tells idle sessions `421`, lets running transfers
    /// finish for up to `grace`, then ends whatever is left.
    pub async fn shutdown(&self, grace: Duration) {
        tracing::info!("shutting down: no new connections; waiting for transfers to finish");
        let until = crate::deadline::after(tokio::time::Instant::now(), grace);
        self.stop.cancel();
        self.acceptors.close();
        self.acceptors.wait().await;
        self.sessions.close();
        if tokio::time::timeout(grace, self.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = self.sessions.len(),
                "shutdown_timeout reached: closing the remaining sessions"
            );
            self.force.cancel();
            self.sessions.wait().await;
        }
        // What the last sessions told the hooks goes out in what is left
        // of the grace period (docs/hooks.md).
        self.context().hooks.finish(until).await;
    }

    /// Serves `listeners` until `shutdown` completes, then shuts down with the
    /// configured `shutdown_timeout`.
    pub async fn run(self, listeners: Vec<Listener>, shutdown: impl Future<Output = ()>) {
        for listener in listeners {
            if let Err(err) = self.serve(listener) {
                tracing::warn!(%err, "cannot serve a listener");
            }
        }
        shutdown.await;
        let grace = self.context().settings.shutdown_timeout;
        self.shutdown(grace).await;
    }
}

/// The cancellation tokens an accept loop and its sessions obey.
struct Tokens {
    stop: CancellationToken,
    stop_accepting: CancellationToken,
    force: CancellationToken,
}

async fn accept_loop(
    listener: Listener,
    contexts: watch::Receiver<Arc<ServerContext>>,
    sessions: TaskTracker,
    tokens: Tokens,
) {
    // A connection's local address is the listener's, unless the listener
    // is on a wildcard address: one getsockname per login fewer.
    let bound = listener
        .socket
        .local_addr()
        .ok()
        .filter(|addr| !addr.ip().is_unspecified());
    loop {
        let accepted = tokio::select! {
            accepted = listener.socket.accept() => accepted,
            () = tokens.stop_accepting.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // EMFILE and friends: log, breathe, go on; never take the listener down.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let local = match bound.map_or_else(|| stream.local_addr(), Ok) {
            Ok(local) => local,
            Err(_) => continue,
        };
        let accepted = Accepted {
            stream,
            peer,
            local,
            implicit_tls: listener.implicit_tls,
        };
        if !listener.proxied {
            let context = contexts.borrow().clone();
            if let Some(session) = admit(accepted, context, &contexts, &tokens.stop) {
                sessions.spawn(run_until_forced(session, tokens.force.clone()));
            }
            continue;
        }
        let trusted = contexts
            .borrow()
            .settings
            .proxy
            .as_ref()
            .map(|proxy| proxy.trusted.clone());
        let Some(trusted) = trusted.filter(|trusted| trusted.contains(peer.ip())) else {
            // At info, as every refused connection: one per attempt, and
            // whoever can reach the port can make many.
            tracing::info!(%peer, "refused: a PROXY protocol listener takes connections only from proxy_protocol.trusted");
            continue;
        };
        // The header is read in the connection's own task, so a slow proxy
        // holds up only the client it carries.
        let (contexts, stop, force) = (contexts.clone(), tokens.stop.clone(), tokens.force.clone());
        sessions.spawn(async move {
            let mut accepted = accepted;
            let header = tokio::select! {
                header = proxy_protocol::read_header(&mut accepted.stream) => header,
                () = force.cancelled() => return,
            };
            match header {
                Ok(client) => accepted.peer = client.unwrap_or(peer),
                Err(err) => {
                    tracing::warn!(proxy = %peer, %err, "refused: no valid PROXY header");
                    return;
                }
            }
            let context = contexts.borrow().clone();
            if let Some(session) = admit(accepted, context, &contexts, &stop) {
                run_until_forced(session.through_proxy(trusted), force).await;
            }
        });
    }
}

/// A control connection just accepted; `peer` is the client (through a
/// proxy: the one its header named).
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    implicit_tls: bool,
}

/// The session for `accepted`, or `None` when the caps or the login
/// protection refuse its client (told why, in one line).
fn admit(
    accepted: Accepted,
    context: Arc<ServerContext>,
    contexts: &watch::Receiver<Arc<ServerContext>>,
    stop: &CancellationToken,
) -> Option<Session> {
    let Accepted {
        stream,
        peer,
        local,
        implicit_tls,
    } = accepted;
    let admitted = if context.login_failures.is_blocked(peer.ip()) {
        Err(Refusal::AddressBlocked)
    } else {
        context.admission.admit(peer.ip())
    };
    let permit = match admitted {
        Ok(permit) => permit,
        Err(refusal) => {
            refuse(&stream, refusal);
            tracing::info!(%peer, ?refusal, "connection refused");
            return None;
        }
    };
    let session = Session::new(
        Box::new(PlainControl::new(stream)),
        peer,
        local,
        context,
        stop.clone(),
        implicit_tls,
    )
    .with_permit(permit)
    .following(contexts.clone());
    Some(session)
}

async fn run_until_forced(session: Session, force: CancellationToken) {
    tokio::select! {
        () = session.run() => {}
        () = force.cancelled() => {}
    }
}

/// Sets on a control listener what every session's socket needs; Linux
/// copies both to each connection it accepts, which saves two system calls
/// a login. Urgent data (ABOR sent with MSG_OOB, as ftplib does) stays in
/// the stream, and replies go out without waiting for Nagle's algorithm.
fn set_session_options(listener: &TcpListener) -> io::Result<()> {
    let socket = socket2::SockRef::from(listener);
    socket.set_out_of_band_inline(true)?;
    socket.set_nodelay(true)
}

/// Tells a refused client why, without waiting on it: one non-blocking write of
/// a short line that fits any fresh socket buffer, then the socket is dropped.
/// (On an implicit-TLS port the client cannot read it; it sees the close.)
fn refuse(stream: &TcpStream, refusal: Refusal) {
    let _ = stream.try_write(Reply::from(refusal).to_wire().as_bytes());
}

/// Binds every configured control listener: `listen` plain, `[tls]
/// implicit_listen` implicit; the error names the address that failed.
pub fn bind_all(settings: &Settings) -> Result<Vec<Listener>, (SocketAddr, io::Error)> {
    settings
        .listeners()
        .into_iter()
        .map(|spec| {
            let socket = bind(spec.addr).map_err(|err| (spec.addr, err))?;
            Ok(Listener {
                socket,
                implicit_tls: spec.implicit_tls,
                proxied: spec.proxied,
            })
        })
        .collect()
}

/// Binds a control listener; IPv6 sockets are IPv6-only so `0.0.0.0:21` and
/// `[::]:21` can be listed together.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_take_the_session_options_from_the_listener() {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let listener = bind(addr.parse().unwrap()).unwrap();
            set_session_options(&listener).unwrap();
            let _client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            let socket = socket2::SockRef::from(&accepted);
            assert!(
                socket.out_of_band_inline().unwrap(),
                "{addr}: urgent data inline"
            );
            assert!(socket.nodelay().unwrap(), "{addr}: no Nagle delay");
            assert_eq!(
                accepted.local_addr().unwrap(),
                listener.local_addr().unwrap()
            );
        }
    }
}
