//! The lab: what ties the ISO reader, the boot tree, the servers and
//! libvirt together for each verb. Data flows one way: the CLI calls the
//! lab, the lab calls the parts, and the parts never call back up.
//!
//! One file (or folder) per verb family: `up` (and `detach`, its background form),
//! `down` (with `status`), `serve`, `vm`, `net`, `doctor`, `inspect`,
//! `dhcp_config`. Every host change is recorded in `journal` before it is
//! made and undone by `undo`; `record` is the running lab's report
//! (`lab.json`), `progress` the pure state machine of a VM's boot and
//! `console` the lab's record of its VMs' serial consoles. `event` holds
//! what a lab reports, which `up`, `down`, `undo` and the CLI all speak.
//!
//! A part's error becomes a user-facing [`Error`] through the `From` impls
//! in `crate::error`, so the verbs use `?`. Blocking host work runs through
//! `crate::blocking::run` and libvirt through `Libvirt::call`.

mod console;
mod detach;
mod dhcp_config;
mod doctor;
mod down;
mod event;
mod inspect;
pub mod journal;
pub(crate) mod labs;
mod machine;
mod net;
pub mod progress;
mod proxy;
pub mod record;
mod serve;
mod undo;
mod up;
mod vm;

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::arch::Arch;
use crate::blocking;
use crate::boot::{BootOptions, BootTree, DefaultEntry, UefiLoader, Ui};
use crate::error::{Error, Result};
use crate::iso::{self, Distro, IsoIndex, Overrides};
use crate::serve::{Protocol, ServeError};
use crate::virt::accel::{self, Accel, AccelChoice, HostKvm};
use crate::virt::{Libvirt, VirtError};

pub use detach::{detach, Detached};
pub use dhcp_config::{dhcp_config, DhcpFormat, DhcpRequest};
pub use doctor::{doctor, Check, DoctorReport, DoctorRequest, Status as CheckStatus};
pub use down::{down, status, unreadable_error, DownReport, StatusReport, Which};
pub use event::{EventSink, LabEvent, VmSummary};
pub use inspect::{inspect, InspectRequest, Inspection};
pub use net::{check_boot_file, net_patch, net_restore, NetPatchReport, NetPatchRequest, NetRestoreReport, NetRestoreRequest};
pub use serve::{authority, parse_port_range, serve, Ready, ServeOrProxy, ServeRequest};
pub use up::{up, UpRequest};
pub use vm::{vm_console, vm_list, vm_new, vm_rm, ConsoleOut, VmNewReport, VmNewRequest};

/// Overrides where pxelab keeps its state (journal, logs, disks of its own pool).
pub const STATE_DIR_ENV: &str = "PXELAB_STATE_DIR";

/// What each VM gets: the same flags on `up` and `vm new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmShape {
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disk_gib: u64,
    /// `None` for `--accel auto`.
    pub accel: Option<Accel>,
    /// `--arch`; `None`: the ISO's (`up`), the running lab's (`vm new`), else x86-64.
    pub arch: Option<Arch>,
}

impl VmShape {
    /// A VM libvirt and an installer can start at all.
    pub fn check(&self) -> Result<()> {
        if self.memory_mib < 64 || self.vcpus == 0 || self.disk_gib == 0 {
            return Err(Error::bad_input("--memory must be at least 64 (MiB), --vcpus and --disk-size at least 1"));
        }
        Ok(())
    }
}

/// pxelab's state directory: `$PXELAB_STATE_DIR` when set, else
/// `/var/lib/pxelab` for root, else `$XDG_STATE_HOME/pxelab` (or
/// `~/.local/state/pxelab`).
pub fn state_dir() -> std::io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(STATE_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/var/lib/pxelab"));
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("pxelab"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "neither HOME nor XDG_STATE_HOME is set"))?;
    Ok(PathBuf::from(home).join(".local/state/pxelab"))
}

/// [`state_dir`], as a user-facing error (exit 4) when it cannot be found
/// or is something other than a directory.
pub fn state_dir_or_err() -> Result<PathBuf> {
    let dir = state_dir().map_err(|e| Error::environment(format!("cannot find pxelab's state directory: {e}")))?;
    match std::fs::metadata(&dir) {
        Ok(meta) if !meta.is_dir() => {
            let how =
                if std::env::var_os(STATE_DIR_ENV).is_some() { format!("point {STATE_DIR_ENV} at a directory") } else { "move that file away".to_string() };
            Err(Error::environment(format!("pxelab's state directory {} is not a directory; {how}", dir.display())))
        }
        _ => Ok(dir),
    }
}

