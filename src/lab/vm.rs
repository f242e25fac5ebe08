//! `pxelab vm new|list|rm|console`: pxelab's VMs.
//!
//! A VM made while a lab runs on its network joins that lab: it is recorded
//! in the lab's journal (so `down` removes it) and the lab follows its boot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::console::Held;
use super::{read_appended, state_dir_or_err, state_subdir, VmShape};
use crate::blocking;
use crate::error::{Error, Result};
use crate::virt::console::Console;
use crate::virt::domain::{self, VmInfo};
use crate::virt::domxml::{self, Firmware, VmMeta, VmSpec};
use crate::virt::{network, Libvirt, VirtError};

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
    /// `None`: the architecture's own (BIOS on x86-64, UEFI on ARM64).
    pub firmware: Option<Firmware>,
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
    // A VM made while a lab runs joins it: its network, its journal (so
    // `down` removes it) and its progress report.
    let running = super::labs::running(&state_dir_or_err()?, &request.uri);
    let network_name = match (&request.network, running.as_slice()) {
        (Some(n), _) => n.clone(),
        (None, [one]) => one.record.as_ref().map(|r| r.network.clone()).unwrap_or_default(),
        (None, []) => "default".to_string(),
        (None, several) => {
            let names: Vec<String> = several.iter().filter_map(|l| l.record.as_ref()).map(|r| r.network.clone()).collect();
            return Err(Error::usage(format!("{} labs are running (on {}): pass --network NAME to join one", names.len(), names.join(", "))));
        }
    };
    let lab = running.into_iter().find(|l| l.record.as_ref().is_some_and(|r| r.network == network_name));
    if lab.as_ref().and_then(|l| l.record.as_ref()).is_some_and(|r| r.host_bridge) {
        return Err(Error::usage(format!(
            "the lab on {network_name} runs on a bridge of the host's, not a libvirt network, and `vm new` makes VMs on networks only; start that lab with --vms N for more VMs"
        )));
    }
    let joins_lab = lab.is_some();
    // The lab's VMs' architecture, unless --arch says otherwise.
    let arch = request.shape.arch.or_else(|| lab.as_ref().and_then(|l| l.record.as_ref()).map(|r| r.arch)).unwrap_or_default();
    let asked: Vec<Firmware> = request.firmware.into_iter().collect();
    let firmware = super::machine::firmwares_for(arch, &asked)?[0];
    if !crate::virt::is_remote(&request.uri) {
        super::machine::check_host(arch, &[firmware])?;
    }
    let libvirt = Libvirt::connect(&request.uri).await?;
    let choice = super::choose_accel(&libvirt, super::libvirt_is_here(&libvirt).await, request.shape.accel).await;
    let net = network_name.clone();
    libvirt.call(move |c| network::read(c, &net)).await?;

    // Held until the domain is defined (see `labs::name_lock`).
    let _naming = super::labs::naming_lock().await?;
    let name = match request.name.clone() {
        Some(name) => name,
        None => generate_name(&libvirt.call(domain::names).await?),
    };
    let serial_log = match request.serial_log.clone() {
        Some(path) => path,
        None => state_subdir("logs")?.join(format!("{name}.serial.log")),
    };
    let pool_dir = images_dir()?;
    if let Some(lab) = &lab {
        super::journal::Journal::open(&lab.path)
            .and_then(|j| j.record_vm(&super::journal::CreatedVm { uri: request.uri.clone(), name: name.clone() }))
            .map_err(|e| Error::environment(format!("cannot write the journal: {e}")))?;
    }
    let spec = VmSpec {
        name,
        arch,
        attach: crate::virt::domxml::Attach::Network(network_name),
        memory_mib: request.shape.memory_mib,
        vcpus: request.shape.vcpus,
        disk_gib: request.shape.disk_gib,
        accel: choice.accel,
        serial_log,
        // `vm new` reads its console only while someone follows it.
        qemu_log: None,
        pxe: request.pxe,
        // libvirt picks; a running lab reads it from the domain when it adopts the VM.
        mac: None,
        firmware,
        // A VM joining a lab boots its installer over the network only.
        cdrom: None,
    };
    tracing::debug!("creating VM {} on {} ({:?})", spec.name, spec.attach, spec.accel);
    let (vm, _) = create(&libvirt, spec, pool_dir, false).await?;
    Ok(VmNewReport { vm, accel_reason: choice.reason, joined_lab: joins_lab })
}

