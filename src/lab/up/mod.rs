//! `pxelab up`: the whole lab, from ISO to a VM running its installer.
//!
//! Two phases. [`plan`](plan::plan) reads and checks everything (the ISO,
//! the network, the flags) and changes nothing; a bad input stops `up`
//! there. [`Lab::run`] then makes the changes (`setup.rs`), each journaled
//! before it is made: servers, the network's bootp patch, a firewall
//! opening if one is needed, the VMs. The teardown undoes from the journal,
//! not from memory (`undo.rs`), so a normal exit, Ctrl-C, SIGTERM, a
//! timeout, and `down` after a crash all undo the same way. The shutdown
//! signal only cancels; the current step finishes, so no libvirt call is
//! abandoned half-way.
//!
//! While the lab runs, `watch.rs` turns what can be seen (server events,
//! DHCP leases, the VMs' serial consoles) into boot stages through
//! `progress.rs`, and reports them as [`LabEvent`]s.

mod early;
mod plan;
mod proxy;
mod segment;
mod setup;
mod site;
mod watch;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use self::plan::{check_flags, plan, Answer, Plan};
use self::site::Site;
use super::console::Consoles;
use super::event::{EventSink, LabEvent};
use super::journal::Journal;
use super::labs;
use super::progress::{Progress, Stage};
use super::record::{self, LabRecord};
use super::undo::undo_journal;
use super::{ensure_dir, pause_point, state_dir_or_err, ServeFlags, VmShape};
use crate::answer::AnswerKind;
use crate::blocking;
use crate::boot::{BootTree, DefaultEntry};
use crate::error::{Error, Result};
use crate::iso::Overrides;
use crate::serve::Servers;
use crate::virt::domxml::Firmware;
use crate::virt::Libvirt;

/// The TFTP port: a PXE client asks for this one and no other.
const TFTP_PORT: u16 = crate::serve::TFTP_PORT;

/// `up`'s own options, for the fixes of its errors.
const UP_FLAGS: ServeFlags =
    ServeFlags { address: "--server-ip", tftp_port: None, ftp_port: "--ftp-port", http_port: "--http-port", passive_ports: "--passive-ports" };

#[derive(Debug, Clone)]
pub struct UpRequest {
    pub uri: String,
    pub iso: PathBuf,
    pub overrides: Overrides,
    pub network: String,
    pub server_ip: Option<IpAddr>,
    pub vms: u32,
    pub shape: VmShape,
    /// An answer file for the lab's VMs (`--kickstart`, `--preseed`, `--autoinstall`).
    pub answer: Option<(AnswerKind, PathBuf)>,
    /// Each of `vms` is made once per firmware here (`--firmware both`: a
    /// BIOS and a UEFI VM); empty: the architecture's own (BIOS on x86-64,
    /// UEFI on ARM64).
    pub firmwares: Vec<Firmware>,
    pub wait_for: Option<Stage>,
    pub expect: Option<String>,
    /// `installed` is reached when the installed system's console matches this.
    pub expect_installed: Option<String>,
    /// A console line that means the installer failed (`--fail-on`); FAI's
    /// task errors are known without it.
    pub fail_on: Option<String>,
    /// Where each VM's serial console is copied when the lab ends (`--artifacts`).
    pub artifacts: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub keep: bool,
    pub force: bool,
    pub default_entry: DefaultEntry,
    /// 0: any free port.
    pub ftp_port: u16,
    /// `None`: no HTTP server; `Some(0)`: any free port.
    pub http_port: Option<u16>,
    /// Answer router solicitations on the lab's bridge (see `ra.rs`).
    pub ra: bool,
    /// Skip dnsmasq's ping and iPXE's ProxyDHCP wait (see `dhcp::LabDnsmasq`).
    pub fast_dhcp: bool,
    /// Answer PXE clients with proxy DHCP instead of patching the network (`proxydhcp/`).
    pub proxy_dhcp: bool,
    /// With `proxy_dhcp`: the interface to answer on, instead of the network's bridge.
    pub interface: Option<String>,
    pub passive_ports: RangeInclusive<u16>,
    /// Give the VMs the ISO as a CD-ROM over HTTP; `None`: when the ISO's
    /// installer looks for its medium on one (see `Distro::needs_cdrom`).
    pub iso_cdrom: Option<bool>,
}

