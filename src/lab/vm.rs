//! `pxelab vm new|list|rm|console`: pxelab's VMs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::{state_dir_or_err, state_subdir, virt_error};
use crate::error::{Error, Result};
use crate::virt::accel::{self, Accel, HostKvm};
use crate::virt::domain::{self, VmInfo, VmSpec};
use crate::virt::{network, Libvirt};

/// Words for generated names: short, distinct, easy to type.
const NAME_WORDS: [&str; 8] = ["oak", "elm", "ash", "fir", "yew", "bay", "fig", "ivy"];

#[derive(Debug, Clone)]
pub struct VmNewRequest {
    pub uri: String,
    pub name: Option<String>,
    /// `None`: the running lab's network, else `default`.
    pub network: Option<String>,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disk_gib: u64,
    /// `None` for `--accel auto`.
    pub accel: Option<Accel>,
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
        if !domain::valid_name(name) {
            return Err(Error::bad_input(format!(
                "--name {name:?}: use 1-64 letters, digits, '-', '_' or '.', not starting with '-' or '.'"
            )));
        }
    }
    if request.memory_mib < 64 || request.vcpus == 0 || request.disk_gib == 0 {
        return Err(Error::bad_input("--memory must be at least 64 (MiB), --vcpus and --disk-size at least 1"));
    }
    let choice = accel::choose(request.accel, &HostKvm::probe());
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
    let libvirt = Libvirt::connect(&request.uri).await.map_err(virt_error)?;
    let net = network_name.clone();
    libvirt.call(move |c| network::read(c, &net)).await.map_err(virt_error)?;

    let name = match request.name.clone() {
        Some(name) => name,
        None => {
            let taken = libvirt.call(domain::names).await.map_err(virt_error)?;
            generate_name(&taken)
        }
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
        memory_mib: request.memory_mib,
        vcpus: request.vcpus,
        disk_gib: request.disk_gib,
        accel: choice.accel,
        serial_log,
        pxe: request.pxe,
    };
    let vm = libvirt.call(move |c| domain::create(c, &spec, &pool_dir)).await.map_err(virt_error)?;
    Ok(VmNewReport { vm, accel_reason: choice.reason, joined_lab: joins_lab })
}

/// `pxelab-<word>-<n>`, the first one not taken.
pub(crate) fn generate_name(taken: &[String]) -> String {
    let word = NAME_WORDS[std::process::id() as usize % NAME_WORDS.len()];
    (1..)
        .map(|n| format!("pxelab-{word}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .expect("an unbounded range has a free name")
}

/// `pxelab vm list`.
pub async fn vm_list(uri: &str) -> Result<Vec<VmInfo>> {
    let libvirt = Libvirt::connect(uri).await.map_err(virt_error)?;
    libvirt.call(domain::list).await.map_err(virt_error)
}

/// `pxelab vm rm`.
pub async fn vm_rm(uri: &str, name: &str) -> Result<domain::VmMeta> {
    let libvirt = Libvirt::connect(uri).await.map_err(virt_error)?;
    let name = name.to_string();
    libvirt.call(move |c| domain::remove(c, &name)).await.map_err(virt_error)
}

/// `pxelab vm console`: prints the serial log; with `follow`, keeps printing
/// what the guest writes until the VM stops or Ctrl-C.
pub async fn vm_console(uri: &str, name: &str, follow: bool) -> Result<()> {
    let libvirt = Libvirt::connect(uri).await.map_err(virt_error)?;
    let owned = name.to_string();
    let info = libvirt.call(move |c| domain::info(c, &owned)).await.map_err(virt_error)?;
    let path = PathBuf::from(&info.meta.serial_log);
    let mut offset = 0u64;
    let mut out = std::io::stdout();
    loop {
        match std::fs::File::open(&path) {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(offset)).map_err(|e| Error::other(e.to_string()))?;
                let mut buf = Vec::new();
                file.read_to_end(&mut buf).map_err(|e| Error::other(e.to_string()))?;
                offset += buf.len() as u64;
                out.write_all(&buf).and_then(|_| out.flush()).map_err(|e| Error::other(e.to_string()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {}
            Err(e) => return Err(Error::environment(format!("cannot read serial log {}: {e}", path.display()))),
        }
        if !follow {
            return Ok(());
        }
        let owned = name.to_string();
        let state = libvirt.call(move |c| domain::info(c, &owned)).await.map_err(virt_error)?.state;
        if state != "running" && state != "paused" {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
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
        assert!(domain::valid_name(&second));
    }
}
