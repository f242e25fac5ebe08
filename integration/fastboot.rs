//! Fast boot (#14): the lab's own VMs boot the installer at once, with no
//! menu and no menu wait, through their own boot configs; any other machine
//! that PXE-boots on the lab's network still gets the seed's menu, with its
//! timeout and its local-boot default. And the lab's DHCP changes (no ping,
//! iPXE's no-ProxyDHCP) are on the network only while the lab runs.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::net::{virsh, virsh_ok, wait_for, TestNet, URI};
use common::{events, fixture, pxelab};
use serde_json::Value;

/// The paths served to `vm`, in order: to it by name, or before the lab
/// saw its lease (`vm: null`), which in a one-VM lab on a network of its
/// own can only be it.
fn served_to(events: &[Value], vm: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "transfer" && e["complete"] == true && (e["vm"] == vm || e["vm"].is_null()))
        .map(|e| e["path"].as_str().unwrap().trim_start_matches('/').to_string())
        .collect()
}

/// `up` on the busybox fixture to its installer; the events and the VM's name.
fn boot_busybox(net: &TestNet, extra: &[&str]) -> (Vec<Value>, String) {
    let iso = fixture("centos-busybox.iso");
    let mut args = vec!["--json", "up", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--vcpus", "1", "--disk-size", "1", "--memory", "512"];
    args.extend_from_slice(&["--wait-for", "installer", "--expect", "PXELAB-STAGE: installer ready", "--timeout", "400"]);
    args.extend_from_slice(extra);
    let out = net.pxelab(&args);
    let events = events(&out);
    assert!(out.status.success(), "up {extra:?} failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    let ready = events.iter().find(|e| e["event"] == "ready").expect("ready event");
    let vm = ready["vms"][0].as_str().unwrap().to_string();
    // The lab ends with one summary: where the VM got, and what it was sent
    // (every transfer credited to it before the summary, the kernel at least).
    let at = events.iter().position(|e| e["event"] == "summary").expect("a summary event");
    assert_eq!(events.iter().filter(|e| e["event"] == "summary").count(), 1);
    let row = &events[at]["vms"][0];
    assert_eq!((row["name"].as_str(), row["stage"].as_str()), (Some(vm.as_str()), Some("installer")), "{row}");
    let sent: u64 = events[..at].iter().filter(|e| e["event"] == "transfer" && e["vm"] == vm.as_str()).map(|e| e["bytes"].as_u64().unwrap()).sum();
    assert_eq!(row["bytes"].as_u64(), Some(sent), "{row}");
    assert!(sent > 8_000_000, "the kernel alone is 8 MB: {row}");
    assert!(row["reached"]["kernel"].as_f64() <= row["reached"]["installer"].as_f64(), "{row}");
    (events, vm)
}

#[test]
fn a_lab_vm_over_ipxe_gets_its_own_script_and_never_the_menu() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let (events, vm) = boot_busybox(&net, &[]);
    let served = served_to(&events, &vm);
    let own = served.iter().find(|p| p.starts_with("mac/")).unwrap_or_else(|| panic!("no per-VM script served: {served:?}"));
    // The lab names the VM of its own script by the MAC in its path, lease or not.
    assert!(events.iter().any(|e| e["event"] == "transfer" && e["path"] == format!("/{own}") && e["vm"] == vm.as_str()), "{events:?}");
    assert!(own.ends_with(".ipxe") && own.len() == "mac/52-54-00-00-00-00.ipxe".len(), "{own}");
    for menu in ["pxelinux.0", "pxelinux.cfg/default", "vesamenu.c32"] {
        assert!(!served.iter().any(|p| p == menu), "the lab's VM was served {menu}: {served:?}");
    }
    assert!(served.iter().any(|p| p.ends_with("images/pxeboot/vmlinuz")), "{served:?}");
    net.assert_restored(&original, "after the lab");
}

#[test]
fn a_lab_vm_over_pxelinux_gets_its_own_config_and_never_the_menu() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    // No HTTP: no iPXE script, so the NIC's ROM loads pxelinux over TFTP.
    let (events, vm) = boot_busybox(&net, &["--http-port", "none", "--repo", "ftp"]);
    let served = served_to(&events, &vm);
    let own = served.iter().find(|p| p.starts_with("pxelinux.cfg/01-52-54-00-")).unwrap_or_else(|| panic!("no per-VM config: {served:?}"));
    assert_eq!(own.len(), "pxelinux.cfg/01-52-54-00-00-00-00".len(), "{own}");
    for menu in ["pxelinux.cfg/default", "vesamenu.c32", "boot.msg"] {
        assert!(!served.iter().any(|p| p == menu), "the lab's VM was served {menu}: {served:?}");
    }
    net.assert_restored(&original, "after the lab");
}

/// A machine pxelab did not make, PXE-booting on the lab's network (TCG,
/// no disk), with its serial console in `log`.
fn stranger_xml(name: &str, network: &str, log: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/><bios useserial='yes'/></os>\
         <devices><interface type='network'><source network='{network}'/><model type='virtio'/></interface>\
         <serial type='pty'><log file='{log}' append='off'/><target port='0'/></serial>\
         <console type='pty'><target type='serial' port='0'/></console></devices></domain>"
    )
}

