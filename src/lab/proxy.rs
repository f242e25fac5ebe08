//! What `up --proxy-dhcp` and `serve --proxy-dhcp` share: the files the
//! proxy names for each kind of client, and starting it.

use std::net::Ipv4Addr;

use crate::boot::{self, BootTree};
use crate::error::{Error, Result};
use crate::proxydhcp::{BootFiles, ProxyDhcp};

/// What the proxy sends each kind of client, from the lab's tree: the same
/// files the bootp patch's dnsmasq lines name (`dhcp::LabDnsmasq`).
pub(crate) fn boot_files(server: Ipv4Addr, tree: &BootTree, http_base: Option<&str>) -> BootFiles {
    BootFiles {
        server,
        bios: "pxelinux.0".into(),
        uefi: tree.uefi_loaders().iter().map(|l| (l.arch(), l.boot_file())).collect(),
        ipxe: http_base.map(|base| format!("{base}/{}", boot::IPXE_SCRIPT)),
    }
}

/// Starts the proxy on `interface`, off the runtime (it opens sockets).
/// Without CAP_NET_RAW the error says so.
pub(crate) async fn start(interface: &str, files: BootFiles) -> Result<ProxyDhcp> {
    crate::blocking::run({
        let interface = interface.to_string();
        move || ProxyDhcp::start(&interface, files)
    })
    .await
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::environment(format!("--proxy-dhcp needs root (CAP_NET_RAW) to hear DHCP on {interface}: {e}")),
        _ => Error::environment(format!("cannot start proxy DHCP on {interface}: {e}")),
    })
}
