//! What a VM of each architecture can be, decided before anything is made:
//! its firmware when none was asked for, the firmware it cannot have, and
//! what this host needs to run it. `up` and `vm new` both ask here.

use crate::arch::Arch;
use crate::error::{Error, Result};
use crate::virt::domxml::{self, Firmware};

/// The firmwares the VMs get: the ones asked for, or, when none was, the
/// architecture's own (SeaBIOS on x86-64; ARM64 has only UEFI).
pub(crate) fn firmwares_for(arch: Arch, asked: &[Firmware]) -> Result<Vec<Firmware>> {
    if asked.is_empty() {
        return Ok(vec![match arch {
            Arch::X86_64 => Firmware::Bios,
            Arch::Aarch64 => Firmware::Uefi,
        }]);
    }
    if arch == Arch::Aarch64 && asked.contains(&Firmware::Bios) {
        return Err(Error::bad_input("aarch64 VMs boot UEFI only (AAVMF on the virt machine): use --firmware uefi, or leave --firmware out"));
    }
    Ok(asked.to_vec())
}

/// Where QEMU's emulator for `arch` is looked for on a local libvirt host.
const QEMU_DIRS: [&str; 2] = ["/usr/bin", "/usr/local/bin"];

/// What this host lacks to run `arch`'s VMs with `firmwares` (a local
/// libvirt host only: a remote one is asked by libvirt itself when the
/// domain is defined). Exit 4 with the package to install.
pub(crate) fn check_host(arch: Arch, firmwares: &[Firmware]) -> Result<()> {
    if arch == Arch::Aarch64 && !QEMU_DIRS.iter().any(|d| std::path::Path::new(d).join(arch.qemu()).exists()) {
        return Err(Error::environment(
            "aarch64 VMs need qemu-system-aarch64, which is not installed; install qemu-system-arm (from the same suite as qemu-system-x86: make deps does)",
        ));
    }
    if firmwares.iter().any(|f| f.is_uefi()) {
        if let Some((missing, package)) = domxml::missing_uefi(arch) {
            let or_bios = if arch == Arch::X86_64 { ", or use --firmware bios" } else { "" };
            return Err(Error::environment(format!("UEFI {arch} VMs need {missing}, which is missing; install the {package} package{or_bios}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_architecture_has_its_own_default_firmware_and_arm64_has_no_bios() {
        assert_eq!(firmwares_for(Arch::X86_64, &[]).unwrap(), [Firmware::Bios]);
        assert_eq!(firmwares_for(Arch::Aarch64, &[]).unwrap(), [Firmware::Uefi]);
        assert_eq!(firmwares_for(Arch::Aarch64, &[Firmware::SecureBoot]).unwrap(), [Firmware::SecureBoot]);
        assert_eq!(firmwares_for(Arch::X86_64, &[Firmware::Bios, Firmware::Uefi]).unwrap(), [Firmware::Bios, Firmware::Uefi]);
        let refused = firmwares_for(Arch::Aarch64, &[Firmware::Bios, Firmware::Uefi]).unwrap_err();
        assert!(refused.to_string().contains("UEFI only"), "{refused}");
    }
}
