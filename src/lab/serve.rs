//! `pxelab serve`: the TFTP, FTP and HTTP servers in the foreground, with no
//! libvirt and no change to the host.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{prepare, server_error, BootPlan, ServeFlags};
use crate::boot::DefaultEntry;
use crate::error::{Error, Result};
use crate::iso::{Overrides, Repo};
use crate::proxydhcp::{BootFiles, ProxyDhcp, ProxyEvent};
use crate::serve::{AllowList, Cidr, FtpRoot, Limits, ServeConfig, ServeEvent, Servers};

/// What `pxelab serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeRequest {
    pub iso: PathBuf,
    pub overrides: Overrides,
    pub bind: IpAddr,
    pub tftp_port: u16,
    pub ftp_port: u16,
    /// `None`: no HTTP server; `Some(0)`: any free port.
    pub http_port: Option<u16>,
    pub passive_ports: String,
    pub tree: Option<PathBuf>,
    pub allow: Vec<String>,
    pub max_transfers: usize,
    pub max_sessions: usize,
    pub tftp_ack_spin: std::time::Duration,
    pub http_header_timeout: std::time::Duration,
    pub default: DefaultEntry,
    /// `--proxy-dhcp`: answer PXE clients on this interface (`None`: the
    /// one holding `bind`). `None`: no proxy DHCP.
    pub proxy_dhcp: Option<Option<String>>,
}

/// What `serve` reports as it runs: a file server's event, or the proxy's.
#[derive(Debug)]
pub enum ServeOrProxy {
    Serve(ServeEvent),
    Proxy(ProxyEvent),
}

/// What `serve` reports once both servers listen.
#[derive(Debug, Serialize)]
pub struct Ready {
    pub event: &'static str,
    pub tftp: String,
    pub ftp: String,
    /// Where HTTP listens; `null` with `--http-port none`.
    pub http: Option<String>,
    pub iso: String,
    pub kernel: String,
    pub initrd: String,
    pub kernel_args: String,
    /// Where proxy DHCP answers (`--proxy-dhcp`), else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_dhcp: Option<String>,
}

