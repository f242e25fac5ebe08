//! The running lab: one loop that turns what can be seen into boot stages.
//!
//! Three sources feed [`Progress`](crate::lab::progress::Progress): the
//! servers' events (a transfer is a stage when it is a milestone file),
//! each poll's DHCP leases and serial-console output, and every few polls
//! the domain list (VMs that joined with `vm new`, VMs that powered off).
//! The loop ends when every VM reached `--wait-for`, at `--timeout`, when a
//! VM failed, or when the shutdown token is cancelled; `lab.json` is
//! rewritten at most once a poll.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{Lab, UpRequest};
use crate::blocking;
use crate::error::{Error, Kind, Result};
use crate::lab::console::Followed;
use crate::lab::event::{EventSink, LabEvent, VmSummary};
use crate::lab::progress::{Stage, StageEvent, VmProgress};
use crate::mac::MacAddr;
use crate::serve::{Protocol, ServeEvent, Transfer};
use crate::virt::domain::{self, VmState};
use crate::virt::domxml::{self, Attach};
use crate::virt::network;

/// How often leases, serial logs and `lab.json` are looked at.
const POLL: Duration = Duration::from_millis(200);
/// How often the consoles are read while a VM is still in its firmware, in
/// the lab's first minute: iPXE's prompt is answered as soon as it shows
/// (`lab/console.rs`), not up to a poll later.
const FIRMWARE_POLL: Duration = Duration::from_millis(20);
/// Seconds into the lab after which a VM still in its firmware is left to [`POLL`].
const FIRMWARE_POLL_FOR: f64 = 60.0;
/// Every this many polls, VMs made with `pxelab vm new` are looked for.
const ADOPT_EVERY: u64 = 10;
/// How many reads a stopped VM's console gets before the VM is judged.
const DRAIN_POLLS: usize = 10;

impl Lab {
    /// Follows the boots until cancelled, `--wait-for` is reached, or `--timeout`.
    pub(super) async fn watch(&mut self, request: &UpRequest, shutdown: &CancellationToken, report: EventSink<'_>) -> Result<()> {
        let mut events = self.events.take().expect("the servers run, and were subscribed to, before the watch");
        let deadline = request.timeout.map(|t| Instant::now() + t);
        let mut tick = tokio::time::interval(POLL);
        let mut firmware_tick = tokio::time::interval(FIRMWARE_POLL);
        firmware_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        let mut dirty = false;
        loop {
            if self.ended(request, deadline, report)? {
                return Ok(());
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                event = events.recv() => match event {
                    Ok(event) => dirty |= self.on_server_event(event, report).await,
                    Err(RecvError::Lagged(n)) => tracing::warn!("{n} server events missed"),
                    Err(RecvError::Closed) => return Err(Error::other("the servers stopped unexpectedly")),
                },
                _ = firmware_tick.tick(), if self.in_firmware() => dirty |= self.read_consoles(false, report).await,
                _ = tick.tick() => {
                    ticks += 1;
                    dirty |= self.on_tick(ticks, report).await;
                    if std::mem::take(&mut dirty) {
                        self.save().await;
                    }
                }
            }
        }
    }

