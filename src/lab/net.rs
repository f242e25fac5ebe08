//! `pxelab net patch` and `pxelab net restore`: point a libvirt network's
//! DHCP at a PXE server, and put it back exactly as it was.
//!
//! The order is what makes this safe: read and check everything first (no
//! change yet), write the journal entry (the original inactive XML and
//! state), then change the network. A process killed at any point leaves
//! either no change or a journal entry from which `net restore` (or `down`)
//! redefines the original.

use std::net::IpAddr;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::journal::{Journal, PatchedNetwork};
use super::{pause_point, state_dir_or_err, undo};
use crate::error::{Error, Result};
use crate::virt::network::{self, NetworkState};
use crate::virt::netxml::{self, Bootp};
use crate::virt::{Libvirt, VirtError};

#[derive(Debug, Clone)]
pub struct NetPatchRequest {
    pub uri: String,
    pub network: String,
    pub server: Option<IpAddr>,
    pub file: String,
    pub force: bool,
}

#[derive(Debug, Serialize)]
pub struct NetPatchReport {
    pub network: String,
    pub bridge: Option<String>,
    pub server: String,
    pub file: String,
    /// The network was running and was restarted so that dnsmasq reads the patch.
    pub restarted: bool,
    /// Guest taps plugged back into the bridge after the restart.
    pub reattached: Vec<String>,
    /// libvirt's dnsmasq `dhcp-boot=` line, when readable.
    pub dnsmasq: Option<String>,
    /// The network already carried exactly this bootp: nothing was changed.
    pub unchanged: bool,
    pub journal: String,
}

#[derive(Debug, Clone)]
pub struct NetRestoreRequest {
    pub uri: String,
    pub network: String,
    /// Restore even though a running lab serves on the network, and define
    /// a network again that was undefined after the patch.
    pub force: bool,
}

#[derive(Debug, Serialize)]
pub struct NetRestoreReport {
    pub network: String,
    /// There was a journal entry and the network is back as it was.
    pub restored: bool,
    pub restarted: bool,
    pub reattached: Vec<String>,
    /// The network was changed since pxelab patched it: those changes were
    /// kept, and only pxelab's bootp and dnsmasq lines were taken out.
    pub kept_changes: bool,
}

fn journal_error(journal_dir: &str, e: std::io::Error) -> Error {
    Error::environment(format!("cannot use the journal in {journal_dir}: {e}; nothing was changed"))
}

/// Checks a `--file` boot file name (one rule for `net patch` and `dhcp-config`).
pub fn check_boot_file(file: &str) -> Result<()> {
    crate::boot::check_boot_file(file).map_err(|e| Error::bad_input(format!("--file {e}")))
}

