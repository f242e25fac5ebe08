//! A libvirt network's state, and the calls that change it.
//!
//! libvirt cannot update `<bootp>` in place (`virNetworkUpdate` has no bootp
//! section), so a patch is a redefinition from the *inactive* XML followed by
//! a restart of the network so that dnsmasq reads it. That restart unplugs
//! the tap devices of running guests from the bridge; [`reattach`] plugs
//! them back and checks that they are.

use std::path::Path;

use virt::connect::Connect;
use virt::network::Network;

use super::domxml::interfaces;
use super::netxml::{self, NetworkXml};
use super::VirtError;

/// A guest interface plugged into the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub domain: String,
    /// The host-side tap device (`vnet3`), when the guest runs.
    pub tap: Option<String>,
}

/// Everything pxelab needs to know before changing a network.
#[derive(Debug, Clone)]
pub struct NetworkState {
    pub name: String,
    /// The persistent definition, as `virsh net-dumpxml --inactive` shows it.
    pub inactive_xml: String,
    pub parsed: NetworkXml,
    pub active: bool,
    pub autostart: bool,
    pub persistent: bool,
    /// Running guests with an interface on this network.
    pub guests: Vec<Guest>,
}

fn lookup(conn: &Connect, name: &str) -> Result<Network, VirtError> {
    Network::lookup_by_name(conn, name).map_err(|e| {
        if VirtError::is(&e, virt::error::ErrorNumber::NoNetwork) {
            VirtError::NoNetwork(name.to_string())
        } else {
            VirtError::libvirt(format!("looking up network {name:?}"), e)
        }
    })
}

/// Reads a network's definition, state and guests.
pub fn read(conn: &Connect, name: &str) -> Result<NetworkState, VirtError> {
    let net = lookup(conn, name)?;
    let what = |op: &str| format!("{op} of network {name:?}");
    let inactive_xml = net.get_xml_desc(virt::sys::VIR_NETWORK_XML_INACTIVE).map_err(|e| VirtError::libvirt(what("reading the XML"), e))?;
    let parsed = netxml::parse(&inactive_xml)?;
    let active = net.is_active().map_err(|e| VirtError::libvirt(what("reading the state"), e))?;
    let autostart = net.get_autostart().map_err(|e| VirtError::libvirt(what("reading autostart"), e))?;
    let persistent = net.is_persistent().map_err(|e| VirtError::libvirt(what("reading persistence"), e))?;
    let guests = if active { guests_on(conn, name)? } else { Vec::new() };
    Ok(NetworkState { name: name.to_string(), inactive_xml, parsed, active, autostart, persistent, guests })
}

/// The live XML (what dnsmasq was started with).
pub fn live_xml(conn: &Connect, name: &str) -> Result<String, VirtError> {
    lookup(conn, name)?.get_xml_desc(0).map_err(|e| VirtError::libvirt(format!("reading the live XML of {name:?}"), e))
}

/// Running guests with an interface on network `name`.
pub fn guests_on(conn: &Connect, name: &str) -> Result<Vec<Guest>, VirtError> {
    let domains = conn.list_all_domains(virt::sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE).map_err(|e| VirtError::libvirt("listing running domains", e))?;
    let mut guests = Vec::new();
    for dom in domains {
        let Ok(xml) = dom.get_xml_desc(0) else { continue };
        let domain = dom.get_name().unwrap_or_default();
        for iface in interfaces(&xml) {
            if iface.network.as_deref() == Some(name) {
                guests.push(Guest { domain: domain.clone(), tap: iface.tap });
            }
        }
    }
    Ok(guests)
}

/// Replaces the network's persistent definition.
pub fn define(conn: &Connect, xml: &str) -> Result<(), VirtError> {
    Network::define_xml(conn, xml).map(|_| ()).map_err(|e| VirtError::libvirt("defining the network", e))
}

/// Stops the network if it runs, then starts it again when `run`: a
/// running dnsmasq only reads the definition when it starts.
pub fn restart(conn: &Connect, name: &str, run: bool) -> Result<(), VirtError> {
    let net = lookup(conn, name)?;
    let what = |op: &str| format!("{op} network {name:?}");
    if net.is_active().map_err(|e| VirtError::libvirt(what("checking"), e))? {
        net.destroy().map_err(|e| VirtError::libvirt(what("stopping"), e))?;
    }
    if run {
        net.create().map_err(|e| VirtError::libvirt(what("starting"), e))?;
    }
    Ok(())
}

