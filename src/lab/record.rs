//! `lab.json`: the running lab, as `status`, `down` and a second `up` see it.
//!
//! The lab process rewrites it (atomically) whenever something a user would
//! look at changes. It is a report, not the record of host changes: that is
//! the journal. A `lab.json` whose process is gone is a lab that crashed;
//! `down` then undoes from the journal.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::progress::VmProgress;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    pub tftp_files: u64,
    pub tftp_bytes: u64,
    pub ftp_files: u64,
    pub ftp_bytes: u64,
    #[serde(default)]
    pub http_files: u64,
    #[serde(default)]
    pub http_bytes: u64,
}

/// Where the lab's proxy DHCP answers, and what it has done (for `status`
/// and `doctor`, which run in other processes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyRecord {
    pub interface: String,
    /// PXE requests answered with a boot file.
    pub answered: u64,
    /// DHCP requests from clients that are not PXE clients: left to the DHCP server.
    pub not_pxe: u64,
    pub malformed: u64,
    pub rate_limited: u64,
    /// Offers with no address from another server: another proxy on the segment.
    pub other_proxies: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabRecord {
    pub pid: u32,
    pub uri: String,
    pub iso: String,
    pub distro: String,
    /// The lab's network, or its bridge's name when it runs on a bridge of
    /// the host's (`host_bridge`).
    pub network: String,
    pub bridge: Option<String>,
    /// Runs on a bridge libvirt does not manage (`up --proxy-dhcp --interface`).
    #[serde(default)]
    pub host_bridge: bool,
    pub server_ip: String,
    /// The network's IPv4 subnet (`10.0.0.0/24`), for `dhcp-config`'s defaults.
    #[serde(default)]
    pub subnet: Option<String>,
    pub tftp: String,
    pub ftp: String,
    /// Where HTTP listens, when the lab serves it.
    #[serde(default)]
    pub http: Option<String>,
    /// What the lab's architecture's UEFI clients that are not iPXE boot (a shim in the tree).
    #[serde(default)]
    pub uefi_file: Option<String>,
    /// The VMs' architecture (`vm new` joining the lab makes the same).
    #[serde(default)]
    pub arch: crate::arch::Arch,
    /// The FTP passive range (`50000-50100`), for `doctor`'s firewall check.
    #[serde(default)]
    pub passive_ports: Option<String>,
    pub kernel_args: String,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub keep: bool,
    /// The lab answers IPv6 router solicitations on its bridge.
    #[serde(default)]
    pub ra: bool,
    /// The lab's proxy DHCP (`up --proxy-dhcp`); `None`: it patched the
    /// network's DHCP instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_dhcp: Option<ProxyRecord>,
    /// Servers listen, the network is patched and the VMs exist.
    pub ready: bool,
    pub vms: Vec<VmProgress>,
    pub transfers: Counters,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("lab.json")
}

pub fn read(state_dir: &Path) -> io::Result<Option<LabRecord>> {
    match fs::read(path(state_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{} is corrupt: {e}", path(state_dir).display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn write(state_dir: &Path, record: &LabRecord) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    let tmp = state_dir.join(format!(".lab.json.{}.tmp", std::process::id()));
    let written = fs::write(&tmp, json).and_then(|()| fs::rename(&tmp, path(state_dir)));
    if written.is_err() {
        // A full disk leaves a partial temporary file: do not leave it too.
        let _ = fs::remove_file(&tmp);
    }
    written
}

pub fn remove(state_dir: &Path) -> io::Result<()> {
    match fs::remove_file(path(state_dir)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl LabRecord {
    /// Where the lab's FTP server listens (`None` before it started).
    pub fn ftp_addr(&self) -> Option<SocketAddr> {
        self.ftp.parse().ok()
    }

    /// Where the lab's HTTP server listens, when it serves HTTP.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_deref().and_then(|a| a.parse().ok())
    }
}

/// Whether `pid` is a live pxelab process (not a recycled pid).
pub fn alive(pid: u32) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie has exited; only its parent has not reaped it yet.
    let zombie = stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
    !zombie && String::from_utf8_lossy(&cmdline).contains("pxelab")
}
