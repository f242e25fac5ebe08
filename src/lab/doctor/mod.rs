//! `pxelab doctor`: the seed's troubleshooting list (is DHCP answering, can
//! the TFTP files be fetched, is the VM's NIC on the right network, are
//! UDP 69 and TCP 21 listening) as checks, each with a status and, when it
//! is not ok, one line saying what to do.
//!
//! One file per part of the host: `host` (syslinux, OVMF, loaders, the
//! accelerator, the firewall), `network` (pure: facts in, findings out),
//! `ports` (the lab's servers probed as a guest would) and `vm`.
//!
//! Doctor changes nothing. It reads libvirt (one blocking call gathers a
//! network's state, its live XML and the VM's XML), /proc, the firewall
//! listings and pxelab's own `lab.json`, and it talks to the lab's servers
//! as a client would: one TFTP read request, one FTP greeting.
//!
//! What counts as a failure depends on whether a lab runs on the network:
//! before `up`, a network without bootp and free ports is the expected
//! state (a warning says what `up` will do); while a lab runs, either is a
//! failure.

mod host;
mod network;
mod ports;
mod proxy;
mod vm;

use serde::Serialize;

use self::network::NetworkFacts;
use super::record::LabRecord;
use super::{status, Which};
use crate::blocking;
use crate::error::{Error, Result};
use crate::serve::is_local_address;
use crate::virt::domain;
use crate::virt::domxml;
use crate::virt::network::{self as libvirt_network, NetworkState};
use crate::virt::{Libvirt, VirtError};

/// What to do when the lab's own server does not answer.
const FIX_STUCK_LAB: &str = "the lab may be stuck: `pxelab down`, then `pxelab up` again (add -v for its log)";

#[derive(Debug, Clone)]
pub struct DoctorRequest {
    pub uri: String,
    /// The network to check; default: the running lab's, else the VM's, else `default`.
    pub network: Option<String>,
    pub vm: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable identifier, for scripts: `network.bootp`, `ports.tftp`, …
    pub id: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, for every status but ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    /// No check failed (warnings allowed): the exit status is 0.
    pub ok: bool,
    pub uri: String,
    pub network: Option<String>,
    pub vm: Option<String>,
    /// pid of the lab running on this network, if any.
    pub lab_pid: Option<u32>,
    pub checks: Vec<Check>,
}

/// Collects checks in order.
#[derive(Default)]
struct Findings(Vec<Check>);

impl Findings {
    fn ok(&mut self, id: &'static str, detail: impl Into<String>) {
        self.0.push(Check { id, status: Status::Ok, detail: detail.into(), fix: None });
    }
    fn warn(&mut self, id: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Check { id, status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) });
    }
    fn fail(&mut self, id: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Check { id, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) });
    }
    /// A warning before `up`, a failure while a lab runs.
    fn lab_dependent(&mut self, lab: bool, id: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        if lab {
            self.fail(id, detail, fix)
        } else {
            self.warn(id, detail, fix)
        }
    }
}

/// What libvirt says, gathered in one blocking call.
struct Gathered {
    network: std::result::Result<NetworkState, VirtError>,
    live_xml: Option<String>,
    vm: Option<std::result::Result<(String, bool), VirtError>>,
    /// The network's DHCP leases (MAC, address), when a VM is checked.
    leases: Vec<(String, std::net::IpAddr)>,
}

