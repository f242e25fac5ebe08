//! `pxelab up`: the whole lab, from ISO to a VM running its installer.
//!
//! Two phases. [`plan`] reads and checks everything (the ISO, the network,
//! the flags) and changes nothing; a bad input stops `up` there. [`Lab::run`]
//! then makes the changes, each journaled before it is made: servers,
//! the network's bootp patch, a firewall opening if one is needed, the VMs.
//! The teardown undoes from the journal, not from memory (`undo.rs`), so a
//! normal exit, Ctrl-C, SIGTERM, a timeout, and `down` after a crash all
//! undo the same way. The shutdown signal only cancels; the current step
//! finishes, so no libvirt call is abandoned half-way.
//!
//! While the lab runs, [`Lab::watch`] turns what can be seen (server
//! events, dnsmasq's leases, the VMs' serial logs) into boot stages through
//! `progress.rs`, and reports them as [`LabEvent`]s.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::console::{Consoles, Followed};
use super::journal::{CreatedVm, FirewallOpening, Journal};
use super::net::{apply_patch, check_patchable, refuse_running_guests};
use super::progress::{Milestones, Progress, Stage, StageEvent, VmProgress};
use super::record::{self, Counters, LabRecord};
use super::serve::{endpoints, Endpoints};
use super::undo::undo_journal;
use super::{ensure_dir, ipv4_server, pause_point, prepare, server_error, state_dir_or_err, BootPlan, ServeFlags, VmShape};
use crate::answer::{AnswerFile, AnswerKind, Vars};
use crate::blocking;
use crate::boot::{self, BootTree, DefaultEntry, PerVm};
use crate::dhcp::{LabDnsmasq, UefiBoot};
use crate::error::{Error, Kind, Result};
use crate::iso::Overrides;
use crate::mac::MacAddr;
use crate::serve::{AllowList, FtpRoot, Limits, Protocol, ServeConfig, ServeEvent, Servers, Transfer};
use crate::virt::accel::{Accel, AccelChoice};
use crate::virt::domain::{self, VmState};
use crate::virt::domxml::{self, Firmware, VmSpec};
use crate::virt::network::{self, NetworkState};
use crate::virt::netxml::{self, Bootp};
use crate::virt::Libvirt;

/// How often leases, serial logs and `lab.json` are looked at.
const POLL: Duration = Duration::from_millis(200);
/// Every this many polls, VMs made with `pxelab vm new` are looked for.
const ADOPT_EVERY: u64 = 10;
/// The TFTP port: a PXE client asks for this one and no other.
const TFTP_PORT: u16 = 69;

/// `up`'s own options, for the fixes of its errors.
const UP_FLAGS: ServeFlags = ServeFlags { address: "--server-ip", tftp_port: None, ftp_port: "--ftp-port", http_port: "--http-port" };

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
    /// BIOS and a UEFI VM).
    pub firmwares: Vec<Firmware>,
    pub wait_for: Option<Stage>,
    pub expect: Option<String>,
    /// `installed` is reached when the installed system's console matches this.
    pub expect_installed: Option<String>,
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
    pub passive_ports: RangeInclusive<u16>,
}

/// What `up` reports as it goes (one JSON object per line with `--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LabEvent {
    /// A step of the set-up, for people watching.
    Step {
        message: String,
    },
    Ready {
        network: String,
        server_ip: String,
        tftp: String,
        ftp: String,
        http: Option<String>,
        kernel_args: String,
        vms: Vec<String>,
        accel: Option<Accel>,
        accel_reason: Option<String>,
    },
    Stage(StageEvent),
    Transfer {
        vm: Option<String>,
        protocol: Protocol,
        path: String,
        bytes: u64,
        seconds: f64,
        complete: bool,
    },
    /// A transfer to a VM still going (every 2 MiB): for progress bars.
    Progress {
        vm: String,
        protocol: Protocol,
        path: String,
        bytes: u64,
        size: u64,
    },
    /// Every VM reached `--wait-for`.
    Reached {
        stage: Stage,
        seconds: f64,
        vms: Vec<VmSummary>,
    },
    TimedOut {
        seconds: f64,
        vms: Vec<VmSummary>,
    },
    /// A VM failed in a way that ends the lab (it powered off before its installer).
    Failed {
        seconds: f64,
        reason: String,
        vms: Vec<VmSummary>,
    },
    /// Where each VM got to, when, and what it was sent: once, as the lab ends.
    Summary {
        vms: Vec<VmProgress>,
    },
    Teardown {
        message: String,
    },
}

/// A VM's stage and the last lines of its serial console, when the lab ends.
#[derive(Debug, Clone, Serialize)]
pub struct VmSummary {
    pub name: String,
    pub stage: Stage,
    pub serial_tail: Vec<String>,
}

