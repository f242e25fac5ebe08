//! `pxelab serve`: the servers alone, in the foreground.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::output::{self, Outcome};
use super::text;
use super::{runtime, shutdown_on_signals, Globals, IsoOverrideArgs};
use crate::boot::DefaultEntry;
use crate::error::Result;
use crate::lab;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The installer ISO to serve.
    #[arg(long, value_name = "ISO")]
    pub iso: PathBuf,
    /// The address every server listens on: the one PXE clients reach.
    #[arg(long, value_name = "ADDR")]
    pub bind: IpAddr,
    /// TFTP (UDP); 0 picks a free port (PXE clients ask for 69 only).
    #[arg(long, default_value_t = crate::serve::TFTP_PORT, value_name = "PORT")]
    pub tftp_port: u16,
    /// FTP control (TCP); 0 picks a free port.
    #[arg(long, default_value_t = crate::serve::FTP_PORT, value_name = "PORT")]
    pub ftp_port: u16,
    /// HTTP (the boot tree at /, the ISO itself at /<ISO file name>); 0 picks a free port, `none` serves no HTTP.
    #[arg(long, default_value = "80", value_name = "PORT", value_parser = parse_http_port)]
    pub http_port: HttpPort,
    /// FTP passive data ports, as FIRST-LAST.
    #[arg(long, default_value = "50000-50100", value_name = "RANGE")]
    pub passive_ports: String,
    /// Serve this directory over FTP instead of the ISO's tree.
    #[arg(long, value_name = "DIR")]
    pub tree: Option<PathBuf>,
    /// Concurrent TFTP transfers; more are refused with a TFTP error.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_transfers: u32,
    /// Concurrent FTP sessions; more are refused with 421.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_sessions: u32,
    /// Microseconds a lone TFTP transfer busy-polls for each ACK before
    /// sleeping (faster on a quick link; stops by itself for slow clients); 0: never.
    #[arg(long, default_value_t = 100, value_name = "US", value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub tftp_spin_us: u32,
    /// Seconds an HTTP connection may take to send a request head, or stay
    /// idle between requests, before it is closed.
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_header_timeout: u64,
    /// Answer only clients in this range (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,
    #[command(flatten)]
    pub iso_overrides: IsoOverrideArgs,
    /// Make the menu boot the local disk by default instead of the installer.
    #[arg(long)]
    pub local_boot_default: bool,
    /// Also answer PXE clients with proxy DHCP (boot information only, never an
    /// address), beside the network's own DHCP server. Needs root, like port 67.
    #[arg(long)]
    pub proxy_dhcp: bool,
    /// With --proxy-dhcp: the interface to answer on (default: the one holding --bind).
    #[arg(long, value_name = "IFACE", requires = "proxy_dhcp")]
    pub interface: Option<String>,
}

/// `--http-port`: a port, or `none`.
#[derive(Debug, Clone, Copy)]
pub struct HttpPort(pub Option<u16>);

pub fn parse_http_port(text: &str) -> Result<HttpPort, String> {
    match text {
        "none" => Ok(HttpPort(None)),
        port => port.parse::<u16>().map(|p| HttpPort(Some(p))).map_err(|_| "a port number (0: any free port), or `none`".to_string()),
    }
}

/// `pxelab serve`: runs until Ctrl-C, SIGTERM, or its stdout closes.
pub fn run(args: ServeArgs, globals: &Globals) -> Result<Outcome> {
    let request = lab::ServeRequest {
        iso: args.iso,
        overrides: args.iso_overrides.overrides(),
        bind: args.bind,
        tftp_port: args.tftp_port,
        ftp_port: args.ftp_port,
        http_port: args.http_port.0,
        passive_ports: args.passive_ports,
        tree: args.tree,
        allow: args.allow,
        max_transfers: args.max_transfers as usize,
        max_sessions: args.max_sessions as usize,
        tftp_ack_spin: Duration::from_micros(args.tftp_spin_us.into()),
        http_header_timeout: Duration::from_secs(args.http_header_timeout),
        default: if args.local_boot_default { DefaultEntry::Local } else { DefaultEntry::Install },
        proxy_dhcp: args.proxy_dhcp.then_some(args.interface),
    };
    let json = globals.json;
    runtime()?.block_on(async move {
        let shutdown = shutdown_on_signals()?;
        // Nobody reads the events any more: stop serving, as `| head` expects.
        let stop = shutdown.clone();
        let stop_if_closed = move |written: bool| {
            if !written {
                tracing::debug!("stdout closed: stopping");
                stop.cancel();
            }
        };
        let on_ready = |ready: &lab::Ready| stop_if_closed(if json { output::json_line(ready) } else { output::text(&text::serve_ready_text(ready)) });
        let on_event = |event: &lab::ServeOrProxy| {
            if json {
                stop_if_closed(match event {
                    lab::ServeOrProxy::Serve(e) => output::json_line(e),
                    lab::ServeOrProxy::Proxy(e) => output::json_line(e),
                });
            }
        };
        // A reader that went away while nothing is printed (`serve | head
        // -1`, then quiet) is noticed within a second, as `status --watch` does.
        let watch = shutdown.clone();
        tokio::spawn(async move {
            while !watch.is_cancelled() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if output::reader_gone() {
                    tracing::debug!("stdout closed: stopping");
                    watch.cancel();
                }
            }
        });
        lab::serve(request, shutdown.clone(), on_ready, on_event).await
    })?;
    Ok(Outcome::Done)
}