/// `pxelab doctor`. Every check that reads the host or probes a port runs
/// through `blocking::run`; libvirt is read in one `Libvirt::call`.
pub async fn doctor(request: DoctorRequest) -> Result<DoctorReport> {
    let (uri, network) = (request.uri.clone(), request.network.clone());
    let (mut f, lab) = blocking::run(move || {
        let mut f = Findings::default();
        let lab = running_lab(&mut f, &uri, network.as_deref());
        host::host_checks(&mut f);
        (f, lab)
    })
    .await;

    let libvirt = match Libvirt::connect(&request.uri).await {
        Ok(l) => {
            f.ok("libvirt", format!("libvirtd answers at {}", request.uri));
            host::accel_check(&mut f, super::choose_accel(&l, super::libvirt_is_here(&l).await, None).await);
            l
        }
        Err(e) => {
            f.fail("libvirt", format!("cannot connect to {}", request.uri), Error::from(e).to_string());
            return Ok(report(request, None, None, f));
        }
    };

    let vm_name = request.vm.clone();
    let vm = match &vm_name {
        Some(name) => {
            let name = name.clone();
            Some(libvirt.call(move |c| Ok((domain::xml(c, &name)?, domain::is_running(c, &name)?))).await)
        }
        None => None,
    };
    let vm_network = vm.as_ref().and_then(|v| v.as_ref().ok()).and_then(|(xml, _)| domxml::interfaces(xml).into_iter().find_map(|i| i.network));
    let net_name = request.network.clone().or_else(|| lab.as_ref().map(|l| l.network.clone())).or(vm_network).unwrap_or_else(|| "default".into());
    let name = net_name.clone();
    tracing::debug!("reading network {name}");
    let gathered = libvirt
        .call(move |c| {
            let network = libvirt_network::read(c, &name);
            let live_xml = match &network {
                Ok(state) if state.active => libvirt_network::live_xml(c, &name).ok(),
                _ => None,
            };
            let leases = match (&vm, &network) {
                (Some(_), Ok(state)) if state.active => libvirt_network::leases(c, &name).unwrap_or_default(),
                _ => Vec::new(),
            };
            Ok(Gathered { network, live_xml, vm, leases })
        })
        .await?;

    // The lab counts only if it runs on the network being checked.
    let lab = lab.filter(|l| l.network == net_name);
    let lab_pid = lab.as_ref().map(|l| l.pid);
    let checked = net_name.clone();
    let f = blocking::run(move || {
        match gathered.network {
            Ok(state) => checks_of_network(&mut f, &state, gathered.live_xml.as_deref(), lab.as_ref()),
            // A lab on a bridge of the host's (`up --proxy-dhcp --interface`): no libvirt network to read.
            Err(VirtError::NoNetwork(_)) if lab.as_ref().is_some_and(|l| l.proxy_dhcp.as_ref().is_some_and(|p| p.interface == checked)) => {
                f.ok("network", format!("the lab runs on {checked}, a bridge of this host's that libvirt does not manage"));
                if let Some(lab) = &lab {
                    proxy::proxy_checks(&mut f, lab);
                }
            }
            Err(VirtError::NoNetwork(_)) => f.fail(
                "network",
                format!("network {checked:?} does not exist"),
                "pass --network NAME with one of `virsh net-list --all`, or create an isolated network (see README, \"A lab network\")",
            ),
            Err(e) => f.fail("network", format!("cannot read network {checked:?}"), Error::from(e).to_string()),
        }
        if let (Some(name), Some(vm)) = (&vm_name, gathered.vm) {
            vm::vm_checks(&mut f, name, vm, &checked, &gathered.leases, lab.as_ref());
        }
        f
    })
    .await;
    Ok(report(request, Some(net_name), lab_pid, f))
}

fn report(request: DoctorRequest, network: Option<String>, lab_pid: Option<u32>, f: Findings) -> DoctorReport {
    DoctorReport { ok: f.0.iter().all(|c| c.status != Status::Fail), uri: request.uri, network, vm: request.vm, lab_pid, checks: f.0 }
}

/// The lab `pxelab status` sees, if its process runs, and the journal
/// entries nobody can read (changes `down` cannot undo), which status
/// gathers too.
fn running_lab(f: &mut Findings, uri: &str, network: Option<&str>) -> Option<LabRecord> {
    let which = network.map(|n| Which::Network(n.to_string())).unwrap_or(Which::Only);
    let reports = match status(uri, &which) {
        Ok(reports) => reports,
        Err(e) => {
            f.warn("lab", format!("cannot read the lab's state: {e}"), "do what the line above says, then run doctor again");
            return None;
        }
    };
    let unreadable: Vec<_> = reports.iter().flat_map(|r| r.unreadable_journal.clone()).collect();
    if !unreadable.is_empty() {
        let names: Vec<String> = unreadable.iter().map(|b| b.path.display().to_string()).collect();
        let fix = unreadable.iter().map(|b| b.explain()).collect::<Vec<_>>().join("; and ");
        f.fail("journal", format!("{} cannot be read: what it records was not undone", names.join(", ")), fix);
    }
    let networks: Vec<String> = reports.iter().filter_map(|r| r.lab.as_ref()).map(|l| l.network.clone()).collect();
    if networks.len() > 1 {
        f.ok("lab", format!("{} labs run (on {}): pass --network NAME to check one", networks.len(), networks.join(", ")));
        return None;
    }
    let Some(report) = reports.into_iter().next() else {
        f.ok("lab", "no lab is running");
        return None;
    };
    match report.lab {
        Some(lab) if report.running => {
            f.ok("lab", format!("a lab runs (pid {}) on network {} serving {}", lab.pid, lab.network, lab.iso));
            Some(lab)
        }
        Some(lab) => {
            f.warn(
                "lab",
                format!("the lab on network {} (pid {}) ended without `down`", lab.network, lab.pid),
                format!("run `pxelab down --network {}` to restore the network and remove its VMs", lab.network),
            );
            None
        }
        None => {
            f.ok("lab", "no lab is running");
            None
        }
    }
}

/// The network's own checks, then its ports and the firewall for its bridge.
fn checks_of_network(f: &mut Findings, state: &NetworkState, live_xml: Option<&str>, lab: Option<&LabRecord>) {
    let bootp_server_is_local = NetworkFacts::bootp_in_use(state, live_xml).and_then(|b| b.server).and_then(|s| s.parse().ok()).is_some_and(is_local_address);
    let address = network::network_checks(f, &NetworkFacts { state, live_xml, lab, bootp_server_is_local });
    if let (Some(address), true) = (address, state.active) {
        ports::port_checks(f, address, lab, state);
    }
    if let (Some(_), Some(bridge)) = (address, &state.parsed.bridge) {
        host::firewall_check(f, bridge, lab);
    }
}