/// Creates and starts a VM; with `watch`, also opens its serial console
/// before the guest runs (see `virt::domain::create`).
pub(crate) async fn create(libvirt: &Libvirt, spec: VmSpec, pool_dir: PathBuf, watch: bool) -> Result<(VmInfo, Option<Console>)> {
    Ok(libvirt.call(move |c| domain::create(c, &spec, &pool_dir, watch)).await?)
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

/// `pxelab vm rm`: the domain, its disk, and pxelab's record of its console.
pub async fn vm_rm(uri: &str, name: &str) -> Result<VmMeta> {
    let libvirt = Libvirt::connect(uri).await?;
    tracing::debug!("removing VM {name}");
    let meta = remove(&libvirt, name).await?;
    remove_record(&meta).await?;
    Ok(meta)
}

/// How long removing a VM waits for its console readers to let go; each
/// notices the end of its stream within a poll (a quarter of a second).
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Stops a pxelab VM, waits until nobody on this host reads its console,
/// then undefines it and deletes its disk (see `lab/console.rs` for why).
pub(crate) async fn remove(libvirt: &Libvirt, name: &str) -> std::result::Result<VmMeta, VirtError> {
    let owned = name.to_string();
    let meta = libvirt.call(move |c| domain::stop(c, &owned)).await?;
    let record = PathBuf::from(&meta.serial_log);
    if !blocking::run(move || super::console::wait_released(&record, RELEASE_WAIT)).await {
        tracing::warn!("a reader still holds {name}'s console after {RELEASE_WAIT:?}; removing it anyway");
    }
    let (owned, kept) = (name.to_string(), meta.clone());
    libvirt.call(move |c| domain::forget(c, &owned, &kept)).await?;
    Ok(meta)
}

/// Removes pxelab's record of a removed VM's console.
pub(crate) async fn remove_record(meta: &VmMeta) -> Result<()> {
    let path = PathBuf::from(&meta.serial_log);
    let qemu_log = super::console::qemu_log_of(&path);
    match blocking::run(move || std::fs::remove_file(&path).and(remove_if_there(&qemu_log))).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::environment(format!("cannot remove the console record {}: {e}", meta.serial_log))),
        _ => Ok(()),
    }
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `pxelab vm console`: writes pxelab's record of the VM's serial console
/// to `out`; with `follow`, goes on with what the guest writes until the VM
/// stops or `shutdown`.
///
/// The console is read through libvirt (so a remote host works as a local
/// one), and libvirt lets one reader hold it. When a lab on this host
/// follows the VM, the lab holds it and `-f` follows the lab's record;
/// otherwise `-f` opens the console itself and adds to the record.
pub async fn vm_console(uri: &str, name: &str, follow: bool, shutdown: CancellationToken, out: &mut dyn ConsoleOut) -> Result<()> {
    let libvirt = Libvirt::connect(uri).await?;
    let owned = name.to_string();
    let info = libvirt.call(move |c| domain::info(c, &owned)).await?;
    let record = PathBuf::from(&info.meta.serial_log);
    let lab_follows = super::labs::running(&state_dir_or_err()?, uri).iter().any(|l| l.record.as_ref().is_some_and(|r| r.vms.iter().any(|v| v.name == name)));
    let mut offset = 0u64;
    let history = blocking::run({
        let record = record.clone();
        move || read_appended(&record, &mut offset).map(|b| (b, offset))
    })
    .await;
    match history {
        Ok((bytes, at)) => {
            offset = at;
            if write_out(out, &bytes).is_err() {
                return Ok(());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::environment(format!(
                "no record of {name}'s serial console on this host: pxelab records it while a lab follows the VM or `vm console -f` runs; follow it live with `pxelab vm console -f {name}`"
            )))
        }
        Err(e) => return Err(Error::environment(format!("cannot read the console record {}: {e}", record.display()))),
    }
    if !follow {
        return Ok(());
    }
    if lab_follows {
        follow_record(&libvirt, name, &record, offset, &shutdown, out).await
    } else {
        follow_console(&libvirt, name, &record, &shutdown, out).await
    }
}

