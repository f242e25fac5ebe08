//! `up --proxy-dhcp`: the lab beside a DHCP server pxelab leaves alone.
//!
//! Instead of the bootp patch, the lab starts a proxy DHCP responder
//! (`proxydhcp/`) on the network's bridge, or on `--interface`: the
//! network's XML is never written, so there is nothing to journal and
//! nothing to restore; the proxy's sockets close with the process, however
//! it ends. What the patch's dnsmasq lines decide per client (the iPXE
//! script, the UEFI shim, pxelinux) the proxy decides the same way.
//! What it cannot do: dnsmasq's ping before a new lease (`fast_dhcp`'s
//! `no-ping`) is the DHCP server's own, and stays.

use std::net::{IpAddr, Ipv4Addr};

use super::segment::Segment;
use super::site::Site;
use super::Lab;
use crate::boot::BootTree;
use crate::error::{Error, Result};
use crate::lab::event::{EventSink, LabEvent};
use crate::lab::record::ProxyRecord;
use crate::proxydhcp::{BootFiles, Port, ProxyDhcp, ProxyEvent};
use crate::virt::network::NetworkState;

/// Where and what the proxy answers.
#[derive(Debug, Clone)]
pub(super) struct ProxyPlan {
    pub interface: String,
    pub files: BootFiles,
}

/// What a network needs for proxy DHCP: to be running (the proxy starts
/// nothing, and its bridge exists only then), a DHCP server of its own (the
/// proxy hands out no addresses) and an IPv4 address to serve from.
/// Returns that address. Unlike the patch, a transient network will do.
pub(super) fn check_proxyable(net: &NetworkState) -> Result<IpAddr> {
    if !net.active {
        return Err(Error::environment(format!(
            "network {:?} is not running, and --proxy-dhcp neither starts nor changes it; start it with `virsh net-start {}`, or drop --proxy-dhcp so pxelab patches and starts it",
            net.name, net.name
        )));
    }
    crate::lab::net::check_no_tftp(net)?;
    let Some(ipv4) = net.parsed.ipv4() else {
        return Err(Error::environment(format!(
            "network {:?} has no IPv4 address: pxelab serves PXE clients over IPv4; give it an <ip address=…> with <dhcp>",
            net.name
        )));
    };
    if net.parsed.dhcp4().is_none() {
        return Err(Error::environment(format!(
            "network {:?} has no DHCP server of its own, and proxy DHCP hands out no addresses; give its <ip> a <dhcp><range …/></dhcp>, or drop --proxy-dhcp so pxelab patches it",
            net.name
        )));
    }
    Ok(ipv4.address)
}

/// The proxy's interface and boot files: the segment's bridge, and the
/// same files the patch would name.
pub(super) fn proxy_plan(segment: &Segment, server_ip: IpAddr, tree: &BootTree, http_base: Option<&str>, site: Site) -> Result<ProxyPlan> {
    if site == Site::Remote {
        return Err(Error::usage(format!(
            "--proxy-dhcp answers on a bridge of this host, and network {}'s is on the libvirt host; run pxelab there, or drop --proxy-dhcp",
            segment.name()
        )));
    }
    let Some(interface) = segment.bridge() else {
        return Err(Error::environment(format!("network {:?} has no bridge to answer on; give it one (<bridge name=...>)", segment.name())));
    };
    let server = match server_ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => return Err(Error::bad_input(format!("--server-ip {v6}: PXE needs an IPv4 address"))),
    };
    check_interface(&interface, server)?;
    Ok(ProxyPlan { files: crate::lab::proxy::boot_files(server, tree, http_base), interface })
}

/// The interface holds the server address: the proxy's answers name that
/// address, and its 4011 listener binds it. (The interface exists: a host
/// bridge was looked up in `segment.rs`, a network's bridge runs.)
fn check_interface(interface: &str, server: Ipv4Addr) -> Result<()> {
    let addresses = crate::link::ipv4_of(interface).map_err(|e| Error::environment(format!("cannot read the addresses of this host's interfaces: {e}")))?;
    if !addresses.iter().any(|(a, _)| *a == server) {
        let has = addresses.iter().map(|(a, p)| format!("{a}/{p}")).collect::<Vec<_>>().join(", ");
        return Err(Error::bad_input(format!(
            "the server address {server} is not on {interface} ({}); pass --server-ip with {interface}'s own address",
            if has.is_empty() { "it has no IPv4 address".to_string() } else { format!("it has {has}") }
        )));
    }
    Ok(())
}

impl Lab {
    /// Starts answering PXE clients; the network stays as it is.
    pub(super) async fn start_proxy(&mut self, plan: &ProxyPlan, report: EventSink<'_>) -> Result<()> {
        let proxy = crate::lab::proxy::start(&plan.interface, plan.files.clone()).await?;
        self.proxy_events = Some(proxy.subscribe());
        self.proxy = Some(proxy);
        // `save` writes the proxy's record (`proxy_record`).
        self.save().await;
        let ipxe = plan.files.ipxe.as_deref().map(|s| format!(", iPXE clients {s}")).unwrap_or_default();
        report(&LabEvent::Step {
            message: format!(
                "proxy DHCP on {}: PXE clients boot {} from {}{ipxe}; the network's DHCP and XML stay as they are",
                plan.interface, plan.files.bios, plan.files.server
            ),
        });
        Ok(())
    }
}

impl Lab {
    /// What the proxy did since the last poll: a lab VM told where to boot
    /// (said once per answer), an address the DHCP server gave (the `dhcp`
    /// stage where libvirt has no leases to show: a bridge of the host's).
    /// Returns whether `lab.json` changed.
    pub(super) fn on_proxy_events(&mut self, report: EventSink<'_>) -> bool {
        let Some(events) = self.proxy_events.as_mut() else { return false };
        let mut seen = Vec::new();
        loop {
            match events.try_recv() {
                Ok(event) => seen.push(event),
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => tracing::warn!("{n} proxy DHCP events missed"),
                Err(_) => break,
            }
        }
        let now = self.now();
        // Any answer changes the counters `lab.json` carries.
        let mut changed = !seen.is_empty();
        for event in seen {
            match event {
                ProxyEvent::Answered { mac, kind, port, file } => {
                    let who = self.progress.vms().iter().find(|v| v.mac == mac).map_or_else(|| format!("client {mac}"), |v| v.name.clone());
                    let via = if port == Port::BootServer { " (on UDP 4011)" } else { "" };
                    report(&LabEvent::Step { message: format!("proxy DHCP: {who} ({kind:?} PXE client) boots {file}{via}") });
                }
                ProxyEvent::OtherProxy { server } => {
                    if !self.other_proxies.contains(&server) {
                        self.other_proxies.push(server);
                        report(&LabEvent::Step {
                            message: format!("another proxy DHCP ({server}) answers PXE clients here too: they may boot its file instead of pxelab's"),
                        });
                    }
                }
                ProxyEvent::Leased { mac, ip } => {
                    for e in self.progress.on_lease(&mac, IpAddr::V4(ip), now) {
                        self.stage_reached(e, report);
                        changed = true;
                    }
                }
            }
        }
        changed
    }
}

/// The proxy's counters, as `lab.json` carries them for `doctor` and `status`.
pub(super) fn proxy_record(proxy: &ProxyDhcp) -> ProxyRecord {
    let stats = proxy.stats();
    let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    ProxyRecord {
        interface: proxy.interface().to_string(),
        answered: n(&stats.answered),
        not_pxe: n(&stats.not_pxe),
        malformed: n(&stats.malformed),
        rate_limited: n(&stats.rate_limited),
        other_proxies: n(&stats.other_proxies),
    }
}
