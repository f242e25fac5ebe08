//! Checks of one VM: it exists, its NIC is on the network, its firmware
//! against what the lab serves its kind of client, network boot first, and
//! how far it got (the lab's stages, else its DHCP lease).

use super::Findings;
use crate::arch::Arch;
use crate::error::Error;
use crate::lab::record::LabRecord;
use crate::virt::domxml::{self, Firmware, NetworkBoot};
use crate::virt::VirtError;

/// A VM's firmware against what the lab serves its kind of client.
fn firmware_check(f: &mut Findings, name: &str, arch: Arch, firmware: Firmware, lab: Option<&LabRecord>) {
    let served = lab.and_then(|l| l.uefi_file.clone());
    if arch == Arch::Aarch64 {
        return arm64_firmware_check(f, name, firmware, lab, served);
    }
    match (firmware, lab, served) {
        (Firmware::Bios, _, _) => f.ok(
            "vm.firmware",
            format!("{name} boots by BIOS through QEMU's iPXE ROM (Debian's ipxe-qemu; a lab answers its Ctrl-B prompt): iPXE over HTTP, or pxelinux.0"),
        ),
        (Firmware::Uefi, _, _) => f.ok(
            "vm.firmware",
            format!("{name} boots by UEFI through QEMU's iPXE EFI ROM (Debian's ipxe-qemu; a lab answers its Ctrl-B prompt): the HTTP path"),
        ),
        (Firmware::SecureBoot, None, _) => f.ok("vm.firmware", format!("{name} boots by UEFI with Secure Boot (edk2's own PXE, then a signed shim)")),
        (Firmware::SecureBoot, Some(_), Some(file)) if file.starts_with(&format!("{}/", crate::boot::ISO_DIR)) => {
            f.ok("vm.firmware", format!("{name} boots by UEFI with Secure Boot: the lab serves the ISO's signed shim {file}"))
        }
        (Firmware::SecureBoot, Some(_), None) => f.fail(
            "vm.firmware",
            format!("{name} boots with Secure Boot, but the lab serves no shim to UEFI clients"),
            "install shim-signed and grub-efi-amd64-signed, or serve an ISO with a signed EFI/BOOT shim and GRUB",
        ),
        (Firmware::SecureBoot, Some(_), Some(other)) => f.warn(
            "vm.firmware",
            format!("{name} boots with Secure Boot, but the lab serves the host's Debian shim ({other}), which verifies only kernels Debian signed"),
            format!("turn Secure Boot off for it (`pxelab vm rm {name}` and `vm new --firmware uefi`), or serve an ISO with a signed EFI/BOOT shim and GRUB"),
        ),
    }
}

/// An ARM64 VM: AAVMF's own PXE (QEMU's iPXE ROMs are x86 code), then
/// the arm64 shim and GRUB the lab serves to client architecture 11.
fn arm64_firmware_check(f: &mut Findings, name: &str, firmware: Firmware, lab: Option<&LabRecord>, served: Option<String>) {
    let secure = if firmware == Firmware::SecureBoot { " with Secure Boot" } else { "" };
    match (lab, served) {
        (Some(l), Some(file)) if l.arch == Arch::Aarch64 => {
            f.ok("vm.firmware", format!("{name} is an aarch64 VM booting by AAVMF{secure} (edk2's own PXE): the lab serves it {file}, then GRUB"))
        }
        (Some(l), None) if l.arch == Arch::Aarch64 => f.fail(
            "vm.firmware",
            format!("{name} is an aarch64 VM, but the lab serves no arm64 shim to UEFI clients"),
            "install debian-installer-12-netboot-arm64, or serve an ISO with EFI/BOOT/BOOTAA64.EFI and its GRUB",
        ),
        (Some(l), _) => f.fail(
            "vm.firmware",
            format!("{name} is an aarch64 VM, but the lab serves {} VMs: nothing it serves boots on it", l.arch),
            format!("`pxelab vm rm {name}`; for aarch64 VMs start a lab with an arm64 ISO (or --arch aarch64)"),
        ),
        (None, _) => f.ok("vm.firmware", format!("{name} is an aarch64 VM booting by AAVMF{secure} (edk2's own PXE, then an arm64 shim and GRUB)")),
    }
}

