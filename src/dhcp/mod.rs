//! Settings for DHCP servers that are not libvirt's, in their own syntax:
//! the seed's ISC dhcpd subnet block, dnsmasq (also as proxy DHCP beside a
//! DHCP server you do not control), the Windows DHCP server's options 066
//! and 067, and libvirt's `<bootp>` element.
//!
//! Rendering is pure and deterministic; the values are checked once, in
//! [`DhcpParams::new`], so every format prints only well-formed addresses.

use std::net::Ipv4Addr;

use crate::arch::Arch;

mod lab;

use lab::{efi_match, efi_tag, IPXE_BOOT, IPXE_USERCLASS};
pub use lab::{LabDnsmasq, UefiBoot, IPXE_NO_PROXYDHCP};

/// An IPv4 network such as `192.168.122.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let bad = || format!("--subnet {text:?} is not an IPv4 network; write it as ADDRESS/PREFIX, e.g. 192.168.122.0/24");
        let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().ok().filter(|p| (8..=30).contains(p)).ok_or_else(bad)?;
        Ok(Subnet::containing(addr, prefix))
    }

    /// The network of `prefix` bits that holds `addr`.
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Subnet {
        Subnet { network: Ipv4Addr::from(u32::from(addr) & Self::mask_bits(prefix)), prefix }
    }

    fn mask_bits(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(Self::mask_bits(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask_bits(self.prefix) == u32::from(self.network)
    }

    fn broadcast(&self) -> u32 {
        u32::from(self.network) | !Self::mask_bits(self.prefix)
    }

    /// `Some("network")` or `Some("broadcast")` for the two addresses of the
    /// subnet no host can have.
    pub fn reserved(&self, ip: Ipv4Addr) -> Option<&'static str> {
        if ip == self.network {
            Some("network")
        } else if u32::from(ip) == self.broadcast() {
            Some("broadcast")
        } else {
            None
        }
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A PXE server address clients can be sent to: a host's unicast address,
/// and, on `subnet`, neither its network nor its broadcast address.
pub fn check_server_address(flag: &str, server: Ipv4Addr, subnet: Option<Subnet>) -> Result<(), String> {
    let what = if server.is_unspecified() {
        Some("the unspecified address")
    } else if server.is_broadcast() {
        Some("the broadcast address")
    } else if server.is_multicast() {
        Some("a multicast address")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(format!("{flag} {server} is {what}, no host's; give the PXE server's own address"));
    }
    if let Some(what) = subnet.and_then(|s| s.reserved(server).map(|w| (w, s))) {
        return Err(format!("{flag} {server} is the {} address of {}; give the PXE server's own address", what.0, what.1));
    }
    Ok(())
}

/// Everything a DHCP server needs to send PXE clients to pxelab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpParams {
    /// The TFTP server (next-server, option 066).
    pub server: Ipv4Addr,
    pub subnet: Subnet,
    /// The pool handed out, first and last address.
    pub range: (Ipv4Addr, Ipv4Addr),
    /// The boot file (filename, option 067).
    pub file: String,
    /// What iPXE clients get instead: pxelab's `http://SERVER[:PORT]/boot.ipxe`
    /// (the installer over HTTP, no menu). `None`: every client gets `file`.
    pub ipxe: Option<String>,
    /// What x86-64 UEFI clients (option 93 = 7 or 9) that are not iPXE get
    /// instead of `file`: a shim. `None`: they get `file` too.
    pub uefi: Option<String>,
    /// What ARM64 UEFI clients (option 93 = 11) get: the arm64 shim. `None`:
    /// nothing for them (they cannot run `file`).
    pub uefi_arm64: Option<String>,
}

impl DhcpParams {
    /// Checks and completes the values: the subnet defaults to the server's
    /// /24, the range to the upper half of the subnet's hosts.
    pub fn new(server: &str, subnet: Option<&str>, range: Option<&str>, file: &str) -> Result<DhcpParams, String> {
        let server: Ipv4Addr =
            server.parse().map_err(|_| format!("--server {server:?} is not an IPv4 address; give the PXE server's address, e.g. 192.168.122.1"))?;
        let subnet = match subnet {
            Some(s) => Subnet::parse(s)?,
            None => Subnet::containing(server, 24),
        };
        if !subnet.contains(server) {
            return Err(format!("--server {server} is not in --subnet {subnet}; the PXE server must be on the clients' network"));
        }
        check_server_address("--server", server, Some(subnet))?;
        let range = match range {
            Some(r) => {
                let bad = || format!("--range {r:?} is not an address range; write FIRST-LAST inside {subnet}, e.g. {}", default_range_text(subnet, server));
                let (a, b) = r.split_once('-').ok_or_else(bad)?;
                let (a, b): (Ipv4Addr, Ipv4Addr) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if !subnet.contains(a) || !subnet.contains(b) || u32::from(a) > u32::from(b) {
                    return Err(bad());
                }
                for end in [a, b] {
                    if let Some(what) = subnet.reserved(end) {
                        return Err(format!(
                            "--range {r}: {end} is the {what} address of {subnet}; clients cannot have it, e.g. {}",
                            default_range_text(subnet, server)
                        ));
                    }
                }
                (a, b)
            }
            None => default_range(subnet, server),
        };
        if u32::from(range.0) <= u32::from(server) && u32::from(server) <= u32::from(range.1) {
            return Err(format!("the range {}-{} includes the server {server}; choose a range without it", range.0, range.1));
        }
        crate::boot::check_boot_file(file).map_err(|e| format!("--file {e}"))?;
        Ok(DhcpParams { server, subnet, range, file: file.to_string(), ipxe: None, uefi: None, uefi_arm64: None })
    }

    /// Sends x86-64 UEFI clients (not iPXE) to `file` (a shim in the boot tree).
    pub fn with_uefi(mut self, file: &str) -> Result<DhcpParams, String> {
        crate::boot::check_boot_file(file).map_err(|e| format!("--uefi-file {e}"))?;
        self.uefi = Some(file.to_string());
        Ok(self)
    }

    /// Sends ARM64 UEFI clients to `file` (the arm64 shim in the boot tree).
    pub fn with_uefi_arm64(mut self, file: &str) -> Result<DhcpParams, String> {
        crate::boot::check_boot_file(file).map_err(|e| format!("--uefi-arm64-file {e}"))?;
        self.uefi_arm64 = Some(file.to_string());
        Ok(self)
    }

    /// The UEFI shims, each with its architecture.
    fn shims(&self) -> impl Iterator<Item = (Arch, &str)> {
        [(Arch::X86_64, &self.uefi), (Arch::Aarch64, &self.uefi_arm64)].into_iter().filter_map(|(a, f)| f.as_deref().map(|f| (a, f)))
    }

    /// Sends iPXE clients to the iPXE script on pxelab's HTTP server at `port`.
    pub fn with_ipxe(mut self, http_port: u16) -> DhcpParams {
        let host = if http_port == 80 { self.server.to_string() } else { format!("{}:{http_port}", self.server) };
        self.ipxe = Some(format!("http://{host}/{}", crate::boot::IPXE_SCRIPT));
        self
    }
}

/// The half of the subnet's hosts that does not hold the server: the upper
/// half by default (the lower is where static hosts and the gateway usually
/// are), the lower when the server sits in the upper.
fn default_range(subnet: Subnet, server: Ipv4Addr) -> (Ipv4Addr, Ipv4Addr) {
    let first = u32::from(subnet.network) + 1;
    let last = subnet.broadcast() - 1;
    let middle = first + (last - first) / 2;
    if u32::from(server) > middle {
        (Ipv4Addr::from(first), Ipv4Addr::from(middle))
    } else {
        (Ipv4Addr::from(middle + 1), Ipv4Addr::from(last))
    }
}

fn default_range_text(subnet: Subnet, server: Ipv4Addr) -> String {
    let (a, b) = default_range(subnet, server);
    format!("{a}-{b}")
}

/// An ISC dhcpd `subnet` block (the seed's). With iPXE, the option space
/// that names iPXE's `no-pxedhcp` comes first: it must be declared globally.
pub fn isc(p: &DhcpParams) -> String {
    let (mut space, mut filename) = match &p.ipxe {
        None => (String::new(), format!("    filename \"{}\";   # the boot file\n", p.file)),
        Some(ipxe) => (
            "# iPXE's own options (once per dhcpd.conf, outside any subnet)\n\
             option space ipxe;\n\
             option ipxe-encap-opts code 175 = encapsulate ipxe;\n\
             option ipxe.no-pxedhcp code 176 = unsigned integer 8;\n"
                .to_string(),
            format!(
                "    if exists user-class and option user-class = \"iPXE\" {{\n        filename \"{ipxe}\";   # iPXE clients: the installer over HTTP\n        option ipxe.no-pxedhcp 1;   # no 2 s wait for ProxyDHCP offers\n    }} else {{\n        filename \"{}\";   # the boot file\n    }}\n",
                p.file
            ),
        ),
    };
    if p.shims().next().is_some() {
        // The client's architecture (RFC 4578): 7 and 9 are x86-64 UEFI, 11 ARM64 UEFI.
        space.push_str("# the PXE client's architecture (once per dhcpd.conf)\noption arch code 93 = unsigned integer 16;\n");
        let branches: Vec<String> = p
            .shims()
            .map(|(arch, file)| {
                let test: Vec<String> = arch.uefi_client_arches().iter().map(|c| format!("option arch = 00:{c:02x}")).collect();
                format!("if {} {{\n        filename \"{file}\";   # {} UEFI clients: the shim\n    }}", test.join(" or "), label(arch))
            })
            .collect();
        let uefi_branch = branches.join(" els");
        filename = match &p.ipxe {
            None => format!("    {uefi_branch} else {{\n        filename \"{}\";   # the boot file (BIOS)\n    }}\n", p.file),
            Some(_) => filename.replacen("    } else {", &format!("    }} els{uefi_branch} else {{"), 1),
        };
    }
    format!(
        "# ISC dhcpd: add to /etc/dhcp/dhcpd.conf, then restart isc-dhcp-server\n\
         {space}subnet {net} netmask {mask} {{\n    range {a} {b};\n    default-lease-time 600;\n    max-lease-time 7200;\n    next-server {server};   # the PXE (TFTP) server\n{filename}}}\n",
        net = p.subnet.network,
        mask = p.subnet.netmask(),
        a = p.range.0,
        b = p.range.1,
        server = p.server,
    )
}

/// dnsmasq as the network's DHCP server.
pub fn dnsmasq(p: &DhcpParams) -> String {
    let not_efi: String = p.shims().map(|(arch, _)| format!("tag:!{},", efi_tag(arch))).collect();
    let mut boot = match &p.ipxe {
        None => format!("dhcp-boot={not_efi}{},,{}\n", p.file, p.server),
        Some(ipxe) => format!(
            "# iPXE clients get the installer over HTTP; the others {file} over TFTP\n\
             {IPXE_USERCLASS}\n\
             {IPXE_BOOT}{ipxe}\n\
             dhcp-boot=tag:!ipxe,{not_efi}{file},,{server}\n\
             # iPXE: no 2 s wait for ProxyDHCP offers\n\
             {IPXE_NO_PROXYDHCP}\n",
            file = p.file,
            server = p.server
        ),
    };
    for (arch, file) in p.shims() {
        let codes: Vec<String> = arch.uefi_client_arches().iter().map(u16::to_string).collect();
        boot.push_str(&format!("# {} UEFI clients (client-arch {}) that are not iPXE: the shim\n", label(arch), codes.join(" or ")));
        for line in efi_match(arch) {
            boot.push_str(&line);
            boot.push('\n');
        }
        let not_ipxe = if p.ipxe.is_some() { "tag:!ipxe," } else { "" };
        boot.push_str(&format!("dhcp-boot=tag:{},{not_ipxe}{file},,{}\n", efi_tag(arch), p.server));
    }
    format!(
        "# dnsmasq: add to /etc/dnsmasq.conf (or a file in /etc/dnsmasq.d/), then restart dnsmasq\n\
         dhcp-range={a},{b},{mask},12h\n{boot}",
        a = p.range.0,
        b = p.range.1,
        mask = p.subnet.netmask(),
    )
}

/// dnsmasq as proxy DHCP: it adds only the boot information to the offers
/// of a DHCP server you do not control, and hands out no addresses.
pub fn dnsmasq_proxy(p: &DhcpParams) -> String {
    let base = p.file.strip_suffix(".0").unwrap_or(&p.file);
    format!(
        "# dnsmasq as proxy DHCP, beside a DHCP server you do not control: hands out no addresses\n\
         port=0\n\
         dhcp-range={net},proxy,{mask}\n\
         pxe-service=x86PC,\"Boot from pxelab\",{base},{server}\n{uefi}",
        net = p.subnet.network,
        mask = p.subnet.netmask(),
        server = p.server,
        uefi = p
            .shims()
            .map(|(arch, f)| match arch {
                Arch::X86_64 => format!("pxe-service=X86-64_EFI,\"Boot from pxelab (UEFI)\",{f},{}\n", p.server),
                Arch::Aarch64 => format!("pxe-service=ARM64_EFI,\"Boot from pxelab (ARM64 UEFI)\",{f},{}\n", p.server),
            })
            .collect::<String>(),
    )
}

/// The Windows DHCP server's options 066 and 067, server-wide and for the scope.
pub fn windows(p: &DhcpParams) -> String {
    let scope = p.subnet.network;
    format!(
        "# Windows DHCP server: option 066 (boot server host name) and 067 (boot file name).\n\
         # netsh, for every scope on the server:\n\
         netsh dhcp server set optionvalue 066 STRING \"{server}\"\n\
         netsh dhcp server set optionvalue 067 STRING \"{file}\"\n\
         # netsh, for the {scope} scope only:\n\
         netsh dhcp server scope {scope} set optionvalue 066 STRING \"{server}\"\n\
         netsh dhcp server scope {scope} set optionvalue 067 STRING \"{file}\"\n\
         # PowerShell (DhcpServer module), for every scope on the server:\n\
         Set-DhcpServerv4OptionValue -OptionId 66 -Value \"{server}\"\n\
         Set-DhcpServerv4OptionValue -OptionId 67 -Value \"{file}\"\n\
         # PowerShell, for the {scope} scope only:\n\
         Set-DhcpServerv4OptionValue -ScopeId {scope} -OptionId 66 -Value \"{server}\"\n\
         Set-DhcpServerv4OptionValue -ScopeId {scope} -OptionId 67 -Value \"{file}\"\n{uefi}",
        server = p.server,
        file = p.file,
        uefi = p.shims().map(|(arch, f)| windows_uefi(scope, arch, f)).collect::<String>(),
    )
}

/// An architecture as the comments in the settings name it.
fn label(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86-64",
        Arch::Aarch64 => "ARM64",
    }
}

