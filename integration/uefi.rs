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

/// A VM's whole console, as `--artifacts` kept it.
fn console_of(artifacts: &std::path::Path, vm: &str) -> String {
    std::fs::read_to_string(artifacts.join(format!("{vm}.serial.log"))).unwrap()
}

/// The firmware went straight to the one boot the lab serves it: edk2
/// prints ">>Start PXE over IPv6" or ">>Start HTTP Boot over IPv4" when it
/// tries those entries, which would mean a failed first attempt.
fn assert_no_other_boot_attempt(console: &str) {
    for other in ["over IPv6", "HTTP Boot"] {
        assert!(!console.contains(other), "the firmware tried {other:?} first:\n{console}");
    }
}

fn firmware_of(name: &str) -> String {
    let xml = virsh_ok(&["dumpxml", name]);
    xml.lines().find(|l| l.contains("<os")).unwrap_or_default().to_string()
}

#[test]
fn a_uefi_vm_reaches_its_installer_over_ipxe() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let artifacts = tempfile::tempdir().unwrap();
    let events = up(&net, &["--firmware", "uefi", "--artifacts", artifacts.path().to_str().unwrap()]);
    let (vm, tail) = &tails(&events)[0];
    assert!(tail.contains("PXELAB-STAGE: firmware uefi secureboot 0"), "the guest booted by UEFI, Secure Boot off:\n{tail}");
    let console = console_of(artifacts.path(), vm);
    assert_no_other_boot_attempt(&console);
    // The EFI ROM's Ctrl-B prompt too is answered as it shows.
    assert!(console.contains("Press Ctrl-B for the iPXE command line"), "{console}");
    let answered = format!("answered {vm}'s iPXE prompt");
    assert!(events.iter().any(|e| e["event"] == "step" && e["message"].as_str().is_some_and(|m| m.starts_with(&answered))), "{events:?}");
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
    let artifacts = tempfile::tempdir().unwrap();
    let events = up(&net, &["--firmware", "uefi", "--secure-boot", "--artifacts", artifacts.path().to_str().unwrap()]);
    let (vm, tail) = &tails(&events)[0];
    assert!(tail.contains("PXELAB-STAGE: firmware uefi secureboot 1"), "the guest reports Secure Boot on:\n{tail}");
    let console = console_of(artifacts.path(), vm);
    assert!(console.contains("Start PXE over IPv4"), "edk2's own PXE:\n{console}");
    assert_no_other_boot_attempt(&console);
    let served = served_to(&events, vm);
    // edk2's own PXE (the unsigned iPXE ROM is off), then the ISO's chain.
    for file in ["iso/EFI/BOOT/BOOTX64.EFI", "iso/EFI/BOOT/grubx64.efi"] {
        let about: Vec<&Value> = events.iter().filter(|e| e.to_string().contains("BOOTX64") || e.to_string().contains("bootx64")).collect();
        assert!(served.iter().any(|p| p == file), "{file} not served: {served:?}\n{about:#?}");
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

#[test]
fn iso_inspect_shows_the_isos_efi_loader() {
    let inspect = |name: &str| -> Value {
        let out = common::pxelab().args(["--json", "iso", "inspect"]).arg(fixture(name)).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(inspect("centos-busybox.iso")["efi_loader"], "EFI/BOOT/BOOTX64.EFI");
    assert!(inspect("ubuntu-busybox.iso")["efi_loader"].is_null());
    let text = common::pxelab().args(["iso", "inspect"]).arg(fixture("centos-busybox.iso")).output().unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("EFI        EFI/BOOT/BOOTX64.EFI and the GRUB beside it"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}

/// A UEFI machine pxelab did not make, with its NIC's iPXE ROM off so the
/// firmware's own PXE runs (TCG, no disk), its serial console in `log`.
fn uefi_stranger_xml(name: &str, network: &str, log: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>512</memory><vcpu>1</vcpu>\
         <os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type><firmware>\
         <feature enabled='no' name='secure-boot'/><feature enabled='no' name='enrolled-keys'/></firmware></os>\
         <features><acpi/><apic/></features>\
         <devices><interface type='network'><source network='{network}'/><model type='virtio'/><boot order='1'/><rom enabled='no'/></interface>\
         <serial type='pty'><log file='{log}' append='off'/><target port='0'/></serial>\
         <console type='pty'><target type='serial' port='0'/></console></devices></domain>"
    )
}

struct Stranger(String);

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = common::net::virsh(&["destroy", &self.0]);
    }
}

