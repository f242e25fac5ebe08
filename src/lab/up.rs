//! `pxelab up`, `down` and `status`: the whole lab, from ISO to a VM running
//! its installer, and back to a host as it was.
//!
//! `up` reads everything it needs before changing anything. Each change is
//! journaled before it is made, and the teardown undoes from the journal,
//! not from memory, so `down` after a crash, Ctrl-C, SIGTERM, a timeout and
//! a normal exit all undo the same way: VMs (unless `--keep`), servers, the
//! network's bootp patch. Signals only cancel; the current step finishes,
//! so no libvirt call is abandoned half-way.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::journal::{CreatedVm, FirewallOpening, Journal};
use super::net::{apply_patch, check_patchable, refuse_running_guests, restore_entry};
use super::progress::{Milestones, Progress, Stage, StageEvent, VmProgress};
use super::record::{self, Counters, LabRecord};
use super::{detect, ensure_dir, ftp_authority, open_iso, pause_point, state_dir_or_err, virt_error};
use crate::boot::{self, BootOptions, BootTree, DefaultEntry, Ui};
use crate::error::{Error, Kind, Result};
use crate::iso::Overrides;
use crate::serve::{AllowList, FtpRoot, Limits, ServeConfig, ServeError, ServeEvent, Servers};
use crate::virt::accel::{self, Accel, HostKvm};
use crate::virt::domain::{self, VmSpec};
use crate::virt::netxml::{self, Bootp};
use crate::virt::{network, Libvirt, VirtError};

/// How often leases, serial logs and new VMs are looked at.
const POLL: Duration = Duration::from_millis(200);
/// How long `down` waits for a running lab to clean up after SIGTERM.
const DOWN_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct UpRequest {
    pub uri: String,
    pub iso: PathBuf,
    pub overrides: Overrides,
    pub network: String,
    pub server_ip: Option<IpAddr>,
    pub vms: u32,
    pub accel: Option<Accel>,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disk_gib: u64,
    pub wait_for: Option<Stage>,
    pub expect: Option<String>,
    pub timeout: Option<Duration>,
    pub keep: bool,
    pub force: bool,
    pub default_entry: DefaultEntry,
    pub tftp_port: u16,
    pub ftp_port: u16,
    pub passive_ports: std::ops::RangeInclusive<u16>,
}

/// What `up` reports as it goes (one JSON object per line with `--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LabEvent {
    /// A step of the set-up, for people watching.
    Step { message: String },
    Ready { network: String, server_ip: String, tftp: String, ftp: String, kernel_args: String, vms: Vec<String>, accel: Option<String>, accel_reason: Option<String> },
    Stage(StageEvent),
    Transfer { vm: Option<String>, protocol: String, path: String, bytes: u64, seconds: f64, complete: bool },
    /// A transfer to a VM still going (every 2 MiB): for progress bars.
    Progress { vm: String, protocol: String, path: String, bytes: u64, size: u64 },
    /// Every VM reached `--wait-for`.
    Reached { stage: Stage, seconds: f64, vms: Vec<VmSummary> },
    TimedOut { seconds: f64, vms: Vec<VmSummary> },
    Teardown { message: String },
}

/// A VM's stage and the last lines of its serial console, when the lab ends.
#[derive(Debug, Clone, Serialize)]
pub struct VmSummary {
    pub name: String,
    pub stage: Stage,
    pub serial_tail: Vec<String>,
}