/// Where `up`'s events go.
pub type Report<'a> = &'a mut (dyn FnMut(&LabEvent) + Send);

/// `pxelab up`. Returns when the lab stopped and the host is restored.
pub async fn up(request: UpRequest, shutdown: CancellationToken, report: Report<'_>) -> Result<()> {
    let expect = check_flags(&request)?;
    let state = ensure_dir(state_dir_or_err()?)?;
    let journal = Journal::open(&state).map_err(|e| Error::environment(format!("cannot open the journal in {}: {e}", state.display())))?;
    refuse_if_lab_exists(&state, &journal)?;
    let libvirt = Libvirt::connect(&request.uri).await?;
    let mut plan = plan(&request, expect, &libvirt).await?;

    let mut lab = Lab {
        artifacts: request.artifacts.clone(),
        site: plan.site,
        answer: plan.answer.take(),
        failed: None,
        libvirt,
        journal,
        state,
        keep: request.keep,
        servers: None,
        tree: plan.tree.clone(),
        ra: None,
        progress: Progress::new(plan.milestones.clone()),
        record: plan.record.clone(),
        consoles: Consoles::default(),
        started: Instant::now(),
    };
    let result = lab.run(&request, plan, &shutdown, report).await;
    if !lab.progress.vms().is_empty() {
        report(&LabEvent::Summary { vms: lab.progress.vms().to_vec() });
    }
    let teardown = lab.teardown(report).await;
    result.and(teardown)
}

/// A second lab, or the leftovers of a crashed one, stop `up` before it
/// changes anything. `detach` asks the same before it touches the log.
pub(crate) fn refuse_if_lab_exists(state: &Path, journal: &Journal) -> Result<()> {
    match record::read(state) {
        Ok(Some(lab)) if record::alive(lab.pid) => {
            return Err(Error::environment(format!(
                "a lab is already running (pid {}, ISO {}, network {}); stop it with `pxelab down`",
                lab.pid, lab.iso, lab.network
            )));
        }
        Ok(Some(lab)) => {
            return Err(Error::environment(format!("a lab (pid {}) ended without cleaning up; run `pxelab down` to restore the host first", lab.pid)));
        }
        Ok(None) => {}
        Err(e) => return Err(Error::environment(format!("{e}; remove it after checking `pxelab down`"))),
    }
    let leftovers =
        journal.networks().map(|n| n.len()).unwrap_or(0) + journal.vms().map(|v| v.len()).unwrap_or(0) + journal.firewalls().map(|f| f.len()).unwrap_or(0);
    if leftovers > 0 {
        return Err(Error::environment(format!(
            "the journal in {} has {leftovers} change(s) not undone yet; run `pxelab down` (or `pxelab net restore`) first",
            journal.dir().display()
        )));
    }
    Ok(())
}

/// The lab's answer file and what its templates are filled with.
struct Answer {
    file: AnswerFile,
    server: String,
    http_base: String,
}

/// Where the lab's network is, seen from pxelab's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    /// The network's bridge is on this host (a local URI, or a remote one
    /// that leads back here): pxelab may open this host's firewall for it
    /// and send router advertisements on it.
    Here,
    /// On another host: its guests reach pxelab through that host's NAT
    /// or routing.
    Remote,
}

/// Where the lab is, or why its guests could not reach pxelab's servers
/// (which always run on this host). Pure: the caller looks at the host.
fn site(uri: &str, net: &netxml::NetworkXml, address: IpAddr, server_ip: IpAddr, given: bool, local: bool, libvirt_here: bool) -> Result<Site> {
    if !crate::virt::is_remote(uri) {
        return Ok(Site::Here);
    }
    let host = uri.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or(rest)).unwrap_or(uri);
    if !local {
        return Err(Error::bad_input(if given {
            format!("--server-ip {server_ip} is not an address of this host, where pxelab's servers run; pass this host's address that the guests of network {} on {host} can reach", net.name)
        } else {
            format!("network {}'s address {address} is on the libvirt host {host}, but pxelab's servers run here; pass --server-ip with this host's address that its guests can reach (through {host}'s NAT or routing)", net.name)
        }));
    }
    if libvirt_here {
        // The "remote" host is this one (an ssh URI that loops back).
        return Ok(Site::Here);
    }
    if net.forward.is_none() {
        return Err(Error::bad_input(format!(
            "network {} on {host} is isolated (no <forward>): its guests reach only {address} on that host, never this host's {server_ip}; use a NAT or routed network there, or run pxelab on {host}",
            net.name
        )));
    }
    Ok(Site::Remote)
}

