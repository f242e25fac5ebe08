//! UEFI guests (#15): a UEFI VM over iPXE's EFI ROM, a BIOS and a UEFI VM
//! side by side in one lab, and a Secure Boot VM through the ISO's own
//! signed shim and GRUB, each to its installer under TCG. The busybox
//! installer prints what its firmware is (`PXELAB-STAGE: firmware …`, with
//! the SecureBoot variable read through efivarfs), so the guest itself says
//! how it booted. The network is restored byte for byte after each.

mod common;

use common::net::{virsh_ok, TestNet};
use common::{events, fixture};
use serde_json::Value;

/// `up` on the busybox fixture to every VM's installer marker; the events.
fn up(net: &TestNet, extra: &[&str]) -> Vec<Value> {
    let iso = fixture("centos-busybox.iso");
    let mut args = vec!["--json", "up", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--vcpus", "1", "--disk-size", "1", "--memory", "512"];
    args.extend_from_slice(&["--wait-for", "installer", "--expect", "PXELAB-STAGE: installer ready", "--timeout", "500"]);
    args.extend_from_slice(extra);
    let out = net.pxelab(&args);
    let events = events(&out);
    assert!(out.status.success(), "up {extra:?} failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    events
}

/// Each VM's last serial lines when every VM reached the installer.
fn tails(events: &[Value]) -> Vec<(String, String)> {
    let reached = events.iter().find(|e| e["event"] == "reached").expect("a reached event");
    reached["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|vm| {
            let tail: Vec<&str> = vm["serial_tail"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            (vm["name"].as_str().unwrap().to_string(), tail.join("\n"))
        })
        .collect()
}

fn served_to(events: &[Value], vm: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "transfer" && e["complete"] == true && e["vm"] == vm)
        .map(|e| e["path"].as_str().unwrap().trim_start_matches('/').to_string())
        .collect()
}

fn firmware_of(name: &str) -> String {
    let xml = virsh_ok(&["dumpxml", name]);
    xml.lines().find(|l| l.contains("<os")).unwrap_or_default().to_string()
}

#[test]
fn a_uefi_vm_reaches_its_installer_over_ipxe() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let events = up(&net, &["--firmware", "uefi"]);
    let (vm, tail) = &tails(&events)[0];
    assert!(tail.contains("PXELAB-STAGE: firmware uefi secureboot 0"), "the guest booted by UEFI, Secure Boot off:\n{tail}");
    // OVMF ran QEMU's iPXE EFI ROM: the VM's own script, the kernel over HTTP.
    let served = served_to(&events, vm);
    assert!(served.iter().any(|p| p.starts_with("mac/")), "{served:?}");
    assert!(!served.iter().any(|p| p == "pxelinux.0"), "no pxelinux for UEFI: {served:?}");
    net.assert_restored(&original, "after a UEFI lab");
}

#[test]
fn bios_and_uefi_vms_boot_side_by_side_in_one_lab() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let events = up(&net, &["--firmware", "both"]);
    let ready = events.iter().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(ready["vms"].as_array().unwrap().len(), 2, "{ready}");
    let tails = tails(&events);
    assert_eq!(tails.len(), 2);
    let firmwares: Vec<&str> = tails
        .iter()
        .map(|(_, t)| {
            if t.contains("PXELAB-STAGE: firmware bios") {
                "bios"
            } else if t.contains("PXELAB-STAGE: firmware uefi") {
                "uefi"
            } else {
                "?"
            }
        })
        .collect();
    assert!(firmwares.contains(&"bios") && firmwares.contains(&"uefi"), "one of each: {firmwares:?}\n{tails:#?}");
    net.assert_restored(&original, "after a BIOS + UEFI lab");
}

#[test]
fn a_secure_boot_vm_boots_through_the_isos_signed_shim_and_grub() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let events = up(&net, &["--firmware", "uefi", "--secure-boot"]);
    let (vm, tail) = &tails(&events)[0];
    assert!(tail.contains("PXELAB-STAGE: firmware uefi secureboot 1"), "the guest reports Secure Boot on:\n{tail}");
    let served = served_to(&events, vm);
    // edk2's own PXE (the unsigned iPXE ROM is off), then the ISO's chain.
    for file in ["iso/EFI/BOOT/BOOTX64.EFI", "iso/EFI/BOOT/grubx64.efi"] {
        assert!(served.iter().any(|p| p == file), "{file} not served: {served:?}");
    }
    assert!(served.iter().any(|p| p.ends_with("grub/grub.cfg")), "the generated grub.cfg: {served:?}");
    assert!(served.iter().any(|p| p.contains("/grub.cfg-01-52:54:00:")), "the VM's own GRUB config: {served:?}");
    assert!(!served.iter().any(|p| p.starts_with("mac/") || p == "boot.ipxe"), "no iPXE under Secure Boot: {served:?}");
    net.assert_restored(&original, "after a Secure Boot lab");
}

#[test]
fn secure_boot_without_the_isos_own_chain_exits_3_and_changes_nothing() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    // The Ubuntu-layout fixture has no EFI/BOOT shim.
    let iso = fixture("ubuntu-busybox.iso");
    let out = net.pxelab(&["up", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--firmware", "uefi", "--secure-boot"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("--secure-boot") && stderr.contains("EFI/BOOT"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    net.assert_restored(&original, "refused --secure-boot");
    // --secure-boot is UEFI's: with BIOS it is a usage error.
    let out = net.pxelab(&["up", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--secure-boot"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn vm_new_makes_uefi_vms_whose_nvram_goes_with_them() {
    let net = TestNet::with_dhcp();
    let out =
        net.pxelab(&["--json", "vm", "new", "--pxe", "--network", &net.name, "--memory", "256", "--vcpus", "1", "--disk-size", "1", "--firmware", "uefi"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vm: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vm["firmware"], "uefi");
    let name = vm["name"].as_str().unwrap();
    assert!(firmware_of(name).contains("firmware='efi'"), "{}", firmware_of(name));
    let xml = virsh_ok(&["dumpxml", name]);
    let nvram = xml.split("<nvram").nth(1).and_then(|r| r.split('>').nth(1)).and_then(|r| r.split('<').next()).unwrap_or_default().to_string();
    assert!(nvram.ends_with(".fd") && std::path::Path::new(&nvram).exists(), "per-VM NVRAM: {nvram:?}");
    let rm = net.pxelab(&["vm", "rm", name]);
    assert!(rm.status.success(), "{}", String::from_utf8_lossy(&rm.stderr));
    assert!(!std::path::Path::new(&nvram).exists(), "NVRAM removed with the VM");
}