/// `pxelab up`. Returns when the lab stopped and the host is restored.
pub async fn up(request: UpRequest, cancel: CancellationToken, report: &mut (dyn FnMut(&LabEvent) + Send)) -> Result<()> {
    let state = ensure_dir(state_dir_or_err()?)?;
    let journal = Journal::open(&state).map_err(|e| Error::environment(format!("cannot open the journal in {}: {e}", state.display())))?;
    refuse_if_lab_exists(&state, &journal)?;

    // Everything is read and checked before the first change.
    let iso = open_iso(&request.iso)?;
    let distro = detect(&iso, &request.overrides)?;
    let expect = match &request.expect {
        Some(re) => Some(regex::Regex::new(re).map_err(|e| Error::bad_input(format!("--expect {re:?} is not a regular expression: {e}")))?),
        None => None,
    };
    if request.wait_for.is_some() && request.vms == 0 {
        return Err(Error::bad_input("--wait-for needs a VM to wait for; drop --no-vm or --vms 0"));
    }
    let libvirt = Libvirt::connect(&request.uri).await.map_err(virt_error)?;
    let name = request.network.clone();
    let net = libvirt.call(move |c| network::read(c, &name)).await.map_err(virt_error)?;
    let address = check_patchable(&net)?;
    let server_ip = request.server_ip.unwrap_or(address);
    if !server_ip.is_ipv4() {
        return Err(Error::bad_input(format!("--server-ip {server_ip}: PXE needs an IPv4 address")));
    }
    refuse_running_guests(&net, request.force)?;
    let authority = ftp_authority(server_ip, request.ftp_port);
    let mut kernel_args = distro.kernel_args_for(&authority);
    if !kernel_args.split_whitespace().any(|w| w.starts_with("console=")) {
        // The serial console is where pxelab (and CI) watch the installer.
        kernel_args = format!("{kernel_args} console=tty0 console=ttyS0,115200").trim().to_string();
    }
    let options = BootOptions { append: kernel_args.clone(), default: request.default_entry, ui: Ui::Vesa };
    let tree = BootTree::for_distro(iso.clone(), &distro, &options).map_err(|e| match e {
        boot::BootError::Syslinux(e) => Error::environment(e.to_string()),
        boot::BootError::Menu(e) => Error::bad_input(e.to_string()),
    })?;
    let choice = accel::choose(request.accel, &HostKvm::probe());
    let mut installer_files = vec!["/.treeinfo".to_string()];
    installer_files.extend(distro.stage2.iter().map(|s| format!("/{s}")));
    let milestones = Milestones {
        bootloader: "pxelinux.0".into(),
        kernel: format!("{}/{}", boot::ISO_DIR, distro.kernel),
        initrd: format!("{}/{}", boot::ISO_DIR, distro.initrd),
        installer_files,
        expect,
    };

    let mut lab = Lab {
        libvirt,
        journal,
        state,
        uri: request.uri.clone(),
        keep: request.keep,
        servers: None,
        record: LabRecord {
            pid: std::process::id(),
            uri: request.uri.clone(),
            iso: request.iso.display().to_string(),
            distro: match &distro.version {
                Some(v) => format!("{} {v}", distro.name),
                None => distro.name.clone(),
            },
            network: net.name.clone(),
            bridge: net.parsed.bridge.clone(),
            server_ip: server_ip.to_string(),
            subnet: net
                .parsed
                .dhcp4()
                .and_then(|ip| match (ip.address, ip.prefix) {
                    (IpAddr::V4(a), Some(p)) => Some(crate::dhcp::Subnet::containing(a, p).to_string()),
                    _ => None,
                }),
            tftp: String::new(),
            ftp: String::new(),
            passive_ports: Some(format!("{}-{}", request.passive_ports.start(), request.passive_ports.end())),
            kernel_args: kernel_args.clone(),
            started_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            keep: request.keep,
            ready: false,
            vms: Vec::new(),
            transfers: Counters::default(),
        },
        progress: Progress::new(milestones),
        started: Instant::now(),
    };
    let config = ServeConfig {
        bind: server_ip,
        tftp_port: request.tftp_port,
        ftp_port: request.ftp_port,
        ftp_root: FtpRoot::Iso(iso.clone()),
        allow: AllowList::default(),
        limits: Limits { passive_ports: request.passive_ports.clone(), ..Limits::default() },
    };
    let bootp = Bootp { file: "pxelinux.0".into(), server: Some(server_ip.to_string()) };
    let result = lab.run(&request, net, bootp, Arc::new(tree), config, &choice, &cancel, report).await;
    let teardown = lab.teardown(report).await;
    result.and(teardown)
}

