//! What a lab asks of libvirt's dnsmasq beside `<bootp>`: the lines, and
//! reading them back from a network (`doctor`).

use crate::arch::Arch;

/// What a lab asks of libvirt's dnsmasq beside `<bootp>` (through the
/// network's `<dnsmasq:options>`, journaled and restored with the patch).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabDnsmasq {
    /// iPXE clients get this (`http://SERVER[:PORT]/boot.ipxe`) instead of
    /// the `<bootp>` file.
    pub ipxe_script: Option<String>,
    /// Hand out leases without the waits measured in a first boot (see
    /// [`LabDnsmasq::lines`]).
    pub fast: bool,
    /// UEFI clients that are not iPXE get their architecture's boot file
    /// (the shim) from this TFTP server, instead of `pxelinux.0`: at most
    /// one per architecture.
    pub uefi: Vec<UefiBoot>,
}

/// The boot file for one architecture's UEFI clients and the server that has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UefiBoot {
    pub arch: Arch,
    pub file: String,
    pub server: std::net::IpAddr,
}

/// dnsmasq's tag for `arch`'s UEFI clients (`efi64` as it always was for x86-64).
pub(super) fn efi_tag(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "efi64",
        Arch::Aarch64 => "efiarm64",
    }
}

/// The lines that tag `arch`'s UEFI clients by option 93 (RFC 4578 and
/// its errata: 7 and 9 are x86-64, 11 is ARM64).
pub(super) fn efi_match(arch: Arch) -> Vec<String> {
    arch.uefi_client_arches().iter().map(|code| format!("dhcp-match=set:{},option:client-arch,{code}", efi_tag(arch))).collect()
}

/// What `arch`'s UEFI clients that are not iPXE boot, before `FILE,,SERVER`.
/// `!ipxe`: an iPXE EFI client is tagged both ways and takes the script.
fn efi_boot(arch: Arch) -> String {
    format!("dhcp-boot=tag:{},tag:!ipxe,", efi_tag(arch))
}

/// iPXE's "ignore ProxyDHCP" setting (175.176, `no-pxedhcp`), for dnsmasq.
pub const IPXE_NO_PROXYDHCP: &str = "dhcp-option=tag:ipxe,encap:175,176,1";
/// Tags the clients that say they are iPXE (DHCP option 77, user class).
pub(super) const IPXE_USERCLASS: &str = "dhcp-userclass=set:ipxe,iPXE";
/// What iPXE clients boot, before the script's URL.
pub(super) const IPXE_BOOT: &str = "dhcp-boot=tag:ipxe,";
const NO_PING: &str = "no-ping";

