//! Where a lab's VMs are plugged in, and where PXE clients hear pxelab.
//!
//! Usually a libvirt network: pxelab patches its DHCP, or leaves it alone
//! and answers beside it (`--proxy-dhcp`). With `--interface`, a bridge of
//! this host's that libvirt does not manage (a bridged lab on a site LAN,
//! whose DHCP server is the site's): there is no network to read or patch,
//! the VMs get `<interface type='bridge'>`, and proxy DHCP is the only way
//! to reach the clients. The lab is named after the segment either way
//! (`down --network NAME` takes the bridge's name too).

use std::net::{IpAddr, Ipv4Addr};

use crate::dhcp::Subnet;
use crate::error::{Error, Result};
use crate::virt::domxml::Attach;
use crate::virt::network::NetworkState;

pub(super) enum Segment {
    Network(NetworkState),
    /// A host bridge, and the address and prefix pxelab serves from on it.
    Bridge {
        name: String,
        address: Ipv4Addr,
        prefix: u8,
    },
}

impl Segment {
    /// The lab's name: the network's, or the bridge's.
    pub fn name(&self) -> &str {
        match self {
            Segment::Network(net) => &net.name,
            Segment::Bridge { name, .. } => name,
        }
    }

    /// The bridge the guests' taps join.
    pub fn bridge(&self) -> Option<String> {
        match self {
            Segment::Network(net) => net.parsed.bridge.clone(),
            Segment::Bridge { name, .. } => Some(name.clone()),
        }
    }

    /// Whether the bridge exists now (a stopped network's does not).
    pub fn active(&self) -> bool {
        match self {
            Segment::Network(net) => net.active,
            Segment::Bridge { .. } => true,
        }
    }

    /// The clients' subnet: the network's DHCP block's, or the bridge address's.
    pub fn subnet(&self) -> Option<Subnet> {
        match self {
            Segment::Network(net) => net.parsed.dhcp4().and_then(|ip| match (ip.address, ip.prefix) {
                (IpAddr::V4(a), Some(p)) => Some(Subnet::containing(a, p)),
                _ => None,
            }),
            Segment::Bridge { address, prefix, .. } => Some(Subnet::containing(*address, *prefix)),
        }
    }

    pub fn attach(&self) -> Attach {
        match self {
            Segment::Network(net) => Attach::Network(net.name.clone()),
            Segment::Bridge { name, .. } => Attach::Bridge(name.clone()),
        }
    }

    pub fn network(&self) -> Option<&NetworkState> {
        match self {
            Segment::Network(net) => Some(net),
            Segment::Bridge { .. } => None,
        }
    }
}

/// `--interface BRIDGE`: a bridge of this host with an IPv4 address, and
/// the address pxelab serves from (`--server-ip`, else the bridge's first).
pub(super) fn host_bridge(interface: &str, server_ip: Option<IpAddr>, uri: &str) -> Result<Segment> {
    if crate::virt::is_remote(uri) {
        return Err(Error::usage(format!(
            "--interface {interface} is a bridge of this host, but the VMs would run on the libvirt host of {uri}; run pxelab there, or use --network"
        )));
    }
    crate::link::index_of(interface)
        .map_err(|_| Error::bad_input(format!("--interface {interface}: there is no such network interface on this host; `ip -br link` lists them")))?;
    if !std::path::Path::new(&format!("/sys/class/net/{interface}/bridge")).exists() {
        return Err(Error::bad_input(format!(
            "--interface {interface} is not a bridge, and VMs can only be plugged into one; make a bridge with {interface} in it (`ip link add br0 type bridge`), and pass that"
        )));
    }
    let addresses = crate::link::ipv4_of(interface).map_err(|e| Error::environment(format!("cannot read the addresses of this host's interfaces: {e}")))?;
    let (address, prefix) = match server_ip {
        Some(IpAddr::V4(ip)) => addresses
            .iter()
            .copied()
            .find(|(a, _)| *a == ip)
            .ok_or_else(|| Error::bad_input(format!("--server-ip {ip} is not an address of {interface}; pass one of its own, or drop --server-ip")))?,
        Some(IpAddr::V6(ip)) => return Err(Error::bad_input(format!("--server-ip {ip}: PXE needs an IPv4 address"))),
        None => addresses.first().copied().ok_or_else(|| {
            Error::environment(format!(
                "bridge {interface} has no IPv4 address for pxelab to serve from; add one (`ip addr add 192.168.50.2/24 dev {interface}`)"
            ))
        })?,
    };
    Ok(Segment::Bridge { name: interface.to_string(), address, prefix })
}