/// The VM's boot order. A BIOS VM should try the network first (the lab's
/// local-boot config sends SeaBIOS on to the disk after an install). A UEFI
/// VM the other way round: edk2 answers a network boot that returns
/// (GRUB's or iPXE's `exit`) with its boot menu, not the next device, so an
/// installed UEFI VM that tries the network first never reaches its disk.
fn boot_check(f: &mut Findings, name: &str, firmware: Firmware, xml: &str) {
    let uefi = firmware != Firmware::Bios;
    match domxml::network_boot(xml) {
        NetworkBoot::First if uefi => f.warn(
            "vm.boot",
            format!("{name} (UEFI) boots from the network first: after an install its firmware would stop at its boot menu, not boot the disk"),
            format!(
                "give its <disk> <boot order='1'/> and its <interface> <boot order='2'/> (`virsh edit {name}`): an empty disk falls through to the network"
            ),
        ),
        NetworkBoot::First => f.ok("vm.boot", format!("{name} boots from the network first")),
        NetworkBoot::Later if uefi => f.ok("vm.boot", format!("{name} boots its disk first (UEFI), and from the network while the disk holds no system")),
        NetworkBoot::Later => f.warn(
            "vm.boot",
            format!("{name} tries the network only after another device: a disk that boots skips PXE"),
            format!("give its <interface> <boot order='1'/> (`virsh edit {name}`)"),
        ),
        NetworkBoot::Never => f.fail(
            "vm.boot",
            format!("{name}'s boot order has no network device"),
            format!("add <boot order='1'/> to its <interface> (`virsh edit {name}`), or create one with `pxelab vm new --pxe`"),
        ),
    }
}

pub(super) fn vm_checks(
    f: &mut Findings,
    name: &str,
    vm: std::result::Result<(String, bool), VirtError>,
    network: &str,
    leases: &[(String, std::net::IpAddr)],
    lab: Option<&LabRecord>,
) {
    let (xml, running) = match vm {
        Ok(found) => found,
        Err(VirtError::NoDomain(_)) => {
            f.fail("vm", format!("domain {name:?} does not exist"), "list domains with `virsh list --all`, or create one with `pxelab vm new --pxe`");
            return;
        }
        Err(e) => {
            f.fail("vm", format!("cannot read domain {name:?}"), Error::from(e).to_string());
            return;
        }
    };
    let interfaces = domxml::interfaces(&xml);
    let on_network: Vec<_> = interfaces.iter().filter(|i| i.network.as_deref() == Some(network)).collect();
    if on_network.is_empty() {
        let elsewhere: Vec<String> =
            interfaces.iter().map(|i| i.network.clone().or_else(|| i.bridge.as_ref().map(|b| format!("bridge {b}"))).unwrap_or_else(|| "?".into())).collect();
        let detail = if elsewhere.is_empty() {
            format!("{name} has no network interface")
        } else {
            format!("{name}'s NIC is on {}, not on network {network}", elsewhere.join(", "))
        };
        f.fail(
            "vm.network",
            detail,
            format!("attach it: `virsh attach-interface {name} network {network} --model virtio --config`, or create a VM with `pxelab vm new --pxe --network {network}`"),
        );
    } else {
        f.ok("vm.network", format!("{name}'s NIC is on network {network}"));
    }

    let firmware = domxml::firmware_of(&xml);
    firmware_check(f, name, domxml::arch_of(&xml), firmware, lab);
    boot_check(f, name, firmware, &xml);

    let progress = lab.and_then(|l| l.vms.iter().find(|v| v.name == name));
    let mac = on_network.first().and_then(|i| i.mac.clone()).map(|m| m.to_ascii_lowercase());
    let lease = mac.as_ref().and_then(|mac| leases.iter().find(|(m, _)| m.eq_ignore_ascii_case(mac)).map(|(_, ip)| *ip));
    let lease_text = lease.map(|ip| format!("; DHCP lease {ip}")).unwrap_or_default();
    match (running, progress) {
        (false, _) => f.warn("vm.stage", format!("{name} is not running"), format!("start it: `virsh start {name}`")),
        (true, Some(p)) => {
            let at = p.reached.get(&p.stage).map(|s| format!(" at {s:.0} s")).unwrap_or_default();
            f.ok("vm.stage", format!("{name} reached {}{at}{lease_text}", p.stage.name()))
        }
        (true, None) if lease.is_some() => f.ok("vm.stage", format!("{name} runs{lease_text}")),
        (true, None) => f.warn(
            "vm.stage",
            format!("{name} runs but has no DHCP lease on network {network} yet"),
            format!("watch its console (`pxelab vm console {name}` or `virsh console {name}`) for the PXE ROM's messages"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::doctor::Status;

    #[test]
    fn a_uefi_vm_should_try_its_disk_first_and_a_bios_vm_the_network() {
        const BIOS: &str = "<domain><os><type arch='x86_64' machine='pc'>hvm</type></os>";
        const UEFI: &str = "<domain><os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type></os>";
        let net_first = "<devices><disk><boot order='2'/></disk><interface><boot order='1'/></interface></devices></domain>";
        let disk_first = "<devices><disk><boot order='1'/></disk><interface><boot order='2'/></interface></devices></domain>";
        for (xml, want) in [
            (format!("{BIOS}{net_first}"), Status::Ok),
            (format!("{BIOS}{disk_first}"), Status::Warn),
            (format!("{UEFI}{net_first}"), Status::Warn),
            (format!("{UEFI}{disk_first}"), Status::Ok),
        ] {
            let mut f = Findings::default();
            boot_check(&mut f, "vm", domxml::firmware_of(&xml), &xml);
            assert_eq!(f.0[0].status, want, "{xml}: {:?}", f.0[0].detail);
        }
    }
}