/// Where `vm console` writes: stdout, in the CLI.
pub trait ConsoleOut: Write + Send {
    /// Nobody reads any more (a closed pipe), found without writing: a
    /// console with no new output still ends within a poll.
    fn gone(&mut self) -> bool {
        false
    }
}

/// Writes and flushes; an error means the reader went away (`| head`), or
/// a write failed that the CLI reports itself: either ends the console.
fn write_out(out: &mut dyn ConsoleOut, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes).and_then(|_| out.flush())
}

/// `vm console -f` beside a lab: the lab holds the console, its record grows.
async fn follow_record(libvirt: &Libvirt, name: &str, record: &Path, mut offset: u64, shutdown: &CancellationToken, out: &mut dyn ConsoleOut) -> Result<()> {
    loop {
        let (read, at) = blocking::run({
            let record = record.to_path_buf();
            move || {
                let read = read_appended(&record, &mut offset);
                (read, offset)
            }
        })
        .await;
        offset = at;
        match read {
            Ok(bytes) if write_out(out, &bytes).is_err() => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::environment(format!("cannot read the console record {}: {e}", record.display()))),
        }
        if out.gone() || !still_live(libvirt, name).await? {
            return Ok(());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

/// `vm console -f` on its own: reads the console through libvirt, writes it
/// out and adds it to the record.
async fn follow_console(libvirt: &Libvirt, name: &str, record: &Path, shutdown: &CancellationToken, out: &mut dyn ConsoleOut) -> Result<()> {
    let owned = name.to_string();
    let opened = libvirt
        .call(move |c| Console::open(c, &owned, false))
        .await
        .map_err(|e| Error::environment(format!("cannot open {name}'s serial console ({e}); if a `virsh console` holds it, close that one")))?;
    // The hold makes the record: it exists from the moment the console is
    // held, so `vm console` beside it prints what there is, and a script
    // can wait for it.
    let path = record.to_path_buf();
    let mut console = Some(blocking::run(move || Held::new(opened, &path)).await);
    while let Some(mut open) = console.take() {
        let (open, drained) = libvirt
            .call(move |_| {
                let drained = open.console.drain();
                Ok((open, drained))
            })
            .await?;
        let drained = drained?;
        if !drained.bytes.is_empty() {
            let (path, bytes) = (record.to_path_buf(), drained.bytes.clone());
            if let Err(e) = blocking::run(move || super::console::append(&path, &bytes)).await {
                tracing::warn!("cannot record the console in {}: {e}", record.display());
            }
            if write_out(out, &drained.bytes).is_err() {
                blocking::run(move || drop(open)).await;
                return Ok(());
            }
        }
        if drained.ended || out.gone() || !still_live(libvirt, name).await? {
            // The console is closed on the blocking pool: it is a call to libvirtd.
            blocking::run(move || drop(open)).await;
            return Ok(());
        }
        console = Some(open);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
    if let Some(open) = console {
        blocking::run(move || drop(open)).await;
    }
    Ok(())
}

async fn still_live(libvirt: &Libvirt, name: &str) -> Result<bool> {
    let owned = name.to_string();
    Ok(libvirt.call(move |c| domain::is_live(c, &owned)).await?)
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
