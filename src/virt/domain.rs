//! pxelab's domains: the XML of a PXE-booting VM, its disk, and the calls
//! that create, list and remove them.
//!
//! Every domain pxelab creates carries a `<metadata>` element in pxelab's
//! own namespace ([`NAMESPACE`]), naming its disk volume and serial log.
//! `vm list`, `vm rm` and `down` act only on domains that carry it, so
//! pxelab never touches a VM it did not make.

use std::path::{Path, PathBuf};

use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Serialize;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

use super::accel::Accel;
use super::VirtError;

/// pxelab's metadata namespace (`.invalid` never resolves: it names, it is not fetched).
pub const NAMESPACE: &str = "http://pxelab.invalid/xmlns/vm/1";
/// The storage pool pxelab creates when libvirt has no `default` pool.
pub const OWN_POOL: &str = "pxelab";

/// What a new VM looks like.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    pub network: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disk_gib: u64,
    pub accel: Accel,
    pub serial_log: PathBuf,
    /// Boot from the network first (then from the disk).
    pub pxe: bool,
}

/// pxelab's record inside a domain's `<metadata>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmMeta {
    pub pool: String,
    pub volume: String,
    pub serial_log: String,
}

/// A pxelab VM as `vm list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VmInfo {
    pub name: String,
    pub state: String,
    pub networks: Vec<String>,
    pub accel: String,
    #[serde(flatten)]
    pub meta: VmMeta,
}

/// A name libvirt, file names and shells all take as it is.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with(['.', '-'])
}

/// The domain XML for `spec`, with its disk in `pool`/`volume`.
pub fn domain_xml(spec: &VmSpec, pool: &str, volume: &str) -> String {
    let e = |s: &str| escape(s).into_owned();
    let log = spec.serial_log.to_string_lossy();
    let (net_boot, disk_boot) = if spec.pxe { (1, 2) } else { (2, 1) };
    // host-passthrough needs real virtualisation; TCG emulates a generic CPU.
    let cpu = match spec.accel {
        Accel::Kvm => "  <cpu mode='host-passthrough'/>\n",
        Accel::Tcg => "",
    };
    format!(
        "<domain type='{domain_type}'>
  <name>{name}</name>
  <metadata>
    <pxelab:vm xmlns:pxelab='{NAMESPACE}'>
      <pxelab:disk pool='{pool}' volume='{volume}'/>
      <pxelab:serial-log path='{log}'/>
    </pxelab:vm>
  </metadata>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <bios useserial='yes'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
{cpu}  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='{pool}' volume='{volume}'/>
      <target dev='vda' bus='virtio'/>
      <boot order='{disk_boot}'/>
    </disk>
    <interface type='network'>
      <source network='{network}'/>
      <model type='virtio'/>
      <boot order='{net_boot}'/>
    </interface>
    <serial type='pty'>
      <log file='{log}' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <graphics type='vnc' autoport='yes'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <video>
      <model type='vga'/>
    </video>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
  </devices>
</domain>
",
        domain_type = spec.accel.domain_type(),
        name = e(&spec.name),
        pool = e(pool),
        volume = e(volume),
        log = e(&log),
        memory = spec.memory_mib,
        vcpus = spec.vcpus,
        network = e(&spec.network),
    )
}

/// pxelab's metadata in a domain XML, or `None` for a domain pxelab did not create.
pub fn meta_of(xml: &str) -> Option<VmMeta> {
    let mut reader = Reader::from_str(xml);
    let mut in_ours = false;
    let (mut pool, mut volume, mut log) = (None, None, None);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = e.name().as_ref().to_string();
                let attr = |key: &str| e.attributes().flatten().find(|a| a.key.as_ref() == key).map(|a| a.value.into_owned());
                let local = name.rsplit(':').next().unwrap_or_default().to_string();
                if local == "vm" && e.attributes().flatten().any(|a| a.value == NAMESPACE) {
                    in_ours = true;
                } else if in_ours && local == "disk" {
                    pool = attr("pool");
                    volume = attr("volume");
                } else if in_ours && local == "serial-log" {
                    log = attr("path");
                }
            }
            Ok(Event::End(e)) if e.name().as_ref().ends_with("vm") => in_ours = false,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    Some(VmMeta { pool: pool?, volume: volume?, serial_log: log? })
}

