//! Boot progress of a lab's VMs, from real events only.
//!
//! | stage        | seen when                                                        |
//! |--------------|------------------------------------------------------------------|
//! | `dhcp`       | libvirt's dnsmasq gave the VM's MAC a lease                      |
//! | `bootloader` | we sent `pxelinux.0` (TFTP) or `boot.ipxe` (HTTP) to the VM, in full |
//! | `kernel`     | our TFTP server sent the kernel and the initrd, in full          |
//! | `installer`  | the VM fetched `.treeinfo` or the stage2 image from our FTP      |
//! |              | server, or `--expect` matched its serial console                 |
//! | `installed`  | after `installer`: the VM powered off, or `--expect-installed`   |
//! |              | matched its console, or (without it) it rebooted and its         |
//! |              | firmware was handed its local-boot config (it boots its disk)   |
//!
//! Transfers are matched to VMs by client address, which is known only once
//! the lease is seen; a transfer that arrives first is held until then.
//! Reaching a stage implies the ones before it (a lease can be missed
//! between two polls, a transfer cannot).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::boot;
use crate::serve::{Protocol, Transfer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Created,
    Dhcp,
    Bootloader,
    Kernel,
    Installer,
    Installed,
}

impl Stage {
    pub const ALL: [Stage; 6] = [Stage::Created, Stage::Dhcp, Stage::Bootloader, Stage::Kernel, Stage::Installer, Stage::Installed];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Created => "created",
            Stage::Dhcp => "dhcp",
            Stage::Bootloader => "bootloader",
            Stage::Kernel => "kernel",
            Stage::Installer => "installer",
            Stage::Installed => "installed",
        }
    }
}

/// Lines of serial console kept per VM, for the timeout report.
const SERIAL_TAIL: usize = 25;

/// One VM's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmProgress {
    pub name: String,
    pub mac: String,
    pub ip: Option<IpAddr>,
    pub stage: Stage,
    /// Seconds since the lab started at which each stage was reached.
    pub reached: BTreeMap<Stage, f64>,
    pub serial_log: String,
    /// Bytes the lab's servers sent to this VM.
    #[serde(default)]
    pub bytes: u64,
    #[serde(skip)]
    kernel_sent: bool,
    #[serde(skip)]
    initrd_sent: bool,
    #[serde(skip)]
    serial_tail: VecDeque<String>,
    #[serde(skip)]
    partial_line: String,
    /// The installer's failure, as its console showed it (see [`FailureSigns`]).
    #[serde(skip)]
    failure: Option<String>,
}

impl VmProgress {
    pub fn new(name: &str, mac: &str, serial_log: &str, now: f64) -> VmProgress {
        VmProgress {
            name: name.into(),
            mac: mac.to_ascii_lowercase(),
            ip: None,
            stage: Stage::Created,
            reached: BTreeMap::from([(Stage::Created, now)]),
            serial_log: serial_log.into(),
            bytes: 0,
            kernel_sent: false,
            initrd_sent: false,
            serial_tail: VecDeque::new(),
            failure: None,
            partial_line: String::new(),
        }
    }

    /// The last lines the guest wrote on its serial console.
    /// The line being written counts too: a login prompt has no newline.
    pub fn serial_tail(&self) -> impl Iterator<Item = &str> {
        let partial = Some(self.partial_line.trim_end_matches('\r')).filter(|l| !l.trim().is_empty());
        self.serial_tail.iter().map(String::as_str).chain(partial)
    }
}

/// A stage reached, as `up` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageEvent {
    pub vm: String,
    pub stage: Stage,
    /// Seconds since the lab started.
    pub at: f64,
    pub ip: Option<IpAddr>,
}

