//! The guest architectures pxelab makes VMs for, and what each one means
//! to the other parts: the names ISOs use for it, the PXE client
//! architectures (DHCP option 93) its firmware reports, the file names of
//! its UEFI loaders and its serial console.
//!
//! One leaf type, so that the ISO reader, the boot tree, DHCP and libvirt
//! agree on an architecture without a string between them.

use serde::{Deserialize, Serialize};

/// A VM's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86-64: SeaBIOS or OVMF; QEMU's iPXE ROMs.
    #[default]
    X86_64,
    /// ARM64: the `virt` machine with AAVMF (UEFI only); edk2's own PXE, then
    /// a shim and GRUB over TFTP (QEMU's iPXE ROMs are x86 code).
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// libvirt's and QEMU's name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The architecture of an installer an ISO names (`amd64`, `x86_64`,
    /// `arm64`, `aarch64`, …); `Err` with the name for one pxelab makes no
    /// VMs for. A 32-bit x86 installer runs on an x86-64 VM.
    pub fn of_installer(name: &str) -> Result<Arch, String> {
        match name {
            "x86_64" | "amd64" | "i386" | "i686" | "x86" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => Err(other.to_string()),
        }
    }

    /// The PXE client architectures (RFC 4578 option 93) of this
    /// architecture's UEFI firmware: 7 is x86-64 UEFI (9 as some firmware
    /// reports it, per the RFC's errata), 11 is ARM64 UEFI.
    pub fn uefi_client_arches(self) -> &'static [u16] {
        match self {
            Arch::X86_64 => &[7, 9],
            Arch::Aarch64 => &[11],
        }
    }

    /// The architecture whose UEFI firmware reports `client_arch`.
    pub fn of_uefi_client(client_arch: u16) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.uefi_client_arches().contains(&client_arch))
    }

    /// The removable-media loader's name (`EFI/BOOT/BOOT<ARCH>.EFI`, the
    /// shim on signed media) and GRUB's, which the shim loads from its own
    /// directory.
    pub fn efi_names(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("BOOTX64.EFI", "grubx64.efi"),
            Arch::Aarch64 => ("BOOTAA64.EFI", "grubaa64.efi"),
        }
    }

    /// The first serial port's device in the guest: the 16550 on x86, the
    /// `virt` machine's PL011 on ARM64.
    pub fn serial_console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }

    /// The QEMU binary that runs it (for `doctor`).
    pub fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Arch, String> {
        Arch::of_installer(s).map_err(|other| format!("unknown architecture {other:?}: use x86_64 or aarch64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installer_names_map_to_the_vm_that_runs_them() {
        for (name, arch) in [("amd64", Arch::X86_64), ("x86_64", Arch::X86_64), ("i386", Arch::X86_64), ("arm64", Arch::Aarch64), ("aarch64", Arch::Aarch64)] {
            assert_eq!(Arch::of_installer(name), Ok(arch), "{name}");
        }
        assert_eq!(Arch::of_installer("ppc64el"), Err("ppc64el".into()));
        assert!("s390x".parse::<Arch>().unwrap_err().contains("x86_64 or aarch64"));
    }

    #[test]
    fn each_uefi_client_arch_belongs_to_one_architecture() {
        assert_eq!(Arch::of_uefi_client(7), Some(Arch::X86_64));
        assert_eq!(Arch::of_uefi_client(9), Some(Arch::X86_64));
        assert_eq!(Arch::of_uefi_client(11), Some(Arch::Aarch64));
        // BIOS (0), 32-bit UEFI (6), x86-64 HTTP boot (16), ARM64 HTTP boot (19).
        for other in [0, 6, 10, 16, 19] {
            assert_eq!(Arch::of_uefi_client(other), None, "{other}");
        }
        assert_eq!(serde_json::to_value(Arch::Aarch64).unwrap(), "aarch64");
        assert_eq!(serde_json::to_value(Arch::X86_64).unwrap(), Arch::X86_64.name());
    }
}
