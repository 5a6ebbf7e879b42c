//! FTPS test kit: a generated certificate for `localhost` and loopback, a
//! server config with a `[tls]` section, and a line-level FTPS client on sync
//! rustls that shows exactly which TLS session each data connection offers.

use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};

use super::{default_config, password_hash, read_reply, Reply, TestServer, IO_TIMEOUT};

/// The name the test certificate is issued to, and that clients ask for.
pub const SERVER_NAME: &str = "localhost";

/// A self-signed certificate for `localhost`, 127.0.0.1 and 127.0.0.2 (the
/// implicit listener), made once per test binary.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

/// Writes the test certificate and key to `cert.pem` and `key.pem` in `dir`,
/// the key `0600` as an admin should: the server refuses a key others can read.
pub fn write_pems(dir: &Path) {
    let cert = test_cert();
    std::fs::write(dir.join("cert.pem"), &cert.cert_pem).expect("write cert");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join("key.pem"))
        .and_then(|mut key| key.write_all(cert.key_pem.as_bytes()))
        .expect("write key");
}

pub fn test_cert() -> &'static TestCert {
    static CERT: OnceLock<TestCert> = OnceLock::new();
    CERT.get_or_init(|| {
        let made = rcgen::generate_simple_self_signed(vec![
            SERVER_NAME.into(),
            "127.0.0.1".into(),
            "127.0.0.2".into(),
        ])
        .expect("generate certificate");
        TestCert {
            cert_pem: made.cert.pem(),
            key_pem: made.key_pair.serialize_pem(),
            der: made.cert.der().clone(),
        }
    })
}

/// The `[tls]` keys a test server is started with; every key is written out.
#[derive(Clone, Copy, Debug)]
pub struct TlsOptions {
    /// `required`: `"none"`, `"login"` or `"data"`.
    pub required: &'static str,
    pub require_session_reuse: bool,
    /// Adds an implicit-TLS listener on 127.0.0.2 (`addrs[1]`).
    pub implicit: bool,
    /// `min_version`: `"1.2"` or `"1.3"`.
    pub min_version: &'static str,
    /// bob's `tls_required`, overriding `required` for him.
    pub bob_tls_required: Option<&'static str>,
    /// `server.atomic_uploads`.
    pub atomic_uploads: bool,
}

impl Default for TlsOptions {
    /// The documented defaults, without an implicit listener.
    fn default() -> Self {
        TlsOptions {
            required: "none",
            require_session_reuse: true,
            implicit: false,
            min_version: "1.2",
            bob_tls_required: None,
            atomic_uploads: true,
        }
    }
}

/// The default config, a second named user `bob` (same password as alice,
/// same tree) and a `[tls]` section whose PEM files are in `pem_dir`.
pub fn tls_config(root: &Path, pem_dir: &Path, options: TlsOptions) -> String {
    // Not 127.0.0.1:0: config validation refuses an address that is also in
    // server.listen, port 0 included. All of 127/8 is loopback on Linux.
    let implicit = if options.implicit {
        r#"["127.0.0.2:0"]"#
    } else {
        "[]"
    };
    let base = default_config(root).replacen(
        "[server]\n",
        &format!("[server]\natomic_uploads = {}\n", options.atomic_uploads),
        1,
    );
    format!(
        r#"{base}
[tls]
certificate = "{cert}"
private_key = "{key}"
min_version = "{min_version}"
required = "{required}"
require_session_reuse = {reuse}
implicit_listen = {implicit}
handshake_timeout = "10s"

[[users]]
login = "bob"
password = "{hash}"
base_path = "{root}"
permissions = [{{ path = "/", readable = true, writable = true }}]
{bob_tls}
"#,
        cert = pem_dir.join("cert.pem").display(),
        key = pem_dir.join("key.pem").display(),
        min_version = options.min_version,
        required = options.required,
        reuse = options.require_session_reuse,
        hash = password_hash(),
        root = root.display(),
        bob_tls = options
            .bob_tls_required
            .map(|policy| format!("tls_required = \"{policy}\""))
            .unwrap_or_default(),
    )
}

impl TestServer {
    /// A server with the test certificate and `options` in `[tls]`.
    pub fn start_tls(options: TlsOptions) -> Self {
        // The server reads the PEM files while its config is loaded, before
        // start_with returns; they need not outlive that.
        let pem_dir = tempfile::tempdir().expect("tempdir");
        write_pems(pem_dir.path());
        TestServer::start_with(|root| tls_config(root, pem_dir.path(), options))
    }

    /// The implicit-TLS listener (present with `TlsOptions::implicit`).
    pub fn implicit_addr(&self) -> SocketAddr {
        *self.addrs.last().expect("an implicit listener")
    }

    /// An explicit-FTPS client logged in as alice with `PBSZ 0` and `PROT P`,
    /// on a client config of its own (TLS 1.3).
    pub fn ftps_alice(&self) -> FtpsClient {
        let mut c = FtpsClient::explicit(self.addr, client_config(TLS13_FIRST));
        c.login("alice", super::PASSWORD);
        c.protect_data();
        c
    }
}