/// What counts as the bootloader, kernel and installer for this lab.
#[derive(Debug, Clone)]
pub struct Milestones {
    /// Boot-tree paths whose transfer means the bootloader runs:
    /// `pxelinux.0`, and `boot.ipxe` for iPXE clients.
    pub bootloaders: Vec<String>,
    pub kernel: String,
    pub initrd: String,
    /// FTP paths (with a leading `/`) whose fetch means the installer runs.
    pub installer_files: Vec<String>,
    pub expect: Option<regex::Regex>,
    /// After the installer: the installed system's console line (`--expect-installed`).
    pub expect_installed: Option<regex::Regex>,
    /// What the installer prints when it has failed (FAI's task errors, `--fail-on`).
    pub fail_on: Option<FailureSigns>,
}

/// An installer's console lines that say it failed, and the lines worth
/// showing with them. An installer that fails and goes on (FAI reboots into
/// a half-installed disk) would otherwise end as a timeout much later.
#[derive(Debug, Clone)]
pub struct FailureSigns {
    /// A line that ends the lab.
    pub fatal: regex::Regex,
    /// Lines that look fatal but are not, here.
    pub benign: Option<regex::Regex>,
    /// Earlier lines of the console kept in the error (the installer's own
    /// error lines: apt's `E:`, FAI's `ERROR`).
    pub context: regex::Regex,
}

/// The most console lines an installer failure quotes.
const FAILURE_LINES: usize = 8;

impl FailureSigns {
    /// FAI: a task that ends with an error code (`Exit code task_instsoft:
    /// 472`) or an installation it stopped (`FATAL ERROR`). Not
    /// `task_chboot`: on a FAI CD it always fails (no FAI server whose PXE
    /// config it could switch to local boot), and pxelab does that itself.
    pub fn fai() -> FailureSigns {
        FailureSigns {
            fatal: regex::Regex::new(r"^(Exit code task_\w+: [1-9]|FATAL ERROR)").expect("a valid pattern"),
            benign: Some(regex::Regex::new(r"^Exit code task_chboot: ").expect("a valid pattern")),
            context: regex::Regex::new(r"^(E: |ERROR|Error in task|Exit code task_|FATAL ERROR|WARNING: These unknown packages)").expect("a valid pattern"),
        }
    }

    /// `--fail-on REGEX`: the user's line, shown alone.
    pub fn user(fatal: regex::Regex) -> FailureSigns {
        FailureSigns { context: fatal.clone(), fatal, benign: None }
    }

    fn is_fatal(&self, line: &str) -> bool {
        self.fatal.is_match(line) && !self.benign.as_ref().is_some_and(|b| b.is_match(line))
    }

    /// The error for a VM whose console showed `fatal`: the context lines
    /// before it (from `tail`) and the line itself.
    fn describe(&self, vm: &str, tail: &VecDeque<String>) -> String {
        let lines: Vec<&str> = tail.iter().map(String::as_str).filter(|l| self.context.is_match(l) || self.fatal.is_match(l)).collect();
        let shown = &lines[lines.len().saturating_sub(FAILURE_LINES)..];
        format!("{vm}: the installer reported an error: {}", shown.join(" | "))
    }
}

/// Every VM of a lab and what has been seen of each.
#[derive(Debug)]
pub struct Progress {
    milestones: Milestones,
    vms: Vec<VmProgress>,
    held: HashMap<IpAddr, Vec<Transfer>>,
}

impl Progress {
    pub fn new(milestones: Milestones) -> Progress {
        Progress { milestones, vms: Vec::new(), held: HashMap::new() }
    }

    pub fn vms(&self) -> &[VmProgress] {
        &self.vms
    }

    pub fn tracks(&self, name: &str) -> bool {
        self.vms.iter().any(|v| v.name == name)
    }

    pub fn add_vm(&mut self, vm: VmProgress) {
        self.vms.push(vm);
    }

    /// Counts `bytes` sent to the VM named `vm`.
    pub fn add_bytes(&mut self, vm: &str, bytes: u64) {
        if let Some(v) = self.vms.iter_mut().find(|v| v.name == vm) {
            v.bytes += bytes;
        }
    }

