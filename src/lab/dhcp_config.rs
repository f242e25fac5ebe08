//! `pxelab dhcp-config`: settings for another DHCP server, with the running
//! lab's server address and subnet as defaults.

use super::{record, state_dir};
use crate::arch::Arch;
use crate::boot::uefi;
use crate::dhcp::{self, DhcpParams};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpFormat {
    Isc,
    Dnsmasq,
    DnsmasqProxy,
    Windows,
    Libvirt,
}

impl DhcpFormat {
    /// How `--format` and the JSON name it (proxy DHCP is dnsmasq's, with `--proxy`).
    pub fn name(self) -> &'static str {
        match self {
            DhcpFormat::Isc => "isc",
            DhcpFormat::Dnsmasq | DhcpFormat::DnsmasqProxy => "dnsmasq",
            DhcpFormat::Windows => "windows",
            DhcpFormat::Libvirt => "libvirt",
        }
    }
}

/// What `pxelab dhcp-config` was asked; `None`s are taken from the running lab.
#[derive(Debug, Clone)]
pub struct DhcpRequest {
    pub format: DhcpFormat,
    pub server: Option<String>,
    pub subnet: Option<String>,
    pub range: Option<String>,
    pub file: String,
    /// pxelab's HTTP port, for the iPXE lines: `None` for the running lab's
    /// (else 80), `Some(None)` for no iPXE lines.
    pub http_port: Option<Option<u16>>,
    /// The UEFI shim's path: `None` for the running lab's (else the host's
    /// `efi/bootx64.efi`), `Some("none")` for no UEFI lines.
    pub uefi_file: Option<String>,
    /// `--uefi-arm64-file`: what ARM64 UEFI clients boot (`none`: nothing).
    pub uefi_arm64_file: Option<String>,
}

/// The configuration text for `request.format`.
pub fn dhcp_config(request: &DhcpRequest) -> Result<String> {
    // The running lab's settings, when exactly one runs (several: say which with --server).
    let running: Vec<_> =
        state_dir().ok().map(|dir| super::labs::list(&dir).unwrap_or_default()).unwrap_or_default().into_iter().filter(|l| l.running()).collect();
    let lab = match running.as_slice() {
        [one] => one.record.clone(),
        _ => None,
    };
    let server = match (&request.server, &lab) {
        (Some(s), _) => s.clone(),
        (None, Some(lab)) => lab.server_ip.clone(),
        (None, None) if running.len() > 1 => {
            return Err(Error::bad_input(format!("{} labs are running: pass --server IP (the address of the one to use)", running.len())))
        }
        (None, None) => return Err(Error::bad_input("no lab is running to take the server from; pass --server IP (the PXE server's address)")),
    };
    let subnet = request.subnet.clone().or_else(|| lab.as_ref().and_then(|l| l.subnet.clone()));
    let mut params = DhcpParams::new(&server, subnet.as_deref(), request.range.as_deref(), &request.file).map_err(Error::bad_input)?;
    // The running lab's HTTP port, when it serves HTTP and none was named.
    let lab_http = lab.as_ref().and_then(record::LabRecord::http_addr).map(|a| a.port());
    let http_port = match request.http_port {
        // 0 means "any free port" only for a server pxelab runs itself.
        Some(Some(0)) => {
            return Err(Error::bad_input(
                "--http-port 0 names no port a DHCP server could send clients to; give the port pxelab's HTTP server listens on (`pxelab status`), or none",
            ));
        }
        Some(port) => port,
        None => Some(lab_http.unwrap_or(crate::serve::HTTP_PORT)),
    };
    if let Some(port) = http_port {
        params = params.with_ipxe(port);
    }
    // Each architecture's shim: the one asked for, the running lab's when
    // it serves that architecture, else the host's pair's place in the tree
    // (x86-64's even when this host lacks shim-signed; arm64's only when it
    // has Debian's arm64 netboot installer: arm64 clients are rarer).
    let shim = |asked: &Option<String>, arch: Arch| match asked {
        Some(file) if file == "none" => None,
        Some(file) => Some(file.clone()),
        None => lab.as_ref().filter(|l| l.arch == arch).and_then(|l| l.uefi_file.clone()).or_else(|| {
            let host = arch == Arch::X86_64 || std::path::Path::new(&uefi::host_file_paths(arch).0).exists();
            host.then(|| uefi::host_shim_path(arch).to_string())
        }),
    };
    if let Some(file) = shim(&request.uefi_file, Arch::X86_64) {
        params = params.with_uefi(&file).map_err(Error::bad_input)?;
    }
    if let Some(file) = shim(&request.uefi_arm64_file, Arch::Aarch64) {
        params = params.with_uefi_arm64(&file).map_err(Error::bad_input)?;
    }
    let text = match request.format {
        DhcpFormat::Isc => dhcp::isc(&params),
        DhcpFormat::Dnsmasq => dhcp::dnsmasq(&params),
        DhcpFormat::DnsmasqProxy => dhcp::dnsmasq_proxy(&params),
        DhcpFormat::Windows => dhcp::windows(&params),
        DhcpFormat::Libvirt => dhcp::libvirt(&params),
    };
    Ok(text + &proxy_note(request.format, &params.server.to_string(), lab.as_ref()))
}

/// When pxelab's own proxy DHCP is the better choice: a server that is not
/// yours to change (a router, a site's), or a network you will not patch.
/// A running proxy-DHCP lab needs none of the settings at all.
fn proxy_note(format: DhcpFormat, server: &str, lab: Option<&record::LabRecord>) -> String {
    if let Some(proxy) = lab.and_then(|l| l.proxy_dhcp.as_ref()) {
        let line = format!("the running lab answers PXE clients itself with proxy DHCP on {}: its clients need none of these settings", proxy.interface);
        return match format {
            DhcpFormat::Libvirt => format!("<!-- {line} -->\n"),
            _ => format!("# {line}\n"),
        };
    }
    match format {
        DhcpFormat::Libvirt => "<!-- or leave the network as it is: `pxelab up --proxy-dhcp --network NAME` answers PXE clients beside its DHCP -->\n".into(),
        DhcpFormat::DnsmasqProxy => format!("# or let pxelab be the proxy itself: `pxelab serve --proxy-dhcp --bind {server}` (root, for UDP 67)\n"),
        _ => format!(
            "# Not your server to change (a router, a site's)? pxelab answers PXE clients beside it instead, and this\n\
             # server stays as it is: `pxelab serve --proxy-dhcp --bind {server}`, or `pxelab up --proxy-dhcp --interface BRIDGE`\n"
        ),
    }
}
