//! One control connection, from greeting to close.
//!
//! The session reads one command at a time and answers in order. A transfer
//! runs as a future owned by the session and polled beside the control
//! connection, so `ABOR` is heard in every state; other commands sent during
//! a transfer wait their turn. The session never blocks a worker thread and
//! never outlives the server's shutdown.

mod command;
mod control;
mod handlers;
mod state;
mod transfer;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt as _;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::ServerContext;
use crate::data::DataSetup;
use crate::deadline;
use crate::hooks::{self, EventKind};
use crate::limits::ConnectionPermit;
use crate::proxy_protocol::TrustedProxies;
use crate::transfer_log::Record;

pub use crate::reply::Reply;
use crate::reply::{push_body_line, Code, StreamedReply};
pub use command::{
    find_spec, ArgRule, Command, CommandSpec, EpsvArg, Need, ParseError, TransferType, COMMANDS,
};
pub use control::{AsyncStream, ControlChannel, Line, PlainControl, MAX_LINE_LENGTH};
pub use handlers::hash::{Algorithm as HashAlgorithm, Style as HashStyle};

use handlers::Cx;
use state::{Connection, ControlTls, LoginState, State};
use transfer::{Transfer, TransferEvent};

/// Commands queued while a transfer runs; past this, the session stops reading.
const MAX_PENDING_COMMANDS: usize = 16;
/// Over-long lines tolerated before the session is closed.
const MAX_LINE_ABUSE: u32 = 3;

/// What a handler wants the session to do next.
enum Action {
    /// Send this reply and read the next command.
    Reply(Reply),
    /// Send this reply and close the connection.
    Close(Reply),
    /// A transfer has started; its replies come when it progresses.
    Transfer(Box<Transfer>),
    /// Send this reply (234), then run a TLS handshake on the control connection.
    StartTls(Reply),
    /// Send this reply as its body is produced.
    Stream(StreamedReply),
}

impl From<Reply> for Action {
    fn from(reply: Reply) -> Self {
        Action::Reply(reply)
    }
}

/// A handler's result: the action, or the error reply that ends the command.
type Handled = Result<Action, Reply>;

/// What woke the session up.
enum Event {
    Line(std::io::Result<Line>),
    Transfer(TransferEvent),
    IdleTimeout,
    /// The passive listener was not used within `data_timeout`.
    PassiveUnused,
    Shutdown,
}

/// One control connection.
pub struct Session {
    control: ControlChannel,
    conn: Connection,
    context: Arc<ServerContext>,
    stop: CancellationToken,
    state: State,
    /// Boxed: most of the time there is none, and an idle session stays small.
    transfer: Option<Box<Transfer>>,
    pending: VecDeque<String>,
    long_lines: u32,
    /// The connection's place under the server and address caps.
    permit: Option<ConnectionPermit>,
    /// New config generations, picked up at the next command.
    updates: Option<watch::Receiver<Arc<ServerContext>>>,
    /// Its place in `aioftpd_sessions`.
    gauge: SessionGauge,
}

impl Session {
    /// A session on a freshly accepted connection.
    pub fn new(
        io: Box<dyn AsyncStream>,
        peer: SocketAddr,
        local: SocketAddr,
        context: Arc<ServerContext>,
        stop: CancellationToken,
        implicit_tls: bool,
    ) -> Self {
        Session {
            control: ControlChannel::new(io),
            conn: Connection {
                peer,
                local,
                implicit_tls,
                connected_at: Instant::now(),
                tls: None,
                failed_logins: 0,
                proxy: None,
            },
            context,
            stop,
            state: State::new(),
            transfer: None,
            pending: VecDeque::new(),
            long_lines: 0,
            permit: None,
            updates: None,
            gauge: SessionGauge::new(false),
        }
    }

    /// The connection came from one of `trusted` on the client's behalf
    /// (`peer` is the client the PROXY header named): its passive data
    /// connections may come through those proxies too, each with a header.
    pub fn through_proxy(mut self, trusted: Arc<TrustedProxies>) -> Self {
        self.conn.proxy = Some(trusted);
        self
    }

    /// Follows config reloads: at each command the session switches to the
    /// newest generation, and a logged-in user to its current account.
    pub fn following(mut self, updates: watch::Receiver<Arc<ServerContext>>) -> Self {
        self.updates = Some(updates);
        self
    }