    /// The first installer failure seen on a console, once.
    pub fn take_failure(&mut self) -> Option<String> {
        self.vms.iter_mut().find_map(|v| v.failure.take())
    }

    /// The earliest stage any VM is at.
    pub fn slowest(&self) -> Option<Stage> {
        self.vms.iter().map(|v| v.stage).min()
    }

    /// A lease seen for `mac`.
    pub fn on_lease(&mut self, mac: &str, ip: IpAddr, now: f64) -> Vec<StageEvent> {
        let mac = mac.to_ascii_lowercase();
        let Some(i) = self.vms.iter().position(|v| v.mac == mac) else { return Vec::new() };
        let mut events = Vec::new();
        if self.vms[i].ip != Some(ip) {
            self.vms[i].ip = Some(ip);
            events.extend(advance(&mut self.vms[i], Stage::Dhcp, now));
            for t in self.held.remove(&ip).unwrap_or_default() {
                events.extend(self.apply(i, &t, now));
            }
        }
        events
    }

    /// The VM named `name` is shut off. After its installer that is the
    /// install ending (installers power off when told to); before, it is a
    /// failure, named in the error.
    pub fn on_power_off(&mut self, name: &str, now: f64) -> Result<Vec<StageEvent>, String> {
        let Some(vm) = self.vms.iter_mut().find(|v| v.name == name) else { return Ok(Vec::new()) };
        if vm.stage >= Stage::Installer {
            return Ok(advance(vm, Stage::Installed, now));
        }
        Err(format!("{name} powered off before its installer started (it reached {})", vm.stage.name()))
    }

    /// The VM named `name` was handed its local-boot config after its
    /// installer: it rebooted and its firmware goes on to its disk. Without
    /// `--expect-installed` that is `installed`; with it, its console decides.
    pub fn on_disk_boot(&mut self, name: &str, now: f64) -> Vec<StageEvent> {
        if self.milestones.expect_installed.is_some() {
            return Vec::new();
        }
        match self.vms.iter_mut().find(|v| v.name == name && v.stage >= Stage::Installer) {
            Some(vm) => advance(vm, Stage::Installed, now),
            None => Vec::new(),
        }
    }

    /// A transfer finished (or ended) on one of our servers.
    pub fn on_transfer(&mut self, t: &Transfer, now: f64) -> Vec<StageEvent> {
        if !t.complete {
            return Vec::new();
        }
        let ip = t.client.ip();
        match self.vms.iter().position(|v| v.ip == Some(ip)) {
            Some(i) => self.apply(i, t, now),
            None => {
                self.held.entry(ip).or_default().push(t.clone());
                Vec::new()
            }
        }
    }

    fn apply(&mut self, i: usize, t: &Transfer, now: f64) -> Vec<StageEvent> {
        let m = &self.milestones;
        let vm = &mut self.vms[i];
        let boot_file = |vm: &mut VmProgress, path: &str| {
            if m.bootloaders.iter().any(|b| b == path) {
                return advance(vm, Stage::Bootloader, now);
            }
            vm.kernel_sent |= path == m.kernel;
            vm.initrd_sent |= path == m.initrd;
            if vm.kernel_sent && vm.initrd_sent {
                return advance(vm, Stage::Kernel, now);
            }
            Vec::new()
        };
        // With --expect, the console is the judge of the installer stage.
        let installer_file = |vm: &mut VmProgress, path: &str| {
            if m.expect.is_none() && m.installer_files.iter().any(|f| f == path) {
                return advance(vm, Stage::Installer, now);
            }
            Vec::new()
        };
        match t.protocol {
            Protocol::Tftp => boot_file(vm, &boot::normalize(&t.path).unwrap_or_default()),
            Protocol::Ftp => installer_file(vm, &t.path),
            // HTTP serves the boot tree, so the ISO's tree is under iso/:
            // `/iso/.treeinfo` is the installer's, `/iso/…/vmlinuz` the kernel.
            Protocol::Http => {
                let path = boot::normalize(&t.path).unwrap_or_default();
                let mut events = boot_file(vm, &path);
                if t.complete {
                    let in_iso = path.strip_prefix(boot::ISO_DIR).and_then(|p| p.strip_prefix('/')).map(|p| format!("/{p}"));
                    events.extend(installer_file(vm, in_iso.as_deref().unwrap_or(&t.path)));
                }
                events
            }
        }
    }

