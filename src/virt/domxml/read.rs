//! Reading a domain's XML: pxelab's metadata, the firmware, the
//! accelerator, the interfaces and how the VM boots from the network. Pure
//! functions over the XML libvirt returns, each tested on real-world XML.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::{Firmware, Interface, NetworkBoot, VmMeta, NAMESPACE};
use crate::arch::Arch;
use crate::virt::accel::Accel;

/// An attribute's value, unescaped as far as quick-xml does; `None` when absent.
fn attr(e: &BytesStart<'_>, key: &str) -> Option<String> {
    e.attributes().flatten().find(|a| a.key.as_ref() == key).map(|a| a.value.into_owned())
}

/// Calls `visit` with each element of `xml` (start or empty) and the names
/// of its ancestors, outermost first, in document order. Broken XML ends
/// the walk: these readers look for facts, and a domain that cannot be read
/// has none.
fn each_element(xml: &str, mut visit: impl FnMut(&[String], &BytesStart<'_>)) {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
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
        visit(&path, &e);
        if !empty {
            path.push(e.name().as_ref().to_string());
        }
    }
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
                let local = name.rsplit(':').next().unwrap_or_default();
                if local == "vm" && e.attributes().flatten().any(|a| a.value == NAMESPACE) {
                    in_ours = true;
                } else if in_ours && local == "disk" {
                    pool = attr(&e, "pool");
                    volume = attr(&e, "volume");
                } else if in_ours && local == "serial-log" {
                    log = attr(&e, "path");
                }
            }
            Ok(Event::End(e)) if e.name().as_ref().ends_with("vm") => in_ours = false,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    Some(VmMeta { pool: pool?, volume: volume?, serial_log: log? })
}

/// The firmware a domain XML boots with: `<os firmware='efi'>` (or an
/// explicit pflash `<loader>`) is UEFI, with Secure Boot when its
/// `secure-boot` feature is on or its loader is `secure='yes'`.
pub fn firmware_of(xml: &str) -> Firmware {
    let (mut efi, mut secure) = (false, false);
    each_element(xml, |path, e| {
        let name = e.name().as_ref().to_string();
        match (path.last().map(String::as_str), name.as_str()) {
            (Some("domain"), "os") => efi |= attr(e, "firmware").as_deref() == Some("efi"),
            (Some("os"), "loader") => {
                efi |= attr(e, "type").as_deref() == Some("pflash");
                secure |= attr(e, "secure").as_deref() == Some("yes");
            }
            (Some("firmware"), "feature")
                if path.len() >= 2
                    && path[path.len() - 2] == "os"
                    && attr(e, "name").as_deref() == Some("secure-boot")
                    && attr(e, "enabled").as_deref() == Some("yes") =>
            {
                secure = true;
            }
            _ => {}
        }
    });
    match (efi, secure) {
        (false, _) => Firmware::Bios,
        (true, false) => Firmware::Uefi,
        (true, true) => Firmware::SecureBoot,
    }
}

/// A domain's architecture, from `<os><type arch=…>`; x86-64 when it names
/// none or one pxelab makes no VMs for (every domain before ARM64 guests).
pub fn arch_of(xml: &str) -> Arch {
    let mut arch = Arch::X86_64;
    each_element(xml, |path, e| {
        if path.last().map(String::as_str) == Some("os") && e.name().as_ref() == "type" {
            arch = attr(e, "arch").and_then(|a| Arch::of_installer(&a).ok()).unwrap_or(Arch::X86_64);
        }
    });
    arch
}

/// The accelerator a domain XML runs under: libvirt's `type='kvm'` is KVM,
/// every other type (`qemu`) is TCG. `None` when the root is not a domain.
pub fn accel_of(xml: &str) -> Option<Accel> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                if e.name().as_ref() != "domain" {
                    return None;
                }
                return Some(if attr(&e, "type").as_deref() == Some("kvm") { Accel::Kvm } else { Accel::Tcg });
            }
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
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
                if current.as_ref().is_some_and(|(d, _)| *d == depth) {
                    out.push(current.take().expect("checked above").1);
                }
                continue;
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => continue,
        };
        match (&mut current, e.name().as_ref()) {
            (None, "interface") if depth == 2 => {
                if empty {
                    out.push(Interface::default());
                } else {
                    current = Some((depth, Interface::default()));
                }
            }
            (Some((_, iface)), "source") => {
                iface.network = attr(&e, "network").or(iface.network.take());
                iface.bridge = attr(&e, "bridge").or(iface.bridge.take());
            }
            (Some((_, iface)), "target") => iface.tap = attr(&e, "dev"),
            (Some((_, iface)), "mac") => iface.mac = attr(&e, "address"),
            _ => {}
        }
        if !empty {
            depth += 1;
        }
    }
    out
}

/// Reads the boot order of a domain XML: per-device `<boot order='N'/>`
/// when any device has one (libvirt then ignores `<os><boot dev>`), else
/// the `<os><boot dev='…'/>` list, whose default is the disk alone.
pub fn network_boot(xml: &str) -> NetworkBoot {
    let mut device_orders: Vec<(bool, u32)> = Vec::new();
    let mut os_devs: Vec<String> = Vec::new();
    each_element(xml, |path, e| {
        if e.name().as_ref() == "boot" {
            match (path.len(), path.last().map(String::as_str)) {
                (2, Some("os")) => os_devs.extend(attr(e, "dev")),
                (3, Some(device)) => {
                    if let Some(order) = attr(e, "order").and_then(|o| o.parse().ok()) {
                        device_orders.push((device == "interface", order));
                    }
                }
                _ => {}
            }
        }
    });
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
