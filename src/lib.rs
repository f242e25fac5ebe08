//! pxelab: a libvirt-integrated PXE lab.
//!
//! Where things live:
//! - [`iso`]: reads an installer ISO in place (no mount, no copy) and detects its distribution.
//! - [`boot`]: the virtual boot tree: syslinux files, the generated menus (pxelinux, GRUB,
//!   iPXE), the UEFI shim and GRUB, per-VM configs, the ISO under `iso/`.
//! - [`answer`]: kickstart, preseed and autoinstall files, checked and rendered per VM.
//! - [`serve`]: the embedded TFTP, FTP and HTTP servers.
//! - [`virt`]: libvirt: networks (bootp patching), domains (BIOS and UEFI) and their consoles.
//! - [`dhcp`]: settings for DHCP servers that are not libvirt's (ISC, dnsmasq, Windows).
//! - [`firewall`]: opening the lab's ports from its bridge when the host's firewall would block them.
//! - [`proxydhcp`]: proxy DHCP: boot information for PXE clients, beside a DHCP server pxelab leaves alone.
//! - [`link`]: packet sockets bound to one interface (what `ra` and `proxydhcp` send), and the interface's addresses.
//! - [`ra`]: the bare IPv6 router advertisement that ends iPXE's IPv6 wait, on the lab's bridge only.
//! - [`arch`]: the guest architectures (x86-64, ARM64) and what each means to DHCP, the boot tree and libvirt.
//! - [`blocking`]: where blocking host work runs (the rule beside `Libvirt::call`).
//! - [`lab`]: ties the parts together for each verb; the only caller of the parts.
//! - [`cli`]: the command line.

pub mod answer;
pub mod arch;
pub mod blocking;
pub mod boot;
pub mod cli;
pub mod dhcp;
pub mod error;
pub mod firewall;
pub mod iso;
pub mod lab;
pub mod link;
pub mod mac;
pub mod proxydhcp;
pub mod ra;
pub mod serve;
pub mod virt;
