//! pxelab's domains in libvirt: create (disk, define, start), list, read
//! and remove them. The XML itself is built and read in [`super::domxml`];
//! this file only sends it to libvirt and reads libvirt's answers.
//!
//! `vm list`, `vm rm` and `down` act only on domains that carry pxelab's
//! metadata ([`super::domxml::NAMESPACE`]), so pxelab never touches a VM it
//! did not make.

use std::path::Path;

use quick_xml::escape::escape;
use serde::Serialize;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

use super::accel::Accel;
use super::console::Console;
use super::domxml::{self, Firmware, VmMeta, VmSpec};
use super::VirtError;

/// The storage pool pxelab creates when libvirt has no `default` pool.
pub const OWN_POOL: &str = "pxelab";

/// A domain's run state, as libvirt reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    Running,
    Paused,
    #[serde(rename = "shut off")]
    ShutOff,
    Crashed,
    Other,
    Unknown,
}

impl VmState {
    /// libvirt's state number as pxelab names it.
    fn of(raw: virt::sys::virDomainState) -> VmState {
        match raw {
            virt::sys::VIR_DOMAIN_RUNNING => VmState::Running,
            virt::sys::VIR_DOMAIN_PAUSED => VmState::Paused,
            virt::sys::VIR_DOMAIN_SHUTOFF => VmState::ShutOff,
            virt::sys::VIR_DOMAIN_CRASHED => VmState::Crashed,
            _ => VmState::Other,
        }
    }

    /// The guest is (or may resume) writing to its console.
    pub fn is_live(self) -> bool {
        matches!(self, VmState::Running | VmState::Paused)
    }

    /// How `vm list` and the JSON name it.
    pub fn name(self) -> &'static str {
        match self {
            VmState::Running => "running",
            VmState::Paused => "paused",
            VmState::ShutOff => "shut off",
            VmState::Crashed => "crashed",
            VmState::Other => "other",
            VmState::Unknown => "unknown",
        }
    }
}

/// A pxelab VM as `vm list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VmInfo {
    pub name: String,
    pub state: VmState,
    pub networks: Vec<String>,
    pub accel: Accel,
    pub arch: crate::arch::Arch,
    pub firmware: Firmware,
    #[serde(flatten)]
    pub meta: VmMeta,
}

/// Any domain's live XML (pxelab's or not: `doctor` looks at the user's VMs too).
pub fn xml(conn: &Connect, name: &str) -> Result<String, VirtError> {
    lookup(conn, name)?.get_xml_desc(0).map_err(libvirt(format!("reading domain {name}")))
}

/// Whether a domain is still live (running or paused). A domain undefined
/// meanwhile, even between the lookup and the state call, is not: `vm rm`
/// beside a follower is a normal end, not an error.
pub fn is_live(conn: &Connect, name: &str) -> Result<bool, VirtError> {
    let dom = match lookup(conn, name) {
        Err(VirtError::NoDomain(_)) => return Ok(false),
        other => other?,
    };
    match dom.get_state() {
        Ok((state, _)) => Ok(VmState::of(state).is_live()),
        Err(e) if VirtError::is(&e, virt::error::ErrorNumber::NoDomain) => Ok(false),
        Err(e) => Err(VirtError::libvirt(format!("reading the state of domain {name}"), e)),
    }
}

/// Whether a domain is running.
pub fn is_running(conn: &Connect, name: &str) -> Result<bool, VirtError> {
    let dom = lookup(conn, name)?;
    Ok(matches!(dom.get_state().map(|(s, _)| s), Ok(virt::sys::VIR_DOMAIN_RUNNING)))
}

fn libvirt(what: impl Into<String>) -> impl FnOnce(virt::error::Error) -> VirtError {
    let what = what.into();
    move |e| VirtError::libvirt(what, e)
}

