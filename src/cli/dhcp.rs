//! `pxelab dhcp-config`.

use clap::{Args, ValueEnum};

use super::output::{self, Outcome};
use super::Globals;
use crate::error::{Error, Result};
use crate::lab;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DhcpFormat {
    Isc,
    Dnsmasq,
    Windows,
    Libvirt,
}

#[derive(Debug, Args)]
pub struct DhcpConfigArgs {
    /// Which DHCP server the settings are for.
    #[arg(long, value_enum)]
    pub format: DhcpFormat,
    /// The PXE (TFTP) server (default: the running lab's).
    #[arg(long, value_name = "IP")]
    pub server: Option<String>,
    /// The clients' network (default: the running lab's, else the server's /24).
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The address pool, as FIRST-LAST (default: the half of the subnet without the server).
    #[arg(long, value_name = "RANGE")]
    pub range: Option<String>,
    /// The boot file, a path in the boot tree.
    #[arg(long, default_value = "pxelinux.0")]
    pub file: String,
    /// With --format dnsmasq: proxy DHCP beside a DHCP server you do not control.
    #[arg(long)]
    pub proxy: bool,
    /// pxelab's HTTP port (default: the running lab's, else 80): iPXE clients are sent to
    /// http://SERVER[:PORT]/boot.ipxe (ISC, dnsmasq, libvirt); `none` sends every client the --file.
    #[arg(long, value_name = "PORT", value_parser = super::serve::parse_http_port)]
    pub http_port: Option<super::serve::HttpPort>,
    /// What x86-64 UEFI clients (not iPXE) boot: a shim in the boot tree (default: the running
    /// lab's, else efi/bootx64.efi, the host's shim); `none` sends them the --file too.
    #[arg(long, value_name = "FILE")]
    pub uefi_file: Option<String>,
    /// What ARM64 UEFI clients (client-arch 11) boot: a shim in the boot tree (default: the
    /// running lab's when it serves aarch64, else efi/bootaa64.efi when this host has Debian's
    /// arm64 netboot installer); `none`: no lines for them.
    #[arg(long, value_name = "FILE")]
    pub uefi_arm64_file: Option<String>,
}

pub fn run(args: DhcpConfigArgs, globals: &Globals) -> Result<Outcome> {
    let format = match (args.format, args.proxy) {
        (DhcpFormat::Dnsmasq, true) => lab::DhcpFormat::DnsmasqProxy,
        (_, true) => return Err(Error::usage("--proxy goes with --format dnsmasq; drop --proxy or pass --format dnsmasq")),
        (DhcpFormat::Isc, _) => lab::DhcpFormat::Isc,
        (DhcpFormat::Dnsmasq, _) => lab::DhcpFormat::Dnsmasq,
        (DhcpFormat::Windows, _) => lab::DhcpFormat::Windows,
        (DhcpFormat::Libvirt, _) => lab::DhcpFormat::Libvirt,
    };
    let request = lab::DhcpRequest {
        format,
        server: args.server,
        subnet: args.subnet,
        range: args.range,
        file: args.file,
        http_port: args.http_port.map(|p| p.0),
        uefi_file: args.uefi_file,
        uefi_arm64_file: args.uefi_arm64_file,
    };
    let text = lab::dhcp_config(&request)?;
    if globals.json {
        output::json(&serde_json::json!({ "format": format.name(), "proxy": format == lab::DhcpFormat::DnsmasqProxy, "config": text }));
    } else {
        output::text(&text);
    }
    Ok(Outcome::Done)
}
