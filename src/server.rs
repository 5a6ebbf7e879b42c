//! Listeners and sessions: binds control sockets, accepts connections and
//! runs one session task per connection until shutdown drains them.
//!
//! Bind outside, serve inside: [`Server::run`] takes bound listeners and a
//! shutdown future, so tests bind `127.0.0.1:0` and never guess ports.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::UserManager;
use crate::data::PassivePortPool;
use crate::limits::{Admission, LoginFailures, Refusal, UserSlots};
use crate::session::Session;
use crate::settings::Settings;
use crate::throttle::Bucket;
use crate::tls::SessionRegistry;

/// What every session of a server shares: settings, users and the passive port pool.
pub struct ServerContext {
    /// The settings in force.
    pub settings: Settings,
    /// Who may log in.
    pub users: Arc<dyn UserManager>,
    /// Ports for passive data connections.
    pub ports: Arc<PassivePortPool>,
    /// TLS sessions of logged-in control connections, for data-connection resumption.
    pub tls_sessions: SessionRegistry,
    /// The server-wide and per-address connection caps.
    pub admission: Arc<Admission>,
    /// Logged-in sessions per user, and the bandwidth buckets they share.
    pub user_slots: Arc<UserSlots>,
    /// Failed logins per address.
    pub login_failures: LoginFailures,
    /// The server-wide download bucket.
    pub download: Option<Arc<Bucket>>,
    /// The server-wide upload bucket.
    pub upload: Option<Arc<Bucket>>,
}

impl ServerContext {
    /// Shared state for a server with these settings and users.
    pub fn new(settings: Settings, users: Arc<dyn UserManager>) -> Arc<Self> {
        Arc::new(ServerContext {
            ports: PassivePortPool::new(settings.passive.ports.clone()),
            tls_sessions: SessionRegistry::default(),
            admission: Admission::new(&settings.limits),
            user_slots: Arc::default(),
            login_failures: LoginFailures::new(&settings.login),
            download: settings.limits.download.map(Bucket::new),
            upload: settings.limits.upload.map(Bucket::new),
            settings,
            users,
        })
    }
}

/// A bound control listener and how its connections start.
pub struct Listener {
    /// The bound socket.
    pub socket: TcpListener,
    /// Implicit FTPS: TLS from the first byte, before the greeting.
    pub implicit_tls: bool,
}

impl Listener {
    /// A plain listener (explicit FTPS via `AUTH TLS` when TLS is configured).
    pub fn plain(socket: TcpListener) -> Self {
        Listener {
            socket,
            implicit_tls: false,
        }
    }

    /// An implicit-TLS listener.
    pub fn implicit_tls(socket: TcpListener) -> Self {
        Listener {
            socket,
            implicit_tls: true,
        }
    }
}

/// An FTP server: settings and users, ready to serve bound listeners.
pub struct Server {
    context: Arc<ServerContext>,
}

impl Server {
    /// A server with these settings and users.
    pub fn new(settings: Settings, users: Arc<dyn UserManager>) -> Self {
        Server {
            context: ServerContext::new(settings, users),
        }
    }

    /// Serves `listeners` until `shutdown` completes, then stops accepting,
    /// tells idle sessions `421`, lets running transfers finish and returns
    /// once every session has ended.
    pub async fn run(self, listeners: Vec<Listener>, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let sessions = TaskTracker::new();
        let acceptors = TaskTracker::new();
        for listener in listeners {
            acceptors.spawn(accept_loop(
                listener,
                self.context.clone(),
                sessions.clone(),
                stop.clone(),
            ));
        }
        acceptors.close();
        shutdown.await;
        tracing::info!("shutting down: no new connections; waiting for sessions to end");
        stop.cancel();
        acceptors.wait().await;
        sessions.close();
        sessions.wait().await;
    }
}

async fn accept_loop(
    listener: Listener,
    context: Arc<ServerContext>,
    sessions: TaskTracker,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.socket.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // EMFILE and friends: log, breathe, go on; never take the listener down.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(_) => continue,
        };
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
                continue;
            }
        };
        // Urgent data (ABOR sent with MSG_OOB, as ftplib does) must stay in the stream.
        let sock = socket2::SockRef::from(&stream);
        let _ = sock.set_out_of_band_inline(true);
        let _ = stream.set_nodelay(true);
        let session = Session::new(
            Box::new(stream),
            peer,
            local,
            context.clone(),
            stop.clone(),
            listener.implicit_tls,
        )
        .with_permit(permit);
        sessions.spawn(session.run());
    }
}

/// Tells a refused client why, without waiting on it: one non-blocking write of
/// a short line that fits any fresh socket buffer, then the socket is dropped.
/// (On an implicit-TLS port the client cannot read it; it sees the close.)
fn refuse(stream: &TcpStream, refusal: Refusal) {
    let text: &[u8] = match refusal {
        Refusal::ServerFull => b"421 Too many connections, try again later\r\n",
        Refusal::AddressFull => b"421 Too many connections from your address\r\n",
        Refusal::AddressBlocked => {
            b"421 Too many failed logins from your address, try again later\r\n"
        }
    };
    let _ = stream.try_write(text);
}

/// Binds every configured control listener: `listen` plain, `[tls]
/// implicit_listen` implicit; the error names the address that failed.
pub fn bind_all(settings: &Settings) -> Result<Vec<Listener>, (SocketAddr, io::Error)> {
    let implicit = settings.tls.iter().flat_map(|tls| &tls.implicit_listen);
    let plain = settings.listen.iter().map(|addr| (addr, false));
    plain
        .chain(implicit.map(|addr| (addr, true)))
        .map(|(&addr, implicit_tls)| {
            let socket = bind(addr).map_err(|err| (addr, err))?;
            Ok(Listener {
                socket,
                implicit_tls,
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
