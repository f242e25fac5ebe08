//! UEFI clients that are not iPXE: a signed shim, then GRUB, then a
//! generated `grub.cfg` with the same entries as pxelinux's menu.
//!
//! (UEFI clients that are iPXE, such as QEMU's NIC ROM under OVMF without
//! Secure Boot, take the iPXE path in `ipxe.rs`, which is faster.)
//!
//! Which shim and GRUB: the ISO's own `EFI/BOOT` pair when it has one,
//! served in place from the ISO. That is the vendor's signed chain, the one
//! that verifies the ISO's signed kernel under Secure Boot. Otherwise the
//! host's Debian shim and network GRUB (`shim-signed`,
//! `grub-efi-amd64-signed`), which boot any kernel with Secure Boot off.
//!
//! The shim fetches `grubx64.efi` from its own directory. GRUB then reads
//! `grub.cfg` from the prefix built into it, which each vendor sets
//! differently (Debian's netboot GRUB: `/debian-installer/amd64/grub`;
//! Debian's grubnetx64: `/grub`; RHEL's: `/EFI/BOOT`), so the generated
//! config is served at each of [`GRUB_PREFIXES`].
//!
//! Debian 12's GRUB (2.06) asks for `grub.cfg` only, never a per-MAC name
//! (seen in the TFTP log), so the generated `grub.cfg` looks for the
//! client's own first: `grub.cfg-01-<mac>` (GRUB's `$net_default_mac`,
//! colons and all), there only for a lab's VMs, which boots the installer
//! with no menu.

use std::fmt::Write as _;

use super::menu::{BootAction, Menu};
use crate::arch::Arch;
use crate::iso::IsoIndex;

/// Where GRUBs look for `grub.cfg` when netbooted (see the module docs).
pub const GRUB_PREFIXES: [&str; 5] = ["grub", "boot/grub", "debian-installer/amd64/grub", "debian-installer/arm64/grub", "EFI/BOOT"];

/// The host's signed shim and network GRUB for x86-64 (Debian's packages).
pub const HOST_SHIM: &str = "/usr/lib/shim/shimx64.efi.signed";
pub const HOST_GRUB: &str = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed";
/// For ARM64: the signed shim and GRUB of Debian's arm64 netboot installer
/// (an `all` package, installable on an x86-64 host, unlike `shim-signed:arm64`).
pub const HOST_ARM64_DIR: &str = "/usr/lib/debian-installer/images/12/arm64/text/debian-installer/arm64";

/// A host pair: where the shim and GRUB are, and the package that has them.
struct HostPair {
    shim: String,
    grub: String,
    shim_package: &'static str,
    grub_package: &'static str,
    /// Where they appear in the tree (the shim finds GRUB beside it).
    shim_path: &'static str,
    grub_path: &'static str,
}

fn host_pair(arch: Arch) -> HostPair {
    match arch {
        Arch::X86_64 => HostPair {
            shim: HOST_SHIM.into(),
            grub: HOST_GRUB.into(),
            shim_package: "shim-signed",
            grub_package: "grub-efi-amd64-signed",
            shim_path: "efi/bootx64.efi",
            grub_path: "efi/grubx64.efi",
        },
        Arch::Aarch64 => HostPair {
            shim: format!("{HOST_ARM64_DIR}/bootnetaa64.efi"),
            grub: format!("{HOST_ARM64_DIR}/grubaa64.efi"),
            shim_package: "debian-installer-12-netboot-arm64",
            grub_package: "debian-installer-12-netboot-arm64",
            shim_path: "efi/bootaa64.efi",
            grub_path: "efi/grubaa64.efi",
        },
    }
}

/// Where the host's x86-64 shim appears in the tree: the name other DHCP
/// servers are given for x86-64 UEFI clients (`dhcp-config`).
pub fn host_shim_path(arch: Arch) -> &'static str {
    host_pair(arch).shim_path
}