/// `pxelab up`. Returns when the lab stopped and the host is restored.
pub async fn up(request: UpRequest, shutdown: CancellationToken, report: EventSink<'_>) -> Result<()> {
    let expect = check_flags(&request)?;
    // The lab is named after its segment: the network, or `--interface`'s bridge.
    let (state, lock) = take_network(&request.uri, request.interface.as_deref().unwrap_or(&request.network))?;
    let journal = Journal::open(&state).map_err(|e| Error::environment(format!("cannot open the journal in {}: {e}", state.display())))?;
    refuse_if_lab_exists(&state, &journal)?;
    let libvirt = Libvirt::connect(&request.uri).await?;
    let mut plan = plan(&request, expect, &libvirt).await?;

    let mut lab = Lab {
        _lock: lock,
        artifacts: request.artifacts.clone(),
        site: plan.site,
        answer: plan.answer.take(),
        cdrom: plan.cdrom.take(),
        cdrom_reads: BTreeMap::new(),
        failed: None,
        libvirt,
        journal,
        state,
        keep: request.keep,
        servers: None,
        events: None,
        tree: plan.tree.clone(),
        attach: plan.segment.attach(),
        ra: None,
        proxy: None,
        proxy_events: None,
        other_proxies: Vec::new(),
        progress: Progress::new(plan.milestones.clone()),
        record: plan.record.clone(),
        consoles: Consoles::default(),
        started: Instant::now(),
    };
    let result = lab.run(&request, plan, &shutdown, report).await;
    for (vm, (reads, bytes)) in &lab.cdrom_reads {
        report(&LabEvent::Step { message: format!("{vm} read its CD-ROM in {reads} HTTP requests, {:.1} MB", *bytes as f64 / 1e6) });
    }
    if !lab.progress.vms().is_empty() {
        report(&LabEvent::Summary { vms: lab.progress.vms().to_vec() });
    }
    let teardown = lab.teardown(report).await;
    result.and(teardown)
}

/// The lab directory of `network` on `uri`'s host, and its lock: a lab
/// already running there is refused (exit 4), naming it; an older
/// pxelab's lab on the same network too.
pub(crate) fn take_network(uri: &str, network: &str) -> Result<(PathBuf, labs::Lock)> {
    let root = ensure_dir(state_dir_or_err()?)?;
    if let Ok(Some(old)) = record::read(&root) {
        if old.network == network && old.uri == uri {
            return Err(Error::environment(format!(
                "a lab from an older pxelab (pid {}) is on network {network} in {}; stop it with `pxelab down --network {network}` first",
                old.pid,
                root.display()
            )));
        }
    }
    let dir = ensure_dir(labs::dir_of(&root, uri, network))?;
    let cannot = |e: std::io::Error| Error::environment(format!("cannot lock {}: {e}; check that pxelab can write there", dir.join("lock").display()));
    match labs::lock(&dir).map_err(cannot)? {
        Some(lock) => Ok((dir, lock)),
        None => {
            let who = match record::read(&dir) {
                Ok(Some(lab)) => format!(" (pid {}, ISO {})", lab.pid, lab.iso),
                _ => " (starting)".to_string(),
            };
            Err(Error::environment(format!(
                "a lab is already running on network {network}{who}; stop it with `pxelab down --network {network}`, or use another network"
            )))
        }
    }
}

