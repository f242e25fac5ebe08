//! The lab: what ties the ISO reader, the boot tree, the servers and
//! libvirt together for each verb. Data flows one way: the CLI calls the
//! lab, the lab calls the parts, and the parts never call back up.
//!
//! This is also where a part's own error becomes a user-facing [`Error`]
//! with its exit code, because only here is it known what the user was
//! doing when it happened.

mod dhcp_config;
mod doctor;
mod inspect;
pub mod journal;
mod net;
pub mod progress;
pub mod record;
mod serve;
mod up;
mod vm;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::iso::{self, DetectError, Distro, IsoError, IsoIndex, Overrides};
use crate::virt::VirtError;

pub use dhcp_config::{dhcp_config, DhcpFormat};
pub use doctor::{doctor, Check, DoctorReport, DoctorRequest, Status as CheckStatus};
pub use inspect::{inspect, Inspection};
pub use net::{net_patch, net_restore, NetPatchReport, NetPatchRequest, NetRestoreReport};
pub use serve::{ftp_authority, parse_port_range, serve, Ready, ServeRequest};
pub use up::{down, status, up, DownReport, LabEvent, StatusReport, UpRequest, VmSummary};
pub use vm::{vm_console, vm_list, vm_new, vm_rm, VmNewReport, VmNewRequest};

/// Overrides where pxelab keeps its state (journal, logs, disks of its own pool).
pub const STATE_DIR_ENV: &str = "PXELAB_STATE_DIR";

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
    let home = std::env::var_os("HOME")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "neither HOME nor XDG_STATE_HOME is set"))?;
    Ok(PathBuf::from(home).join(".local/state/pxelab"))
}

/// Opens and indexes an ISO, mapping failures to exit code 3.
pub fn open_iso(path: &Path) -> Result<Arc<IsoIndex>> {
    IsoIndex::open(path).map(Arc::new).map_err(|e| match e {
        IsoError::Open { .. } | IsoError::NotIso { .. } | IsoError::Truncated { .. } | IsoError::Corrupt { .. } => {
            Error::bad_input(e.to_string())
        }
    })
}

/// Detects the distribution, mapping failures to exit code 3.
pub fn detect(iso: &IsoIndex, overrides: &Overrides) -> Result<Distro> {
    iso::detect(iso, overrides).map_err(|e: DetectError| Error::bad_input(e.to_string()))
}

/// [`state_dir`], as a user-facing error (exit 4) when it cannot be found.
pub fn state_dir_or_err() -> Result<PathBuf> {
    state_dir().map_err(|e| Error::environment(format!("cannot find pxelab's state directory: {e}")))
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

/// A libvirt failure as the user sees it, with its exit code.
pub(crate) fn virt_error(e: VirtError) -> Error {
    match e {
        VirtError::NoNetwork(_) | VirtError::NoDomain(_) | VirtError::Refused(_) => Error::bad_input(e.to_string()),
        VirtError::Xml(crate::virt::netxml::XmlError::NoIpv4Dhcp { .. })
        | VirtError::Xml(crate::virt::netxml::XmlError::BadValue { .. }) => Error::bad_input(e.to_string()),
        VirtError::Connect { .. } | VirtError::NotReady(_) | VirtError::Libvirt { .. } | VirtError::Xml(_) => {
            Error::environment(e.to_string())
        }
    }
}

/// Fault injection for tests of crash recovery: with `PXELAB_PAUSE_AT=STEP`,
/// pxelab stops for a minute at that step, so a test can kill it there. A
/// SIGTERM or SIGINT ends the pause early (the lab's own handler sees the
/// same signal and tears down), so signal tests do not wait the minute out.
pub(crate) async fn pause_point(step: &str) {
    if std::env::var("PXELAB_PAUSE_AT").is_ok_and(|s| s == step) {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return;
        };
        eprintln!("pxelab: paused at {step} (PXELAB_PAUSE_AT)");
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