/// The host's shim and GRUB files for `arch`, for people (`doctor`).
pub fn host_file_paths(arch: Arch) -> (String, String) {
    let pair = host_pair(arch);
    (pair.shim, pair.grub)
}

/// The shim and GRUB a UEFI client of one architecture is given.
#[derive(Debug, Clone)]
pub enum UefiLoader {
    /// The ISO's own pair: the shim's path in the ISO (GRUB is beside it).
    Iso { arch: Arch, shim: String },
    /// The host's pair, held in memory.
    Host { arch: Arch, shim: Vec<u8>, grub: Vec<u8> },
}

impl UefiLoader {
    /// The ISO's `EFI/BOOT` shim for `arch` with its GRUB beside it, if any.
    pub fn in_iso(iso: &IsoIndex, arch: Arch) -> Option<UefiLoader> {
        let (shim, grub) = arch.efi_names();
        for dir in ["EFI/BOOT", "EFI/boot", "efi/boot"] {
            for shim in [shim.to_string(), shim.to_lowercase()] {
                let shim_path = format!("{dir}/{shim}");
                if iso.file(&shim_path).is_some() && iso.file(&format!("{dir}/{grub}")).is_some() {
                    return Some(UefiLoader::Iso { arch, shim: shim_path });
                }
            }
        }
        None
    }

    /// The host's Debian pair for `arch`, or what is missing.
    pub fn from_host(arch: Arch) -> Result<UefiLoader, String> {
        let pair = host_pair(arch);
        let read = |p: &str, package: &str| std::fs::read(p).map_err(|e| format!("{p}: {e} (install {package})"));
        Ok(UefiLoader::Host { arch, shim: read(&pair.shim, pair.shim_package)?, grub: read(&pair.grub, pair.grub_package)? })
    }

    pub fn arch(&self) -> Arch {
        match self {
            UefiLoader::Iso { arch, .. } | UefiLoader::Host { arch, .. } => *arch,
        }
    }

