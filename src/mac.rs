//! An Ethernet MAC address, and the names boot clients build from it.
//!
//! pxelab picks the MAC of each VM it creates before the VM exists, so the
//! boot tree can hold that VM's own boot config (`pxelinux.cfg/01-<mac>`,
//! `mac/<mac>.ipxe`, `…/grub.cfg-01-<mac>`) by the time its firmware asks.
//! The names are spelled as each client asks for them: pxelinux and iPXE's
//! `${mac:hexhyp}` lowercase and hyphenated, GRUB's `$net_default_mac`
//! lowercase with colons. They are written and read back here, in one place
//! ([`MacAddr::from_config_path`]), so the lab can tell whose config a
//! transfer was.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random address in QEMU/KVM's `52:54:00` block, as libvirt would
    /// pick (it does not check for collisions either: 2^24 addresses).
    pub fn random_qemu() -> MacAddr {
        let mut tail = [0u8; 3];
        // getrandom(2) fills 3 bytes in one call; on failure, time and pid
        // still differ between two VMs of one lab.
        let filled = unsafe { libc::getrandom(tail.as_mut_ptr().cast(), tail.len(), 0) };
        if filled != tail.len() as isize {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            let mixed = nanos ^ std::process::id().rotate_left(16);
            tail.copy_from_slice(&mixed.to_le_bytes()[..3]);
        }
        MacAddr([0x52, 0x54, 0x00, tail[0], tail[1], tail[2]])
    }

    /// `52-54-00-12-34-56`: iPXE's `${mac:hexhyp}`.
    pub fn hyphenated(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join("-")
    }

    /// `pxelinux.cfg/01-52-54-00-12-34-56`: the first config pxelinux asks
    /// for after its UUID (01 is ARP's hardware type for Ethernet).
    pub fn pxelinux_config(&self) -> String {
        format!("pxelinux.cfg/01-{}", self.hyphenated())
    }

    /// `mac/52-54-00-12-34-56.ipxe`: the lab VM's own iPXE script.
    pub fn ipxe_script(&self) -> String {
        format!("mac/{}.ipxe", self.hyphenated())
    }

    /// `grub.cfg-01-52:54:00:12:34:56`: the VM's own GRUB config, as GRUB
    /// spells `$net_default_mac`; it lives beside each `grub.cfg` prefix.
    pub fn grub_config(&self) -> String {
        format!("grub.cfg-01-{self}")
    }

    /// `cdrom/52-54-00-12-34-56/NAME.iso`: the ISO image as the VM's CD-ROM
    /// reads it over HTTP. Its own path per VM: the reads all come from the
    /// libvirt host's QEMU, so the path is what tells whose they are.
    pub fn cdrom_path(&self, iso_file: &str) -> String {
        format!("cdrom/{}/{iso_file}", self.hyphenated())
    }

    /// The MAC whose CD-ROM `path` is ([`cdrom_path`](Self::cdrom_path)).
    pub fn from_cdrom_path(path: &str) -> Option<MacAddr> {
        let rest = path.trim_start_matches('/').strip_prefix("cdrom/")?;
        let (mac, file) = rest.split_once('/')?;
        (!file.is_empty() && !file.contains('/')).then_some(())?;
        mac.parse().ok()
    }

    /// The MAC whose own config `path` is, for any of the three names above
    /// (with or without a leading `/`, GRUB's under any prefix).
    pub fn from_config_path(path: &str) -> Option<MacAddr> {
        let path = path.trim_start_matches('/');
        let file = path.rsplit('/').next().unwrap_or(path);
        let mac = path
            .strip_prefix("mac/")
            .and_then(|p| p.strip_suffix(".ipxe"))
            .or_else(|| path.strip_prefix("pxelinux.cfg/01-"))
            .or_else(|| file.strip_prefix("grub.cfg-01-"))?;
        mac.parse().ok()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = String;

    /// `52:54:00:12:34:56` (as libvirt writes it) or with `-`, any case.
    fn from_str(text: &str) -> Result<MacAddr, String> {
        let parts: Vec<&str> = text.split([':', '-']).collect();
        let mut bytes = [0u8; 6];
        if parts.len() != 6 {
            return Err(format!("{text:?} is not a MAC address"));
        }
        for (byte, part) in bytes.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(format!("{text:?} is not a MAC address"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("{text:?} is not a MAC address"))?;
        }
        Ok(MacAddr(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_pxelinux_and_ipxe_ask_for() {
        let mac: MacAddr = "52:54:00:AB:0c:7f".parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:ab:0c:7f");
        assert_eq!(mac.hyphenated(), "52-54-00-ab-0c-7f");
        assert_eq!(mac.pxelinux_config(), "pxelinux.cfg/01-52-54-00-ab-0c-7f");
        assert_eq!("52-54-00-ab-0c-7f".parse::<MacAddr>().unwrap(), mac);
        for bad in ["", "52:54:00:ab:0c", "52:54:00:ab:0c:7f:00", "52:54:00:ab:0c:7", "52:54:00:ab:0c:zz"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_config_name_reads_back_as_its_mac() {
        let mac: MacAddr = "52:54:00:AB:0c:7f".parse().unwrap();
        assert_eq!(mac.ipxe_script(), "mac/52-54-00-ab-0c-7f.ipxe");
        assert_eq!(mac.grub_config(), "grub.cfg-01-52:54:00:ab:0c:7f");
        let written = [mac.pxelinux_config(), mac.ipxe_script(), format!("boot/grub/{}", mac.grub_config()), format!("/{}", mac.ipxe_script())];
        for path in written {
            assert_eq!(MacAddr::from_config_path(&path), Some(mac), "{path}");
        }
        for other in ["pxelinux.cfg/default", "mac/x.ipxe", "boot.ipxe", "grub/grub.cfg", "pxelinux.cfg/01-52-54-00-ab-0c", "iso/mac/52-54-00-ab-0c-7f.ipxe"] {
            assert_eq!(MacAddr::from_config_path(other), None, "{other}");
        }
    }

    #[test]
    fn random_addresses_are_qemus_and_differ() {
        let (a, b) = (MacAddr::random_qemu(), MacAddr::random_qemu());
        assert_eq!(&a.0[..3], &[0x52, 0x54, 0x00]);
        assert_ne!(a, b, "2^24 choices: equal twice in a row means no randomness");
    }

    #[test]
    fn a_cdrom_path_names_its_vm_and_only_that() {
        let mac: MacAddr = "52:54:00:0a:0b:0c".parse().unwrap();
        let path = mac.cdrom_path("debian-12.iso");
        assert_eq!(path, "cdrom/52-54-00-0a-0b-0c/debian-12.iso");
        assert_eq!(MacAddr::from_cdrom_path(&format!("/{path}")), Some(mac));
        assert_eq!(MacAddr::from_config_path(&path), None, "a CD read is not a boot config");
        for other in ["cdrom/52-54-00-0a-0b-0c/", "cdrom/nope/x.iso", "cdrom/52-54-00-0a-0b-0c/a/b.iso", "iso/cdrom/52-54-00-0a-0b-0c/x.iso"] {
            assert_eq!(MacAddr::from_cdrom_path(other), None, "{other}");
        }
    }
}
