//! The changes `up` makes, one method each, in the order [`Lab::run`]
//! calls them: the servers, the network's patch, a firewall opening, the
//! router-advertisement responder, the VMs. Each change that outlives a
//! crash is written to the journal before it is made.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::plan::Plan;
use super::site::Site;
use super::{Lab, UP_FLAGS};
use crate::answer::Vars;
use crate::arch::Arch;
use crate::blocking;
use crate::boot::{BootTree, PerVm};
use crate::error::{Error, Result};
use crate::lab::event::{EventSink, LabEvent};
use crate::lab::journal::{CreatedVm, FirewallOpening};
use crate::lab::labs::Lock;
use crate::lab::net::apply_patch;
use crate::lab::{ensure_dir, server_error, VmShape};
use crate::mac::MacAddr;
use crate::serve::{ServeConfig, Servers};
use crate::virt::accel::AccelChoice;
use crate::virt::console::Console;
use crate::virt::domain::{self, VmInfo};
use crate::virt::domxml::{Attach, Firmware, HttpCdrom, VmSpec};
use crate::virt::{network, netxml};

impl Lab {
    pub(super) async fn start_servers(&mut self, tree: Arc<BootTree>, config: ServeConfig, report: EventSink<'_>) -> Result<()> {
        tracing::debug!("starting the servers on {}", config.bind);
        let servers = Servers::start(tree, config).await.map_err(|e| server_error(e, &UP_FLAGS))?;
        self.record.tftp = servers.tftp_addr().to_string();
        self.record.ftp = servers.ftp_addr().to_string();
        self.record.http = servers.http_addr().map(|a| a.to_string());
        let http = self.record.http.as_deref().map(|a| format!(", HTTP on {a}")).unwrap_or_default();
        report(&LabEvent::Step { message: format!("serving TFTP on {}, FTP on {}{http}", self.record.tftp, self.record.ftp) });
        self.events = Some(servers.subscribe());
        self.servers = Some(servers);
        self.save().await;
        Ok(())
    }