impl LabDnsmasq {
    /// The dnsmasq lines, in order.
    ///
    /// `fast` removes two waits of a new client's first lease, measured on
    /// a bridge with `bench/timeline.py`:
    /// - `no-ping`: before offering an address it has not leased yet,
    ///   dnsmasq pings it; the host's ARP for an address nobody holds takes
    ///   3 s to fail, and the offer waits for it;
    /// - iPXE's `no-pxedhcp`: after the first offer, iPXE waits until 2 s
    ///   after its first DHCPDISCOVER for ProxyDHCP offers that a libvirt
    ///   network never sends.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.fast {
            lines.push(NO_PING.to_string());
        }
        // The tag marks iPXE clients: for the script, and for no-pxedhcp,
        // which also spares the ROM's wait on the pxelinux path.
        if self.fast || self.ipxe_script.is_some() {
            lines.push(IPXE_USERCLASS.to_string());
        }
        if let Some(script) = &self.ipxe_script {
            lines.push(format!("{IPXE_BOOT}{script}"));
        }
        if self.fast {
            lines.push(IPXE_NO_PROXYDHCP.to_string());
        }
        for uefi in &self.uefi {
            lines.extend(efi_match(uefi.arch));
            if !lines.iter().any(|l| l == IPXE_USERCLASS) {
                lines.push(IPXE_USERCLASS.to_string());
            }
            lines.push(format!("{}{},,{}", efi_boot(uefi.arch), uefi.file, uefi.server));
        }
        lines
    }

    /// What [`lines`](Self::lines) said, read back from a network's dnsmasq
    /// options (`doctor` checks a running lab's network with it). The
    /// script counts only with the tag that selects iPXE clients.
    pub fn of(options: &[String]) -> LabDnsmasq {
        let has = |line: &str| options.iter().any(|o| o == line);
        let ipxe_script = options.iter().find_map(|o| o.strip_prefix(IPXE_BOOT)).filter(|_| has(IPXE_USERCLASS)).map(str::to_string);
        let uefi = Arch::ALL
            .into_iter()
            .filter_map(|arch| {
                let boot = efi_boot(arch);
                let rest = options.iter().find_map(|o| o.strip_prefix(boot.as_str())).filter(|_| efi_match(arch).iter().any(|m| has(m)))?;
                let (file, server) = rest.split_once(",,")?;
                Some(UefiBoot { arch, file: file.to_string(), server: server.parse().ok()? })
            })
            .collect();
        LabDnsmasq { ipxe_script, fast: has(NO_PING) && has(IPXE_USERCLASS) && has(IPXE_NO_PROXYDHCP), uefi }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labs_dnsmasq_lines() {
        let script = Some("http://10.0.0.1/boot.ipxe".to_string());
        assert_eq!(
            LabDnsmasq { ipxe_script: script.clone(), fast: true, uefi: vec![] }.lines(),
            ["no-ping", "dhcp-userclass=set:ipxe,iPXE", "dhcp-boot=tag:ipxe,http://10.0.0.1/boot.ipxe", "dhcp-option=tag:ipxe,encap:175,176,1"]
        );
        assert_eq!(
            LabDnsmasq { ipxe_script: script, fast: false, uefi: vec![] }.lines(),
            ["dhcp-userclass=set:ipxe,iPXE", "dhcp-boot=tag:ipxe,http://10.0.0.1/boot.ipxe"]
        );
        assert_eq!(
            LabDnsmasq { ipxe_script: None, fast: true, uefi: vec![] }.lines(),
            ["no-ping", "dhcp-userclass=set:ipxe,iPXE", "dhcp-option=tag:ipxe,encap:175,176,1"]
        );
        let uefi = vec![UefiBoot { arch: Arch::X86_64, file: "iso/EFI/BOOT/BOOTX64.EFI".into(), server: "10.0.0.1".parse().unwrap() }];
        assert_eq!(
            LabDnsmasq { ipxe_script: None, fast: false, uefi: uefi.clone() }.lines(),
            [
                "dhcp-match=set:efi64,option:client-arch,7",
                "dhcp-match=set:efi64,option:client-arch,9",
                "dhcp-userclass=set:ipxe,iPXE",
                "dhcp-boot=tag:efi64,tag:!ipxe,iso/EFI/BOOT/BOOTX64.EFI,,10.0.0.1"
            ]
        );
        assert!(LabDnsmasq::default().lines().is_empty());
        for lab in [
            LabDnsmasq { ipxe_script: Some("http://10.0.0.1/boot.ipxe".into()), fast: true, uefi: vec![] },
            LabDnsmasq { ipxe_script: Some("http://10.0.0.1/boot.ipxe".into()), fast: false, uefi: vec![] },
            LabDnsmasq { ipxe_script: None, fast: true, uefi: vec![] },
            LabDnsmasq { ipxe_script: Some("http://10.0.0.1/boot.ipxe".into()), fast: true, uefi: uefi.clone() },
            LabDnsmasq::default(),
        ] {
            assert_eq!(LabDnsmasq::of(&lab.lines()), lab, "read back");
        }
        let untagged = ["dhcp-boot=tag:ipxe,http://10.0.0.1/boot.ipxe".to_string()];
        assert_eq!(LabDnsmasq::of(&untagged).ipxe_script, None, "no script without the tag that selects iPXE clients");
    }

    #[test]
    fn arm64_uefi_clients_get_their_own_shim_beside_x86_64_ones() {
        let server: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let lab = LabDnsmasq {
            ipxe_script: None,
            fast: false,
            uefi: vec![
                UefiBoot { arch: Arch::X86_64, file: "efi/bootx64.efi".into(), server },
                UefiBoot { arch: Arch::Aarch64, file: "iso/EFI/BOOT/BOOTAA64.EFI".into(), server },
            ],
        };
        let lines = lab.lines();
        assert!(lines.contains(&"dhcp-match=set:efiarm64,option:client-arch,11".to_string()), "{lines:?}");
        assert!(lines.contains(&"dhcp-boot=tag:efiarm64,tag:!ipxe,iso/EFI/BOOT/BOOTAA64.EFI,,10.0.0.1".to_string()), "{lines:?}");
        assert!(lines.contains(&"dhcp-boot=tag:efi64,tag:!ipxe,efi/bootx64.efi,,10.0.0.1".to_string()), "{lines:?}");
        assert_eq!(LabDnsmasq::of(&lines), lab, "read back");
    }
}
