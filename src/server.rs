//! Listeners and sessions: binds control sockets, accepts connections and
//! runs one session task per connection until shutdown drains them.
//!
//! Bind outside, serve inside: [`Server::run`] takes bound listeners and a
//! shutdown future, so tests bind `127.0.0.1:0` and never guess ports.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::UserManager;
use crate::data::PassivePortPool;
use crate::session::Session;
use crate::settings::Settings;
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
        let ports = PassivePortPool::new(settings.passive.ports.clone());
        Server {
            context: Arc::new(ServerContext {
                settings,
                users,
                ports,
                tls_sessions: SessionRegistry::default(),
            }),
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
        );
        sessions.spawn(session.run());
    }
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