/// A second lab, or the leftovers of a crashed one, stop `up` before it changes anything.
fn refuse_if_lab_exists(state: &Path, journal: &Journal) -> Result<()> {
    match record::read(state) {
        Ok(Some(lab)) if record::alive(lab.pid) => {
            return Err(Error::environment(format!(
                "a lab is already running (pid {}, ISO {}, network {}); stop it with `pxelab down`",
                lab.pid, lab.iso, lab.network
            )));
        }
        Ok(Some(lab)) => {
            return Err(Error::environment(format!(
                "a lab (pid {}) ended without cleaning up; run `pxelab down` to restore the host first",
                lab.pid
            )));
        }
        Ok(None) => {}
        Err(e) => return Err(Error::environment(format!("{e}; remove it after checking `pxelab down`"))),
    }
    let leftovers = journal.networks().map(|n| n.len()).unwrap_or(0)
        + journal.vms().map(|v| v.len()).unwrap_or(0)
        + journal.firewalls().map(|f| f.len()).unwrap_or(0);
    if leftovers > 0 {
        return Err(Error::environment(format!(
            "the journal in {} has {leftovers} change(s) not undone yet; run `pxelab down` (or `pxelab net restore`) first",
            journal.dir().display()
        )));
    }
    Ok(())
}

/// A lab being set up, running, or torn down.
struct Lab {
    libvirt: Libvirt,
    journal: Journal,
    state: PathBuf,
    uri: String,
    keep: bool,
    servers: Option<Servers>,
    record: LabRecord,
    progress: Progress,
    started: Instant,
}

enum Ended {
    Cancelled,
    Reached,
}

impl Lab {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn save(&mut self) {
        self.record.vms = self.progress.vms().to_vec();
        if let Err(e) = record::write(&self.state, &self.record) {
            tracing::warn!("cannot update {}: {e}", record::path(&self.state).display());
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &mut self,
        request: &UpRequest,
        net: network::NetworkState,
        bootp: Bootp,
        tree: Arc<BootTree>,
        config: ServeConfig,
        choice: &accel::AccelChoice,
        cancel: &CancellationToken,
        report: &mut (dyn FnMut(&LabEvent) + Send),
    ) -> Result<()> {
        self.save();
        // On a running network the servers bind first: a busy port then
        // stops `up` before the network is touched.
        if net.active {
            self.start_servers(tree.clone(), config.clone(), report).await?;
        }
        if cancel.is_cancelled() {
            return Ok(());
        }
        self.patch_network(&net, &bootp, report).await?;
        self.open_firewall(&request.passive_ports, report)?;
        if self.servers.is_none() {
            self.start_servers(tree, config, report).await?;
        }
        pause_point("after-patch").await;

        for _ in 0..request.vms {
            if cancel.is_cancelled() {
                return Ok(());
            }
            self.create_vm(request, choice, report).await?;
        }
        self.record.ready = true;
        self.save();
        report(&LabEvent::Ready {
            network: self.record.network.clone(),
            server_ip: self.record.server_ip.clone(),
            tftp: self.record.tftp.clone(),
            ftp: self.record.ftp.clone(),
            kernel_args: self.record.kernel_args.clone(),
            vms: self.progress.vms().iter().map(|v| v.name.clone()).collect(),
            accel: (request.vms > 0).then(|| format!("{:?}", choice.accel).to_lowercase()),
            accel_reason: (request.vms > 0).then(|| choice.reason.clone()),
        });
        pause_point("ready").await;

        match self.watch(request, cancel, report).await? {
            Ended::Cancelled | Ended::Reached => Ok(()),
        }
    }

