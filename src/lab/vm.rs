//! `pxelab vm new|list|rm|console`: pxelab's VMs.
//!
//! A VM made while a lab runs on its network joins that lab: it is recorded
//! in the lab's journal (so `down` removes it) and the lab follows its boot.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{read_appended, state_dir_or_err, state_subdir, VmShape};
use crate::blocking;
use crate::error::{Error, Result};
use crate::virt::accel::{self, HostKvm};
use crate::virt::domain::{self, VmInfo};
use crate::virt::domxml::{self, VmMeta, VmSpec};
use crate::virt::{network, Libvirt};

/// Words for generated names: short, distinct, easy to type.
const NAME_WORDS: [&str; 8] = ["oak", "elm", "ash", "fir", "yew", "bay", "fig", "ivy"];

/// How often `vm console -f` looks for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct VmNewRequest {
    pub uri: String,
    pub name: Option<String>,
    /// `None`: the running lab's network, else `default`.
    pub network: Option<String>,
    pub shape: VmShape,
    pub serial_log: Option<PathBuf>,
    pub pxe: bool,
}

#[derive(Debug, Serialize)]
pub struct VmNewReport {
    #[serde(flatten)]
    pub vm: VmInfo,
    pub accel_reason: String,
    /// The VM joined the running lab (`pxelab status` shows its progress; `down` removes it).
    pub joined_lab: bool,
}

/// Where pxelab's own storage pool keeps disks, when libvirt has no
/// `default` pool: `$PXELAB_IMAGES_DIR`, else `/var/lib/pxelab/images` for
/// root, else `$XDG_DATA_HOME/pxelab/images`. It is not under the state
/// directory: the pool outlives any one lab, as libvirt's own pools do.
pub(crate) fn images_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PXELAB_IMAGES_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/var/lib/pxelab/images"));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| Error::environment("neither HOME nor XDG_DATA_HOME is set"))?;
    Ok(data.join("pxelab/images"))
}

/// `pxelab vm new`.
pub async fn vm_new(request: VmNewRequest) -> Result<VmNewReport> {
    if let Some(name) = &request.name {
        if !domxml::valid_name(name) {
            return Err(Error::bad_input(format!("--name {name:?}: use 1-64 letters, digits, '-', '_' or '.', not starting with '-' or '.'")));
        }
    }
    request.shape.check()?;
    let forced = request.shape.accel;
    let choice = blocking::run(move || accel::choose(forced, &HostKvm::probe())).await;
    // A VM made while a lab runs joins it: its network, its journal (so
    // `down` removes it) and its progress report.
    let state = state_dir_or_err()?;
    let lab = super::record::read(&state).ok().flatten().filter(|l| super::record::alive(l.pid) && l.uri == request.uri);
    let network_name = match (&request.network, &lab) {
        (Some(n), _) => n.clone(),
        (None, Some(lab)) => lab.network.clone(),
        (None, None) => "default".to_string(),
    };
    let joins_lab = lab.as_ref().is_some_and(|l| l.network == network_name);
    let libvirt = Libvirt::connect(&request.uri).await?;
    let net = network_name.clone();
    libvirt.call(move |c| network::read(c, &net)).await?;

    let name = match request.name.clone() {
        Some(name) => name,
        None => generate_name(&libvirt.call(domain::names).await?),
    };
    let serial_log = match request.serial_log.clone() {
        Some(path) => path,
        None => state_subdir("logs")?.join(format!("{name}.serial.log")),
    };
    let pool_dir = images_dir()?;
    if joins_lab {
        super::journal::Journal::open(&state)
            .and_then(|j| j.record_vm(&super::journal::CreatedVm { uri: request.uri.clone(), name: name.clone() }))
            .map_err(|e| Error::environment(format!("cannot write the journal: {e}")))?;
    }
    let spec = VmSpec {
        name,
        network: network_name,
        memory_mib: request.shape.memory_mib,
        vcpus: request.shape.vcpus,
        disk_gib: request.shape.disk_gib,
        accel: choice.accel,
        serial_log,
        pxe: request.pxe,
        // libvirt picks; a running lab reads it from the domain when it adopts the VM.
        mac: None,
    };
    tracing::debug!("creating VM {} on {} ({:?})", spec.name, spec.network, spec.accel);
    let vm = create(&libvirt, spec, pool_dir).await?;
    Ok(VmNewReport { vm, accel_reason: choice.reason, joined_lab: joins_lab })
}

/// Creates and starts a VM; a VM that fails to start leaves no serial log
/// behind (libvirt opens it before QEMU runs).
pub(crate) async fn create(libvirt: &Libvirt, spec: VmSpec, pool_dir: PathBuf) -> Result<VmInfo> {
    let log = spec.serial_log.clone();
    let log_existed = log.exists();
    match libvirt.call(move |c| domain::create(c, &spec, &pool_dir)).await {
        Ok(vm) => Ok(vm),
        Err(e) => {
            if !log_existed {
                let _ = std::fs::remove_file(&log);
            }
            Err(e.into())
        }
    }
}

/// `pxelab-<word>-<n>`, the first one not taken.
pub(crate) fn generate_name(taken: &[String]) -> String {
    let word = NAME_WORDS[std::process::id() as usize % NAME_WORDS.len()];
    (1..).map(|n| format!("pxelab-{word}-{n}")).find(|candidate| !taken.contains(candidate)).expect("an unbounded range has a free name")
}

/// `pxelab vm list`.
pub async fn vm_list(uri: &str) -> Result<Vec<VmInfo>> {
    let libvirt = Libvirt::connect(uri).await?;
    Ok(libvirt.call(domain::list).await?)
}

/// `pxelab vm rm`.
pub async fn vm_rm(uri: &str, name: &str) -> Result<VmMeta> {
    let libvirt = Libvirt::connect(uri).await?;
    let name = name.to_string();
    tracing::debug!("removing VM {name}");
    Ok(libvirt.call(move |c| domain::remove(c, &name)).await?)
}

/// `pxelab vm console`: writes the serial log to `out`; with `follow`, keeps
/// writing what the guest writes until the VM stops or `shutdown`.
pub async fn vm_console(uri: &str, name: &str, follow: bool, shutdown: CancellationToken, out: &mut (dyn Write + Send)) -> Result<()> {
    super::refuse_remote(uri, "vm console")?;
    let libvirt = Libvirt::connect(uri).await?;
    let owned = name.to_string();
    let info = libvirt.call(move |c| domain::info(c, &owned)).await?;
    let path = PathBuf::from(&info.meta.serial_log);
    let mut offset = 0u64;
    loop {
        let (read, at) = blocking::run({
            let path = path.clone();
            move || {
                let read = read_appended(&path, &mut offset);
                (read, offset)
            }
        })
        .await;
        offset = at;
        match read {
            Ok(bytes) => {
                // A reader that went away (`| head`) ends the console quietly.
                if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {}
            Err(e) => return Err(Error::environment(format!("cannot read serial log {}: {e}", path.display()))),
        }
        if !follow {
            return Ok(());
        }
        let owned = name.to_string();
        if !libvirt.call(move |c| domain::info(c, &owned)).await?.state.is_live() {
            return Ok(());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_skip_taken_ones() {
        let first = generate_name(&[]);
        assert!(first.starts_with("pxelab-") && first.ends_with("-1"), "{first}");
        let second = generate_name(std::slice::from_ref(&first));
        assert_ne!(first, second);
        assert!(domxml::valid_name(&second));
    }
}