/// `dir`, created if missing (exit 4 when it cannot be).
pub(crate) fn ensure_dir(dir: PathBuf) -> Result<PathBuf> {
    std::fs::create_dir_all(&dir).map_err(|e| Error::environment(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// A folder of the state directory (`logs`, …), created if missing.
pub(crate) fn state_subdir(name: &str) -> Result<PathBuf> {
    ensure_dir(state_dir_or_err()?.join(name))
}

/// An ISO read and understood, and the boot tree made from it: what `serve`
/// and `up` both prepare before any server starts.
pub(crate) struct Prepared {
    pub iso: Arc<IsoIndex>,
    pub distro: Distro,
    pub tree: BootTree,
    /// The kernel command line in the menu, `{server}` filled in.
    pub kernel_args: String,
    /// The architecture the installer is booted on: the one asked for,
    /// else the ISO's (x86-64 when it names none pxelab knows).
    pub arch: Arch,
}

/// How the boot tree is to be made.
pub(crate) struct BootPlan<'a> {
    pub overrides: &'a Overrides,
    /// What replaces `{server}` in the kernel arguments (see [`authority`]).
    pub authority: &'a str,
    pub default: DefaultEntry,
    /// Add a serial console to the kernel arguments when they have none:
    /// where `up` (and CI) watch the installer.
    pub serial_console: bool,
    /// `--arch`: the VMs' architecture, whatever the ISO says.
    pub arch: Option<Arch>,
    /// `http://ADDR[:PORT]` when HTTP is served: the tree then has the iPXE
    /// script (`boot.ipxe`) that boots over it.
    pub http_base: Option<String>,
    /// A lab's tree: the installer script goes only to the lab's own VMs
    /// (`BootTree::boot_at_once`), other iPXE clients to pxelinux on this
    /// TFTP server. `None`: every iPXE client boots the installer (`serve`).
    pub lab_tftp: Option<IpAddr>,
}

/// Opens the ISO, detects its distribution and builds the boot tree.
pub(crate) fn prepare(iso_path: &Path, plan: &BootPlan<'_>) -> Result<Prepared> {
    let iso = Arc::new(IsoIndex::open(iso_path)?);
    let distro = iso::detect(&iso, plan.overrides)?;
    let arch = plan.arch.or_else(|| distro.installer_arch()).unwrap_or_default();
    let mut kernel_args = distro.kernel_args_for(plan.authority);
    if plan.serial_console && !kernel_args.split_whitespace().any(|w| w.starts_with("console=")) {
        // tty0 first, the serial port last: the kernel's /dev/console is the last one.
        let tty0 = if arch == Arch::X86_64 { "console=tty0 " } else { "" };
        kernel_args = format!("{kernel_args} {tty0}console={},115200", arch.serial_console()).trim().to_string();
    }
    let options = BootOptions { append: kernel_args.clone(), default: plan.default, ui: Ui::Vesa };
    let mut tree = BootTree::for_distro(iso.clone(), &distro, &options)?;
    if let Some(base) = &plan.http_base {
        tree = match plan.lab_tftp {
            Some(tftp) => tree.with_ipxe_per_vm(base, &distro, &kernel_args, tftp),
            None => tree.with_ipxe(base, &distro, &kernel_args),
        };
    }
    // UEFI clients that are not iPXE, per architecture: the ISO's signed
    // shim and GRUB, else the host's; without either they are not served
    // (iPXE ones still are). The host's pair is in the tree either way, so
    // `efi/bootx64.efi` is a name other DHCP servers can always be given
    // (`dhcp-config`).
    for arch in Arch::ALL {
        match UefiLoader::from_host(arch) {
            Ok(host) => tree = tree.with_uefi(host),
            Err(missing) => tracing::debug!("no host shim and GRUB for {arch} UEFI PXE clients: {missing}"),
        }
        if let Some(own) = UefiLoader::in_iso(&iso, arch) {
            tree = tree.with_uefi(own);
        }
    }
    Ok(Prepared { iso, distro, tree, kernel_args, arch })
}

/// What `path` gained since `offset` (serial logs: `up` watches them,
/// `vm console -f` prints them); advances `offset`. Blocking: call it
/// through `crate::blocking::run`.
pub(crate) fn read_appended(path: &Path, offset: &mut u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len <= *offset {
        return Ok(Vec::new());
    }
    file.seek(SeekFrom::Start(*offset))?;
    let mut buf = Vec::with_capacity((len - *offset) as usize);
    file.read_to_end(&mut buf)?;
    *offset += buf.len() as u64;
    Ok(buf)
}

/// The options a verb offers for where it serves, named in the fix when a
/// server cannot start: every hint names an option the verb really has.
pub(crate) struct ServeFlags {
    /// `--bind` (serve) or `--server-ip` (up).
    pub address: &'static str,
    /// `None` where TFTP's port is not the user's to choose: a PXE client
    /// asks for port 69 and no other.
    pub tftp_port: Option<&'static str>,
    pub ftp_port: &'static str,
    pub http_port: &'static str,
    pub passive_ports: &'static str,
}

/// A server that cannot start, as the user sees it, with the verb's fix.
pub(crate) fn server_error(e: ServeError, flags: &ServeFlags) -> Error {
    let fix = match &e {
        ServeError::Tree { .. } | ServeError::Clash(_) => return Error::bad_input(e.to_string()),
        ServeError::PassiveBusy { .. } => format!("stop what holds them, or choose a free range with {}", flags.passive_ports),
        ServeError::PortBusy { protocol: Protocol::Tftp, .. } => match flags.tftp_port {
            Some(flag) => format!("stop that process or choose another port with {flag}"),
            None => "stop that process (`pxelab doctor` names it): PXE clients ask for TFTP on port 69 only".to_string(),
        },
        ServeError::PortBusy { protocol: Protocol::Ftp, .. } => format!("stop that process or choose another port with {}", flags.ftp_port),
        ServeError::PortBusy { protocol: Protocol::Http, .. } => format!("stop that process or choose another port with {}", flags.http_port),
        ServeError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrNotAvailable => {
            format!("pass one of this host's addresses with {}", flags.address)
        }
        ServeError::Bind { .. } => return Error::environment(e.to_string()),
    };
    Error::environment(format!("{e}; {fix}"))
}

/// Whether the libvirt host behind `libvirt` is this machine: a local URI,
/// or a remote one whose host has this host's name (an ssh URI that loops
/// back). Only then does `/dev/kvm` here say anything about its guests.
pub(crate) async fn libvirt_is_here(libvirt: &Libvirt) -> bool {
    if !crate::virt::is_remote(libvirt.uri()) {
        return true;
    }
    let theirs = libvirt.call(|c| c.get_hostname().map_err(|e| VirtError::libvirt("reading the libvirt host's name", e))).await;
    let ours = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string());
    matches!((theirs, ours), (Ok(t), Ok(o)) if t == o)
}

/// `--accel` or the automatic choice, for the host the VMs run on; `here`
/// is [`libvirt_is_here`], which the caller may need for more than this.
pub(crate) async fn choose_accel(libvirt: &Libvirt, here: bool, requested: Option<Accel>) -> AccelChoice {
    if here {
        return blocking::run(move || accel::choose(requested, &HostKvm::probe())).await;
    }
    let offered = libvirt.call(|c| Ok(accel::kvm_offered(c))).await.unwrap_or(false);
    accel::choose_for_remote(requested, offered)
}

/// An address a PXE server can be given: IPv4 (bootp and pxelinux know no other).
pub(crate) fn ipv4_server(flag: &str, ip: IpAddr) -> Result<IpAddr> {
    if !ip.is_ipv4() {
        return Err(Error::bad_input(format!("{flag} {ip}: PXE needs an IPv4 address")));
    }
    Ok(ip)
}

/// Fault injection for tests of crash recovery: with `PXELAB_PAUSE_AT=STEP`,
/// pxelab stops for a minute at that step, so a test can kill it there.
/// The verb's shutdown signal (SIGTERM, SIGINT) ends the pause early, so
/// signal tests do not wait the minute out; the verb then tears down.
pub(crate) async fn pause_point(step: &str, shutdown: &CancellationToken) {
    if std::env::var("PXELAB_PAUSE_AT").is_ok_and(|s| s == step) {
        let _ = writeln!(std::io::stderr(), "pxelab: paused at {step} (PXELAB_PAUSE_AT)");
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
