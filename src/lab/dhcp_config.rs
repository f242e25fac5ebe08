//! `pxelab dhcp-config`: settings for another DHCP server, with the running
//! lab's server address and subnet as defaults.

use super::{record, state_dir};
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

/// The configuration text for `format`.
pub fn dhcp_config(format: DhcpFormat, server: Option<&str>, subnet: Option<&str>, range: Option<&str>, file: &str) -> Result<String> {
    let lab = state_dir().ok().and_then(|dir| record::read(&dir).ok().flatten()).filter(|l| record::alive(l.pid));
    let server = match (server, &lab) {
        (Some(s), _) => s.to_string(),
        (None, Some(lab)) => lab.server_ip.clone(),
        (None, None) => return Err(Error::bad_input("no lab is running to take the server from; pass --server IP (the PXE server's address)")),
    };
    let subnet = subnet.map(str::to_string).or_else(|| lab.as_ref().and_then(|l| l.subnet.clone()));
    let params = DhcpParams::new(&server, subnet.as_deref(), range, file).map_err(Error::bad_input)?;
    Ok(match format {
        DhcpFormat::Isc => dhcp::isc(&params),
        DhcpFormat::Dnsmasq => dhcp::dnsmasq(&params),
        DhcpFormat::DnsmasqProxy => dhcp::dnsmasq_proxy(&params),
        DhcpFormat::Windows => dhcp::windows(&params),
        DhcpFormat::Libvirt => dhcp::libvirt(&params),
    })
}