    async fn start_servers(&mut self, tree: Arc<BootTree>, config: ServeConfig, report: &mut (dyn FnMut(&LabEvent) + Send)) -> Result<()> {
        let servers = Servers::start(tree, config).await.map_err(|e| match e {
            ServeError::Tree { .. } => Error::bad_input(e.to_string()),
            ServeError::PortBusy { .. } | ServeError::Bind { .. } => Error::environment(e.to_string()),
        })?;
        self.record.tftp = servers.tftp_addr().to_string();
        self.record.ftp = servers.ftp_addr().to_string();
        report(&LabEvent::Step { message: format!("serving TFTP on {} and FTP on {}", self.record.tftp, self.record.ftp) });
        self.servers = Some(servers);
        self.save();
        Ok(())
    }

    async fn patch_network(&mut self, net: &network::NetworkState, bootp: &Bootp, report: &mut (dyn FnMut(&LabEvent) + Send)) -> Result<()> {
        let patched = netxml::set_bootp(&net.inactive_xml, bootp).map_err(|e| virt_error(e.into()))?;
        let reattached = apply_patch(&self.libvirt, &self.journal, &self.uri, net, patched, true).await?;
        let mut message = format!("network {} now boots {} from {}", net.name, bootp.file, bootp.server.as_deref().unwrap_or("?"));
        if !reattached.is_empty() {
            message.push_str(&format!(" (guests re-attached: {})", reattached.join(", ")));
        }
        report(&LabEvent::Step { message });
        Ok(())
    }

    /// Lets the bridge's guests reach TFTP and FTP, if the host's firewall would stop them.
    fn open_firewall(&mut self, passive: &std::ops::RangeInclusive<u16>, report: &mut (dyn FnMut(&LabEvent) + Send)) -> Result<()> {
        let Some(bridge) = self.record.bridge.clone() else { return Ok(()) };
        let rules = crate::firewall::lab_rules(passive);
        let Some(blocker) = crate::firewall::blocking_rule(&bridge, &rules) else { return Ok(()) };
        self.journal
            .record_firewall(&FirewallOpening { bridge: bridge.clone(), rules: rules.clone() })
            .map_err(|e| Error::environment(format!("cannot write the journal: {e}")))?;
        crate::firewall::open(&bridge, &rules).map_err(Error::environment)?;
        report(&LabEvent::Step {
            message: format!(
                "the firewall rule `{blocker}` would stop the guests; accepted udp/69, tcp/21 and tcp/{} from {bridge} until the lab stops",
                rules[2].port
            ),
        });
        Ok(())
    }

    async fn create_vm(&mut self, request: &UpRequest, choice: &accel::AccelChoice, report: &mut (dyn FnMut(&LabEvent) + Send)) -> Result<()> {
        let taken = self.libvirt.call(domain::names).await.map_err(virt_error)?;
        let name = super::vm::generate_name(&taken);
        let logs = ensure_dir(self.state.join("logs"))?;
        let spec = VmSpec {
            name: name.clone(),
            network: self.record.network.clone(),
            memory_mib: request.memory_mib,
            vcpus: request.vcpus,
            disk_gib: request.disk_gib,
            accel: choice.accel,
            serial_log: logs.join(format!("{name}.serial.log")),
            pxe: true,
        };
        self.journal
            .record_vm(&CreatedVm { uri: self.uri.clone(), name: name.clone() })
            .map_err(|e| Error::environment(format!("cannot write the journal: {e}")))?;
        let pool_dir = super::vm::images_dir()?;
        let info = self.libvirt.call(move |c| domain::create(c, &spec, &pool_dir)).await.map_err(virt_error)?;
        self.track(&info.name, &info.meta.serial_log).await?;
        report(&LabEvent::Step { message: format!("created VM {} ({}: {})", info.name, info.accel, choice.reason) });
        Ok(())
    }