struct Domain(String);

impl Drop for Domain {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
        let _ = virsh(&["undefine", &self.0]);
    }
}

#[test]
fn any_other_machine_gets_the_menu_with_its_local_boot_default() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let iso = fixture("centos-busybox.iso");
    let mut lab = pxelab()
        .args(["-c", URI, "--json", "up", "--no-vm", "--iso", iso.to_str().unwrap(), "--network", &net.name])
        .env("PXELAB_STATE_DIR", net.state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let reader = {
        let (stdout, seen) = (lab.stdout.take().unwrap(), seen.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str(&line) {
                    seen.lock().unwrap().push(event);
                }
            }
        })
    };
    wait_for("the lab to be ready", Duration::from_secs(60), || seen.lock().unwrap().iter().any(|e| e["event"] == "ready"));
    // The network's dnsmasq runs with the lab's lines while the lab runs.
    let live = net.live_xml();
    for line in ["no-ping", "dhcp-option=tag:ipxe,encap:175,176,1", "dhcp-userclass=set:ipxe,iPXE"] {
        assert!(live.contains(&format!("value='{line}'")), "{line} missing from the live network:\n{live}");
    }

    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stranger.log");
    let name = format!("{}-stranger", net.name);
    let xml = logs.path().join("stranger.xml");
    std::fs::write(&xml, stranger_xml(&name, &net.name, log.to_str().unwrap())).unwrap();
    virsh_ok(&["define", xml.to_str().unwrap()]);
    let _domain = Domain(name.clone());
    virsh_ok(&["start", &name]);
    // Its iPXE ROM asks for boot.ipxe, finds no script of its own, chains
    // pxelinux, gets the menu and, after the menu's 5 s, boots the local
    // disk: which it has none of.
    let serial = || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    wait_for("the stranger to fall back to its local disk", Duration::from_secs(180), || {
        let s = serial();
        s.contains("Boot failed") || s.contains("No bootable device")
    });
    unsafe { libc::kill(lab.id() as i32, libc::SIGTERM) };
    assert!(lab.wait().unwrap().success());
    reader.join().unwrap();
    let events = seen.lock().unwrap().clone();
    let served: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "transfer" && e["complete"] == true)
        .map(|e| e["path"].as_str().unwrap().trim_start_matches('/').to_string())
        .collect();
    for file in ["boot.ipxe", "pxelinux.0", "pxelinux.cfg/default", "vesamenu.c32", "boot.msg"] {
        assert!(served.iter().any(|p| p == file), "the stranger was not served {file}: {served:?}");
    }
    assert!(!served.iter().any(|p| p.starts_with("mac/") || p.contains("vmlinuz")), "the stranger got the installer: {served:?}");
    assert!(serial().contains("Welcome to pxelab"), "boot.msg on the console:\n{}", serial());
    net.assert_restored(&original, "after the lab");
}

/// When a process started, in clock ticks since boot (`/proc/PID/stat`'s 22nd field).
fn started_at(pid_file: &str) -> u64 {
    let pid = std::fs::read_to_string(pid_file).unwrap_or_else(|e| panic!("{pid_file}: {e}"));
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap();
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(19).unwrap().parse().unwrap()
}

#[test]
fn the_first_vm_starts_while_the_network_restarts() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let iso = fixture("centos-busybox.iso");
    let mut lab = net
        .pxelab_command(&["--json", "up", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--vcpus", "1", "--disk-size", "1", "--memory", "512"])
        .args(["--wait-for", "installer", "--expect", "PXELAB-STAGE: installer ready", "--timeout", "400"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut events = Vec::<Value>::new();
    let mut ready = None;
    for line in BufReader::new(lab.stdout.take().unwrap()).lines().map_while(Result::ok) {
        let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
        if event["event"] == "ready" {
            // Both run now: the VM's QEMU and the patched network's dnsmasq.
            let vm = event["vms"][0].as_str().unwrap().to_string();
            let starts = (started_at(&format!("/run/libvirt/qemu/{vm}.pid")), started_at(&format!("/run/libvirt/network/{}.pid", net.name)));
            ready = Some((vm, starts));
        }
        events.push(event);
    }
    assert!(lab.wait().unwrap().success(), "up failed: {:?}", events.last());
    let (vm, (qemu, dnsmasq)) = ready.expect("a ready event");
    // QEMU came first: it was launched before the restart that started this dnsmasq.
    assert!(qemu < dnsmasq, "QEMU started at tick {qemu}, the patched network's dnsmasq at {dnsmasq}");
    // And the VM ran on the patched network only: its firmware got the lab's boot file and its own script.
    let served = served_to(&events, &vm);
    assert!(served.iter().any(|p| p.starts_with("mac/")), "its own script: {served:?}");
    assert!(events.iter().any(|e| e["event"] == "reached" && e["stage"] == "installer"), "{:?}", events.last());
    net.assert_restored(&original, "after the lab");
}