/// A domain's network interface, as its live XML shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `<source network=…>` for `type='network'` interfaces.
    pub network: Option<String>,
    /// `<source bridge=…>`.
    pub bridge: Option<String>,
    /// `<target dev=…>`: the host's tap device while the domain runs.
    pub tap: Option<String>,
    pub mac: Option<String>,
}

/// Every `<devices><interface>` of a domain XML. Unparseable XML gives none:
/// this is used to find guests, and a domain we cannot read is not ours to touch.
pub fn interfaces(xml: &str) -> Vec<Interface> {
    let mut reader = Reader::from_str(xml);
    let mut depth = 0usize;
    let mut current: Option<(usize, Interface)> = None;
    let mut out = Vec::new();
    loop {
        let (e, empty) = match reader.read_event() {
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                if let Some((d, _)) = &current {
                    if *d == depth {
                        out.push(current.take().expect("checked above").1);
                    }
                }
                continue;
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => continue,
        };
        let name = e.name().as_ref().to_string();
        let get = |key: &str| {
            e.attributes().flatten().find(|a| a.key.as_ref() == key).map(|a| a.value.into_owned())
        };
        match (&mut current, name.as_str()) {
            (None, "interface") if depth == 2 => {
                let iface = Interface { network: None, bridge: None, tap: None, mac: None };
                if empty {
                    out.push(iface);
                } else {
                    current = Some((depth, iface));
                }
            }
            (Some((_, iface)), "source") => {
                iface.network = get("network").or(iface.network.take());
                iface.bridge = get("bridge").or(iface.bridge.take());
            }
            (Some((_, iface)), "target") => iface.tap = get("dev"),
            (Some((_, iface)), "mac") => iface.mac = get("address"),
            _ => {}
        }
        if !empty {
            depth += 1;
        }
    }
    out
}

/// Any domain's live XML (pxelab's or not: `doctor` looks at the user's VMs too).
pub fn xml(conn: &Connect, name: &str) -> Result<String, VirtError> {
    lookup(conn, name)?.get_xml_desc(0).map_err(libvirt(format!("reading domain {name}")))
}

/// Whether a domain is running.
pub fn is_running(conn: &Connect, name: &str) -> Result<bool, VirtError> {
    let dom = lookup(conn, name)?;
    Ok(matches!(dom.get_state().map(|(s, _)| s), Ok(virt::sys::VIR_DOMAIN_RUNNING)))
}

/// Where the network sits in a domain's boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkBoot {
    /// The network is tried before anything else.
    First,
    /// After another device (a disk that boots skips PXE).
    Later,
    /// Not at all.
    Never,
}