    /// New text from a VM's serial console.
    pub fn on_serial(&mut self, name: &str, text: &str, now: f64) -> Vec<StageEvent> {
        let Some(vm) = self.vms.iter_mut().find(|v| v.name == name) else { return Vec::new() };
        let mut matched = false;
        let text = format!("{}{text}", std::mem::take(&mut vm.partial_line));
        let mut lines: Vec<&str> = text.split('\n').collect();
        vm.partial_line = lines.pop().unwrap_or_default().to_string();
        let mut installed = false;
        for line in lines {
            let clean = line.trim_end_matches('\r');
            if self.milestones.expect.as_ref().is_some_and(|re| re.is_match(clean)) {
                matched = true;
            }
            // The installed system's line counts only after the installer ran.
            if (matched || vm.stage >= Stage::Installer) && self.milestones.expect_installed.as_ref().is_some_and(|re| re.is_match(clean)) {
                installed = true;
            }
            // Without --expect-installed: edk2 (a UEFI VM's firmware, which
            // tries its disk first) starting a boot option from the disk,
            // after the installer, is the installed system's boot.
            if vm.stage >= Stage::Installer && self.milestones.expect_installed.is_none() && edk2_boots_disk(clean) {
                installed = true;
            }
            vm.serial_tail.push_back(clean.to_string());
            if vm.serial_tail.len() > SERIAL_TAIL {
                vm.serial_tail.pop_front();
            }
            if let Some(signs) = self.milestones.fail_on.as_ref().filter(|s| vm.failure.is_none() && s.is_fatal(clean)) {
                vm.failure = Some(signs.describe(&vm.name, &vm.serial_tail));
            }
        }
        // A prompt without a newline (an installer's menu) still counts.
        if self.milestones.expect.as_ref().is_some_and(|re| re.is_match(&vm.partial_line)) {
            matched = true;
        }
        if (matched || vm.stage >= Stage::Installer) && self.milestones.expect_installed.as_ref().is_some_and(|re| re.is_match(&vm.partial_line)) {
            installed = true;
        }
        match (matched, installed) {
            (_, true) => advance(vm, Stage::Installed, now),
            (true, false) => advance(vm, Stage::Installer, now),
            (false, false) => Vec::new(),
        }
    }
}

/// Whether a console line is edk2 (OVMF, AAVMF) starting a boot option
/// that is not the network's: `BdsDxe: starting Boot0001 "UEFI Misc
/// Device" from PciRoot(0x0)/Pci(0x2,0x0)`, or an installer's entry
/// `from HD(1,GPT,…)/\EFI\debian\shimx64.efi`. The network's options
/// name a `MAC(…)`; edk2's own applications (its menu, the shell) an `Fv(…)`.
fn edk2_boots_disk(line: &str) -> bool {
    let Some(at) = line.find("BdsDxe: starting Boot") else { return false };
    let Some((_, path)) = line[at..].split_once("\" from ") else { return false };
    !path.contains("MAC(") && !path.starts_with("Fv(") && !path.contains("Uri(")
}