/// `pxelab net patch`.
pub async fn net_patch(request: NetPatchRequest) -> Result<NetPatchReport> {
    check_boot_file(&request.file)?;
    let journal = Journal::open_default().map_err(|e| journal_error("the state directory", e))?;
    let journal_dir = journal.dir().display().to_string();
    let libvirt = Libvirt::connect(&request.uri).await?;
    let name = request.network.clone();
    let state = libvirt.call(move |c| network::read(c, &name)).await?;

    let address = check_patchable(&state)?;
    let server = match request.server {
        Some(IpAddr::V4(ip)) => {
            let subnet = state.parsed.ipv4().and_then(|b| match (b.address, b.prefix) {
                (IpAddr::V4(a), Some(p)) => Some(crate::dhcp::Subnet::containing(a, p)),
                _ => None,
            });
            crate::dhcp::check_server_address("--server", ip, subnet).map_err(Error::bad_input)?;
            ip.to_string()
        }
        Some(IpAddr::V6(ip)) => {
            return Err(Error::bad_input(format!("--server {ip}: bootp needs an IPv4 address (the network's is {address})")));
        }
        None => address.to_string(),
    };
    let bootp = Bootp { file: request.file.clone(), server: Some(server.clone()) };
    let patched = netxml::set_bootp(&state.inactive_xml, &bootp)?;
    let bridge = state.parsed.bridge.clone();
    let mut report = NetPatchReport {
        network: state.name.clone(),
        bridge: bridge.clone(),
        server,
        file: request.file.clone(),
        restarted: false,
        reattached: Vec::new(),
        dnsmasq: None,
        unchanged: false,
        journal: journal_dir.clone(),
    };

    let live_has_it = if state.active {
        let name = state.name.clone();
        let live = libvirt.call(move |c| network::live_xml(c, &name)).await?;
        netxml::bootp_of(&live) == Some(bootp.clone())
    } else {
        true
    };
    if patched == state.inactive_xml && live_has_it {
        report.unchanged = true;
        report.dnsmasq = network::dnsmasq_boot_line(&state.name);
        return Ok(report);
    }

    refuse_running_guests(&state, request.force)?;

    // Nothing cancels a `net patch`: SIGTERM and SIGINT keep their default,
    // and the journal written first lets `net restore` undo a killed one.
    let reattached = apply_patch(&libvirt, &journal, &state, patched, state.active, &CancellationToken::new()).await?;
    report.restarted = state.active;
    report.reattached = reattached;

    if state.active {
        let name = state.name.clone();
        let live = libvirt.call(move |c| network::live_xml(c, &name)).await?;
        if netxml::bootp_of(&live) != Some(bootp) {
            return Err(Error::environment(format!(
                "network {:?} was redefined but its running configuration has no bootp; run `pxelab net restore --network {}`",
                state.name, state.name
            )));
        }
        report.dnsmasq = network::dnsmasq_boot_line(&state.name);
    }
    Ok(report)
}

/// Journals the network as it is, then defines `patched` and, when `run`,
/// (re)starts the network and plugs its guests back in. Returns the taps
/// that were plugged back. The shared path of `net patch` and `up`.
pub(crate) async fn apply_patch(
    libvirt: &Libvirt,
    journal: &Journal,
    state: &NetworkState,
    patched: String,
    run: bool,
    shutdown: &CancellationToken,
) -> Result<Vec<String>> {
    let entry = PatchedNetwork {
        uri: libvirt.uri().to_string(),
        network: state.name.clone(),
        original_xml: state.inactive_xml.clone(),
        was_active: state.active,
        autostart: state.autostart,
        pid: std::process::id(),
        at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        patched_xml: None,
        left_running: None,
    };
    // A second patch (the network still carries pxelab's) keeps the first
    // record's original; what it leaves is recorded below either way.
    journal.record_network(&entry).map_err(|e| journal_error(&journal.dir().display().to_string(), e))?;
    pause_point("after-journal", shutdown).await;
    tracing::debug!("defining the patched network {}{}", state.name, if run { " and restarting it" } else { "" });

    let (name, guests) = (state.name.clone(), state.guests.clone());
    let bridge = state.parsed.bridge.clone().unwrap_or_default();
    let (reattached, left) = libvirt
        .call(move |c| {
            network::define(c, &patched)?;
            if run {
                network::restart(c, &name, true)?;
            }
            let reattached = if run { network::reattach(&guests, &bridge)? } else { Vec::new() };
            // libvirt's spelling of what it now holds, for `net restore` to compare with.
            Ok((reattached, network::read(c, &name)?.inactive_xml))
        })
        .await?;
    let recorded = journal.network(libvirt.uri(), &state.name).ok().flatten();
    if let Some(mut entry) = recorded {
        entry.patched_xml = Some(left);
        // `run` restarts a running network and starts a stopped one.
        entry.left_running = Some(run);
        journal.update_network(&entry).map_err(|e| journal_error(&journal.dir().display().to_string(), e))?;
    }
    pause_point("after-define", shutdown).await;
    Ok(reattached)
}

/// What makes a network unpatchable, checked before anything changes.
/// Returns the address of its IPv4 DHCP block, the default PXE server.
pub(crate) fn check_patchable(state: &NetworkState) -> Result<IpAddr> {
    if !state.persistent {
        return Err(Error::environment(format!(
            "network {:?} is transient (not defined): pxelab patches persistent networks only; define it with `virsh net-define`",
            state.name
        )));
    }
    check_no_tftp(state)?;
    let dhcp4 = state.parsed.dhcp4().ok_or_else(|| Error::from(VirtError::Xml(netxml::XmlError::NoIpv4Dhcp { network: state.name.clone() })))?;
    Ok(dhcp4.address)
}

