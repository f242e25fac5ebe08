//! The embedded servers: TFTP for the boot tree, FTP for the ISO's tree.
//!
//! [`Servers::start`] is the one start-up path for `serve` and `up`: it
//! binds both ports first (so a busy port fails before anything runs, with
//! the owner named), then runs FTP in a tokio task and TFTP on a thread of
//! its own (see `tftp.rs` for why). Stopping is a method: [`Servers::stop`]
//! ends both and returns once their sockets are closed.
//! Both servers bind only to the address they are given, are read-only,
//! and report every transfer and refusal as a [`ServeEvent`].

mod allow;
mod conns;
mod drain;
mod ftp;
pub mod http;
pub mod ports;
mod tftp;
mod transfer;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use allow::{AllowList, BadCidr, Cidr};
pub use ports::{is_local_address, owner as port_owner, Transport, FTP_PORT, HTTP_PORT, TFTP_PORT};
pub use transfer::{Protocol, ServeEvent, Transfer};

use crate::boot::BootTree;
use crate::iso::IsoIndex;
use transfer::Events;

/// How long a stopping server lets its transfers in flight finish.
pub const DRAIN: Duration = Duration::from_secs(5);

/// Limits that keep the host alive under load or abuse.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Concurrent TFTP transfers; a PXE boot is 3–10 sequential transfers
    /// per client, so this serves dozens of clients booting at once.
    pub max_tftp_transfers: usize,
    /// Concurrent FTP sessions; an installer opens one or two.
    pub max_ftp_sessions: usize,
    /// An FTP session idle this long is closed.
    pub ftp_idle_timeout: Duration,
    /// Largest TFTP block size granted (RFC 2348 allows up to 65464).
    pub tftp_max_block_size: u16,
    /// Largest TFTP window granted (RFC 7440).
    pub tftp_max_window_size: u16,
    /// Retransmission timeout for TFTP.
    pub tftp_timeout: Duration,
    /// Retransmissions before a silent TFTP client is given up, freeing its
    /// transfer slot. async-tftp's default (100, i.e. 5 minutes at 3 s)
    /// let a few hundred abandoned requests lock every client out.
    pub tftp_max_retries: u32,
    /// How long a lone lock-step transfer busy-polls for each ACK before
    /// sleeping (see vendor/README.md). On loopback or a fast bridge the ACK
    /// comes in tens of microseconds, and waking a sleeping thread is most of
    /// that; a client slower than this stops the spinning after 8 misses.
    /// Zero turns it off.
    pub tftp_ack_spin: Duration,
    /// Ports for FTP passive data connections.
    pub passive_ports: RangeInclusive<u16>,
    /// Concurrent HTTP responses with a body (each holds up to 512 KiB
    /// while it sends); more get `503`.
    pub max_http_transfers: usize,
    /// Open HTTP connections; when full, the oldest with no request in
    /// progress is closed to make room (see `conns.rs`).
    pub max_http_sockets: usize,
    /// An HTTP connection that has not sent a whole request head within
    /// this long (a slow-loris client, or an idle keep-alive) is closed.
    pub http_header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tftp_transfers: 256,
            max_ftp_sessions: 64,
            ftp_idle_timeout: Duration::from_secs(300),
            tftp_max_block_size: 65464,
            tftp_max_window_size: 64,
            tftp_timeout: Duration::from_secs(3),
            tftp_max_retries: 5,
            tftp_ack_spin: Duration::from_micros(100),
            passive_ports: 50000..=50100,
            max_http_transfers: 256,
            max_http_sockets: 1024,
            http_header_timeout: Duration::from_secs(30),
        }
    }
}

/// What the FTP server serves at `/`.
#[derive(Debug, Clone)]
pub enum FtpRoot {
    /// The ISO's tree, read in place.
    Iso(Arc<IsoIndex>),
    /// A directory (`--tree`), read-only.
    Dir(PathBuf),
}

/// Where and what to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: IpAddr,
    pub tftp_port: u16,
    pub ftp_port: u16,
    /// `None`: no HTTP server.
    pub http_port: Option<u16>,
    pub ftp_root: FtpRoot,
    pub allow: AllowList,
    pub limits: Limits,
}

/// Why a server could not start. The messages say what is wrong; the verb
/// adds the fix, since only it knows its own options (`--bind`, `--server-ip`).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{} port {port} on {ip} is already in use{by}", transport_of(*.protocol))]
    PortBusy { protocol: Protocol, ip: IpAddr, port: u16, by: String },
    #[error("cannot bind {} to {addr}: {source}{hint}", transport_of(*.protocol))]
    Bind { protocol: Protocol, addr: SocketAddr, source: std::io::Error, hint: &'static str },
    #[error("cannot serve --tree {path}: {source}")]
    Tree { path: PathBuf, source: std::io::Error },
    /// Two of pxelab's own ports are the same (the FTP and HTTP port, or a
    /// control port inside the passive range): a bad value, not a busy port.
    #[error("{0}")]
    Clash(String),
    #[error("every FTP passive port in {first}-{last} on {ip} is in use{by}: FTP downloads would all fail (425)")]
    PassiveBusy { ip: IpAddr, first: u16, last: u16, by: String },
}