/// Sets whether the network starts with libvirtd.
pub fn set_autostart(conn: &Connect, name: &str, autostart: bool) -> Result<(), VirtError> {
    let net = lookup(conn, name)?;
    if net.get_autostart().map_err(|e| VirtError::libvirt(format!("reading autostart of {name:?}"), e))? != autostart {
        net.set_autostart(autostart).map_err(|e| VirtError::libvirt(format!("setting autostart of {name:?}"), e))?;
    }
    Ok(())
}

/// Plugs every tap of `guests` back into `bridge` and checks each is there.
/// Returns the taps that had to be plugged back.
pub fn reattach(guests: &[Guest], bridge: &str) -> Result<Vec<String>, VirtError> {
    let mut plugged = Vec::new();
    for tap in guests.iter().filter_map(|g| g.tap.as_deref()) {
        if master_of(tap).as_deref() == Some(bridge) {
            continue;
        }
        let status = std::process::Command::new("ip")
            .args(["link", "set", "dev", tap, "master", bridge])
            .status()
            .map_err(|e| VirtError::NotReady(format!("cannot run `ip` to re-attach {tap} to {bridge}: {e}; install iproute2")))?;
        if !status.success() || master_of(tap).as_deref() != Some(bridge) {
            return Err(VirtError::NotReady(format!(
                "guest interface {tap} is not on bridge {bridge} after the network restart; attach it by hand: ip link set dev {tap} master {bridge}"
            )));
        }
        plugged.push(tap.to_string());
    }
    Ok(plugged)
}

/// The tap libvirt plugged into `bridge` for the guest NIC `mac`, from
/// sysfs (local hosts only). libvirt gives a tap the guest's MAC with its
/// first byte 0xfe, so the bridge never takes the guest's address as its own.
pub fn tap_on(bridge: &str, mac: crate::mac::MacAddr) -> Option<String> {
    let mut want = mac;
    want.0[0] = 0xfe;
    let want = want.to_string();
    let ports = std::fs::read_dir(Path::new("/sys/class/net").join(bridge).join("brif")).ok()?;
    ports
        .flatten()
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .find(|port| std::fs::read_to_string(Path::new("/sys/class/net").join(port).join("address")).is_ok_and(|a| a.trim().eq_ignore_ascii_case(&want)))
}

/// The bridge a device is plugged into, from sysfs.
pub fn master_of(dev: &str) -> Option<String> {
    let link = std::fs::read_link(Path::new("/sys/class/net").join(dev).join("master")).ok()?;
    link.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The `dhcp-boot=` line of libvirt's dnsmasq configuration for the network,
/// when it can be read (system URI, as root).
pub fn dnsmasq_boot_line(name: &str) -> Option<String> {
    let conf = std::fs::read_to_string(format!("/var/lib/libvirt/dnsmasq/{name}.conf")).ok()?;
    conf.lines().find(|l| l.starts_with("dhcp-boot=")).map(str::to_string)
}

/// The DHCP leases libvirt's dnsmasq holds on network `name`, as (MAC,
/// address), from the libvirt API (`virNetworkGetDHCPLeases`, which virt
/// 0.4 does not wrap): the same call for a local and a remote libvirtd, and
/// no root needed, unlike reading dnsmasq's status file.
pub fn leases(conn: &Connect, name: &str) -> Result<Vec<(String, std::net::IpAddr)>, VirtError> {
    let net = Network::lookup_by_name(conn, name).map_err(|e| VirtError::libvirt(format!("looking up network {name}"), e))?;
    let mut list: *mut virt::sys::virNetworkDHCPLeasePtr = std::ptr::null_mut();
    // SAFETY: `net` is a live network; libvirt fills `list` with `count`
    // leases that we own, each freed below, and the array itself.
    let count = unsafe { virt::sys::virNetworkGetDHCPLeases(net.as_ptr(), std::ptr::null(), &mut list, 0) };
    if count < 0 {
        return Err(VirtError::libvirt(format!("reading the DHCP leases of {name}"), virt::error::Error::last_error()));
    }
    let text = |p: *const libc::c_char| (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned());
    let mut leases = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        // SAFETY: i < count, and each entry is a valid lease until freed.
        unsafe {
            let lease = *list.add(i);
            if let (Some(mac), Some(ip)) = (text((*lease).mac), text((*lease).ipaddr)) {
                if let Ok(ip) = ip.parse() {
                    leases.push((mac.to_ascii_lowercase(), ip));
                }
            }
            virt::sys::virNetworkDHCPLeaseFree(lease);
        }
    }
    if !list.is_null() {
        // SAFETY: the array libvirt allocated, its entries freed above.
        unsafe { libc::free(list.cast()) };
    }
    Ok(leases)
}
