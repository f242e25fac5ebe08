//! ARM64 guests: `pxelab up` with an arm64 ISO makes aarch64 VMs (the
//! `virt` machine, AAVMF, TCG here) that boot through edk2's PXE, the
//! ISO's arm64 shim and GRUB, to the installer; on isolated networks, the
//! host restored after each.

mod common;

use common::net::TestNet;
use common::{events, fixture};

fn md5_of(path: &std::path::Path) -> String {
    let out = std::process::Command::new("md5sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

fn up(net: &TestNet, iso: &str, extra: &[&str]) -> std::process::Output {
    let iso = fixture(iso);
    let mut args = vec!["--json", "up", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--vcpus", "1", "--disk-size", "1"];
    args.extend_from_slice(extra);
    net.pxelab(&args)
}

fn console_tail(events: &[serde_json::Value]) -> Vec<String> {
    let reached = events.iter().find(|e| e["event"] == "reached").expect("a reached event");
    reached["vms"][0]["serial_tail"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()
}

/// The busybox installer for arm64, from the RHEL layout's `.treeinfo`
/// (arch aarch64): no --arch, no --firmware; every stage, the arm64 shim
/// over TFTP, the stage2 over HTTP checked by the guest, which says it is
/// an aarch64 machine booted by UEFI on the PL011 console (ttyAMA0).
#[test]
fn an_aarch64_vm_boots_the_busybox_installer_through_aavmf_pxe_and_grub() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let out =
        up(&net, "centos-busybox-arm64.iso", &["--memory", "512", "--wait-for", "installer", "--expect", "PXELAB-STAGE: installer ready", "--timeout", "400"]);
    let events = events(&out);
    assert!(out.status.success(), "up failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    let stages: Vec<&str> = events.iter().filter(|e| e["event"] == "stage").map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dhcp", "bootloader", "kernel", "installer"], "{events:?}");
    let created = events.iter().find(|e| e["event"] == "step" && e["message"].as_str().unwrap().starts_with("created VM")).expect("a created step");
    assert!(created["message"].as_str().unwrap().contains("(aarch64, uefi,"), "{created}");
    let complete =
        |protocol: &str, path: &str| events.iter().any(|e| e["event"] == "transfer" && e["protocol"] == protocol && e["path"] == path && e["complete"] == true);
    assert!(complete("tftp", "iso/EFI/BOOT/BOOTAA64.EFI"), "the ISO's arm64 shim was not served: {events:?}");
    assert!(complete("tftp", "iso/EFI/BOOT/grubaa64.efi"), "the ISO's arm64 GRUB was not served: {events:?}");
    // GRUB reads its config, the kernel and the initrd over TFTP.
    assert!(complete("tftp", "/iso/images/pxeboot/vmlinuz") && complete("tftp", "/iso/images/pxeboot/initrd.img"), "{events:?}");
    assert!(complete("http", "/iso/images/install.img"), "{events:?}");
    let tail = console_tail(&events);
    let want = md5_of(&fixture("centos-busybox-arm64.files/images/install.img"));
    for line in
        ["PXELAB-STAGE: machine aarch64".to_string(), "PXELAB-STAGE: firmware uefi secureboot 0".to_string(), format!("PXELAB-STAGE: stage2 md5 {want}")]
    {
        assert!(tail.iter().any(|l| l.contains(&line)), "{line} not on the console: {tail:#?}");
    }
    net.assert_restored(&original, "after the lab");
}

/// Debian's real arm64 netboot installer in the Debian CD layout
/// (`install.a64/`): d-i's first screen on the serial console, with the
/// ISO as its CD-ROM on virtio-scsi (the `virt` machine has no IDE or SATA).
#[test]
fn debian_installer_for_arm64_reaches_its_first_screen() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let out =
        up(&net, "debian-arm64.iso", &["--memory", "1024", "--wait-for", "installer", "--expect", "Select a language|Choose the language", "--timeout", "600"]);
    let events = events(&out);
    assert!(out.status.success(), "up failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    let created = events.iter().find(|e| e["event"] == "step" && e["message"].as_str().unwrap().starts_with("created VM")).expect("a created step");
    let message = created["message"].as_str().unwrap();
    assert!(message.contains("(aarch64, uefi,") && message.contains("the ISO as its CD-ROM over HTTP"), "{created}");
    assert!(events.iter().any(|e| e["event"] == "transfer" && e["path"] == "iso/EFI/boot/bootaa64.efi" && e["complete"] == true), "{events:?}");
    net.assert_restored(&original, "after the lab");
}

/// Secure Boot on ARM64: AAVMF with Microsoft's keys enrolled (no SMM on
/// the `virt` machine), the ISO's signed shim, GRUB and kernel.
#[test]
fn an_aarch64_vm_boots_the_signed_chain_with_secure_boot_on() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let out = up(
        &net,
        "centos-busybox-arm64.iso",
        &["--memory", "512", "--firmware", "uefi", "--secure-boot", "--wait-for", "installer", "--expect", "PXELAB-STAGE: installer ready", "--timeout", "400"],
    );
    let events = events(&out);
    assert!(out.status.success(), "up failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    let created = events.iter().find(|e| e["event"] == "step" && e["message"].as_str().unwrap().starts_with("created VM")).expect("a created step");
    assert!(created["message"].as_str().unwrap().contains("(aarch64, uefi-secure-boot,"), "{created}");
    let complete =
        |protocol: &str, path: &str| events.iter().any(|e| e["event"] == "transfer" && e["protocol"] == protocol && e["path"] == path && e["complete"] == true);
    assert!(complete("tftp", "/iso/images/pxeboot/vmlinuz"), "{events:?}");
    let tail = console_tail(&events);
    assert!(tail.iter().any(|l| l.contains("PXELAB-STAGE: firmware uefi secureboot 1")), "{tail:#?}");
    net.assert_restored(&original, "after the lab");
}

/// What an aarch64 VM cannot be is refused before any change: BIOS (up and
/// vm new), with one line and exit 3.
#[test]
fn an_aarch64_vm_with_bios_is_refused_before_any_change() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    for args in [&["--firmware", "bios"][..], &["--firmware", "both"], &["--arch", "aarch64", "--firmware", "bios"]] {
        let out = up(&net, "centos-busybox-arm64.iso", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("aarch64 VMs boot UEFI only"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        net.assert_restored(&original, "after the refusal");
    }
    let out = net.pxelab(&["vm", "new", "--network", &net.name, "--arch", "aarch64", "--firmware", "bios"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("aarch64 VMs boot UEFI only"), "{stderr}");
}

/// `installed` on ARM64: a kickstart install writes the installed system
/// (GPT, an ESP with Debian's arm64 GRUB) to the VM's disk and reboots.
/// AAVMF tries the disk first (empty, it fell through to PXE on the first
/// boot) and now boots it: the installed system's login prompt, with no
/// second network boot, JUnit passed and the artifacts kept.
#[test]
fn an_aarch64_kickstart_install_boots_the_installed_system_from_its_disk() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let dir = tempfile::tempdir().unwrap();
    let (ks, junit, artifacts) = (dir.path().join("ks.cfg"), dir.path().join("report.xml"), dir.path().join("artifacts"));
    std::fs::write(&ks, "url --url={http}/iso/\nrootpw --plaintext pxelab\nreboot\n").unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (ks, junit_arg, artifacts_arg) = (path(&ks), path(&junit), path(&artifacts));
    let extra = [
        "--memory",
        "512",
        "--kickstart",
        &ks,
        "--wait-for",
        "installed",
        "--expect-installed",
        "pxelab-installed login:",
        "--timeout",
        "400",
        "--junit",
        &junit_arg,
        "--artifacts",
        &artifacts_arg,
    ];
    let out = up(&net, "centos-busybox-arm64.iso", &extra);
    let events = events(&out);
    assert!(out.status.success(), "up failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    let stages: Vec<&str> = events.iter().filter(|e| e["event"] == "stage").map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dhcp", "bootloader", "kernel", "installer", "installed"], "{events:?}");
    let vm = events.iter().find(|e| e["event"] == "summary").unwrap()["vms"][0]["name"].as_str().unwrap().to_string();

    let console = std::fs::read_to_string(artifacts.join(format!("{vm}.serial.log"))).unwrap();
    let from_disk = console.find("BdsDxe: starting Boot0001 \"UEFI Misc Device\"").unwrap_or_else(|| panic!("AAVMF did not boot the disk:\n{console}"));
    assert!(console.contains("PXELAB-STAGE: disk written"), "{console}");
    assert!(console[from_disk..].contains("PXELAB-INSTALLED: booted from its disk") && console[from_disk..].contains("pxelab-installed login:"), "{console}");
    // One network boot: the installed VM went to its disk, not to the lab.
    let shims = events.iter().filter(|e| e["event"] == "transfer" && e["path"] == "iso/EFI/BOOT/BOOTAA64.EFI" && e["complete"] == true).count();
    assert_eq!(shims, 1, "{events:?}");
    let read = common::junit_cases(&junit);
    assert_eq!(read, format!("suite centos-busybox-arm64.iso tests=1 failures=0\ncase {vm} passed\n"), "{}", std::fs::read_to_string(&junit).unwrap());
    net.assert_restored(&original, "after an ARM64 install");
}