/// The running servers.
#[derive(Debug)]
pub struct Servers {
    tftp_addr: SocketAddr,
    ftp_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    events: Events,
    tftp: tftp::TftpServer,
    ftp: JoinHandle<()>,
    http: Option<JoinHandle<()>>,
    /// Tells FTP and HTTP to stop accepting and finish what they send.
    stop: CancellationToken,
}

impl Servers {
    /// Binds both servers and starts them.
    pub async fn start(tree: Arc<BootTree>, config: ServeConfig) -> Result<Servers, ServeError> {
        ports::check_distinct(config.ftp_port, config.http_port, &config.limits.passive_ports).map_err(ServeError::Clash)?;
        ports::check_passive(config.bind, &config.limits.passive_ports)?;
        let events = Events::default();
        let stop = CancellationToken::new();
        let tree_for_http = tree.clone();
        let tree_for_ftp = tree.clone();
        let tftp_at = SocketAddr::new(config.bind, config.tftp_port);
        let ftp_at = SocketAddr::new(config.bind, config.ftp_port);

        let (tftp_run, tftp_addr) =
            tftp::start(tftp_at, tree, config.allow.clone(), events.clone(), &config.limits).await.map_err(|e| bind_error(Protocol::Tftp, tftp_at, e))?;
        let (ftp_run, ftp_addr) = match &config.ftp_root {
            FtpRoot::Iso(iso) => {
                let storage = ftp::IsoStorage::new(iso.clone(), events.clone()).with_generated(tree_for_ftp);
                let (run, addr) = ftp::start(ftp_at, storage, config.allow.clone(), events.clone(), &config.limits, stop.clone())
                    .await
                    .map_err(|e| bind_error(Protocol::Ftp, ftp_at, e))?;
                (tokio::spawn(run), addr)
            }
            FtpRoot::Dir(path) => {
                let storage = ftp::ReadOnly::new(path, events.clone()).map_err(|source| ServeError::Tree { path: path.clone(), source })?;
                let (run, addr) = ftp::start(ftp_at, storage, config.allow.clone(), events.clone(), &config.limits, stop.clone())
                    .await
                    .map_err(|e| bind_error(Protocol::Ftp, ftp_at, e))?;
                (tokio::spawn(run), addr)
            }
        };
        let (http, http_addr) = match config.http_port {
            Some(port) => {
                let at = SocketAddr::new(config.bind, port);
                let bound = http::start(at, tree_for_http, config.allow.clone(), events.clone(), &config.limits, stop.clone()).await;
                let (run, addr) = match bound {
                    Ok(bound) => bound,
                    Err(e) => {
                        ftp_run.abort();
                        return Err(bind_error(Protocol::Http, at, e));
                    }
                };
                (Some(tokio::spawn(run)), Some(addr))
            }
            None => (None, None),
        };
        tracing::info!(tftp = %tftp_addr, ftp = %ftp_addr, http = ?http_addr, "serving");
        Ok(Servers { tftp_addr, ftp_addr, http_addr, events, tftp: tftp_run, ftp: ftp_run, http, stop })
    }

    pub fn tftp_addr(&self) -> SocketAddr {
        self.tftp_addr
    }

    pub fn ftp_addr(&self) -> SocketAddr {
        self.ftp_addr
    }

    /// Where HTTP listens, when it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Every transfer and refusal from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ServeEvent> {
        self.events.subscribe()
    }

    /// Stops every server and waits until their sockets are closed.
    /// FTP and HTTP stop accepting at once and their transfers in flight
    /// get [`DRAIN`] to finish; then everything is closed.
    pub async fn stop(self) {
        self.stop.cancel();
        let deadline = tokio::time::sleep(DRAIN);
        tokio::pin!(deadline);
        for mut server in std::iter::once(self.ftp).chain(self.http) {
            tokio::select! {
                _ = &mut server => {}
                _ = &mut deadline => {
                    tracing::warn!("transfers still in flight after {DRAIN:?}: closing them");
                    server.abort();
                    let _ = server.await;
                }
            }
        }
        let tftp = self.tftp;
        let _ = tokio::task::spawn_blocking(move || tftp.stop()).await;
    }
}

/// The transport a server's port is on.
pub fn transport_of(protocol: Protocol) -> Transport {
    match protocol {
        Protocol::Tftp => Transport::Udp,
        Protocol::Ftp | Protocol::Http => Transport::Tcp,
    }
}

fn bind_error(protocol: Protocol, addr: SocketAddr, source: std::io::Error) -> ServeError {
    match source.kind() {
        std::io::ErrorKind::AddrInUse => ServeError::PortBusy {
            protocol,
            ip: addr.ip(),
            port: addr.port(),
            by: port_owner(transport_of(protocol), addr).map(|o| format!(" (held by {o})")).unwrap_or_default(),
        },
        std::io::ErrorKind::AddrNotAvailable => ServeError::Bind { protocol, addr, source, hint: "; that address is not one of this host's" },
        std::io::ErrorKind::PermissionDenied => ServeError::Bind { protocol, addr, source, hint: "; ports below 1024 need root or CAP_NET_BIND_SERVICE" },
        _ => ServeError::Bind { protocol, addr, source, hint: "" },
    }
}