/// TLS 1.3 preferred, 1.2 accepted: what clients negotiate by default.
pub const TLS13_FIRST: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
/// TLS 1.2 only: session IDs, one cached session per server name.
pub const TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// A client config trusting the test certificate. Each call has its own
/// (empty) session cache; connections sharing one config share its cache.
pub fn client_config(versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(test_cert().der.clone())
        .expect("trust the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS stream over TCP, client side.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Starts a client TLS session over `tcp`; the handshake runs on first use.
pub fn tls_over(tcp: TcpStream, config: &Arc<ClientConfig>) -> TlsStream {
    let name = ServerName::try_from(SERVER_NAME).expect("server name");
    let conn = ClientConnection::new(config.clone(), name).expect("client connection");
    StreamOwned::new(conn, tcp)
}

/// The control connection, before and after `AUTH TLS`.
enum Control {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
    /// Only while switching from one to the other.
    Switching,
}

impl Read for Control {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Control::Plain(s) => s.read(buf),
            Control::Tls(s) => s.read(buf),
            Control::Switching => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Control {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Control::Plain(s) => s.write(buf),
            Control::Tls(s) => s.write(buf),
            Control::Switching => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Control::Plain(s) => s.flush(),
            Control::Tls(s) => s.flush(),
            Control::Switching => Ok(()),
        }
    }
}

/// A line-level FTPS client: sends exactly what a test says, protects data
/// connections after `PROT P` (or on an implicit connection), and resumes
/// through `data_config`'s session cache, the control connection's by default.
pub struct FtpsClient {
    control: BufReader<Control>,
    config: Arc<ClientConfig>,
    /// The config data connections handshake with. Sharing the control
    /// connection's config lets them resume its session.
    pub data_config: Arc<ClientConfig>,
    /// Whether data connections get TLS (`PROT P` accepted, or implicit).
    pub protected: bool,
    pub greeting: Reply,
    /// The address this client's connections come from.
    local: IpAddr,
}

impl FtpsClient {
    /// A plain connection that has read the greeting; `AUTH TLS` not sent yet.
    pub fn plain(addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        Self::plain_from(LOOPBACK, addr, config)
    }

    /// As `plain`, with every connection made from `local` (a loopback address).
    pub fn plain_from(local: IpAddr, addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        let tcp = connect_from(local, addr);
        let mut control = BufReader::new(Control::Plain(tcp));
        let greeting = read_reply(&mut control).expect("greeting");
        FtpsClient {
            control,
            data_config: config.clone(),
            config,
            protected: false,
            greeting,
            local,
        }
    }

    /// A connection protected with `AUTH TLS`.
    pub fn explicit(addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        Self::explicit_from(LOOPBACK, addr, config)
    }

    /// As `explicit`, with every connection made from `local`.
    pub fn explicit_from(local: IpAddr, addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        let mut c = Self::plain_from(local, addr, config);
        let reply = c.auth_tls();
        assert_eq!(reply.code, 234, "{reply:?}");
        c
    }

    /// A connection to an implicit-TLS listener: TLS before the greeting.
    pub fn implicit(addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        let tls = tls_over(connect(addr), &config);
        let mut control = BufReader::new(Control::Tls(Box::new(tls)));
        let greeting = read_reply(&mut control).expect("greeting over TLS");
        FtpsClient {
            control,
            data_config: config.clone(),
            config,
            protected: true,
            greeting,
            local: LOOPBACK,
        }
    }

    /// The cipher suite the control connection's TLS session uses.
    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        match self.control.get_ref() {
            Control::Tls(tls) => tls.conn.negotiated_cipher_suite().map(|s| s.suite()),
            Control::Plain(_) | Control::Switching => None,
        }
    }

    /// Sends `AUTH TLS`; on 234 runs the handshake and returns the reply.
    pub fn auth_tls(&mut self) -> Reply {
        self.auth("TLS")
    }

    /// Sends `AUTH mechanism`; on 234 runs the handshake and returns the reply.
    pub fn auth(&mut self, mechanism: &str) -> Reply {
        let reply = self.cmd(&format!("AUTH {mechanism}"));
        if reply.code == 234 {
            assert!(self.control.buffer().is_empty(), "nothing may follow 234");
            let Control::Plain(tcp) = std::mem::replace(self.control.get_mut(), Control::Switching)
            else {
                panic!("AUTH TLS on a protected connection was accepted");
            };
            let mut tls = tls_over(tcp, &self.config);
            while tls.conn.is_handshaking() {
                tls.conn
                    .complete_io(&mut tls.sock)
                    .expect("control handshake");
            }
            *self.control.get_mut() = Control::Tls(Box::new(tls));
        }
        reply
    }

    /// Sends `line` + CRLF and reads the reply; follows `PROT P`/`PROT C`.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        let reply = self.reply();
        if reply.code == 200 {
            match line.to_ascii_uppercase().as_str() {
                "PROT P" => self.protected = true,
                "PROT C" => self.protected = false,
                _ => {}
            }
        }
        reply
    }

    /// Sends `line` + CRLF without reading.
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\r\n").as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let control = self.control.get_mut();
        control.write_all(bytes).expect("write");
        control.flush().expect("flush");
    }

    /// Reads one complete reply; panics if the server closed the connection.
    pub fn reply(&mut self) -> Reply {
        read_reply(&mut self.control).expect("reply")
    }

    /// Reads one reply, or `None` when the server has closed the connection.
    pub fn try_reply(&mut self) -> Option<Reply> {
        read_reply(&mut self.control)
    }

    /// Logs in and switches to binary mode (`TYPE I`): tests compare bytes.
    pub fn login(&mut self, user: &str, pass: &str) {
        assert_eq!(self.cmd(&format!("USER {user}")).code, 331);
        let reply = self.cmd(&format!("PASS {pass}"));
        assert_eq!(reply.code, 230, "{reply:?}");
        assert_eq!(self.cmd("TYPE I").code, 200);
    }

    /// `PBSZ 0` and `PROT P`.
    pub fn protect_data(&mut self) {
        assert_eq!(self.cmd("PBSZ 0").code, 200);
        assert_eq!(self.cmd("PROT P").code, 200);
    }

    /// Sends PASV and connects to the announced port (plain TCP).
    pub fn pasv(&mut self) -> TcpStream {
        let reply = self.cmd("PASV");
        assert_eq!(reply.code, 227, "{reply:?}");
        let text = reply.text();
        let inner = &text[text.find('(').expect("(") + 1..text.find(')').expect(")")];
        let n: Vec<u16> = inner
            .split(',')
            .map(|x| x.parse().expect("number"))
            .collect();
        let addr = SocketAddr::from((
            [n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8],
            n[4] * 256 + n[5],
        ));
        connect_from(self.local, addr)
    }

    /// The data connection as the protection level wants it.
    fn data(&self, tcp: TcpStream) -> Box<dyn ReadWrite> {
        if self.protected {
            Box::new(TlsData(tls_over(tcp, &self.data_config)))
        } else {
            Box::new(tcp)
        }
    }

    /// Runs `command` (RETR, LIST, ...) over a fresh PASV connection: the
    /// final reply (or the first, if not 150) and whatever data arrived.
    pub fn download(&mut self, command: &str) -> (Reply, Vec<u8>) {
        let tcp = self.pasv();
        let first = self.cmd(command);
        if first.code != 150 {
            return (first, Vec::new());
        }
        let mut data = self.data(tcp);
        let mut bytes = Vec::new();
        // A refused data connection ends without close_notify: the reply says why.
        let _ = data.read_to_end(&mut bytes);
        drop(data);
        (self.reply(), bytes)
    }

    /// Uploads `bytes` with `command` (STOR, APPE path) and ends the data
    /// connection properly (close_notify under TLS); returns the final reply.
    pub fn upload(&mut self, command: &str, bytes: &[u8]) -> Reply {
        let tcp = self.pasv();
        let first = self.cmd(command);
        if first.code != 150 {
            return first;
        }
        let mut data = self.data(tcp);
        // A refused data connection breaks the writes: the reply says why.
        if data.write_all(bytes).is_ok() {
            let _ = data.finish();
        }
        drop(data);
        self.reply()
    }

    /// As `upload`, but the TLS stream is cut after `bytes`: no close_notify,
    /// the TCP connection is just shut down.
    pub fn upload_cut_short(&mut self, command: &str, bytes: &[u8]) -> Reply {
        assert!(self.protected, "cutting a TLS stream needs PROT P");
        let tcp = self.pasv();
        let first = self.cmd(command);
        if first.code != 150 {
            return first;
        }
        let mut tls = tls_over(tcp, &self.data_config);
        tls.write_all(bytes).expect("write data");
        tls.flush().expect("flush data");
        tls.sock.shutdown(Shutdown::Both).expect("shutdown");
        drop(tls);
        self.reply()
    }
}

/// Where the test client's connections come from unless a test says otherwise.
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn connect(addr: SocketAddr) -> TcpStream {
    connect_from(LOOPBACK, addr)
}

/// Connects to `addr` from `local`, with the test timeouts.
fn connect_from(local: IpAddr, addr: SocketAddr) -> TcpStream {
    let tcp = super::tcp_from(local, addr);
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp
}

/// A data connection, plain or TLS, that can end an upload properly.
trait ReadWrite: Read + Write {
    /// Ends the sending side; then waits for the server's end.
    fn finish(&mut self) -> io::Result<()>;
}

impl ReadWrite for TcpStream {
    fn finish(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)?;
        io::copy(self, &mut io::sink()).map(drop)
    }
}

/// A TLS data connection.
struct TlsData(TlsStream);

impl Read for TlsData {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsData {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl ReadWrite for TlsData {
    /// close_notify, then TCP FIN; reading to the end keeps unread bytes
    /// from turning our close into a reset.
    fn finish(&mut self) -> io::Result<()> {
        self.0.conn.send_close_notify();
        self.0.flush()?;
        self.0.sock.shutdown(Shutdown::Write)?;
        io::copy(&mut self.0, &mut io::sink()).map(drop)
    }
}