/// An ISO with no EFI/BOOT of its own: a UEFI client that is not iPXE gets
/// the host's Debian shim and GRUB, and GRUB the generated menu (here with
/// the installer as its default), which boots the installer.
#[test]
fn any_other_uefi_machine_boots_through_the_hosts_shim_grub_and_menu() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let iso = fixture("ubuntu-busybox.iso");
    let out = net.pxelab(&["up", "--detach", "--no-vm", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--menu-default", "install"]);
    assert!(out.status.success(), "up --detach: {}", String::from_utf8_lossy(&out.stderr));
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stranger.log");
    let name = format!("{}-uefi", net.name);
    let file = logs.path().join("domain.xml");
    std::fs::write(&file, uefi_stranger_xml(&name, &net.name, log.to_str().unwrap())).unwrap();
    virsh_ok(&["create", file.to_str().unwrap()]);
    let _stranger = Stranger(name.clone());
    common::net::wait_for("the installer on the stranger's console", std::time::Duration::from_secs(400), || {
        std::fs::read(&log).is_ok_and(|t| String::from_utf8_lossy(&t).contains("PXELAB-STAGE: installer ready"))
    });
    let console = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    assert!(console.contains("NBP filename is efi/bootx64.efi"), "the host's shim, by the efi64 tag:\n{console}");
    assert!(console.contains("GNU GRUB"), "GRUB ran:\n{console}");
    assert!(console.contains("PXELAB-STAGE: firmware uefi secureboot 0"), "{console}");
    drop(_stranger);
    assert!(net.pxelab(&["down"]).status.success());
    net.assert_restored(&original, "after a UEFI stranger");
}

/// doctor: OVMF and the loaders on this host, and a Secure Boot VM beside a
/// lab that can only offer it the host's Debian shim.
#[test]
fn doctor_checks_ovmf_the_loaders_and_a_vms_firmware() {
    let net = TestNet::with_dhcp();
    let iso = fixture("ubuntu-busybox.iso");
    let out = net.pxelab(&["up", "--detach", "--no-vm", "--iso", iso.to_str().unwrap(), "--network", &net.name]);
    assert!(out.status.success(), "up --detach: {}", String::from_utf8_lossy(&out.stderr));
    let vm = net.pxelab(&[
        "--json",
        "vm",
        "new",
        "--pxe",
        "--network",
        &net.name,
        "--memory",
        "256",
        "--vcpus",
        "1",
        "--disk-size",
        "1",
        "--firmware",
        "uefi",
        "--secure-boot",
    ]);
    assert!(vm.status.success(), "{}", String::from_utf8_lossy(&vm.stderr));
    let vm: Value = serde_json::from_slice(&vm.stdout).unwrap();
    assert_eq!(vm["firmware"], "uefi-secure-boot");
    let name = vm["name"].as_str().unwrap();
    let report: Value = serde_json::from_slice(&net.pxelab(&["--json", "doctor", "--vm", name]).stdout).unwrap();
    let check = |id: &str| report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned().unwrap_or_else(|| panic!("no {id}: {report:#}"));
    assert_eq!(check("ovmf")["status"], "ok", "{report:#}");
    assert_eq!(check("uefi.loaders")["status"], "ok", "{report:#}");
    let firmware = check("vm.firmware");
    assert_eq!(firmware["status"], "warn", "{firmware}");
    assert!(firmware["detail"].as_str().unwrap().contains("Debian shim"), "{firmware}");
    // pxelab's UEFI VMs try their disk first: edk2 would stop at its menu after an install otherwise.
    let boot = check("vm.boot");
    assert!(boot["status"] == "ok" && boot["detail"].as_str().unwrap().contains("boots its disk first (UEFI)"), "{boot}");
    assert!(net.pxelab(&["down"]).status.success());
}