    /// Switches to a newer config generation if there is one; a reply if the
    /// session must end (its account is gone).
    async fn follow_reload(&mut self) -> Result<(), Reply> {
        let Some(updates) = &mut self.updates else {
            return Ok(());
        };
        if !updates.has_changed().unwrap_or(false) {
            return Ok(());
        }
        self.context = updates.borrow_and_update().clone();
        if let LoginState::LoggedIn(account) = &mut self.state.login {
            let user = account.user.clone();
            match self.context.users.refresh(&user).await {
                Some(current) => account.user = current,
                None => {
                    tracing::info!(user = user.display_name(), "account removed by a reload");
                    return Err(Reply::new(
                        Code::ServiceUnavailable,
                        "Your account was removed, closing connection",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Holds `permit` for as long as the session runs (or until it says goodbye).
    pub fn with_permit(mut self, permit: ConnectionPermit) -> Self {
        self.permit = Some(permit);
        self
    }

    /// Runs the session to its end; never panics on client input.
    // Not an `async fn`: that would keep a second copy of the session in
    // every session's task, next to the one `serve` owns.
    pub fn run(self) -> impl std::future::Future<Output = ()> + Send {
        // At ERROR, the most severe level, so that the span is on whenever
        // any line is: every line of a session names its peer, whatever
        // `--log-level` hides (a span's level only decides when it is on).
        let span = tracing::error_span!("session", peer = %self.conn.peer);
        self.serve().instrument(span)
    }

    async fn serve(mut self) {
        tracing::info!("connected");
        if self.conn.implicit_tls {
            if let Err(err) = Box::pin(self.protect_control_connection()).await {
                tracing::info!(%err, "implicit TLS handshake failed");
                return;
            }
            if let Some(tls) = &mut self.conn.tls {
                // Implicit FTPS protects everything from the first byte.
                tls.pbsz = true;
                tls.protect_data = true;
            }
        }
        let banner = self.context.settings.session.banner.clone();
        if !self.send(Reply::new(Code::Ready, banner)).await {
            return;
        }
        loop {
            if self.transfer.is_none() {
                if let Some(line) = self.pending.pop_front() {
                    if !Box::pin(self.on_line(line)).await {
                        break;
                    }
                    continue;
                }
            }
            let keep_going = match self.next_event().await {
                // Boxed: a command's future (the largest handler's, a TLS
                // handshake's) lives on the heap only while it runs, so an
                // idle session's task stays small.
                Event::Line(Ok(Line::Text(line))) => Box::pin(self.on_line(line)).await,
                Event::Line(Ok(Line::TooLong)) => {
                    self.long_lines += 1;
                    if self.long_lines >= MAX_LINE_ABUSE {
                        self.close(Reply::new(
                            Code::ServiceUnavailable,
                            "Too many over-long lines, closing",
                        ))
                        .await;
                        false
                    } else {
                        self.send(Reply::new(Code::UnknownCommand, "Line too long"))
                            .await
                    }
                }
                Event::Line(Ok(Line::Closed)) | Event::Line(Err(_)) => false,
                Event::Transfer(event) => Box::pin(self.on_transfer_event(event)).await,
                Event::IdleTimeout => {
                    let text = if self.state.user().is_some() {
                        "Idle timeout, closing control connection"
                    } else {
                        "Login timeout, closing control connection"
                    };
                    self.close(Reply::new(Code::ServiceUnavailable, text)).await;
                    false
                }
                Event::PassiveUnused => {
                    tracing::debug!("passive listener unused, closed");
                    self.state.data = DataSetup::None;
                    true
                }
                Event::Shutdown => {
                    self.close(Reply::new(Code::ServiceUnavailable, "Server shutting down"))
                        .await;
                    false
                }
            };
            if !keep_going {
                break;
            }
        }
        handlers::auth::end_login(&self.context, &mut self.state).await;
        tracing::info!("disconnected");
    }

    async fn next_event(&mut self) -> Event {
        match &mut self.transfer {
            Some(transfer) => {
                let can_read = self.pending.len() < MAX_PENDING_COMMANDS;
                tokio::select! {
                    event = transfer.next() => Event::Transfer(event),
                    line = self.control.read_line(), if can_read => Event::Line(line),
                }
            }
            None => {
                let session = &self.context.settings.session;
                let idle = deadline::after(Instant::now(), session.idle_timeout);
                let deadline = if self.state.user().is_some() {
                    idle
                } else {
                    idle.min(deadline::after(
                        self.conn.connected_at,
                        session.login_timeout,
                    ))
                };
                let passive = self
                    .state
                    .passive_until
                    .filter(|_| self.state.data.is_passive());
                tokio::select! {
                    line = tokio::time::timeout_at(deadline, self.control.read_line()) => {
                        line.map_or(Event::IdleTimeout, Event::Line)
                    }
                    () = sleep_until_some(passive) => Event::PassiveUnused,
                    () = self.stop.cancelled() => Event::Shutdown,
                }
            }
        }
    }

    /// Handles one line; `false` ends the session.
    async fn on_line(&mut self, line: String) -> bool {
        if self.transfer.is_some() {
            if is_abort(&line) {
                return self.abort_transfer().await;
            }
            self.pending.push_back(line);
            return true;
        }
        log_command(&line);
        if let Err(reply) = self.follow_reload().await {
            self.close(reply).await;
            return false;
        }
        let action = match Command::parse(&line) {
            Err(ParseError(reply)) => Ok(Action::Reply(reply)),
            Ok((command, spec)) => {
                if spec.needs_login && self.state.user().is_none() {
                    Err(handlers::not_logged_in())
                } else {
                    self.dispatch(command, spec).await
                }
            }
        };
        match action.unwrap_or_else(Action::Reply) {
            Action::Reply(reply) => self.send(reply).await,
            Action::Close(reply) => {
                self.close(reply).await;
                false
            }
            Action::Transfer(transfer) => {
                self.transfer = Some(transfer);
                true
            }
            Action::Stream(reply) => self.send_streamed(reply).await,
            Action::StartTls(reply) => {
                if !self.send(reply).await {
                    return false;
                }
                // Boxed: a handshake's state is the largest of a command's.
                match Box::pin(self.protect_control_connection()).await {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::info!(%err, "TLS handshake after AUTH failed");
                        false
                    }
                }
            }
        }
    }

    /// Checks the right the command table declares on the command's path,
    /// then runs the command's handler.
    async fn dispatch(&mut self, command: Command, spec: &CommandSpec) -> Handled {
        // RFC 959 §4.1.3: RNTO must come right after RNFR.
        let rename_from = self.state.rename_from.take();
        let target = match (spec.need, command.path()) {
            (Need::Nothing, _) | (_, None) => None,
            (need, Some(arg)) => Some(handlers::authorize(&self.state, arg, need).await?),
        };
        let pipelined = self.control.has_buffered_input() || !self.pending.is_empty();
        let cx = Cx {
            server: &self.context,
            conn: &mut self.conn,
            state: &mut self.state,
            pipelined,
        };
        command::run(command, cx, target, rename_from).await
    }

    async fn on_transfer_event(&mut self, event: TransferEvent) -> bool {
        match event {
            TransferEvent::Connected(Ok(())) => {
                let opening = self
                    .transfer
                    .as_ref()
                    .map(|t| t.opening.clone())
                    .unwrap_or_default();
                self.send(Reply::new(Code::OpeningData, opening)).await
            }
            TransferEvent::Connected(Err(err)) => {
                self.finish_transfer("failed", 0, Some(&err.to_string()));
                self.send(Reply::new(
                    Code::CannotOpenData,
                    "Cannot open data connection",
                ))
                .await
            }
            TransferEvent::Finished(Ok(bytes)) => {
                self.finish_transfer("ok", bytes, None);
                self.send(Reply::new(Code::TransferComplete, "Transfer complete"))
                    .await
            }
            TransferEvent::Finished(Err(err)) => {
                self.finish_transfer("failed", 0, Some(&err.to_string()));
                self.send(Reply::from(err)).await
            }
        }
    }

    /// ABOR during a transfer: the transfer's own reply (426), then ABOR's (226).
    async fn abort_transfer(&mut self) -> bool {
        if let Some(transfer) = self.finish_transfer("aborted", 0, None) {
            transfer.abandon().await;
        }
        self.send(Reply::new(Code::TransferAborted, "Transfer aborted"))
            .await
            && self
                .send(Reply::new(Code::TransferComplete, "ABOR successful"))
                .await
    }

    /// Takes the transfer and logs its outcome; dropping what it returns
    /// closes the data connection.
    fn finish_transfer(
        &mut self,
        result: &'static str,
        bytes: u64,
        error: Option<&str>,
    ) -> Option<Box<Transfer>> {
        let transfer = self.transfer.take()?;
        let user = self.state.user().map_or("", |u| u.display_name());
        tracing::info!(
            user,
            address = %self.conn.peer.ip(),
            verb = transfer.verb,
            path = transfer.path.as_str(),
            bytes,
            millis = transfer.elapsed().as_millis() as u64,
            connected = transfer.is_running(),
            result,
            error = error.unwrap_or(""),
            "transfer"
        );
        // Listings are transfers too; the counters and the transfer log
        // are about files.
        if matches!(transfer.verb, "RETR" | "STOR" | "APPE" | "STOU") {
            let upload = transfer.verb != "RETR";
            let direction = if upload { "upload" } else { "download" };
            let metrics = crate::metrics::get();
            metrics
                .transfers
                .with_label_values(&[direction, result])
                .inc();
            metrics
                .transfer_bytes
                .with_label_values(&[direction])
                .inc_by(bytes);
            if let Some(log) = &self.context.transfer_log {
                log.record(&Record {
                    ended: std::time::SystemTime::now(),
                    took: transfer.elapsed(),
                    address: self.conn.peer.ip(),
                    bytes,
                    path: transfer.path.to_string(),
                    ascii: self.state.transfer_type == TransferType::Ascii,
                    upload,
                    login: self.state.user().and_then(|u| u.login.clone()),
                    complete: result == "ok",
                });
            }
            let kind = if upload {
                EventKind::Upload
            } else {
                EventKind::Download
            };
            if self.context.hooks.wants(kind) {
                let login = self.state.user().and_then(|u| u.login.clone());
                let event =
                    hooks::Event::new(kind, login, self.conn.peer.ip(), self.conn.tls.is_some())
                        .with_path(transfer.path.as_str())
                        .with_transfer(bytes, result);
                self.context.hooks.emit(event);
            }
        }
        Some(transfer)
    }

    /// Sends a streamed reply a bounded chunk at a time; `false` if the
    /// client is gone or does not take a chunk within the socket timeout.
    async fn send_streamed(&mut self, mut reply: StreamedReply) -> bool {
        tracing::debug!(code = reply.code.number(), "reply");
        let limit = self.context.settings.session.socket_timeout;
        let mut out = reply.first_wire();
        let mut body_done = false;
        loop {
            if !body_done {
                match reply.body.next().await {
                    Some(line) => push_body_line(&mut out, &line),
                    None => {
                        body_done = true;
                        out.push_str(&reply.last_wire());
                    }
                }
            }
            if out.len() >= STREAMED_CHUNK || body_done {
                let sent = tokio::time::timeout(limit, self.control.send_text(&out)).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return false;
                }
                out.clear();
                if body_done {
                    return true;
                }
            }
        }
    }

    /// Sends a reply; `false` if the client is gone or does not take it
    /// within the socket timeout.
    async fn send(&mut self, reply: Reply) -> bool {
        tracing::debug!(code = reply.code().number(), "reply");
        count_reply(reply.code().number());
        let limit = self.context.settings.session.socket_timeout;
        matches!(
            tokio::time::timeout(limit, self.control.send(&reply)).await,
            Ok(Ok(()))
        )
    }

    /// Runs the control connection's TLS handshake; from then on the
    /// sessions it issues are recorded against it and its login.
    async fn protect_control_connection(&mut self) -> std::io::Result<()> {
        let Some(tls) = self.context.settings.tls.clone() else {
            return Err(std::io::Error::other("TLS is not configured"));
        };
        let tickets = self.context.resumption.open_control(self.conn.peer.ip());
        let acceptor = tls.control_acceptor(&tickets);
        self.control.start_tls(&tls, acceptor).await?;
        self.gauge.protected();
        if let Some(user) = self.state.user() {
            tickets.set_holder(handlers::auth::holder(user));
        }
        self.conn.tls = Some(ControlTls {
            tickets,
            pbsz: false,
            protect_data: false,
        });
        Ok(())
    }

    async fn close(&mut self, reply: Reply) {
        // Slots come back before the goodbye, so a client that reconnects the
        // moment it reads it finds them free.
        handlers::auth::end_login(&self.context, &mut self.state).await;
        self.permit = None;
        self.send(reply).await;
        let _ = self.control.shutdown().await;
    }
}

/// One open control connection in `aioftpd_sessions`, under its TLS state.
struct SessionGauge {
    tls: bool,
}

impl SessionGauge {
    fn new(tls: bool) -> Self {
        crate::metrics::get()
            .sessions
            .with_label_values(&[label(tls)])
            .inc();
        SessionGauge { tls }
    }

    /// The connection is protected from now on.
    fn protected(&mut self) {
        if !self.tls {
            *self = SessionGauge::new(true);
        }
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        crate::metrics::get()
            .sessions
            .with_label_values(&[label(self.tls)])
            .dec();
    }
}

fn label(tls: bool) -> &'static str {
    if tls {
        "yes"
    } else {
        "no"
    }
}

/// `aioftpd_replies_total` by class.
fn count_reply(code: u16) {
    const CLASSES: [&str; 6] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];
    let class = CLASSES
        .get(usize::from(code / 100))
        .copied()
        .unwrap_or("other");
    crate::metrics::get()
        .replies
        .with_label_values(&[class])
        .inc();
}

/// A streamed reply goes out in writes of about this many bytes.
const STREAMED_CHUNK: usize = 16 * 1024;

/// Sleeps until `until`, or forever when it is `None`.
async fn sleep_until_some(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

fn is_abort(line: &str) -> bool {
    line.trim().eq_ignore_ascii_case("ABOR")
}

fn log_command(line: &str) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug!(command = shown_command(line), "command");
    }
}

/// A command line as it may be logged: a password never is. The verb is
/// read the way the parser reads it (leading blanks skipped, any case), and
/// any blank or control character ends it, so `PASS\tsecret` counts too.
fn shown_command(line: &str) -> &str {
    let verb = line
        .trim_start()
        .split(|c: char| c.is_whitespace() || c.is_control())
        .next()
        .unwrap_or_default();
    if verb.eq_ignore_ascii_case("PASS") {
        "PASS ***"
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ConfigUserManager;
    use crate::settings::Settings;

    #[test]
    fn a_password_is_never_shown_however_the_pass_line_is_spelt() {
        for line in [
            "PASS secret",
            " PASS secret",
            "\tpass secret",
            "PASS\tsecret",
            "Pass",
        ] {
            assert_eq!(shown_command(line), "PASS ***", "{line:?}");
        }
        assert_eq!(shown_command("PASV"), "PASV");
        assert_eq!(shown_command("USER PASS"), "USER PASS");
    }

    /// Every connection keeps its session's future for as long as it is open,
    /// so what the future holds while waiting for a command is the memory an
    /// idle session costs; command handlers are boxed so they do not count.
    #[test]
    fn an_idle_session_task_stays_small() {
        let context = ServerContext::new(
            Settings::default(),
            Arc::new(ConfigUserManager::new(Vec::new(), None)),
        );
        let io = Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink()));
        let addr = SocketAddr::from(([127, 0, 0, 1], 21));
        let session = Session::new(io, addr, addr, context, CancellationToken::new(), false);
        let size = std::mem::size_of_val(&session.run());
        assert!(size <= 2048, "a session's future takes {size} bytes");
    }

    /// A command's future is boxed while it runs; in a burst of logins
    /// hundreds of `PASS` wait at once, each holding one. The TLS handshake,
    /// transfers and listings are boxed apart so they do not set its size.
    #[test]
    fn a_running_command_holds_little() {
        let context = ServerContext::new(
            Settings::default(),
            Arc::new(ConfigUserManager::new(Vec::new(), None)),
        );
        let io = Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink()));
        let addr = SocketAddr::from(([127, 0, 0, 1], 21));
        let mut session = Session::new(io, addr, addr, context, CancellationToken::new(), false);
        let size = std::mem::size_of_val(&session.on_line(String::new()));
        assert!(size <= 1280, "a command's future takes {size} bytes");
    }
}