/// The leftovers of a crashed lab on this network stop `up` before it
/// changes anything. `detach` asks the same before it touches the log.
pub(crate) fn refuse_if_lab_exists(state: &Path, journal: &Journal) -> Result<()> {
    match record::read(state) {
        Ok(Some(lab)) if record::alive(lab.pid) => {
            return Err(Error::environment(format!(
                "a lab is already running on network {} (pid {}, ISO {}); stop it with `pxelab down --network {}`",
                lab.network, lab.pid, lab.iso, lab.network
            )));
        }
        Ok(Some(lab)) => {
            return Err(Error::environment(format!(
                "the lab on network {} (pid {}) ended without cleaning up; run `pxelab down --network {}` to restore the host first",
                lab.network, lab.pid, lab.network
            )));
        }
        Ok(None) => {}
        Err(e) => return Err(Error::environment(format!("{e}; remove it after checking `pxelab down`"))),
    }
    let pending = journal.pending().map_err(|e| Error::environment(format!("cannot read the journal in {}: {e}", journal.dir().display())))?;
    if pending > 0 {
        return Err(Error::environment(format!(
            "the journal in {} has {pending} change(s) not undone yet; run `pxelab down --all` (or `pxelab net restore`) first",
            journal.dir().display()
        )));
    }
    Ok(())
}

/// A lab being set up, running, or torn down.
struct Lab {
    /// The network's lab lock, held until the host is restored (`labs.rs`).
    _lock: labs::Lock,
    /// Where the consoles are copied at teardown (`--artifacts`).
    artifacts: Option<PathBuf>,
    site: Site,
    answer: Option<Answer>,
    /// The ISO's file name (URL-encoded) when each VM gets it as a CD-ROM.
    cdrom: Option<String>,
    /// Per VM: the HTTP requests its CD-ROM made, and their bytes.
    cdrom_reads: BTreeMap<String, (u64, u64)>,
    /// Why the lab must end with an error (a VM powered off too early).
    failed: Option<String>,
    libvirt: Libvirt,
    journal: Journal,
    state: PathBuf,
    keep: bool,
    servers: Option<Servers>,
    /// The servers' events, subscribed to as they start: a broadcast
    /// receiver sees only what is sent after it exists, and a guest may
    /// fetch its first file before the watch begins.
    events: Option<tokio::sync::broadcast::Receiver<crate::serve::ServeEvent>>,
    /// The tree the servers serve: the lab tells it of each VM it makes.
    tree: Arc<BootTree>,
    /// Where its VMs are plugged in.
    attach: crate::virt::domxml::Attach,
    ra: Option<crate::ra::RaResponder>,
    /// `--proxy-dhcp`'s responder, and its events, subscribed to as it starts.
    proxy: Option<crate::proxydhcp::ProxyDhcp>,
    proxy_events: Option<tokio::sync::broadcast::Receiver<crate::proxydhcp::ProxyEvent>>,
    /// Other proxies heard on the segment, each said once.
    other_proxies: Vec<std::net::Ipv4Addr>,
    record: LabRecord,
    progress: Progress,
    /// The VMs' serial consoles, read through libvirt and recorded here.
    consoles: Consoles,
    started: Instant,
}

impl Lab {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Rewrites `lab.json` (off the runtime: a rename and, on a full disk, a cleanup).
    async fn save(&mut self) {
        self.record.vms = self.progress.vms().to_vec();
        if let Some(proxy) = &self.proxy {
            self.record.proxy_dhcp = Some(proxy::proxy_record(proxy));
        }
        let (state, record) = (self.state.clone(), self.record.clone());
        if let Err(e) = blocking::run(move || record::write(&state, &record)).await {
            tracing::warn!("cannot update {}: {e}", record::path(&self.state).display());
        }
    }