    /// Whether the watch is over: `Ok(true)` when `--wait-for` is reached,
    /// an error for a failed VM or the timeout.
    fn ended(&mut self, request: &UpRequest, deadline: Option<Instant>, report: EventSink<'_>) -> Result<bool> {
        if let Some(why) = self.failed.take() {
            report(&LabEvent::Failed { seconds: self.now(), reason: why.clone(), vms: self.summaries() });
            return Err(Error::other(why));
        }
        if let (Some(stage), Some(slowest)) = (request.wait_for, self.progress.slowest()) {
            if slowest >= stage {
                report(&LabEvent::Reached { stage, seconds: self.now(), vms: self.summaries() });
                return Ok(true);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            report(&LabEvent::TimedOut { seconds: self.now(), vms: self.summaries() });
            let waited = request.timeout.unwrap_or_default().as_secs();
            let reached = self.progress.slowest().map(Stage::name).unwrap_or("none");
            let wanted = request.wait_for.map(Stage::name).unwrap_or("the end");
            return Err(Error::new(Kind::Timeout, format!("timed out after {waited} s waiting for {wanted}: the slowest VM reached {reached}")));
        }
        Ok(false)
    }

    /// Starts following a VM's boot.
    pub(super) async fn track(&mut self, name: &str, serial_log: &str) -> Result<()> {
        let owned = name.to_string();
        let xml = self.libvirt.call(move |c| domain::xml(c, &owned)).await?;
        let on_lab = |i: &domxml::Interface| match &self.attach {
            Attach::Network(net) => i.network.as_ref() == Some(net),
            Attach::Bridge(bridge) => i.bridge.as_ref() == Some(bridge),
        };
        let mac = domxml::interfaces(&xml).into_iter().find(on_lab).and_then(|i| i.mac).unwrap_or_default();
        // A VM made by `vm new` boots at once too, from the moment it joins.
        if let Ok(mac) = mac.parse::<MacAddr>() {
            self.tree.boot_at_once_with(mac, &self.per_vm(name, mac));
        }
        let now = self.now();
        self.progress.add_vm(VmProgress::new(name, &mac, serial_log, now));
        self.save().await;
        Ok(())
    }

    /// A transfer, its progress, or a refusal. Returns whether `lab.json` changed.
    async fn on_server_event(&mut self, event: ServeEvent, report: EventSink<'_>) -> bool {
        match event {
            ServeEvent::Transfer(t) => {
                self.count(&t);
                if let Some(mac) = MacAddr::from_cdrom_path(&t.path) {
                    self.on_cdrom_read(mac, &t, report);
                    return false;
                }
                // Stages are stamped with the transfer's own end, not this
                // (later) moment of handling it.
                let ended = t.ended.saturating_duration_since(self.started).as_secs_f64();
                // A guest's first file can come before the poll that sees its
                // lease (OVMF asks for the shim at once): look now, so the
                // transfer is credited to the VM that made it. The lease came
                // before the transfer: no later than its end.
                if self.vm_at(t.client.ip()).is_none() && self.vm_named_by(&t.path).is_none() {
                    self.on_proxy_events(report);
                    self.poll_leases(Some(ended), report).await;
                }
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
                let mut events = self.progress.on_transfer(&t, ended);
                // A VM handed its own config after its installer (which
                // switched that config to local boot) rebooted into its disk.
                if let Some(name) = self.vm_named_by(&t.path).filter(|_| t.complete) {
                    events.extend(self.progress.on_disk_boot(&name, ended));
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

    /// A read of a VM's CD-ROM (QEMU's, one HTTP request per read): counted
    /// for the VM and said once, not reported per request.
    fn on_cdrom_read(&mut self, mac: MacAddr, t: &Transfer, report: EventSink<'_>) {
        let Some(vm) = self.vm_with(mac) else { return };
        self.progress.add_bytes(&vm, t.bytes);
        let (reads, bytes) = self.cdrom_reads.entry(vm.clone()).or_default();
        *reads += 1;
        *bytes += t.bytes;
        if *reads == 1 {
            report(&LabEvent::Step { message: format!("{vm} reads its CD-ROM: the ISO over HTTP, a request per read") });
        }
    }

    fn count(&mut self, t: &Transfer) {
        let counters = &mut self.record.transfers;
        let (files, bytes) = match t.protocol {
            Protocol::Tftp => (&mut counters.tftp_files, &mut counters.tftp_bytes),
            Protocol::Ftp => (&mut counters.ftp_files, &mut counters.ftp_bytes),
            Protocol::Http => (&mut counters.http_files, &mut counters.http_bytes),
        };
        *files += 1;
        *bytes += t.bytes;
    }

    /// The lab VM that has `ip`, once its lease is seen.
    fn vm_at(&self, ip: IpAddr) -> Option<String> {
        self.progress.vms().iter().find(|v| v.ip == Some(ip)).map(|v| v.name.clone())
    }

    /// The lab VM whose own boot config `path` is: known by its MAC before
    /// its lease is seen.
    fn vm_named_by(&self, path: &str) -> Option<String> {
        self.vm_with(MacAddr::from_config_path(path)?)
    }

    /// The lab VM whose NIC has `mac`.
    fn vm_with(&self, mac: MacAddr) -> Option<String> {
        self.progress.vms().iter().find(|v| v.mac.parse::<MacAddr>().ok() == Some(mac)).map(|v| v.name.clone())
    }

    /// A poll: new leases, new serial output, VMs that joined. Returns
    /// whether `lab.json` changed.
    async fn on_tick(&mut self, ticks: u64, report: EventSink<'_>) -> bool {
        let mut changed = self.poll_leases(None, report).await;
        changed |= self.on_proxy_events(report);
        changed |= self.read_consoles(true, report).await;
        if ticks.is_multiple_of(ADOPT_EVERY) {
            if let Ok(vms) = self.libvirt.call(domain::list).await {
                changed |= self.drain_stopped(&vms, report).await;
                changed |= self.powered_off(&vms, report);
                changed |= self.adopt_new_vms(vms, report).await;
            }
        }
        changed
    }

    /// Whether a VM is still in its firmware, early in the lab's life.
    fn in_firmware(&self) -> bool {
        self.progress.slowest() == Some(Stage::Created) && self.now() < FIRMWARE_POLL_FOR
    }

    /// New console text of every VM, turned into stages; iPXE prompts
    /// answered. With `reopen`, a console that is not open is opened again
    /// (each regular poll); the firmware polls read only the open ones.
    async fn read_consoles(&mut self, reopen: bool, report: EventSink<'_>) -> bool {
        let followed = self.progress.vms().iter().map(|v| Followed { name: v.name.clone(), record: PathBuf::from(&v.serial_log) }).collect();
        let serial = if reopen { self.consoles.poll(&self.libvirt, followed).await } else { self.consoles.poll_open(&self.libvirt, followed).await };
        for vm in self.consoles.take_answered() {
            report(&LabEvent::Step { message: format!("answered {vm}'s iPXE prompt (Enter: no 2 s wait for Ctrl-B)") });
        }
        let now = self.now();
        self.on_console(serial, now, report)
    }

    /// The network's DHCP leases, turned into `dhcp` stages, stamped now or
    /// at `before` if earlier (a transfer that needed the lease ended
    /// then). A read that fails (libvirtd restarting) is tried again at the
    /// next poll.
    async fn poll_leases(&mut self, before: Option<f64>, report: EventSink<'_>) -> bool {
        // A host bridge has no libvirt leases: the proxy hears its DHCP server's (`proxy.rs`).
        let Attach::Network(network) = self.attach.clone() else { return false };
        let leases = self.libvirt.call(move |c| network::leases(c, &network)).await.unwrap_or_default();
        let now = before.map_or(self.now(), |at| at.min(self.now()));
        let mut changed = false;
        for (mac, ip) in leases {
            for e in self.progress.on_lease(&mac, ip, now) {
                self.stage_reached(e, report);
                changed = true;
            }
        }
        changed
    }

    /// New console text, per VM, turned into stages.
    fn on_console(&mut self, serial: Vec<(String, Vec<u8>)>, now: f64, report: EventSink<'_>) -> bool {
        let mut changed = false;
        for (name, text) in serial {
            for e in self.progress.on_serial(&name, &String::from_utf8_lossy(&text), now) {
                self.stage_reached(e, report);
                changed = true;
            }
        }
        if let Some(why) = self.progress.take_failure() {
            self.failed.get_or_insert(why);
        }
        changed
    }

    /// A VM seen shut off may have printed its last lines (its marker, then
    /// `poweroff -f`) after this poll read its console: before it is judged,
    /// its console is read until libvirt ends the stream, for a second at most.
    async fn drain_stopped(&mut self, vms: &[domain::VmInfo], report: EventSink<'_>) -> bool {
        let unjudged = |v: &VmProgress| v.stage < Stage::Installed;
        let stopped: Vec<Followed> = vms
            .iter()
            .filter(|v| v.state == VmState::ShutOff)
            .filter_map(|v| self.progress.vms().iter().find(|p| p.name == v.name && unjudged(p)))
            .map(|v| Followed { name: v.name.clone(), record: PathBuf::from(&v.serial_log) })
            .collect();
        let mut changed = false;
        for _ in 0..DRAIN_POLLS {
            if stopped.iter().all(|v| !self.consoles.is_open(&v.name)) {
                break;
            }
            let followed = stopped.iter().map(|v| Followed { name: v.name.clone(), record: v.record.clone() }).collect();
            let serial = self.consoles.poll_open(&self.libvirt, followed).await;
            let now = self.now();
            changed |= self.on_console(serial, now, report);
            tokio::time::sleep(POLL / 2).await;
        }
        // What the stream lost as QEMU exited, from QEMU's own copy (a
        // libvirt host that is this one only).
        for vm in stopped {
            let record = vm.record.clone();
            match blocking::run(move || crate::lab::console::recover_tail(&record)).await {
                Ok(tail) if !tail.is_empty() => {
                    tracing::debug!("{}: {} bytes of its console recovered from QEMU's log", vm.name, tail.len());
                    let now = self.now();
                    changed |= self.on_console(vec![(vm.name, tail)], now, report);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot read QEMU's copy of {}'s console: {e}", vm.name),
            }
        }
        changed
    }

    /// Reports a stage; after its installer, a VM's own boot config boots
    /// its disk, so the installer's reboot does not start it again.
    pub(super) fn stage_reached(&mut self, e: StageEvent, report: EventSink<'_>) {
        if e.stage == Stage::Installer {
            let mac = self.progress.vms().iter().find(|v| v.name == e.vm).and_then(|v| v.mac.parse::<MacAddr>().ok());
            if let Some(mac) = mac {
                self.tree.boot_local(mac);
            }
        }
        report(&LabEvent::Stage(e));
    }

    /// The lab's VMs that are shut off: installed, or failed before their installer.
    fn powered_off(&mut self, vms: &[domain::VmInfo], report: EventSink<'_>) -> bool {
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

    pub(super) fn summaries(&self) -> Vec<VmSummary> {
        self.progress
            .vms()
            .iter()
            .map(|v| VmSummary { name: v.name.clone(), stage: v.stage, serial_tail: v.serial_tail().map(str::to_string).collect() })
            .collect()
    }

    /// VMs made with `pxelab vm new` while the lab runs join it (they are
    /// in the journal: `vm new` records a VM that joins a lab).
    async fn adopt_new_vms(&mut self, vms: Vec<domain::VmInfo>, report: EventSink<'_>) -> bool {
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
}