/// Whether `ip` is one of this host's addresses (a socket binds to it).
fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// What `up` read and decided before its first change.
struct Plan {
    site: Site,
    answer: Option<Answer>,
    net: NetworkState,
    bootp: Bootp,
    /// What the lab adds to libvirt's dnsmasq: the iPXE fast path, fast DHCP.
    dnsmasq: LabDnsmasq,
    tree: Arc<BootTree>,
    config: ServeConfig,
    accel: AccelChoice,
    milestones: Milestones,
    record: LabRecord,
}

/// The flags that contradict each other, before anything else is read.
/// Returns the compiled `--expect`.
fn check_flags(request: &UpRequest) -> Result<(Option<regex::Regex>, Option<regex::Regex>)> {
    let regex = |flag: &str, re: &Option<String>| -> Result<Option<regex::Regex>> {
        re.as_ref().map(|re| regex::Regex::new(re).map_err(|e| Error::bad_input(format!("{flag} {re:?} is not a regular expression: {e}")))).transpose()
    };
    let expect = (regex("--expect", &request.expect)?, regex("--expect-installed", &request.expect_installed)?);
    if request.wait_for.is_some() && request.vms == 0 {
        return Err(Error::bad_input("--wait-for needs a VM to wait for; drop --no-vm or --vms 0"));
    }
    if request.timeout.is_some() && request.vms == 0 {
        return Err(Error::usage("--timeout needs a VM to wait for; drop --no-vm or --vms 0, or drop --timeout"));
    }
    if request.vms > 0 {
        request.shape.check()?;
    }
    Ok(expect)
}