    pub(super) async fn patch_network(&mut self, plan: &Plan, shutdown: &CancellationToken, report: EventSink<'_>) -> Result<()> {
        let Some(net) = plan.segment.network() else {
            return Err(Error::usage("--interface: a host bridge has no DHCP for pxelab to patch; add --proxy-dhcp"));
        };
        let bootp = &plan.bootp;
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
    pub(super) async fn open_firewall(&mut self, config: &ServeConfig, report: EventSink<'_>) -> Result<()> {
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
            .map_err(|e| Error::environment(format!("cannot write the journal in {}: {e}", self.journal.dir().display())))?;
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
    pub(super) async fn start_ra(&mut self, report: EventSink<'_>) {
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

    pub(super) async fn create_vm(&mut self, shape: VmShape, arch: Arch, firmware: Firmware, choice: &AccelChoice, report: EventSink<'_>) -> Result<()> {
        let launch = self.launch_vm(shape, arch, firmware, choice).await?;
        self.finish_vm(launch, false, choice, report).await
    }

    /// Names a VM, gives its MAC its own boot config, journals it and starts
    /// creating it: the domain is defined and started paused by a task of
    /// its own, which [`Self::finish_vm`] waits for (`early.rs` starts the
    /// network's restart meanwhile).
    pub(super) async fn launch_vm(&mut self, shape: VmShape, arch: Arch, firmware: Firmware, choice: &AccelChoice) -> Result<Launch> {
        // Held until the domain is defined (see `labs::name_lock`).
        let naming = crate::lab::labs::naming_lock().await?;
        let taken = self.libvirt.call(domain::names).await?;
        let name = crate::lab::vm::generate_name(&taken);
        let logs = ensure_dir(self.state.join("logs"))?;
        // The MAC is chosen here so the VM's own boot config is in the
        // tree before its firmware asks for it.
        let mac = MacAddr::random_qemu();
        self.tree.boot_at_once_with(mac, &self.per_vm(&name, mac));
        let spec = VmSpec {
            name: name.clone(),
            arch,
            attach: self.attach.clone(),
            memory_mib: shape.memory_mib,
            vcpus: shape.vcpus,
            disk_gib: shape.disk_gib,
            accel: choice.accel,
            serial_log: logs.join(format!("{name}.serial.log")),
            // A remote libvirt host would write it there, out of pxelab's reach.
            qemu_log: (self.site == Site::Here).then(|| crate::lab::console::qemu_log_of(&logs.join(format!("{name}.serial.log")))),
            pxe: true,
            mac: Some(mac),
            firmware,
            cdrom: self.cdrom.as_ref().and_then(|file| {
                let http = self.record.http_addr()?;
                Some(HttpCdrom { host: http.ip().to_string(), port: http.port(), path: format!("/{}", mac.cdrom_path(file)) })
            }),
        };
        let with_cdrom = spec.cdrom.is_some();
        self.journal
            .record_vm(&CreatedVm { uri: self.libvirt.uri().to_string(), name: name.clone() })
            .map_err(|e| Error::environment(format!("cannot write the journal in {}: {e}", self.journal.dir().display())))?;
        let pool_dir = crate::lab::vm::images_dir()?;
        tracing::debug!("creating VM {name} ({:?}, {} MiB, {} vCPUs)", choice.accel, shape.memory_mib, shape.vcpus);
        let libvirt = self.libvirt.clone();
        let started = tokio::spawn(async move { crate::lab::vm::create(&libvirt, spec, pool_dir, true).await });
        Ok(Launch { name, mac, arch, firmware, with_cdrom, started, _naming: naming })
    }

    /// Waits for a launched VM, with `replug` plugs its tap into the lab's
    /// bridge (which a network restart remade while it started, see
    /// `early.rs`), lets it run and follows it.
    pub(super) async fn finish_vm(&mut self, launch: Launch, replug: bool, choice: &AccelChoice, report: EventSink<'_>) -> Result<()> {
        let (arch, firmware, with_cdrom) = (launch.arch, launch.firmware, launch.with_cdrom);
        let (info, console) = launch.wait().await?;
        if let Some(console) = console {
            self.consoles.insert(&info.name, std::path::Path::new(&info.meta.serial_log), console).await;
        }
        let name = info.name.clone();
        if let (true, Some(bridge), Attach::Network(net)) = (replug, self.record.bridge.clone(), &self.attach) {
            let (owned, net) = (name.clone(), net.clone());
            let plugged = self
                .libvirt
                .call(move |c| {
                    let ours: Vec<_> = network::guests_on(c, &net)?.into_iter().filter(|g| g.domain == owned).collect();
                    network::reattach(&ours, &bridge)
                })
                .await?;
            tracing::debug!("{name}'s tap plugged into the restarted bridge: {plugged:?}");
        }
        self.libvirt.call(move |c| domain::resume(c, &name)).await?;
        if let Some(ra) = &self.ra {
            ra.announce();
        }
        self.track(&info.name, &info.meta.serial_log).await?;
        let arch = if arch == Arch::X86_64 { String::new() } else { format!("{arch}, ") };
        let with_cdrom = if with_cdrom { ", the ISO as its CD-ROM over HTTP" } else { "" };
        report(&LabEvent::Step {
            message: format!("created VM {} ({arch}{}, {}: {}){with_cdrom}", info.name, firmware.name(), info.accel.name(), choice.reason),
        });
        Ok(())
    }

    /// A lab VM's own kernel arguments and files: its answer file, if any.
    pub(super) fn per_vm(&self, name: &str, mac: MacAddr) -> PerVm {
        let Some(answer) = &self.answer else { return PerVm::default() };
        let vars = Vars { server: &answer.server, http: &answer.http_base, vm: name, mac };
        PerVm { args: answer.file.kernel_args(&answer.http_base, &mac), files: answer.file.files(&vars) }
    }
}

/// A lab VM being created: named, journaled, its domain defined and
/// started paused by `started`. The naming lock is held until it is done.
pub(super) struct Launch {
    pub(super) name: String,
    pub(super) mac: MacAddr,
    arch: Arch,
    firmware: Firmware,
    with_cdrom: bool,
    started: tokio::task::JoinHandle<Result<(VmInfo, Option<Console>)>>,
    _naming: Lock,
}

impl Launch {
    /// Whether the creation has ended, well or not.
    pub(super) fn ended(&self) -> bool {
        self.started.is_finished()
    }

    /// The created VM, paused, with its console.
    pub(super) async fn wait(self) -> Result<(VmInfo, Option<Console>)> {
        self.started.await.map_err(|e| Error::environment(format!("creating VM {}: {e}", self.name)))?
    }
}