    /// Starts following a VM's boot.
    async fn track(&mut self, name: &str, serial_log: &str) -> Result<()> {
        let owned = name.to_string();
        let xml = self
            .libvirt
            .call(move |c| {
                let dom = virt::domain::Domain::lookup_by_name(c, &owned).map_err(|e| VirtError::libvirt("looking up the VM", e))?;
                dom.get_xml_desc(0).map_err(|e| VirtError::libvirt("reading the VM", e))
            })
            .await
            .map_err(virt_error)?;
        let mac = domain::interfaces(&xml)
            .into_iter()
            .find(|i| i.network.as_deref() == Some(self.record.network.as_str()))
            .and_then(|i| i.mac)
            .unwrap_or_default();
        let now = self.now();
        self.progress.add_vm(VmProgress::new(name, &mac, serial_log, now));
        self.save();
        Ok(())
    }

    /// Follows the boots until cancelled, `--wait-for` is reached, or `--timeout`.
    async fn watch(&mut self, request: &UpRequest, cancel: &CancellationToken, report: &mut (dyn FnMut(&LabEvent) + Send)) -> Result<Ended> {
        let mut events = self.servers.as_ref().expect("servers run before the watch").subscribe();
        let deadline = request.timeout.map(|t| Instant::now() + t);
        let mut serial_offsets: HashMap<String, u64> = HashMap::new();
        let mut tick = tokio::time::interval(POLL);
        let mut ticks = 0u64;
        loop {
            if let (Some(stage), Some(slowest)) = (request.wait_for, self.progress.slowest()) {
                if slowest >= stage {
                    report(&LabEvent::Reached { stage, seconds: self.now(), vms: self.summaries() });
                    return Ok(Ended::Reached);
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                report(&LabEvent::TimedOut { seconds: self.now(), vms: self.summaries() });
                let waited = request.timeout.unwrap_or_default().as_secs();
                let reached = self.progress.slowest().map(Stage::name).unwrap_or("none");
                let wanted = request.wait_for.map(Stage::name).unwrap_or("the end");
                return Err(Error::new(
                    Kind::Timeout,
                    format!("timed out after {waited} s waiting for {wanted}: the slowest VM reached {reached}"),
                ));
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(Ended::Cancelled),
                event = events.recv() => match event {
                    Ok(ServeEvent::Transfer(t)) => {
                        let counters = &mut self.record.transfers;
                        match t.protocol {
                            crate::serve::Protocol::Tftp => { counters.tftp_files += 1; counters.tftp_bytes += t.bytes; }
                            crate::serve::Protocol::Ftp => { counters.ftp_files += 1; counters.ftp_bytes += t.bytes; }
                        }
                        let vm = self.progress.vms().iter().find(|v| v.ip == Some(t.client.ip())).map(|v| v.name.clone());
                        report(&LabEvent::Transfer {
                            vm,
                            protocol: format!("{:?}", t.protocol).to_lowercase(),
                            path: t.path.clone(),
                            bytes: t.bytes,
                            seconds: t.duration.as_secs_f64(),
                            complete: t.complete,
                        });
                        let now = self.now();
                        for e in self.progress.on_transfer(&t, now) {
                            report(&LabEvent::Stage(e));
                        }
                        self.save();
                    }
                    Ok(ServeEvent::Progress { protocol, client, path, bytes, size }) => {
                        if let Some(vm) = self.progress.vms().iter().find(|v| v.ip == Some(client.ip())) {
                            report(&LabEvent::Progress {
                                vm: vm.name.clone(),
                                protocol: format!("{protocol:?}").to_lowercase(),
                                path,
                                bytes,
                                size,
                            });
                        }
                    }
                    Ok(ServeEvent::Refused { .. }) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!("{n} server events missed"),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(Error::other("the servers stopped unexpectedly"));
                    }
                },
                _ = tick.tick() => {
                    ticks += 1;
                    let mut changed = false;
                    let now = self.now();
                    for (mac, ip) in network::leases(self.record.bridge.as_deref().unwrap_or_default()) {
                        for e in self.progress.on_lease(&mac, ip, now) {
                            report(&LabEvent::Stage(e));
                            changed = true;
                        }
                    }
                    let logs: Vec<(String, String)> = self.progress.vms().iter().map(|v| (v.name.clone(), v.serial_log.clone())).collect();
                    for (name, log) in logs {
                        let offset = serial_offsets.entry(name.clone()).or_insert(0);
                        if let Some(text) = read_from(Path::new(&log), offset) {
                            for e in self.progress.on_serial(&name, &text, now) {
                                report(&LabEvent::Stage(e));
                                changed = true;
                            }
                        }
                    }
                    // VMs made with `pxelab vm new` while the lab runs join it.
                    if ticks.is_multiple_of(10) {
                        changed |= self.adopt_new_vms(report).await;
                    }
                    if changed {
                        self.save();
                    }
                }
            }
        }
    }