/// The pool for VM disks: libvirt's `default`, else pxelab's own, created
/// (directory-backed, in `fallback_dir`) when missing.
pub fn ensure_pool(conn: &Connect, fallback_dir: &Path) -> Result<StoragePool, VirtError> {
    for name in ["default", OWN_POOL] {
        if let Ok(pool) = StoragePool::lookup_by_name(conn, name) {
            if !pool.is_active().map_err(libvirt(format!("checking pool {name}")))? {
                // A directory pool whose directory was removed is built again.
                let _ = pool.build(0);
                pool.create(0).map_err(libvirt(format!("starting pool {name}")))?;
            }
            return Ok(pool);
        }
    }
    let xml = format!("<pool type='dir'><name>{OWN_POOL}</name><target><path>{}</path></target></pool>", escape(fallback_dir.to_string_lossy()));
    let pool = StoragePool::define_xml(conn, &xml, 0).map_err(libvirt("defining pxelab's storage pool"))?;
    // libvirt makes the directory, on the libvirt host (which may not be this one).
    pool.build(0).map_err(libvirt(format!("creating the directory {} for pxelab's storage pool", fallback_dir.display())))?;
    pool.create(0).map_err(libvirt("starting pxelab's storage pool"))?;
    pool.set_autostart(true).map_err(libvirt("setting autostart of pxelab's storage pool"))?;
    Ok(pool)
}

fn pool_name(pool: &StoragePool) -> String {
    pool.get_name().unwrap_or_else(|_| OWN_POOL.into())
}

/// Creates the disk, defines and starts the domain. On failure, removes
/// what it made. With `watch`, the domain starts paused and its serial
/// console is opened; it stays paused until [`resume`], so the console
/// misses nothing and the caller decides when it runs.
pub fn create(conn: &Connect, spec: &VmSpec, fallback_pool_dir: &Path, watch: bool) -> Result<(VmInfo, Option<Console>), VirtError> {
    if Domain::lookup_by_name(conn, &spec.name).is_ok() {
        return Err(VirtError::Refused(format!("a domain named {:?} exists already; choose another --name", spec.name)));
    }
    let pool = ensure_pool(conn, fallback_pool_dir)?;
    let pool_name = pool_name(&pool);
    let volume = format!("{}.qcow2", spec.name);
    let vol_xml =
        format!("<volume><name>{}</name><capacity unit='GiB'>{}</capacity><target><format type='qcow2'/></target></volume>", escape(&volume), spec.disk_gib);
    let vol = StorageVol::create_xml(&pool, &vol_xml, 0).map_err(libvirt(format!("creating disk {volume}")))?;
    let xml = domxml::domain_xml(spec, &pool_name, &volume);
    let made = Domain::define_xml(conn, &xml).map_err(libvirt(format!("defining domain {}", spec.name))).and_then(|dom| {
        start(conn, &dom, &spec.name, watch).inspect_err(|_e| {
            let _ = dom.destroy();
            let _ = dom.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM);
        })
    });
    match made {
        Ok(console) => Ok((info(conn, &spec.name)?, console)),
        Err(e) => {
            let _ = vol.delete(0);
            Err(e)
        }
    }
}

fn start(conn: &Connect, dom: &Domain, name: &str, watch: bool) -> Result<Option<Console>, VirtError> {
    if !watch {
        dom.create().map_err(libvirt(format!("starting domain {name}")))?;
        return Ok(None);
    }
    dom.create_with_flags(virt::sys::VIR_DOMAIN_START_PAUSED).map_err(libvirt(format!("starting domain {name}")))?;
    // The domain was started a moment ago and has not run an instruction:
    // a console session libvirt still counts on it can only be a stale one
    // (an earlier stream on the same pty that libvirtd has not let go of),
    // so it is taken over rather than failing the lab.
    let console = match Console::open(conn, name, false) {
        Err(e) if e.to_string().contains("Active console session exists") => {
            tracing::warn!("{name}'s new console was held by a stale session ({e}); taking it over");
            Console::open(conn, name, true)?
        }
        other => other?,
    };
    Ok(Some(console))
}

