//! Where a lab's network is, seen from pxelab's servers, which always run
//! on this host.
//!
//! The decision is pure: the caller looks at the host (is `--server-ip`
//! one of its addresses, is the libvirt host this one) and hands the facts
//! in, so every case is a table test. What depends on the answer: only a
//! bridge [`Site::Here`] gets this host's firewall opened and router
//! advertisements; a network on another host must reach this one through
//! its NAT or routing.

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::virt::netxml::NetworkXml;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Site {
    /// The network's bridge is on this host (a local URI, or a remote one
    /// that leads back here): pxelab may open this host's firewall for it
    /// and send router advertisements on it.
    Here,
    /// On another host: its guests reach pxelab through that host's NAT
    /// or routing.
    Remote,
}

/// What [`site`] decides from.
#[derive(Debug, Clone)]
pub(super) struct SiteFacts<'a> {
    pub uri: &'a str,
    pub net: &'a NetworkXml,
    /// The network's own address, on the libvirt host.
    pub address: IpAddr,
    /// Where pxelab serves: `--server-ip`, else `address`.
    pub server_ip: IpAddr,
    /// `--server-ip` was given, rather than defaulted to `address`.
    pub server_ip_given: bool,
    /// `server_ip` is an address of this host.
    pub server_ip_is_local: bool,
    /// The libvirt host is this host (see `lab::libvirt_is_here`).
    pub libvirt_here: bool,
}

/// Where the lab is, or why its guests could not reach pxelab's servers.
pub(super) fn site(facts: &SiteFacts<'_>) -> Result<Site> {
    let SiteFacts { uri, net, address, server_ip, .. } = facts;
    if !crate::virt::is_remote(uri) {
        return Ok(Site::Here);
    }
    let host = uri.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or(rest)).unwrap_or(uri);
    if !facts.server_ip_is_local {
        return Err(Error::bad_input(if facts.server_ip_given {
            format!("--server-ip {server_ip} is not an address of this host, where pxelab's servers run; pass this host's address that the guests of network {} on {host} can reach", net.name)
        } else {
            format!("network {}'s address {address} is on the libvirt host {host}, but pxelab's servers run here; pass --server-ip with this host's address that its guests can reach (through {host}'s NAT or routing)", net.name)
        }));
    }
    if facts.libvirt_here {
        // The "remote" host is this one (an ssh URI that loops back).
        return Ok(Site::Here);
    }
    if net.forward.is_none() {
        return Err(Error::bad_input(format!(
            "network {} on {host} is isolated (no <forward>): its guests reach only {address} on that host, never this host's {server_ip}; use a NAT or routed network there, or run pxelab on {host}",
            net.name
        )));
    }
    Ok(Site::Remote)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSH: &str = "qemu+ssh://root@far.example/system";
    const NET_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 9, 1));
    const HERE_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 5));

    fn net(forward: Option<&str>) -> NetworkXml {
        NetworkXml { name: "lab".into(), bridge: Some("virbr9".into()), stp: true, forward: forward.map(str::to_string), ips: Vec::new() }
    }

    /// `uri`, `forward`, the server address (given or defaulted), whether it is
    /// local, whether libvirt is here.
    fn decide(uri: &str, forward: Option<&str>, server: Option<IpAddr>, local: bool, here: bool) -> Result<Site> {
        let net = net(forward);
        let facts = SiteFacts {
            uri,
            net: &net,
            address: NET_IP,
            server_ip: server.unwrap_or(NET_IP),
            server_ip_given: server.is_some(),
            server_ip_is_local: local,
            libvirt_here: here,
        };
        site(&facts)
    }

    #[test]
    fn a_local_uri_is_always_here() {
        assert_eq!(decide("qemu:///system", None, None, true, true).unwrap(), Site::Here);
        assert_eq!(decide("qemu:///system", None, Some(HERE_IP), false, true).unwrap(), Site::Here);
    }

    #[test]
    fn a_remote_network_needs_a_server_ip_of_this_host() {
        // The default server address is the network's, which is on the far host.
        let e = decide(SSH, Some("nat"), None, false, false).unwrap_err();
        assert!(e.to_string().contains("pass --server-ip") && e.to_string().contains("far.example"), "{e}");
        let e = decide(SSH, Some("nat"), Some(HERE_IP), false, false).unwrap_err();
        assert!(e.to_string().contains("--server-ip 192.168.1.5 is not an address of this host"), "{e}");
    }

    #[test]
    fn an_isolated_network_on_another_host_is_refused_with_the_reason() {
        let text = decide(SSH, None, Some(HERE_IP), true, false).unwrap_err().to_string();
        assert!(text.contains("isolated") && text.contains("never this host's 192.168.1.5") && text.contains("NAT or routed"), "{text}");
    }

    #[test]
    fn a_nat_or_routed_network_on_another_host_reaches_this_host() {
        assert_eq!(decide(SSH, Some("nat"), Some(HERE_IP), true, false).unwrap(), Site::Remote);
        assert_eq!(decide(SSH, Some("route"), Some(HERE_IP), true, false).unwrap(), Site::Remote);
    }

    #[test]
    fn an_ssh_uri_back_to_this_host_is_here_even_for_an_isolated_network() {
        assert_eq!(decide(SSH, None, Some(NET_IP), true, true).unwrap(), Site::Here);
    }
}