/// Reads the boot order of a domain XML: per-device `<boot order='N'/>`
/// when any device has one (libvirt then ignores `<os><boot dev>`), else
/// the `<os><boot dev='…'/>` list, whose default is the disk alone.
pub fn network_boot(xml: &str) -> NetworkBoot {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut device_orders: Vec<(bool, u32)> = Vec::new();
    let mut os_devs: Vec<String> = Vec::new();
    loop {
        let (e, empty) = match reader.read_event() {
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            Ok(Event::End(_)) => {
                path.pop();
                continue;
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => continue,
        };
        let name = e.name().as_ref().to_string();
        if name == "boot" {
            let attr = |key: &str| e.attributes().flatten().find(|a| a.key.as_ref() == key).map(|a| a.value.into_owned());
            let parent = path.last().map(String::as_str);
            match (path.len(), parent) {
                (2, Some("os")) => os_devs.extend(attr("dev")),
                (3, Some(device)) => {
                    if let Some(order) = attr("order").and_then(|o| o.parse().ok()) {
                        device_orders.push((device == "interface", order));
                    }
                }
                _ => {}
            }
        }
        if !empty {
            path.push(name);
        }
    }
    if !device_orders.is_empty() {
        device_orders.sort_by_key(|(_, order)| *order);
        return match device_orders.iter().position(|(is_net, _)| *is_net) {
            Some(0) => NetworkBoot::First,
            Some(_) => NetworkBoot::Later,
            None => NetworkBoot::Never,
        };
    }
    match os_devs.iter().position(|d| d == "network") {
        Some(0) => NetworkBoot::First,
        Some(_) => NetworkBoot::Later,
        None => NetworkBoot::Never,
    }
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
    std::fs::create_dir_all(fallback_dir)
        .map_err(|e| VirtError::NotReady(format!("cannot create {}: {e}", fallback_dir.display())))?;
    let xml = format!(
        "<pool type='dir'><name>{OWN_POOL}</name><target><path>{}</path></target></pool>",
        escape(fallback_dir.to_string_lossy())
    );
    let pool = StoragePool::define_xml(conn, &xml, 0).map_err(libvirt("defining pxelab's storage pool"))?;
    pool.create(0).map_err(libvirt("starting pxelab's storage pool"))?;
    pool.set_autostart(true).map_err(libvirt("setting autostart of pxelab's storage pool"))?;
    Ok(pool)
}

fn pool_name(pool: &StoragePool) -> String {
    pool.get_name().unwrap_or_else(|_| OWN_POOL.into())
}

/// Creates the disk, defines and starts the domain. On failure, removes
/// what it made.
pub fn create(conn: &Connect, spec: &VmSpec, fallback_pool_dir: &Path) -> Result<VmInfo, VirtError> {
    if Domain::lookup_by_name(conn, &spec.name).is_ok() {
        return Err(VirtError::Refused(format!("a domain named {:?} exists already; choose another --name", spec.name)));
    }
    let pool = ensure_pool(conn, fallback_pool_dir)?;
    let pool_name = pool_name(&pool);
    let volume = format!("{}.qcow2", spec.name);
    let vol_xml = format!(
        "<volume><name>{}</name><capacity unit='GiB'>{}</capacity><target><format type='qcow2'/></target></volume>",
        escape(&volume),
        spec.disk_gib
    );
    let vol = StorageVol::create_xml(&pool, &vol_xml, 0).map_err(libvirt(format!("creating disk {volume}")))?;
    let xml = domain_xml(spec, &pool_name, &volume);
    let made = Domain::define_xml(conn, &xml).map_err(libvirt(format!("defining domain {}", spec.name))).and_then(|dom| {
        dom.create().map_err(libvirt(format!("starting domain {}", spec.name))).inspect_err(|_e| {
            let _ = dom.undefine();
        })
    });
    if let Err(e) = made {
        let _ = vol.delete(0);
        return Err(e);
    }
    info(conn, &spec.name)
}

/// One pxelab VM's state.
pub fn info(conn: &Connect, name: &str) -> Result<VmInfo, VirtError> {
    let dom = lookup(conn, name)?;
    let xml = dom.get_xml_desc(0).map_err(libvirt(format!("reading domain {name}")))?;
    let meta = meta_of(&xml).ok_or_else(|| not_ours(name))?;
    Ok(describe(&dom, &xml, meta))
}

fn describe(dom: &Domain, xml: &str, meta: VmMeta) -> VmInfo {
    let state = match dom.get_state().map(|(s, _)| s) {
        Ok(virt::sys::VIR_DOMAIN_RUNNING) => "running",
        Ok(virt::sys::VIR_DOMAIN_PAUSED) => "paused",
        Ok(virt::sys::VIR_DOMAIN_SHUTOFF) => "shut off",
        Ok(virt::sys::VIR_DOMAIN_CRASHED) => "crashed",
        Ok(_) => "other",
        Err(_) => "unknown",
    };
    let accel = if xml.starts_with("<domain type='kvm'") { "kvm" } else { "tcg" };
    VmInfo {
        name: dom.get_name().unwrap_or_default(),
        state: state.into(),
        networks: interfaces(xml).into_iter().filter_map(|i| i.network).collect(),
        accel: accel.into(),
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
        if let Some(meta) = meta_of(&xml) {
            out.push(describe(&dom, &xml, meta));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Stops and removes a pxelab VM, its disk volume and its serial log.
pub fn remove(conn: &Connect, name: &str) -> Result<VmMeta, VirtError> {
    let dom = lookup(conn, name)?;
    let xml = dom.get_xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).map_err(libvirt(format!("reading domain {name}")))?;
    let meta = meta_of(&xml).ok_or_else(|| not_ours(name))?;
    if dom.is_active().unwrap_or(false) {
        dom.destroy().map_err(libvirt(format!("stopping domain {name}")))?;
    }
    dom.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM).map_err(libvirt(format!("undefining domain {name}")))?;
    if let Ok(pool) = StoragePool::lookup_by_name(conn, &meta.pool) {
        let _ = pool.refresh(0);
        if let Ok(vol) = StorageVol::lookup_by_name(&pool, &meta.volume) {
            vol.delete(0).map_err(libvirt(format!("deleting disk {}", meta.volume)))?;
        }
    }
    match std::fs::remove_file(&meta.serial_log) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(VirtError::NotReady(format!("cannot remove serial log {}: {e}", meta.serial_log)));
        }
        _ => {}
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            name: "pxelab-oak-1".into(),
            network: "lab".into(),
            memory_mib: 1024,
            vcpus: 1,
            disk_gib: 4,
            accel: Accel::Tcg,
            serial_log: "/var/lib/pxelab/logs/pxelab-oak-1.serial.log".into(),
            pxe: true,
        }
    }

    #[test]
    fn the_domain_boots_from_the_network_first_and_carries_our_metadata() {
        let xml = domain_xml(&spec(), "default", "pxelab-oak-1.qcow2");
        assert!(xml.starts_with("<domain type='qemu'>"), "tcg is libvirt's type 'qemu'");
        let net = xml.find("<interface type='network'>").unwrap();
        assert!(xml[net..].find("<boot order='1'/>").unwrap() < xml[net..].find("</interface>").unwrap());
        let disk = xml.find("<disk type='volume'").unwrap();
        assert!(xml[disk..].find("<boot order='2'/>").unwrap() < xml[disk..].find("</disk>").unwrap());
        assert!(xml.contains("<listen type='address' address='127.0.0.1'/>"));
        assert!(!xml.contains("host-passthrough"));
        assert_eq!(
            meta_of(&xml),
            Some(VmMeta {
                pool: "default".into(),
                volume: "pxelab-oak-1.qcow2".into(),
                serial_log: "/var/lib/pxelab/logs/pxelab-oak-1.serial.log".into()
            })
        );
        let kvm = domain_xml(&VmSpec { accel: Accel::Kvm, ..spec() }, "p", "v");
        assert!(kvm.starts_with("<domain type='kvm'>") && kvm.contains("host-passthrough"));
    }

    #[test]
    fn foreign_domains_have_no_metadata() {
        assert_eq!(meta_of("<domain type='kvm'><name>x</name><metadata><other:vm xmlns:other='http://example.com/vm'><other:disk pool='a' volume='b'/></other:vm></metadata></domain>"), None);
        assert_eq!(meta_of("<domain><name>x</name></domain>"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("pxelab-oak-1") && valid_name("a.b_c"));
        for bad in ["", "-x", ".x", "a b", "a/b", "a'b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn finds_network_interfaces_and_their_taps() {
        let xml = "<domain type='qemu'><name>g</name><devices>\n<disk type='file'><target dev='vda'/></disk>\n<interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='lab' portid='x' bridge='virbr7'/><target dev='vnet4'/><model type='virtio'/></interface>\n<interface type='bridge'><source bridge='br0'/><target dev='vnet5'/></interface>\n</devices></domain>";
        let found = interfaces(xml);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].network.as_deref(), Some("lab"));
        assert_eq!(found[0].bridge.as_deref(), Some("virbr7"));
        assert_eq!(found[0].tap.as_deref(), Some("vnet4"), "the disk's <target dev='vda'/> must not be taken");
        assert_eq!(found[0].mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        assert_eq!(found[1].network, None);
        assert_eq!(found[1].tap.as_deref(), Some("vnet5"));
        assert!(interfaces("not xml <<<").is_empty());
    }

    #[test]
    fn network_boot_order() {
        let spec = |pxe| VmSpec {
            name: "a".into(),
            network: "n".into(),
            memory_mib: 256,
            vcpus: 1,
            disk_gib: 1,
            accel: Accel::Tcg,
            serial_log: "/tmp/x".into(),
            pxe,
        };
        assert_eq!(network_boot(&domain_xml(&spec(true), "p", "v")), NetworkBoot::First);
        assert_eq!(network_boot(&domain_xml(&spec(false), "p", "v")), NetworkBoot::Later);
        let os = |devs: &str| format!("<domain><os><type>hvm</type>{devs}</os><devices><interface type='network'/></devices></domain>");
        assert_eq!(network_boot(&os("<boot dev='network'/><boot dev='hd'/>")), NetworkBoot::First);
        assert_eq!(network_boot(&os("<boot dev='hd'/><boot dev='network'/>")), NetworkBoot::Later);
        assert_eq!(network_boot(&os("<boot dev='hd'/>")), NetworkBoot::Never);
        assert_eq!(network_boot(&os("")), NetworkBoot::Never);
        // A disk with an order and an interface without one: libvirt boots the disk only.
        let disk_only = "<domain><os/><devices><disk><boot order='1'/></disk><interface/></devices></domain>";
        assert_eq!(network_boot(disk_only), NetworkBoot::Never);
    }
}