/// Reads and checks everything `up` needs; changes nothing.
async fn plan(request: &UpRequest, (expect, expect_installed): (Option<regex::Regex>, Option<regex::Regex>), libvirt: &Libvirt) -> Result<Plan> {
    let iso_path = std::path::absolute(&request.iso).map_err(|e| Error::bad_input(format!("cannot use --iso {}: {e}", request.iso.display())))?;

    let name = request.network.clone();
    tracing::debug!("reading network {name}");
    let net = libvirt.call(move |c| network::read(c, &name)).await?;
    let address = check_patchable(&net)?;
    let server_ip = ipv4_server("--server-ip", request.server_ip.unwrap_or(address))?;
    let here = super::libvirt_is_here(libvirt).await;
    let site = blocking::run({
        let (uri, parsed, given) = (request.uri.clone(), net.parsed.clone(), request.server_ip.is_some());
        move || site(&uri, &parsed, address, server_ip, given, is_local_address(server_ip), here)
    })
    .await?;
    refuse_running_guests(&net, request.force)?;
    let Endpoints { ftp_port, http_port, overrides, authority, http_base } =
        endpoints(server_ip, request.ftp_port, request.http_port, &request.overrides, UP_FLAGS.address)?;
    // The iPXE fast path: iPXE clients (every libvirt guest's NIC ROM) get
    // boot.ipxe over HTTP; the lab's own VMs then boot the installer at
    // once, other clients get pxelinux and the menu (see boot/ipxe.rs).
    // Indexing the ISO reads its directory records: off the runtime.
    let prepared = blocking::run({
        let iso_path = iso_path.clone();
        let (authority, default, http_base) = (authority.clone(), request.default_entry, http_base.clone());
        move || {
            let plan = BootPlan { overrides: &overrides, authority: &authority, default, serial_console: true, http_base, lab_tftp: Some(server_ip) };
            prepare(&iso_path, &plan)
        }
    })
    .await?;
    let distro = &prepared.distro;
    tracing::debug!("{} detected: kernel {}, initrd {}", distro.name, distro.kernel, distro.initrd);
    let answer = match &request.answer {
        None => None,
        Some((kind, path)) => {
            let file = blocking::run({
                let (kind, path) = (*kind, path.clone());
                move || AnswerFile::load(kind, &path)
            })
            .await
            .map_err(|e| Error::bad_input(e.to_string()))?;
            file.check_family(distro.family).map_err(|e| Error::bad_input(e.to_string()))?;
            let http_base =
                http_base.clone().ok_or_else(|| Error::bad_input(format!("{} is served to the installer over HTTP; drop --http-port none", kind.flag())))?;
            Some(Answer { file, server: server_ip.to_string(), http_base })
        }
    };
    let accel = super::choose_accel(libvirt, here, request.shape.accel).await;

    let mut installer_files = vec!["/.treeinfo".to_string()];
    installer_files.extend(distro.stage2.iter().map(|s| format!("/{s}")));
    if distro.family == crate::iso::Family::Ubuntu {
        // casper's download of the whole ISO is Ubuntu's installer starting.
        let name = iso_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        installer_files.push(format!("/{name}"));
    }
    let mut bootloaders = vec!["pxelinux.0".to_string(), boot::IPXE_SCRIPT.to_string()];
    bootloaders.extend(prepared.tree.uefi().map(|l| l.boot_file()));
    let milestones = Milestones {
        bootloaders,
        kernel: format!("{}/{}", boot::ISO_DIR, distro.kernel),
        initrd: format!("{}/{}", boot::ISO_DIR, distro.initrd),
        installer_files,
        expect,
        expect_installed,
    };
    let record = LabRecord {
        pid: std::process::id(),
        uri: request.uri.clone(),
        iso: iso_path.display().to_string(),
        distro: match &distro.version {
            Some(v) => format!("{} {v}", distro.name),
            None => distro.name.clone(),
        },
        network: net.name.clone(),
        bridge: net.parsed.bridge.clone(),
        server_ip: server_ip.to_string(),
        subnet: net.parsed.dhcp4().and_then(|ip| match (ip.address, ip.prefix) {
            (IpAddr::V4(a), Some(p)) => Some(crate::dhcp::Subnet::containing(a, p).to_string()),
            _ => None,
        }),
        tftp: String::new(),
        ftp: String::new(),
        http: None,
        uefi_file: prepared.tree.uefi().map(|l| l.boot_file()),
        passive_ports: Some(format!("{}-{}", request.passive_ports.start(), request.passive_ports.end())),
        kernel_args: prepared.kernel_args.clone(),
        started_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        keep: request.keep,
        ra: false,
        ready: false,
        vms: Vec::new(),
        transfers: Counters::default(),
    };
    let config = ServeConfig {
        bind: server_ip,
        tftp_port: TFTP_PORT,
        ftp_port,
        http_port,
        ftp_root: FtpRoot::Iso(prepared.iso.clone()),
        allow: AllowList::default(),
        limits: Limits { passive_ports: request.passive_ports.clone(), ..Limits::default() },
    };
    let uefi = prepared.tree.uefi();
    if request.vms > 0 && request.firmwares.contains(&Firmware::SecureBoot) && !uefi.is_some_and(|l| l.is_the_isos()) {
        return Err(Error::bad_input(format!(
            "--secure-boot: {} has no signed shim and GRUB in EFI/BOOT, and only the vendor's own chain verifies its kernel under Secure Boot; drop --secure-boot",
            iso_path.display()
        )));
    }
    if request.vms > 0 && request.firmwares.iter().any(|f| f.is_uefi()) && site == Site::Here {
        if let Some(missing) = domxml::missing_ovmf() {
            return Err(Error::environment(format!("UEFI VMs need OVMF: {missing} is missing; install the ovmf package, or use --firmware bios")));
        }
    }
    let dnsmasq = LabDnsmasq {
        ipxe_script: http_base.as_ref().map(|base| format!("{base}/{}", boot::IPXE_SCRIPT)),
        fast: request.fast_dhcp,
        uefi: uefi.map(|l| UefiBoot { file: l.boot_file(), server: server_ip }),
    };
    Ok(Plan {
        site,
        answer,
        net,
        bootp: Bootp { file: "pxelinux.0".into(), server: Some(server_ip.to_string()) },
        dnsmasq,
        tree: Arc::new(prepared.tree),
        config,
        accel,
        milestones,
        record,
    })
}

/// A lab being set up, running, or torn down.
struct Lab {
    /// Where the consoles are copied at teardown (`--artifacts`).
    artifacts: Option<PathBuf>,
    site: Site,
    answer: Option<Answer>,
    /// Why the lab must end with an error (a VM powered off too early).
    failed: Option<String>,
    libvirt: Libvirt,
    journal: Journal,
    state: PathBuf,
    keep: bool,
    servers: Option<Servers>,
    /// The tree the servers serve: the lab tells it of each VM it makes.
    tree: Arc<BootTree>,
    ra: Option<crate::ra::RaResponder>,
    record: LabRecord,
    progress: Progress,
    /// The VMs' serial consoles, read through libvirt and recorded here.
    consoles: Consoles,
    started: Instant,
}

/// Why the watch ended without an error.
enum Ended {
    Cancelled,
    Reached,
}

impl Lab {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Rewrites `lab.json` (off the runtime: a rename and, on a full disk, a cleanup).
    async fn save(&mut self) {
        self.record.vms = self.progress.vms().to_vec();
        let (state, record) = (self.state.clone(), self.record.clone());
        if let Err(e) = blocking::run(move || record::write(&state, &record)).await {
            tracing::warn!("cannot update {}: {e}", record::path(&self.state).display());
        }
    }

