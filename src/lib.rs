//! pxelab: a libvirt-integrated PXE lab.
//!
//! Where things live:
//! - [`iso`]: reads an installer ISO in place (no mount, no copy) and detects its distribution.
//! - [`boot`]: the virtual TFTP tree: syslinux files, the generated menu, the ISO under `iso/`.
//! - [`serve`]: the embedded TFTP and FTP servers.
//! - [`virt`]: libvirt: networks (bootp patching) and domains.
//! - [`dhcp`]: settings for DHCP servers that are not libvirt's (ISC, dnsmasq, Windows).
//! - [`firewall`]: opening the lab's ports from its bridge when the host's firewall would block them.
//! - [`ra`]: the bare IPv6 router advertisement that ends iPXE's IPv6 wait, on the lab's bridge only.
//! - [`blocking`]: where blocking host work runs (the rule beside `Libvirt::call`).
//! - [`lab`]: ties the parts together for each verb; the only caller of the parts.
//! - [`cli`]: the command line.

pub mod answer;
pub mod blocking;
pub mod boot;
pub mod cli;
pub mod dhcp;
pub mod error;
pub mod firewall;
pub mod iso;
pub mod lab;
pub mod mac;
pub mod ra;
pub mod serve;
pub mod virt;
