//! Checks of this host itself: syslinux, OVMF, the UEFI loaders, ARM64 guests, the
//! accelerator, and whether its firewall lets a bridge's guests reach the
//! lab's ports (iptables, firewalld, nftables).

use super::Findings;
use crate::arch::Arch;
use crate::boot::{syslinux, uefi};
use crate::firewall;
use crate::lab::parse_port_range;
use crate::lab::record::LabRecord;
use crate::serve::{Limits, FTP_PORT, TFTP_PORT};
use crate::virt::accel::{Accel, AccelChoice};
use crate::virt::domxml;

/// Checks of this host itself: syslinux, OVMF, the UEFI loaders.
pub(super) fn host_checks(f: &mut Findings) {
    match syslinux::load() {
        Ok(files) => f.ok("syslinux", format!("{} found", files.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))),
        Err(missing) => f.fail("syslinux", format!("{} is missing", missing.file), missing.to_string()),
    }
    match domxml::missing_uefi(Arch::X86_64) {
        None => f.ok("ovmf", "OVMF (plain and Secure Boot builds) found: UEFI VMs can run"),
        Some((file, _)) => {
            f.warn("ovmf", format!("{file} is missing: UEFI VMs (--firmware uefi) cannot start"), "install the ovmf package; BIOS VMs are not affected")
        }
    }
    match crate::boot::UefiLoader::from_host(Arch::X86_64) {
        Ok(_) => {
            let (shim, grub) = uefi::host_file_paths(Arch::X86_64);
            f.ok("uefi.loaders", format!("{shim} and {grub} found: UEFI PXE clients boot even from ISOs without their own"))
        }
        Err(missing) => f.warn(
            "uefi.loaders",
            format!("no host shim and GRUB for UEFI PXE clients ({missing})"),
            "install shim-signed and grub-efi-amd64-signed; until then UEFI clients without iPXE boot only ISOs with their own EFI/BOOT shim",
        ),
    }
    arm64_check(f);
}

/// ARM64 guests (`--arch aarch64`, or an arm64 ISO): QEMU's aarch64
/// emulator, AAVMF, and a shim and GRUB for ISOs without their own.
/// A warning at most: x86-64 labs need none of it.
fn arm64_check(f: &mut Findings) {
    let qemu = ["/usr/bin/qemu-system-aarch64", "/usr/local/bin/qemu-system-aarch64"].into_iter().find(|p| std::path::Path::new(p).exists());
    let mut missing = Vec::new();
    if qemu.is_none() {
        missing.push("qemu-system-aarch64 (qemu-system-arm, from the same suite as qemu-system-x86)".to_string());
    }
    if let Some((file, package)) = domxml::missing_uefi(Arch::Aarch64) {
        missing.push(format!("{file} ({package})"));
    }
    if missing.is_empty() {
        let loaders = match crate::boot::UefiLoader::from_host(Arch::Aarch64) {
            Ok(_) => "the host's arm64 shim and GRUB for ISOs without their own",
            Err(_) => "no host arm64 shim and GRUB (debian-installer-12-netboot-arm64): only ISOs with their own EFI/BOOT/BOOTAA64.EFI boot",
        };
        f.ok(
            "arm64",
            format!("qemu-system-aarch64 and AAVMF found, {loaders}; under TCG an aarch64 VM takes about 10 s to its PXE and 25 s to a busybox installer"),
        );
    } else {
        f.warn(
            "arm64",
            format!("aarch64 VMs cannot start: {} missing", missing.join(", ")),
            "install them for ARM64 guests (make deps does); x86-64 labs are not affected",
        );
    }
}

/// The accelerator the VMs would get, on the host they run on.
pub(super) fn accel_check(f: &mut Findings, choice: AccelChoice) {
    match choice.accel {
        Accel::Kvm => f.ok("accel", choice.reason),
        Accel::Tcg => f.warn(
            "accel",
            choice.reason,
            "nothing to do for the lab to work; guests run slower (an installer's first screen in about a minute); for kvm, use a host with kvm_intel or kvm_amd",
        ),
    }
}

pub(super) fn firewall_check(f: &mut Findings, bridge: &str, lab: Option<&LabRecord>) {
    let range = lab.and_then(|l| l.passive_ports.as_deref()).and_then(|p| parse_port_range(p).ok()).unwrap_or_else(|| Limits::default().passive_ports);
    let passive = format!("{}-{}", range.start(), range.end());
    let ftp_port = lab.and_then(LabRecord::ftp_addr).map(|a| a.port()).unwrap_or(FTP_PORT);
    let http_port = lab.and_then(LabRecord::http_addr).map(|a| a.port());
    let rules = firewall::lab_rules(TFTP_PORT, ftp_port, http_port, &range);
    let ports = match http_port {
        Some(http) => format!("{TFTP_PORT}/udp, {ftp_port}/tcp, {http}/tcp and {passive}/tcp"),
        None => format!("{TFTP_PORT}/udp, {ftp_port}/tcp and {passive}/tcp"),
    };
    let mut clear = true;
    if let Some(rule) = firewall::blocking_rule(bridge, &rules) {
        clear = false;
        if firewall::opened(bridge, &rules) {
            f.ok("firewall.iptables", format!("INPUT has {rule:?}, but pxelab's ACCEPT rules for {ports} on {bridge} come first"));
        } else {
            f.lab_dependent(
                lab.is_some(),
                "firewall.iptables",
                format!("iptables INPUT would stop {ports} from {bridge}: {rule:?}"),
                format!("`pxelab up` adds ACCEPT rules for them while the lab runs; by hand: `iptables -I INPUT -i {bridge} -p udp --dport {TFTP_PORT} -j ACCEPT` (and {ftp_port}, {passive})"),
            );
        }
    }
    if let Some((zone, missing)) = firewall::firewalld_gap(bridge, &rules) {
        clear = false;
        f.fail(
            "firewall.firewalld",
            format!("firewalld's zone {zone} for {bridge} does not open {}", missing.join(" ").replace("--add-port=", "")),
            format!("firewall-cmd --zone={zone} {}", missing.join(" ")),
        );
    }
    if let Some(chain) = firewall::nft_dropping_input() {
        clear = false;
        f.warn(
            "firewall.nftables",
            format!("nftables {chain} drops input by default, and pxelab does not read nft rules"),
            format!("make sure it accepts {ports} arriving on {bridge} (`iifname \"{bridge}\" udp dport {TFTP_PORT} accept`, …)"),
        );
    }
    if clear {
        f.ok("firewall", format!("nothing in iptables, firewalld or nftables stops {ports} from {bridge}"));
    }
}