    fn summaries(&self) -> Vec<VmSummary> {
        self.progress
            .vms()
            .iter()
            .map(|v| VmSummary { name: v.name.clone(), stage: v.stage, serial_tail: v.serial_tail().map(str::to_string).collect() })
            .collect()
    }

    async fn adopt_new_vms(&mut self, report: &mut (dyn FnMut(&LabEvent) + Send)) -> bool {
        let Ok(vms) = self.libvirt.call(domain::list).await else { return false };
        let mut adopted = false;
        for vm in vms {
            if vm.networks.contains(&self.record.network) && !self.progress.tracks(&vm.name) && vm.state == "running" {
                let known = self.journal.vms().unwrap_or_default().iter().any(|j| j.name == vm.name);
                if known && self.track(&vm.name, &vm.meta.serial_log).await.is_ok() {
                    report(&LabEvent::Step { message: format!("VM {} joined the lab", vm.name) });
                    adopted = true;
                }
            }
        }
        adopted
    }

    /// Undoes everything in the journal for this URI; always runs.
    async fn teardown(&mut self, report: &mut (dyn FnMut(&LabEvent) + Send)) -> Result<()> {
        if let Some(servers) = self.servers.take() {
            servers.stop().await;
            report(&LabEvent::Teardown { message: "servers stopped".into() });
        }
        let result = undo_journal(&self.libvirt, &self.journal, &self.uri, self.keep, report).await;
        if let Err(e) = record::remove(&self.state) {
            tracing::warn!("cannot remove {}: {e}", record::path(&self.state).display());
        }
        result
    }
}

/// Removes the journal's VMs (or forgets them, with `keep`) and restores its
/// networks, in that order: VMs leave the network before it changes.
async fn undo_journal(
    libvirt: &Libvirt,
    journal: &Journal,
    uri: &str,
    keep: bool,
    report: &mut (dyn FnMut(&LabEvent) + Send),
) -> Result<()> {
    let mut first_error: Option<Error> = None;
    let journal_err = |e: std::io::Error| Error::environment(format!("cannot read the journal in {}: {e}", journal.dir().display()));
    for vm in journal.vms().map_err(journal_err)?.into_iter().filter(|v| v.uri == uri) {
        if !keep {
            let name = vm.name.clone();
            match libvirt.call(move |c| domain::remove(c, &name)).await {
                Ok(_) | Err(VirtError::NoDomain(_)) => report(&LabEvent::Teardown { message: format!("removed VM {}", vm.name) }),
                Err(e) => {
                    first_error.get_or_insert(virt_error(e));
                    continue;
                }
            }
        } else {
            report(&LabEvent::Teardown { message: format!("kept VM {} (remove it with `pxelab vm rm {}`)", vm.name, vm.name) });
        }
        if let Err(e) = journal.forget_vm(uri, &vm.name) {
            first_error.get_or_insert(journal_err(e));
        }
    }
    for opening in journal.firewalls().map_err(journal_err)? {
        match crate::firewall::close(&opening.bridge, &opening.rules) {
            Ok(()) => {
                report(&LabEvent::Teardown { message: format!("firewall rules for {} removed", opening.bridge) });
                if let Err(e) = journal.forget_firewall(&opening.bridge) {
                    first_error.get_or_insert(journal_err(e));
                }
            }
            Err(e) => {
                first_error.get_or_insert(Error::environment(e));
            }
        }
    }
    for patch in journal.networks().map_err(journal_err)?.into_iter().filter(|n| n.uri == uri) {
        match restore_entry(libvirt, &patch).await {
            Ok(_) => {
                report(&LabEvent::Teardown { message: format!("network {} restored", patch.network) });
                if let Err(e) = journal.forget_network(uri, &patch.network) {
                    first_error.get_or_insert(journal_err(e));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Leases libvirt's dnsmasq handed out on `bridge` (its lease helper's file,
/// the same that `virsh net-dhcp-leases` reads).
/// What was appended to `path` since `offset`.
fn read_from(path: &Path, offset: &mut u64) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len <= *offset {
        return None;
    }
    file.seek(SeekFrom::Start(*offset)).ok()?;
    let mut buf = Vec::with_capacity((len - *offset) as usize);
    file.read_to_end(&mut buf).ok()?;
    *offset += buf.len() as u64;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// What `pxelab down` did.
#[derive(Debug, Serialize)]
pub struct DownReport {
    /// A running lab was asked to stop (SIGTERM) and did.
    pub stopped_pid: Option<u32>,
    /// Changes undone from the journal (a lab that had crashed).
    pub recovered: bool,
    pub nothing_to_do: bool,
}

/// `pxelab down`: stops the running lab, or undoes what a crashed one left.
pub async fn down(uri: &str, report: &mut (dyn FnMut(&LabEvent) + Send)) -> Result<DownReport> {
    let state = state_dir_or_err()?;
    let lab = record::read(&state).map_err(|e| Error::environment(e.to_string()))?;
    let mut out = DownReport { stopped_pid: None, recovered: false, nothing_to_do: false };
    if let Some(lab) = &lab {
        if record::alive(lab.pid) {
            unsafe { libc::kill(lab.pid as i32, libc::SIGTERM) };
            let until = Instant::now() + DOWN_WAIT;
            while record::alive(lab.pid) {
                if Instant::now() >= until {
                    return Err(Error::environment(format!(
                        "the lab (pid {}) did not stop within {} s of SIGTERM; see its log, or kill it and run `pxelab down` again",
                        lab.pid,
                        DOWN_WAIT.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            out.stopped_pid = Some(lab.pid);
        }
    }
    let journal = Journal::open(&state).map_err(|e| Error::environment(e.to_string()))?;
    let uri = lab.as_ref().map(|l| l.uri.clone()).unwrap_or_else(|| uri.to_string());
    let pending = journal.networks().unwrap_or_default().iter().any(|n| n.uri == uri)
        || journal.vms().unwrap_or_default().iter().any(|v| v.uri == uri)
        || !journal.firewalls().unwrap_or_default().is_empty();
    if pending {
        let libvirt = Libvirt::connect(&uri).await.map_err(virt_error)?;
        let keep = lab.as_ref().is_some_and(|l| l.keep);
        undo_journal(&libvirt, &journal, &uri, keep, report).await?;
        out.recovered = true;
    }
    record::remove(&state).map_err(|e| Error::environment(e.to_string()))?;
    out.nothing_to_do = lab.is_none() && !pending;
    Ok(out)
}

/// What `pxelab status` shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub running: bool,
    /// The lab process is gone but left changes: run `pxelab down`.
    pub crashed: bool,
    #[serde(flatten)]
    pub lab: Option<LabRecord>,
}

/// `pxelab status`.
pub fn status() -> Result<StatusReport> {
    let state = state_dir_or_err()?;
    let lab = record::read(&state).map_err(|e| Error::environment(e.to_string()))?;
    let running = lab.as_ref().is_some_and(|l| record::alive(l.pid));
    Ok(StatusReport { running, crashed: lab.is_some() && !running, lab })
}