    /// The host pair's files and where they go in the tree (none for the ISO's).
    pub fn host_files(&self) -> Option<[(&'static str, &[u8]); 2]> {
        match self {
            UefiLoader::Iso { .. } => None,
            UefiLoader::Host { arch, shim, grub } => {
                let pair = host_pair(*arch);
                Some([(pair.shim_path, shim.as_slice()), (pair.grub_path, grub.as_slice())])
            }
        }
    }

    /// The file DHCP names for UEFI clients, as a path in the tree.
    pub fn boot_file(&self) -> String {
        match self {
            UefiLoader::Iso { shim, .. } => format!("{}/{shim}", super::ISO_DIR),
            UefiLoader::Host { arch, .. } => host_pair(*arch).shim_path.to_string(),
        }
    }

    /// Where the loaders come from, for people.
    pub fn describe(&self) -> String {
        match self {
            UefiLoader::Iso { shim, .. } => format!("the ISO's signed shim {shim} and its GRUB"),
            UefiLoader::Host { arch, .. } => {
                let pair = host_pair(*arch);
                format!("the host's shim ({}) and GRUB ({})", pair.shim, pair.grub)
            }
        }
    }

    /// Whether the chain can verify the ISO's kernel under Secure Boot.
    pub fn is_the_isos(&self) -> bool {
        matches!(self, UefiLoader::Iso { .. })
    }
}

/// `grub.cfg`: the client's own config if the lab made one, else the
/// menu's entries, its timeout and its default.
pub fn render(menu: &Menu) -> String {
    let mut out = String::from(
        "# pxelab: a VM of this lab has its own config; other clients get the same entries as pxelinux's menu\n\
         if [ -s \"${prefix}/grub.cfg-01-${net_default_mac}\" ]; then\n  configfile \"${prefix}/grub.cfg-01-${net_default_mac}\"\nfi\n",
    );
    let _ = writeln!(out, "set timeout={}", menu.timeout_ds.div_ceil(10));
    let _ = writeln!(out, "set default={}", menu.default_label);
    for entry in &menu.entries {
        entry_text(&mut out, &entry.label, &entry.title, &entry.action);
    }
    out
}

/// A lab VM's own config: the installer at once.
pub fn render_at_once(menu: &Menu) -> String {
    let mut out = String::from("# pxelab: a VM of this lab boots its installer at once; other machines get grub.cfg\nset timeout=0\nset default=install\n");
    for entry in menu.entries.iter().filter(|e| matches!(e.action, BootAction::Linux { .. })) {
        entry_text(&mut out, &entry.label, &entry.title, &entry.action);
    }
    out
}

fn entry_text(out: &mut String, label: &str, title: &str, action: &BootAction) {
    let _ = writeln!(out, "\nmenuentry {} --id {} {{", quote(title), quote(label));
    match action {
        // Back to the firmware, which boots the next entry of its boot order: the disk.
        BootAction::LocalBoot => out.push_str("  exit\n"),
        BootAction::Linux { kernel, initrd, append } => {
            let args: Vec<String> = append.split_whitespace().map(quote).collect();
            let _ = writeln!(out, "  linux /{kernel} {}", args.join(" "));
            let _ = writeln!(out, "  initrd /{initrd}");
        }
    }
    out.push_str("}\n");
}

/// A word as GRUB's shell reads it back unchanged: bare when it holds only
/// safe characters, else single-quoted (`;`, as in Ubuntu's
/// `ds=nocloud-net;s=…`, would otherwise end the command).
fn quote(word: &str) -> String {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.,:/=+@%".contains(&b)) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::DefaultEntry;

    fn menu(default: DefaultEntry, append: &str) -> Menu {
        Menu::install("CentOS 7", "iso/images/pxeboot/vmlinuz", "iso/images/pxeboot/initrd.img", append, default).unwrap()
    }

    #[test]
    fn grub_cfg_holds_the_menus_entries_timeout_and_default() {
        let cfg = render(&menu(DefaultEntry::Local, "inst.repo=http://10.0.0.1/iso/ console=ttyS0,115200"));
        assert!(cfg.contains("set timeout=5\nset default=local\n"), "{cfg}");
        assert!(cfg.contains("menuentry 'Boot from local drive' --id local {\n  exit\n}\n"), "{cfg}");
        assert!(
            cfg.contains(
                "menuentry 'Install CentOS 7' --id install {\n  linux /iso/images/pxeboot/vmlinuz inst.repo=http://10.0.0.1/iso/ console=ttyS0,115200\n  initrd /iso/images/pxeboot/initrd.img\n}\n"
            ),
            "{cfg}"
        );
    }

    #[test]
    fn a_vms_own_config_boots_the_installer_at_once() {
        let cfg = render_at_once(&menu(DefaultEntry::Local, "a=b"));
        assert!(cfg.contains("set timeout=0\nset default=install\n") && !cfg.contains("exit"), "{cfg}");
        assert_eq!("52:54:00:AA:bb:0c".parse::<crate::mac::MacAddr>().unwrap().grub_config(), "grub.cfg-01-52:54:00:aa:bb:0c");
        let cfg = render(&menu(DefaultEntry::Local, "a=b"));
        assert!(
            cfg.contains("if [ -s \"${prefix}/grub.cfg-01-${net_default_mac}\" ]; then\n  configfile \"${prefix}/grub.cfg-01-${net_default_mac}\"\nfi\n"),
            "{cfg}"
        );
    }

    #[test]
    fn arguments_grub_would_split_are_quoted() {
        let cfg = render(&menu(DefaultEntry::Install, "autoinstall ds=nocloud-net;s=http://10.0.0.1/ks/ it's"));
        assert!(cfg.contains("linux /iso/images/pxeboot/vmlinuz autoinstall 'ds=nocloud-net;s=http://10.0.0.1/ks/' 'it'\\''s'\n"), "{cfg}");
    }
}