/// UEFI clients on Windows DHCP: a vendor class for what they send in
/// option 60 (`PXEClient:Arch:00007`, `…:00011` for ARM64) and a policy
/// giving them 067.
fn windows_uefi(scope: Ipv4Addr, arch: Arch, file: &str) -> String {
    let (who, name, code) = match arch {
        Arch::X86_64 => ("x86-64 UEFI clients get the shim instead", "x64", 7),
        Arch::Aarch64 => ("ARM64 UEFI clients get the arm64 shim", "ARM64", 11),
    };
    format!(
        "# {who}: a vendor class and a policy (PowerShell, {scope} scope)\n\
         Add-DhcpServerv4Class -Name \"PXEClient UEFI {name}\" -Type Vendor -Data \"PXEClient:Arch:{code:05}\"\n\
         Add-DhcpServerv4Policy -Name \"pxelab UEFI {name}\" -ScopeId {scope} -Condition OR -VendorClass EQ,\"PXEClient UEFI {name}*\"\n\
         Set-DhcpServerv4OptionValue -ScopeId {scope} -PolicyName \"pxelab UEFI {name}\" -OptionId 67 -Value \"{file}\"\n"
    )
}

/// libvirt's `<bootp>` element, for `virsh net-edit` (or `pxelab net patch`).
pub fn libvirt(p: &DhcpParams) -> String {
    let mut out = format!(
        "<!-- libvirt: inside the network's <ip><dhcp> (virsh net-edit NAME), or run `pxelab net patch --network NAME` -->\n<bootp file='{}' server='{}'/>\n",
        p.file, p.server
    );
    if let Some(ipxe) = &p.ipxe {
        out.push_str(&format!(
            "<!-- iPXE clients over HTTP, and no waits for the first lease (what `pxelab up` adds): xmlns:dnsmasq='{ns}' on <network>, and as its last child: -->\n<dnsmasq:options>\n",
            ns = crate::virt::netxml::DNSMASQ_NS
        ));
        let uefi = p.shims().map(|(arch, file)| UefiBoot { arch, file: file.to_string(), server: p.server.into() }).collect();
        for line in (LabDnsmasq { ipxe_script: Some(ipxe.clone()), fast: true, uefi }).lines() {
            out.push_str(&format!("  <dnsmasq:option value='{line}'/>\n"));
        }
        out.push_str("</dnsmasq:options>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> DhcpParams {
        DhcpParams::new("192.168.122.1", None, None, "pxelinux.0").unwrap()
    }

    #[test]
    fn defaults_follow_the_server() {
        let p = params();
        assert_eq!(p.subnet.to_string(), "192.168.122.0/24");
        assert_eq!(p.range, ("192.168.122.128".parse().unwrap(), "192.168.122.254".parse().unwrap()));
        let p = DhcpParams::new("10.1.2.3", Some("10.1.0.0/16"), Some("10.1.9.1-10.1.9.50"), "pxelinux.0").unwrap();
        assert_eq!(p.subnet.netmask().to_string(), "255.255.0.0");
    }

    #[test]
    fn isc_matches_the_seed() {
        assert_eq!(
            isc(&params()),
            "# ISC dhcpd: add to /etc/dhcp/dhcpd.conf, then restart isc-dhcp-server\nsubnet 192.168.122.0 netmask 255.255.255.0 {\n    range 192.168.122.128 192.168.122.254;\n    default-lease-time 600;\n    max-lease-time 7200;\n    next-server 192.168.122.1;   # the PXE (TFTP) server\n    filename \"pxelinux.0\";   # the boot file\n}\n"
        );
    }

    #[test]
    fn windows_commands_are_golden() {
        let text = windows(&params());
        assert!(text.contains("netsh dhcp server set optionvalue 066 STRING \"192.168.122.1\"\n"));
        assert!(text.contains("netsh dhcp server set optionvalue 067 STRING \"pxelinux.0\"\n"));
        assert!(text.contains("netsh dhcp server scope 192.168.122.0 set optionvalue 066 STRING \"192.168.122.1\"\n"));
        assert!(text.contains("Set-DhcpServerv4OptionValue -OptionId 67 -Value \"pxelinux.0\"\n"));
        assert!(text.contains("Set-DhcpServerv4OptionValue -ScopeId 192.168.122.0 -OptionId 66 -Value \"192.168.122.1\"\n"));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 8);
    }

    #[test]
    fn ipxe_clients_are_sent_to_the_script() {
        let p = params().with_ipxe(8080);
        let isc = isc(&p);
        assert!(isc.contains("if exists user-class and option user-class = \"iPXE\" {\n        filename \"http://192.168.122.1:8080/boot.ipxe\";"), "{isc}");
        assert!(isc.contains("} else {\n        filename \"pxelinux.0\";"), "{isc}");
        let dnsmasq = dnsmasq(&params().with_ipxe(80));
        assert!(
            dnsmasq
                .contains("dhcp-userclass=set:ipxe,iPXE\ndhcp-boot=tag:ipxe,http://192.168.122.1/boot.ipxe\ndhcp-boot=tag:!ipxe,pxelinux.0,,192.168.122.1\n"),
            "{dnsmasq}"
        );
        assert!(libvirt(&p).contains("<dnsmasq:option value='dhcp-boot=tag:ipxe,http://192.168.122.1:8080/boot.ipxe'/>"));
        assert!(libvirt(&p).contains("<dnsmasq:option value='no-ping'/>\n"));
        assert!(dnsmasq.ends_with("dhcp-option=tag:ipxe,encap:175,176,1\n"), "{dnsmasq}");
        assert!(isc.starts_with("# ISC dhcpd: add to /etc/dhcp/dhcpd.conf, then restart isc-dhcp-server\n# iPXE's own options"), "{isc}");
        assert!(isc.contains("        option ipxe.no-pxedhcp 1;"), "{isc}");
    }

    #[test]
    fn libvirt_is_the_bootp_element() {
        assert!(libvirt(&params()).ends_with("<bootp file='pxelinux.0' server='192.168.122.1'/>\n"));
    }

    #[test]
    fn bad_values_are_refused_with_the_fix() {
        for (server, subnet, range, file) in [
            ("300.1.1.1", None, None, "pxelinux.0"),
            ("fe80::1", None, None, "pxelinux.0"),
            ("10.0.0.1", Some("10.0.0.0"), None, "pxelinux.0"),
            ("10.0.0.1", Some("10.0.0.0/33"), None, "pxelinux.0"),
            ("10.0.0.1", Some("10.9.0.0/24"), None, "pxelinux.0"),
            ("10.0.0.1", None, Some("10.0.0.50"), "pxelinux.0"),
            ("10.0.0.1", None, Some("10.0.0.90-10.0.0.20"), "pxelinux.0"),
            ("10.0.0.1", None, Some("10.0.1.2-10.0.1.9"), "pxelinux.0"),
            ("10.0.0.1", None, Some("10.0.0.1-10.0.0.9"), "pxelinux.0"),
            ("10.0.0.1", None, None, "pxe linux.0"),
            ("10.0.0.1", None, None, "\"; evil"),
            ("10.0.0.1", None, None, "../etc/passwd"),
            ("10.0.0.1", None, None, "/pxelinux.0"),
            ("10.0.0.0", None, None, "pxelinux.0"),
            ("10.0.0.255", None, None, "pxelinux.0"),
            ("10.0.0.1", None, Some("10.0.0.200-10.0.0.255"), "pxelinux.0"),
            ("10.0.0.1", None, Some("10.0.0.0-10.0.0.9"), "pxelinux.0"),
        ] {
            let err = DhcpParams::new(server, subnet, range, file).unwrap_err();
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn the_default_range_is_the_half_without_the_server() {
        let low = DhcpParams::new("10.0.0.1", None, None, "pxelinux.0").unwrap();
        assert_eq!(low.range, ("10.0.0.128".parse().unwrap(), "10.0.0.254".parse().unwrap()));
        let high = DhcpParams::new("10.0.0.200", None, None, "pxelinux.0").unwrap();
        assert_eq!(high.range, ("10.0.0.1".parse().unwrap(), "10.0.0.127".parse().unwrap()));
        let edge = DhcpParams::new("10.0.0.254", Some("10.0.0.0/24"), None, "pxelinux.0").unwrap();
        assert!(u32::from(edge.range.1) < u32::from(edge.server));
    }
}