/// Lets a domain started paused run.
pub fn resume(conn: &Connect, name: &str) -> Result<(), VirtError> {
    lookup(conn, name)?.resume().map_err(libvirt(format!("resuming domain {name}")))?;
    Ok(())
}

/// One pxelab VM's state.
pub fn info(conn: &Connect, name: &str) -> Result<VmInfo, VirtError> {
    let dom = lookup(conn, name)?;
    let xml = dom.get_xml_desc(0).map_err(libvirt(format!("reading domain {name}")))?;
    let meta = domxml::meta_of(&xml).ok_or_else(|| not_ours(name))?;
    Ok(describe(&dom, &xml, meta))
}

fn describe(dom: &Domain, xml: &str, meta: VmMeta) -> VmInfo {
    let state = dom.get_state().map_or(VmState::Unknown, |(s, _)| VmState::of(s));
    VmInfo {
        name: dom.get_name().unwrap_or_default(),
        state,
        networks: domxml::interfaces(xml).into_iter().filter_map(|i| i.network).collect(),
        accel: domxml::accel_of(xml).unwrap_or(Accel::Tcg),
        arch: domxml::arch_of(xml),
        firmware: domxml::firmware_of(xml),
        meta,
    }
}

fn lookup(conn: &Connect, name: &str) -> Result<Domain, VirtError> {
    Domain::lookup_by_name(conn, name).map_err(|e| {
        if VirtError::is(&e, virt::error::ErrorNumber::NoDomain) {
            VirtError::NoDomain(name.to_string())
        } else {
            VirtError::libvirt(format!("looking up domain {name:?}"), e)
        }
    })
}

fn not_ours(name: &str) -> VirtError {
    VirtError::Refused(format!("domain {name:?} was not created by pxelab; manage it with virsh"))
}

/// The names of every domain, pxelab's or not (for choosing a free one).
pub fn names(conn: &Connect) -> Result<Vec<String>, VirtError> {
    let domains = conn.list_all_domains(0).map_err(libvirt("listing domains"))?;
    Ok(domains.iter().filter_map(|d| d.get_name().ok()).collect())
}

/// Every domain pxelab created.
pub fn list(conn: &Connect) -> Result<Vec<VmInfo>, VirtError> {
    let domains = conn.list_all_domains(0).map_err(libvirt("listing domains"))?;
    let mut out = Vec::new();
    for dom in domains {
        let Ok(xml) = dom.get_xml_desc(0) else { continue };
        if let Some(meta) = domxml::meta_of(&xml) {
            out.push(describe(&dom, &xml, meta));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Stops a pxelab VM (refusing any other domain) and returns its metadata:
/// the first half of removing it. The caller waits for the VM's console
/// readers to let go before [`forget`] (see `lab/console.rs`), and removes
/// the record of its console, which is on pxelab's host, not libvirt's.
pub fn stop(conn: &Connect, name: &str) -> Result<VmMeta, VirtError> {
    let dom = lookup(conn, name)?;
    let xml = dom.get_xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).map_err(libvirt(format!("reading domain {name}")))?;
    let meta = domxml::meta_of(&xml).ok_or_else(|| not_ours(name))?;
    if dom.is_active().unwrap_or(false) {
        dom.destroy().map_err(libvirt(format!("stopping domain {name}")))?;
    }
    Ok(meta)
}

/// Undefines a pxelab VM that [`stop`] stopped (with its NVRAM) and
/// deletes its disk volume.
pub fn forget(conn: &Connect, name: &str, meta: &VmMeta) -> Result<(), VirtError> {
    let dom = lookup(conn, name)?;
    dom.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM).map_err(libvirt(format!("undefining domain {name}")))?;
    if let Ok(pool) = StoragePool::lookup_by_name(conn, &meta.pool) {
        let _ = pool.refresh(0);
        if let Ok(vol) = StorageVol::lookup_by_name(&pool, &meta.volume) {
            vol.delete(0).map_err(libvirt(format!("deleting disk {}", meta.volume)))?;
        }
    }
    Ok(())
}