/// Moves `vm` to `stage` (and every stage before it not yet seen).
fn advance(vm: &mut VmProgress, stage: Stage, now: f64) -> Vec<StageEvent> {
    // Stamps come from several clocks' readings (a transfer's end, a poll):
    // a stage is never stamped before one it follows.
    let now = vm.reached.values().fold(now, |at, seen| at.max(*seen));
    let mut events = Vec::new();
    for s in Stage::ALL.into_iter().filter(|s| *s <= stage) {
        if let std::collections::btree_map::Entry::Vacant(e) = vm.reached.entry(s) {
            e.insert(now);
            events.push(StageEvent { vm: vm.name.clone(), stage: s, at: now, ip: vm.ip });
        }
    }
    if stage > vm.stage {
        vm.stage = stage;
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn milestones(expect: Option<&str>) -> Milestones {
        Milestones {
            bootloaders: vec!["pxelinux.0".into(), "boot.ipxe".into()],
            kernel: "iso/images/pxeboot/vmlinuz".into(),
            initrd: "iso/images/pxeboot/initrd.img".into(),
            installer_files: vec!["/.treeinfo".into(), "/images/install.img".into()],
            expect: expect.map(|e| regex::Regex::new(e).unwrap()),
            expect_installed: None,
            fail_on: None,
        }
    }

    fn transfer(protocol: Protocol, ip: &str, path: &str, complete: bool) -> Transfer {
        Transfer {
            protocol,
            client: SocketAddr::new(ip.parse().unwrap(), 1000),
            path: path.into(),
            bytes: 10,
            size: 10,
            started_at_offset: 0,
            duration: Duration::from_millis(1),
            complete,
            ended: std::time::Instant::now(),
        }
    }

    #[test]
    fn over_http_the_ipxe_path_and_a_whole_iso_download_count() {
        let mut m = milestones(None);
        m.installer_files.push("/ubuntu.iso".into());
        let mut p = Progress::new(m);
        p.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
        p.on_lease("52:54:00:aa:bb:cc", "10.0.0.5".parse().unwrap(), 1.0);
        let at = |events: Vec<StageEvent>| events.last().map(|e| e.stage);
        assert_eq!(at(p.on_transfer(&transfer(Protocol::Http, "10.0.0.5", "/boot.ipxe", true), 2.0)), Some(Stage::Bootloader));
        assert!(p.on_transfer(&transfer(Protocol::Http, "10.0.0.5", "/iso/images/pxeboot/vmlinuz", true), 3.0).is_empty());
        assert_eq!(at(p.on_transfer(&transfer(Protocol::Http, "10.0.0.5", "/iso/images/pxeboot/initrd.img", true), 4.0)), Some(Stage::Kernel));
        // Ubuntu: the installer is running once the whole ISO arrived, not before.
        assert!(p.on_transfer(&transfer(Protocol::Http, "10.0.0.5", "/ubuntu.iso", false), 5.0).is_empty(), "a cut-off download");
        assert_eq!(at(p.on_transfer(&transfer(Protocol::Http, "10.0.0.5", "/ubuntu.iso", true), 6.0)), Some(Stage::Installer));
    }

    #[test]
    fn a_stage_stamped_by_an_earlier_clock_reading_is_never_before_the_one_it_follows() {
        let mut p = Progress::new(milestones(None));
        p.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
        p.on_lease("52:54:00:aa:bb:cc", "10.0.0.5".parse().unwrap(), 2.0);
        // The boot file's transfer ended at 1.9 (its own time), the lease was polled at 2.0.
        let events = p.on_transfer(&transfer(Protocol::Http, "10.0.0.5", "/boot.ipxe", true), 1.9);
        assert_eq!(events.iter().map(|e| (e.stage, e.at)).collect::<Vec<_>>(), vec![(Stage::Bootloader, 2.0)]);
        assert!(p.on_transfer(&transfer(Protocol::Http, "10.0.0.5", "/iso/images/pxeboot/vmlinuz", true), 2.4).is_empty());
        let events = p.on_transfer(&transfer(Protocol::Http, "10.0.0.5", "/iso/images/pxeboot/initrd.img", true), 2.5);
        assert_eq!(events.iter().map(|e| (e.stage, e.at)).collect::<Vec<_>>(), vec![(Stage::Kernel, 2.5)], "its own time when in order");
    }

    #[test]
    fn a_fai_task_error_is_a_failure_quoting_fai_s_own_lines() {
        let mut p = Progress::new(Milestones { fail_on: Some(FailureSigns::fai()), ..milestones(None) });
        p.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
        // Lines FAI prints on a good run are not failures.
        p.on_serial("vm1", "Calling task_instsoft\nERROR: is only a word here\nExit code task_x: 0\nExit code task_chboot: 2\n", 1.0);
        assert_eq!(p.take_failure(), None);
        let console = "E: Version '99' for 'less' was not found\nSetting up x ...\nExit code task_instsoft: 472\nCalling task_configure\n";
        p.on_serial("vm1", console, 2.0);
        let why = p.take_failure().expect("a failure");
        assert!(why.starts_with("vm1: the installer reported an error: "), "{why}");
        assert!(why.contains("E: Version '99' for 'less' was not found | Exit code task_instsoft: 472"), "{why}");
        assert!(!why.contains("Setting up"), "only FAI's error lines: {why}");
        assert_eq!(p.take_failure(), None, "reported once");
        // A user's pattern (`--fail-on`) is the line alone.
        let mut p = Progress::new(Milestones { fail_on: Some(FailureSigns::user(regex::Regex::new("^Kernel panic").unwrap())), ..milestones(None) });
        p.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
        p.on_serial("vm1", "E: other\nKernel panic - not syncing\n", 1.0);
        assert_eq!(p.take_failure().as_deref(), Some("vm1: the installer reported an error: Kernel panic - not syncing"));
    }

    #[test]
    fn a_prompt_without_a_newline_is_in_the_tail() {
        let mut p = Progress::new(milestones(Some("login:")));
        p.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
        assert_eq!(p.on_serial("vm1", "Debian GNU/Linux 12 host ttyS0\r\n\r\nhost login: ", 1.0).last().unwrap().stage, Stage::Installer);
        let tail: Vec<&str> = p.vms()[0].serial_tail().collect();
        assert_eq!(tail, ["Debian GNU/Linux 12 host ttyS0", "", "host login: "]);
    }

    #[test]
    fn a_uefi_vm_starting_its_disk_after_the_installer_is_installed() {
        const EMPTY_DISK: &str = "BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0): Not Found\r\n";
        const PXE: &str =
            "\x1b[0mBdsDxe: starting Boot0002 \"UEFI PXEv4 (MAC:525400B8E789)\" from PciRoot(0x0)/Pci(0x1,0x0)/MAC(525400B8E789,0x1)/IPv4(0.0.0.0)\r\n";
        const DISK: &str = "\x1b[2J\x1b[01;01HBdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\r\n";
        const ENTRY: &str = "BdsDxe: starting Boot0004 \"debian\" from HD(1,GPT,3F2D,0x800,0x1F000)/\\EFI\\debian\\shimaa64.efi\r\n";
        const MENU: &str = "BdsDxe: starting Boot0000 \"UiApp\" from Fv(64074AFE-340A-4BE6-94BA-91B5B4D0F71E)/FvFile(462CAA21)\r\n";
        for disk in [DISK, ENTRY] {
            let mut p = Progress::new(milestones(Some("installer ready")));
            p.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
            assert!(p.on_serial("vm1", &format!("{EMPTY_DISK}{PXE}{disk}"), 1.0).is_empty(), "before the installer, a disk boot is nothing");
            p.on_serial("vm1", "PXELAB-STAGE: installer ready\n", 2.0);
            assert!(p.on_serial("vm1", &format!("{EMPTY_DISK}{PXE}{MENU}"), 3.0).is_empty(), "the network and the firmware's menu are not the disk");
            assert_eq!(p.on_serial("vm1", disk, 4.0).last().map(|e| e.stage), Some(Stage::Installed), "{disk}");
        }
        let mut with = Progress::new(Milestones { expect_installed: Some(regex::Regex::new("login:").unwrap()), ..milestones(Some("ready")) });
        with.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
        with.on_serial("vm1", "ready\n", 1.0);
        assert!(with.on_serial("vm1", DISK, 2.0).is_empty(), "with --expect-installed its console decides");
    }

    #[test]
    fn with_expect_only_the_console_counts_for_installer() {
        let mut p = Progress::new(milestones(Some("installer ready")));
        p.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
        p.on_lease("52:54:00:aa:bb:cc", "10.0.0.5".parse().unwrap(), 1.0);
        assert!(p.on_transfer(&transfer(Protocol::Ftp, "10.0.0.5", "/.treeinfo", true), 2.0).is_empty());
        assert_eq!(p.on_serial("vm1", "PXELAB-STAGE: installer ready\n", 3.0).last().unwrap().stage, Stage::Installer);
    }

    #[test]
    fn stages_follow_real_events_in_order() {
        let mut p = Progress::new(milestones(None));
        p.add_vm(VmProgress::new("vm1", "52:54:00:AA:BB:CC", "/log", 0.0));
        assert!(p.on_lease("52:54:00:00:00:01", "10.0.0.9".parse().unwrap(), 1.0).is_empty(), "someone else's lease");
        let e = p.on_lease("52:54:00:aa:bb:cc", "10.0.0.5".parse().unwrap(), 2.0);
        assert_eq!(e.iter().map(|e| e.stage).collect::<Vec<_>>(), vec![Stage::Dhcp]);
        assert!(p.on_transfer(&transfer(Protocol::Tftp, "10.0.0.5", "/pxelinux.0", false), 3.0).is_empty(), "incomplete");
        assert_eq!(p.on_transfer(&transfer(Protocol::Tftp, "10.0.0.5", "/pxelinux.0", true), 3.0)[0].stage, Stage::Bootloader);
        assert!(p.on_transfer(&transfer(Protocol::Tftp, "10.0.0.5", "iso/images/pxeboot/vmlinuz", true), 4.0).is_empty());
        assert!(p.on_transfer(&transfer(Protocol::Tftp, "10.0.0.9", "iso/images/pxeboot/initrd.img", true), 4.5).is_empty(), "another client");
        assert_eq!(p.on_transfer(&transfer(Protocol::Tftp, "10.0.0.5", "iso/images/pxeboot/initrd.img", true), 5.0)[0].stage, Stage::Kernel);
        assert_eq!(p.on_transfer(&transfer(Protocol::Ftp, "10.0.0.5", "/.treeinfo", true), 6.0)[0].stage, Stage::Installer);
        assert_eq!(p.vms()[0].reached.len(), 5);
        assert_eq!(p.slowest(), Some(Stage::Installer));
    }

    #[test]
    fn transfers_before_the_lease_is_seen_are_held() {
        let mut p = Progress::new(milestones(None));
        p.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
        assert!(p.on_transfer(&transfer(Protocol::Tftp, "10.0.0.5", "pxelinux.0", true), 1.0).is_empty());
        let e = p.on_lease("52:54:00:aa:bb:cc", "10.0.0.5".parse().unwrap(), 2.0);
        assert_eq!(e.iter().map(|e| e.stage).collect::<Vec<_>>(), vec![Stage::Dhcp, Stage::Bootloader]);
    }

    #[test]
    fn expect_matches_the_serial_console_even_without_a_newline() {
        let mut p = Progress::new(milestones(Some("Choose language|Select a language")));
        p.add_vm(VmProgress::new("vm1", "52:54:00:aa:bb:cc", "/log", 0.0));
        assert!(p.on_serial("vm1", "booting...\r\nSelect a lan", 1.0).is_empty());
        let e = p.on_serial("vm1", "guage", 2.0);
        assert_eq!(e.last().unwrap().stage, Stage::Installer, "matched across two reads");
        assert_eq!(e.len(), 4, "dhcp, bootloader and kernel are implied");
        assert_eq!(p.vms()[0].serial_tail().collect::<Vec<_>>(), vec!["booting...", "Select a language"], "the prompt being written too");
    }
}