/// A network whose dnsmasq serves TFTP holds UDP 69 on its address, where
/// pxelab's TFTP server must listen (the patch and proxy DHCP alike).
pub(crate) fn check_no_tftp(state: &NetworkState) -> Result<()> {
    match state.parsed.tftp_root() {
        Some(root) => Err(Error::environment(format!(
            "network {:?} has <tftp root='{root}'/>: libvirt's dnsmasq then answers TFTP on UDP 69 itself, and pxelab's TFTP server cannot; remove the <tftp> element (virsh net-edit {}) and try again",
            state.name, state.name
        ))),
        None => Ok(()),
    }
}

/// Restarting a network unplugs its running guests: only with `force`.
pub(crate) fn refuse_running_guests(state: &NetworkState, force: bool) -> Result<()> {
    if state.active && !state.guests.is_empty() && !force {
        let mut names: Vec<&str> = state.guests.iter().map(|g| g.domain.as_str()).collect();
        names.dedup();
        return Err(Error::environment(format!(
            "network {:?} has running guests ({}): applying the patch restarts the network, which unplugs them; pass --force to restart it and plug them back in, or stop them first",
            state.name,
            names.join(", ")
        )));
    }
    Ok(())
}

/// The journal that records `network`'s patch: the top one (`net patch`),
/// or the lab's on that network (`up`; a crashed lab's too).
fn journal_of(uri: &str, network: &str) -> Result<Journal> {
    let top = Journal::open_default().map_err(|e| journal_error("the state directory", e))?;
    if top.network(uri, network).map_err(|e| journal_error(&top.dir().display().to_string(), e))?.is_some() {
        return Ok(top);
    }
    let lab_dir = super::labs::dir_of(&state_dir_or_err()?, uri, network);
    match lab_dir.join("journal").is_dir() {
        true => Journal::open(&lab_dir).map_err(|e| journal_error(&lab_dir.display().to_string(), e)),
        false => Ok(top),
    }
}

/// `pxelab net restore`: idempotent; a network with no journal entry is
/// left alone. A network a running lab serves on is refused unless `force`:
/// removing its bootp would stop the lab's boots while `status` says ready.
pub async fn net_restore(request: NetRestoreRequest) -> Result<NetRestoreReport> {
    let (uri, network_name) = (request.uri.as_str(), request.network.as_str());
    if !request.force {
        let running = super::labs::running(&state_dir_or_err()?, uri);
        if let Some(lab) = running.into_iter().filter_map(|l| l.record).find(|l| l.network == network_name) {
            return Err(Error::environment(format!(
                "a lab (pid {}) is serving on network {network_name:?}; stop it with `pxelab down --network {network_name}`, which restores the network, or pass --force",
                lab.pid
            )));
        }
    }
    let journal = journal_of(uri, network_name)?;
    let journal_dir = journal.dir().display().to_string();
    let nothing = NetRestoreReport { network: network_name.into(), restored: false, restarted: false, reattached: Vec::new(), kept_changes: false };
    let libvirt = Libvirt::connect(uri).await?;
    let Some(entry) = journal.network(uri, network_name).map_err(|e| journal_error(&journal_dir, e))? else {
        // As `net patch` says of it: a network that does not exist is a bad name.
        let name = network_name.to_string();
        libvirt.call(move |c| network::read(c, &name)).await?;
        return Ok(nothing);
    };
    let restored = undo::restore_network(&libvirt, &journal, &entry, request.force).await?;
    journal.forget_network(uri, network_name).map_err(|e| journal_error(&journal_dir, e))?;
    Ok(NetRestoreReport { restored: true, restarted: restored.restarted, reattached: restored.reattached, kept_changes: restored.kept_changes, ..nothing })
}