    async fn run(&mut self, request: &UpRequest, plan: Plan, shutdown: &CancellationToken, report: Report<'_>) -> Result<()> {
        self.save().await;
        // On a running network the servers bind first: a busy port then
        // stops `up` before the network is touched.
        if plan.net.active {
            self.start_servers(plan.tree.clone(), plan.config.clone(), report).await?;
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        self.patch_network(&plan, shutdown, report).await?;
        if self.servers.is_none() {
            self.start_servers(plan.tree, plan.config.clone(), report).await?;
        }
        // After the servers: a port chosen by the system (`0`) is known by now.
        self.open_firewall(&plan.config, report).await?;
        if request.ra {
            self.start_ra(report).await;
        }
        pause_point("after-patch", shutdown).await;

        for _ in 0..request.vms {
            for &firmware in &request.firmwares {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                self.create_vm(request.shape, firmware, &plan.accel, report).await?;
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

        match self.watch(request, shutdown, report).await? {
            Ended::Cancelled | Ended::Reached => Ok(()),
        }
    }

    async fn start_servers(&mut self, tree: Arc<BootTree>, config: ServeConfig, report: Report<'_>) -> Result<()> {
        tracing::debug!("starting the servers on {}", config.bind);
        let servers = Servers::start(tree, config).await.map_err(|e| server_error(e, &UP_FLAGS))?;
        self.record.tftp = servers.tftp_addr().to_string();
        self.record.ftp = servers.ftp_addr().to_string();
        self.record.http = servers.http_addr().map(|a| a.to_string());
        let http = self.record.http.as_deref().map(|a| format!(", HTTP on {a}")).unwrap_or_default();
        report(&LabEvent::Step { message: format!("serving TFTP on {}, FTP on {}{http}", self.record.tftp, self.record.ftp) });
        self.servers = Some(servers);
        self.save().await;
        Ok(())
    }

    async fn patch_network(&mut self, plan: &Plan, shutdown: &CancellationToken, report: Report<'_>) -> Result<()> {
        let (net, bootp) = (&plan.net, &plan.bootp);
        let patched = netxml::add_dnsmasq_options(&netxml::set_bootp(&net.inactive_xml, bootp)?, &plan.dnsmasq.lines())?;
        let reattached = apply_patch(&self.libvirt, &self.journal, net, patched, true, shutdown).await?;
        let mut message = format!("network {} now boots {} from {}", net.name, bootp.file, bootp.server.as_deref().unwrap_or("?"));
        if let Some(ipxe) = &plan.dnsmasq.ipxe_script {
            message.push_str(&format!(", and iPXE clients {ipxe}"));
        }
        if !reattached.is_empty() {
            message.push_str(&format!(" (guests re-attached: {})", reattached.join(", ")));
        }
        report(&LabEvent::Step { message });
        Ok(())
    }

    /// Lets the bridge's guests reach TFTP and FTP, if the host's firewall would stop them.
    async fn open_firewall(&mut self, config: &ServeConfig, report: Report<'_>) -> Result<()> {
        if self.site == Site::Remote {
            // The bridge is on the libvirt host: this host's firewall does not see it.
            return Ok(());
        }
        let Some(bridge) = self.record.bridge.clone() else { return Ok(()) };
        let http = self.record.http_addr().map(|a| a.port());
        let rules = crate::firewall::lab_rules(config.tftp_port, config.ftp_port, http, &config.limits.passive_ports);
        let blocker = blocking::run({
            let (bridge, rules) = (bridge.clone(), rules.clone());
            move || crate::firewall::blocking_rule(&bridge, &rules)
        })
        .await;
        let Some(blocker) = blocker else { return Ok(()) };
        self.journal
            .record_firewall(&FirewallOpening { bridge: bridge.clone(), rules: rules.clone() })
            .map_err(|e| Error::environment(format!("cannot write the journal: {e}")))?;
        tracing::debug!("opening the firewall on {bridge}: `{blocker}` would block the guests");
        blocking::run({
            let (bridge, rules) = (bridge.clone(), rules.clone());
            move || crate::firewall::open(&bridge, &rules)
        })
        .await
        .map_err(Error::environment)?;
        let ports: Vec<String> = rules.iter().map(|r| format!("{}/{}", r.protocol, r.port)).collect();
        report(&LabEvent::Step {
            message: format!("the firewall rule `{blocker}` would stop the guests; accepted {} from {bridge} until the lab stops", ports.join(", ")),
        });
        Ok(())
    }

    /// Starts answering router solicitations on the bridge, which exists
    /// now the network runs. A failure costs the guests time, not the lab.
    async fn start_ra(&mut self, report: Report<'_>) {
        if self.site == Site::Remote {
            tracing::debug!("no router advertisements: the lab's bridge is on the libvirt host, not here");
            return;
        }
        let Some(bridge) = self.record.bridge.clone() else { return };
        match blocking::run({
            let bridge = bridge.clone();
            move || crate::ra::RaResponder::start(&bridge)
        })
        .await
        {
            Ok(ra) => {
                self.ra = Some(ra);
                self.record.ra = true;
                report(&LabEvent::Step {
                    message: format!("answering IPv6 router solicitations on {bridge} with a bare advertisement (ends iPXE's IPv6 wait)"),
                });
            }
            Err(e) => tracing::warn!("cannot answer router solicitations on {bridge}: {e}; guests wait about 10 s longer"),
        }
    }

    async fn create_vm(&mut self, shape: VmShape, firmware: Firmware, choice: &AccelChoice, report: Report<'_>) -> Result<()> {
        let taken = self.libvirt.call(domain::names).await?;
        let name = super::vm::generate_name(&taken);
        let logs = ensure_dir(self.state.join("logs"))?;
        // The MAC is chosen here so the VM's own boot config is in the
        // tree before its firmware asks for it.
        let mac = MacAddr::random_qemu();
        self.tree.boot_at_once_with(mac, &self.per_vm(&name, mac));
        let spec = VmSpec {
            name: name.clone(),
            network: self.record.network.clone(),
            memory_mib: shape.memory_mib,
            vcpus: shape.vcpus,
            disk_gib: shape.disk_gib,
            accel: choice.accel,
            serial_log: logs.join(format!("{name}.serial.log")),
            pxe: true,
            mac: Some(mac),
            firmware,
        };
        self.journal
            .record_vm(&CreatedVm { uri: self.libvirt.uri().to_string(), name: name.clone() })
            .map_err(|e| Error::environment(format!("cannot write the journal: {e}")))?;
        let pool_dir = super::vm::images_dir()?;
        tracing::debug!("creating VM {name} ({:?}, {} MiB, {} vCPUs)", choice.accel, shape.memory_mib, shape.vcpus);
        let (info, console) = super::vm::create(&self.libvirt, spec, pool_dir, true).await?;
        if let Some(console) = console {
            self.consoles.insert(&info.name, console);
        }
        if let Some(ra) = &self.ra {
            ra.announce();
        }
        self.track(&info.name, &info.meta.serial_log).await?;
        report(&LabEvent::Step { message: format!("created VM {} ({}, {}: {})", info.name, firmware.name(), info.accel.name(), choice.reason) });
        Ok(())
    }

    /// A lab VM's own kernel arguments and files: its answer file, if any.
    fn per_vm(&self, name: &str, mac: MacAddr) -> PerVm {
        let Some(answer) = &self.answer else { return PerVm::default() };
        let vars = Vars { server: &answer.server, http: &answer.http_base, vm: name, mac };
        PerVm { args: answer.file.kernel_args(&answer.http_base, &mac), files: answer.file.files(&vars) }
    }

    /// Starts following a VM's boot.
    async fn track(&mut self, name: &str, serial_log: &str) -> Result<()> {
        let owned = name.to_string();
        let xml = self.libvirt.call(move |c| domain::xml(c, &owned)).await?;
        let mac =
            domxml::interfaces(&xml).into_iter().find(|i| i.network.as_deref() == Some(self.record.network.as_str())).and_then(|i| i.mac).unwrap_or_default();
        // A VM made by `vm new` boots at once too, from the moment it joins.
        if let Ok(mac) = mac.parse::<MacAddr>() {
            self.tree.boot_at_once_with(mac, &self.per_vm(name, mac));
        }
        let now = self.now();
        self.progress.add_vm(VmProgress::new(name, &mac, serial_log, now));
        self.save().await;
        Ok(())
    }

    /// Follows the boots until cancelled, `--wait-for` is reached, or `--timeout`.
    async fn watch(&mut self, request: &UpRequest, shutdown: &CancellationToken, report: Report<'_>) -> Result<Ended> {
        let mut events = self.servers.as_ref().expect("servers run before the watch").subscribe();
        let deadline = request.timeout.map(|t| Instant::now() + t);
        let mut tick = tokio::time::interval(POLL);
        let mut ticks = 0u64;
        let mut dirty = false;
        loop {
            if let Some(why) = self.failed.take() {
                report(&LabEvent::Failed { seconds: self.now(), reason: why.clone(), vms: self.summaries() });
                return Err(Error::other(why));
            }
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
                return Err(Error::new(Kind::Timeout, format!("timed out after {waited} s waiting for {wanted}: the slowest VM reached {reached}")));
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Ended::Cancelled),
                event = events.recv() => match event {
                    Ok(event) => dirty |= self.on_server_event(event, report),
                    Err(RecvError::Lagged(n)) => tracing::warn!("{n} server events missed"),
                    Err(RecvError::Closed) => return Err(Error::other("the servers stopped unexpectedly")),
                },
                _ = tick.tick() => {
                    ticks += 1;
                    dirty |= self.on_tick(ticks, report).await;
                    // lab.json is rewritten at most once a poll, not per event.
                    if std::mem::take(&mut dirty) {
                        self.save().await;
                    }
                }
            }
        }
    }

    /// A transfer, its progress, or a refusal. Returns whether `lab.json` changed.
    fn on_server_event(&mut self, event: ServeEvent, report: Report<'_>) -> bool {
        match event {
            ServeEvent::Transfer(t) => {
                self.count(&t);
                let vm = self.vm_at(t.client.ip()).or_else(|| self.vm_named_by(&t.path));
                if let Some(name) = &vm {
                    self.progress.add_bytes(name, t.bytes);
                }
                report(&LabEvent::Transfer {
                    vm,
                    protocol: t.protocol,
                    path: t.path.clone(),
                    bytes: t.bytes,
                    seconds: t.duration.as_secs_f64(),
                    complete: t.complete,
                });
                let now = self.now();
                let mut events = self.progress.on_transfer(&t, now);
                // A VM handed its own config after its installer (which
                // switched that config to local boot) rebooted into its disk.
                if let Some(name) = self.vm_named_by(&t.path).filter(|_| t.complete) {
                    events.extend(self.progress.on_disk_boot(&name, now));
                }
                for e in events {
                    self.stage_reached(e, report);
                }
                true
            }
            ServeEvent::Progress { protocol, client, path, bytes, size } => {
                if let Some(vm) = self.vm_at(client.ip()) {
                    report(&LabEvent::Progress { vm, protocol, path, bytes, size });
                }
                false
            }
            ServeEvent::Refused { .. } => false,
        }
    }

    fn count(&mut self, t: &Transfer) {
        let counters = &mut self.record.transfers;
        match t.protocol {
            Protocol::Tftp => {
                counters.tftp_files += 1;
                counters.tftp_bytes += t.bytes;
            }
            Protocol::Ftp => {
                counters.ftp_files += 1;
                counters.ftp_bytes += t.bytes;
            }
            Protocol::Http => {
                counters.http_files += 1;
                counters.http_bytes += t.bytes;
            }
        }
    }

    /// The lab VM that has `ip`, once its lease is seen.
    fn vm_at(&self, ip: IpAddr) -> Option<String> {
        self.progress.vms().iter().find(|v| v.ip == Some(ip)).map(|v| v.name.clone())
    }

    /// The lab VM whose own boot config `path` is (`mac/<mac>.ipxe`,
    /// `pxelinux.cfg/01-<mac>`): known by its MAC before its lease is seen.
    fn vm_named_by(&self, path: &str) -> Option<String> {
        let path = path.trim_start_matches('/');
        let name = path.rsplit('/').next().unwrap_or(path);
        let hyphenated = path
            .strip_prefix("mac/")
            .and_then(|p| p.strip_suffix(".ipxe"))
            .or_else(|| path.strip_prefix("pxelinux.cfg/01-"))
            .or_else(|| name.strip_prefix("grub.cfg-01-"))?;
        let mac: MacAddr = hyphenated.parse().ok()?;
        self.progress.vms().iter().find(|v| v.mac.parse::<MacAddr>().ok() == Some(mac)).map(|v| v.name.clone())
    }

    /// A poll: new leases, new serial output, VMs that joined. Returns
    /// whether `lab.json` changed.
    async fn on_tick(&mut self, ticks: u64, report: Report<'_>) -> bool {
        let mut changed = false;
        let network = self.record.network.clone();
        // A lease read that fails (libvirtd restarting) is tried again next poll.
        let leases = self.libvirt.call(move |c| network::leases(c, &network)).await.unwrap_or_default();
        let followed = self.progress.vms().iter().map(|v| Followed { name: v.name.clone(), record: PathBuf::from(&v.serial_log) }).collect();
        let serial = self.consoles.poll(&self.libvirt, followed).await;
        let now = self.now();
        for (mac, ip) in leases {
            for e in self.progress.on_lease(&mac, ip, now) {
                self.stage_reached(e, report);
                changed = true;
            }
        }
        for (name, text) in serial {
            for e in self.progress.on_serial(&name, &String::from_utf8_lossy(&text), now) {
                self.stage_reached(e, report);
                changed = true;
            }
        }
        if ticks.is_multiple_of(ADOPT_EVERY) {
            if let Ok(vms) = self.libvirt.call(domain::list).await {
                changed |= self.powered_off(&vms, report);
                changed |= self.adopt_new_vms(vms, report).await;
            }
        }
        changed
    }

    /// Reports a stage; after its installer, a VM's own boot config boots
    /// its disk, so the installer's reboot does not start it again.
    fn stage_reached(&mut self, e: StageEvent, report: Report<'_>) {
        if e.stage == Stage::Installer {
            let mac = self.progress.vms().iter().find(|v| v.name == e.vm).and_then(|v| v.mac.parse::<MacAddr>().ok());
            if let Some(mac) = mac {
                self.tree.boot_local(mac);
            }
        }
        report(&LabEvent::Stage(e));
    }

    /// The lab's VMs that are shut off: installed, or failed before their installer.
    fn powered_off(&mut self, vms: &[domain::VmInfo], report: Report<'_>) -> bool {
        let now = self.now();
        let mut changed = false;
        let off: Vec<String> = vms.iter().filter(|v| v.state == VmState::ShutOff && self.progress.tracks(&v.name)).map(|v| v.name.clone()).collect();
        for name in off {
            match self.progress.on_power_off(&name, now) {
                Ok(events) => {
                    for e in events {
                        self.stage_reached(e, report);
                        changed = true;
                    }
                }
                Err(why) => self.failed = Some(why),
            }
        }
        changed
    }

    fn summaries(&self) -> Vec<VmSummary> {
        self.progress
            .vms()
            .iter()
            .map(|v| VmSummary { name: v.name.clone(), stage: v.stage, serial_tail: v.serial_tail().map(str::to_string).collect() })
            .collect()
    }

    /// VMs made with `pxelab vm new` while the lab runs join it (they are
    /// in the journal: `vm new` records a VM that joins a lab).
    async fn adopt_new_vms(&mut self, vms: Vec<domain::VmInfo>, report: Report<'_>) -> bool {
        let mut adopted = false;
        for vm in vms {
            if vm.networks.contains(&self.record.network) && !self.progress.tracks(&vm.name) && vm.state == VmState::Running {
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
    async fn teardown(&mut self, report: Report<'_>) -> Result<()> {
        self.consoles.close().await;
        if let Some(dir) = self.artifacts.clone() {
            // Before the undo removes them with their VMs.
            let logs: Vec<(String, String)> = self.progress.vms().iter().map(|v| (v.name.clone(), v.serial_log.clone())).collect();
            let copied = blocking::run(move || -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                for (name, log) in logs {
                    match std::fs::copy(&log, dir.join(format!("{name}.serial.log"))) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
                Ok(())
            })
            .await;
            if let Err(e) = copied {
                tracing::warn!("cannot copy the serial consoles to the artifacts: {e}");
            }
        }
        if let Some(ra) = self.ra.take() {
            blocking::run(move || ra.stop()).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn net(forward: Option<&str>) -> netxml::NetworkXml {
        netxml::NetworkXml { name: "lab".into(), bridge: Some("virbr9".into()), forward: forward.map(str::to_string), ips: Vec::new() }
    }

    const SSH: &str = "qemu+ssh://root@far.example/system";
    const NET_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 9, 1));
    const HERE_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 5));

    #[test]
    fn a_local_uri_is_always_here() {
        let site = site("qemu:///system", &net(None), NET_IP, NET_IP, false, true, true).unwrap();
        assert_eq!(site, Site::Here);
    }

    #[test]
    fn a_remote_network_needs_a_server_ip_of_this_host() {
        // The default server address is the network's, which is on the far host.
        let e = site(SSH, &net(Some("nat")), NET_IP, NET_IP, false, false, false).unwrap_err();
        assert!(e.to_string().contains("pass --server-ip") && e.to_string().contains("far.example"), "{e}");
        let e = site(SSH, &net(Some("nat")), NET_IP, HERE_IP, true, false, false).unwrap_err();
        assert!(e.to_string().contains("--server-ip 192.168.1.5 is not an address of this host"), "{e}");
    }

    #[test]
    fn an_isolated_network_on_another_host_is_refused_with_the_reason() {
        let e = site(SSH, &net(None), NET_IP, HERE_IP, true, true, false).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("isolated") && text.contains("never this host's 192.168.1.5") && text.contains("NAT or routed"), "{text}");
    }

    #[test]
    fn a_nat_network_on_another_host_reaches_this_host() {
        assert_eq!(site(SSH, &net(Some("nat")), NET_IP, HERE_IP, true, true, false).unwrap(), Site::Remote);
        assert_eq!(site(SSH, &net(Some("route")), NET_IP, HERE_IP, true, true, false).unwrap(), Site::Remote);
    }

    #[test]
    fn an_ssh_uri_back_to_this_host_is_here_even_for_an_isolated_network() {
        assert_eq!(site(SSH, &net(None), NET_IP, NET_IP, true, true, true).unwrap(), Site::Here);
    }
}