/// `pxelab serve`: both servers in the foreground until `shutdown` (Ctrl-C,
/// SIGTERM, or the CLI's stdout closing). `on_ready` is called once both
/// listen; `on_event` for every transfer and refusal.
pub async fn serve(request: ServeRequest, shutdown: CancellationToken, on_ready: impl FnOnce(&Ready), mut on_event: impl FnMut(&ServeOrProxy)) -> Result<()> {
    check_bind(request.bind)?;
    let passive = parse_port_range(&request.passive_ports)?;
    let allow = request.allow.iter().map(|a| a.parse::<Cidr>().map_err(|e| Error::bad_input(format!("--allow {e}")))).collect::<Result<Vec<_>>>()?;
    let Endpoints { ftp_port, http_port, overrides, authority, http_base } =
        endpoints(request.bind, request.ftp_port, request.http_port, &request.overrides, SERVE_FLAGS.address)?;
    let plan = BootPlan {
        overrides: &overrides,
        authority: &authority,
        default: request.default,
        serial_console: false,
        arch: None,
        http_base: http_base.clone(),
        lab_tftp: None,
    };
    let prepared = prepare(&request.iso, &plan)?;
    let ftp_root = match &request.tree {
        Some(dir) => FtpRoot::Dir(dir.clone()),
        None => FtpRoot::Iso(prepared.iso.clone()),
    };
    let config = ServeConfig {
        bind: request.bind,
        tftp_port: request.tftp_port,
        ftp_port,
        http_port,
        ftp_root,
        allow: AllowList::new(allow),
        limits: Limits {
            passive_ports: passive,
            max_tftp_transfers: request.max_transfers,
            max_ftp_sessions: request.max_sessions,
            tftp_ack_spin: request.tftp_ack_spin,
            http_header_timeout: request.http_header_timeout,
            ..Limits::default()
        },
    };
    let proxy_plan = request.proxy_dhcp.as_ref().map(|i| proxy_files(request.bind, i.as_deref(), &prepared.tree, http_base.as_deref())).transpose()?;
    tracing::debug!("starting the servers on {}", request.bind);
    let servers = Servers::start(Arc::new(prepared.tree), config).await.map_err(|e| server_error(e, &SERVE_FLAGS))?;
    let mut events = servers.subscribe();
    let proxy = match proxy_plan {
        Some((interface, files)) => Some(super::proxy::start(&interface, files).await?),
        None => None,
    };
    let mut proxy_events = proxy.as_ref().map(ProxyDhcp::subscribe);
    on_ready(&Ready {
        event: "ready",
        tftp: servers.tftp_addr().to_string(),
        ftp: servers.ftp_addr().to_string(),
        http: servers.http_addr().map(|a| a.to_string()),
        iso: request.iso.display().to_string(),
        kernel: prepared.distro.kernel.clone(),
        initrd: prepared.distro.initrd.clone(),
        kernel_args: prepared.kernel_args.clone(),
        proxy_dhcp: proxy.as_ref().map(|p| p.interface().to_string()),
    });

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(event) = next_proxy_event(&mut proxy_events) => on_event(&ServeOrProxy::Proxy(event)),
            event = events.recv() => match event {
                Ok(event) => on_event(&ServeOrProxy::Serve(event)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("{n} server events were not shown (output too slow)");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    tracing::info!("stopping");
    if let Some(proxy) = proxy {
        crate::blocking::run(move || proxy.stop()).await;
    }
    servers.stop().await;
    Ok(())
}

/// `--proxy-dhcp`'s interface (given, or the one holding `bind`) and what
/// it sends each kind of client: the files `dhcp-config` would name.
fn proxy_files(bind: IpAddr, interface: Option<&str>, tree: &crate::boot::BootTree, http_base: Option<&str>) -> Result<(String, BootFiles)> {
    let IpAddr::V4(server) = bind else {
        return Err(Error::bad_input(format!("--proxy-dhcp: PXE clients need an IPv4 server; --bind {bind} is IPv6")));
    };
    let interface = match interface {
        Some(i) => i.to_string(),
        None => crate::link::interface_with(server)
            .map_err(|e| Error::environment(format!("cannot read this host's addresses: {e}")))?
            .ok_or_else(|| Error::bad_input(format!("--bind {server} is not an address of this host, so proxy DHCP has no interface to answer on; bind to an interface's address, or pass --interface")))?,
    };
    if !crate::link::ipv4_of(&interface).map_err(|e| Error::environment(format!("cannot read this host's addresses: {e}")))?.iter().any(|(a, _)| *a == server) {
        return Err(Error::bad_input(format!("--bind {server} is not an address of --interface {interface}: PXE clients there would be sent to an address they may not reach; bind to {interface}'s own address")));
    }
    Ok((interface, super::proxy::boot_files(server, tree, http_base)))
}

/// The proxy's next event; pending for ever when there is no proxy.
async fn next_proxy_event(events: &mut Option<tokio::sync::broadcast::Receiver<ProxyEvent>>) -> Option<ProxyEvent> {
    let Some(events) = events else { return std::future::pending().await };
    loop {
        match events.recv().await {
            Ok(e) => return Some(e),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// `--bind`: one address of a host, not every interface.
fn check_bind(bind: IpAddr) -> Result<()> {
    if bind.is_unspecified() {
        return Err(Error::bad_input(format!(
            "--bind {} would serve on every interface; pass the address PXE clients reach (e.g. the bridge's, 192.168.122.1)",
            bind
        )));
    }
    // The same rule as a PXE server address anywhere (`net patch --server`, `dhcp-config`).
    match bind {
        IpAddr::V4(v4) => crate::dhcp::check_server_address("--bind", v4, None).map_err(Error::bad_input)?,
        IpAddr::V6(v6) if v6.is_multicast() => {
            return Err(Error::bad_input(format!("--bind {v6} is a multicast address, no host's; give the PXE server's own address")))
        }
        IpAddr::V6(_) => {}
    }
    Ok(())
}

/// `serve`'s own options, for the fixes of its errors.
const SERVE_FLAGS: ServeFlags =
    ServeFlags { address: "--bind", tftp_port: Some("--tftp-port"), ftp_port: "--ftp-port", http_port: "--http-port", passive_ports: "--passive-ports" };

/// What replaces `{server}` in kernel arguments: the address, with the
/// port when it is not the protocol's default (`inst.repo=ftp://{server}/`,
/// `inst.repo=http://{server}/iso/`).
pub fn authority(ip: IpAddr, port: u16, default_port: u16) -> String {
    match port == default_port {
        true => url_host(ip),
        false => std::net::SocketAddr::new(ip, port).to_string(),
    }
}

/// `ip` as the host part of a URL: an IPv6 address in brackets (`[::1]`).
pub(crate) fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Where the installer and iPXE clients are sent, decided before any
/// server starts (the kernel arguments name it): the ports, with "any free
/// port" (0) resolved to a real one, and the repository's `{server}`.
pub(crate) struct Endpoints {
    pub ftp_port: u16,
    /// `None`: no HTTP server.
    pub http_port: Option<u16>,
    /// The user's overrides, with the repository decided.
    pub overrides: Overrides,
    /// What replaces `{server}` in the kernel arguments.
    pub authority: String,
    /// `http://ADDR[:PORT]`, when HTTP is served.
    pub http_base: Option<String>,
}

/// Resolves [`Endpoints`] on `ip`; `address_flag` is the verb's option for
/// the address, named when no free port can be had. The repository is the
/// user's, else HTTP where it is served and FTP where not; `--repo http`
/// with HTTP off is a usage error.
pub(crate) fn endpoints(ip: IpAddr, ftp_port: u16, http_port: Option<u16>, overrides: &Overrides, address_flag: &str) -> Result<Endpoints> {
    let ftp_port = match ftp_port {
        0 => free_tcp_port(ip, address_flag)?,
        port => port,
    };
    let http_port = match http_port {
        Some(0) => Some(free_tcp_port(ip, address_flag)?),
        port => port,
    };
    let repo = overrides.repo.unwrap_or(if http_port.is_some() { Repo::Http } else { Repo::Ftp });
    let server = match (repo, http_port) {
        (Repo::Ftp, _) => authority(ip, ftp_port, crate::serve::FTP_PORT),
        (Repo::Http, Some(port)) => authority(ip, port, crate::serve::HTTP_PORT),
        (Repo::Http, None) => {
            return Err(Error::usage("--http-port none leaves the installer no HTTP repository; pass --repo ftp, or serve HTTP (drop --http-port none)"));
        }
    };
    let http_base = http_port.map(|port| format!("http://{}", authority(ip, port, crate::serve::HTTP_PORT)));
    Ok(Endpoints {
        ftp_port,
        http_port,
        overrides: Overrides { repo: Some(repo), http_off: http_port.is_none() && overrides.repo.is_none(), ..overrides.clone() },
        authority: server,
        http_base,
    })
}

/// A TCP port free on `ip` now (for `--ftp-port 0`); `address_flag` is the
/// verb's option for the address, named in the fix.
fn free_tcp_port(ip: IpAddr, address_flag: &str) -> Result<u16> {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::environment(format!("cannot bind TCP on {ip}: {e}; pass one of this host's addresses with {address_flag}")))
}

/// `FIRST-LAST`, e.g. `50000-50100`.
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>> {
    let bad = || Error::bad_input(format!("--passive-ports {text:?} is not a port range; write FIRST-LAST with 1 <= FIRST <= LAST <= 65535, e.g. 50000-50100"));
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok(a..=b)
}