    /// The set-up in `up`'s order, then the watch until it ends.
    async fn run(&mut self, request: &UpRequest, plan: Plan, shutdown: &CancellationToken, report: EventSink<'_>) -> Result<()> {
        self.save().await;
        // On a running network the servers bind first: a busy port then
        // stops `up` before the network is touched.
        if plan.segment.active() {
            self.start_servers(plan.tree.clone(), plan.config.clone(), report).await?;
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let mut early = self.launch_early(&plan, request).await?;
        if let Err(e) = self.prepare_segment(&plan, request, shutdown, report).await {
            // The teardown removes the VM: let its creation end first.
            if let Some(early) = early {
                let _ = early.wait().await;
            }
            return Err(e);
        }
        for _ in 0..request.vms {
            for &firmware in &plan.firmwares {
                match early.take() {
                    Some(first) => self.finish_vm(first, true, &plan.accel, report).await?,
                    None if shutdown.is_cancelled() => return Ok(()),
                    None => self.create_vm(request.shape, plan.arch, firmware, &plan.accel, report).await?,
                }
            }
        }
        self.record.ready = true;
        self.save().await;
        report(&LabEvent::Ready {
            network: self.record.network.clone(),
            server_ip: self.record.server_ip.clone(),
            tftp: self.record.tftp.clone(),
            ftp: self.record.ftp.clone(),
            http: self.record.http.clone(),
            kernel_args: self.record.kernel_args.clone(),
            vms: self.progress.vms().iter().map(|v| v.name.clone()).collect(),
            accel: (request.vms > 0).then_some(plan.accel.accel),
            accel_reason: (request.vms > 0).then(|| plan.accel.reason.clone()),
        });
        pause_point("ready", shutdown).await;
        self.watch(request, shutdown, report).await
    }

    /// Readies the lab's segment: the network's patch (or the proxy), the
    /// servers if they wait for it, a firewall opening, router adverts.
    async fn prepare_segment(&mut self, plan: &Plan, request: &UpRequest, shutdown: &CancellationToken, report: EventSink<'_>) -> Result<()> {
        match &plan.proxy {
            Some(proxy) => self.start_proxy(proxy, report).await?,
            None => self.patch_network(plan, shutdown, report).await?,
        }
        if self.servers.is_none() {
            self.start_servers(plan.tree.clone(), plan.config.clone(), report).await?;
        }
        // After the servers: a port chosen by the system (`0`) is known by now.
        self.open_firewall(&plan.config, report).await?;
        if request.ra {
            self.start_ra(report).await;
        }
        pause_point("after-patch", shutdown).await;
        Ok(())
    }

    /// Undoes everything in the journal for this URI; always runs.
    async fn teardown(&mut self, report: EventSink<'_>) -> Result<()> {
        self.consoles.close().await;
        if let Some(dir) = self.artifacts.clone() {
            // Before the undo removes them with their VMs.
            let logs: Vec<(String, String)> = self.progress.vms().iter().map(|v| (v.name.clone(), v.serial_log.clone())).collect();
            if let Err(e) = blocking::run(move || copy_consoles(&dir, logs)).await {
                tracing::warn!("cannot copy the serial consoles to the artifacts: {e}");
            }
        }
        if let Some(ra) = self.ra.take() {
            blocking::run(move || ra.stop()).await;
        }
        if let Some(proxy) = self.proxy.take() {
            blocking::run(move || proxy.stop()).await;
            report(&LabEvent::Teardown { message: "proxy DHCP stopped".into() });
        }
        if let Some(servers) = self.servers.take() {
            servers.stop().await;
            report(&LabEvent::Teardown { message: "servers stopped".into() });
        }
        let result = undo_journal(&self.libvirt, &self.journal, self.keep, report).await;
        if let Err(e) = record::remove(&self.state) {
            tracing::warn!("cannot remove {}: {e}", record::path(&self.state).display());
        }
        result.map(|_| ())
    }
}

/// `--artifacts`: each VM's console record as `<vm>.serial.log` in `dir`.
fn copy_consoles(dir: &Path, logs: Vec<(String, String)>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, log) in logs {
        match std::fs::copy(&log, dir.join(format!("{name}.serial.log"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
