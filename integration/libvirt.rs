//! `pxelab net …` and `pxelab vm …` against the real libvirtd (qemu:///system).
//!
//! Every test makes its own isolated network (no `<forward>`), with a name,
//! bridge and subnet of its own, and removes it (and any VM on it) in a
//! guard that also runs on panic. Each test has its own state directory, so
//! journals never mix. The host's `default` network is never touched.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::net::{virsh, virsh_ok, wait_for, TestNet, URI};
use common::pxelab;

fn master_of(dev: &str) -> Option<String> {
    std::fs::read_link(Path::new("/sys/class/net").join(dev).join("master")).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

#[test]
fn patch_then_restore_leaves_the_network_byte_identical() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let out = net.pxelab(&["--json", "net", "patch", "--network", &net.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["restarted"], true);

    let bootp = format!("<bootp file='pxelinux.0' server='{}'/>", net.ip);
    assert!(net.inactive_xml().contains(&bootp), "{}", net.inactive_xml());
    assert!(net.live_xml().contains(&bootp), "{}", net.live_xml());
    let conf = std::fs::read_to_string(format!("/var/lib/libvirt/dnsmasq/{}.conf", net.name)).unwrap();
    assert!(conf.lines().any(|l| l == format!("dhcp-boot=pxelinux.0,,{}", net.ip)), "{conf}");
    // Only the bootp line was added.
    assert_eq!(net.inactive_xml().replace(&format!("      {bootp}\n"), ""), original);
    assert_eq!(net.journal_entries(), 1);

    // Patching again changes nothing and keeps the original in the journal.
    let again = net.pxelab(&["--json", "net", "patch", "--network", &net.name]);
    assert!(again.status.success());
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&again.stdout).unwrap()["unchanged"], true);

    let out = net.pxelab(&["net", "restore", "--network", &net.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(net.inactive_xml(), original, "restore must give back the exact XML");
    assert!(!net.live_xml().contains("<bootp"), "the running dnsmasq still has the patch");
    let conf = std::fs::read_to_string(format!("/var/lib/libvirt/dnsmasq/{}.conf", net.name)).unwrap();
    assert!(!conf.contains("dhcp-boot="), "{conf}");
    assert_eq!(net.journal_entries(), 0);
    // Restore is idempotent.
    let out = net.pxelab(&["net", "restore", "--network", &net.name]);
    assert!(out.status.success());
    assert_eq!(net.inactive_xml(), original);
}

#[test]
fn a_patch_killed_after_journaling_is_restored() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let mut child = pxelab()
        .args(["-c", URI, "net", "patch", "--network", &net.name])
        .env("PXELAB_STATE_DIR", net.state.path())
        .env("PXELAB_PAUSE_AT", "after-journal")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the journal entry", Duration::from_secs(20), || net.journal_entries() == 1);
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    // Whatever pxelab got done before it died, restore puts the original back.
    let out = net.pxelab(&["net", "restore", "--network", &net.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(net.inactive_xml(), original);
    assert!(!net.live_xml().contains("<bootp"));
    assert_eq!(net.journal_entries(), 0);

    // And when it died after the change itself: the network is patched and
    // restarted, and pxelab is killed before it could report.
    let mut child = pxelab()
        .args(["-c", URI, "net", "patch", "--network", &net.name])
        .env("PXELAB_STATE_DIR", net.state.path())
        .env("PXELAB_PAUSE_AT", "after-define")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the patched network running", Duration::from_secs(30), || net.live_xml().contains("<bootp"));
    assert!(child.try_wait().unwrap().is_none(), "pxelab still runs (paused) when it is killed");
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(net.inactive_xml().contains("<bootp") && net.journal_entries() == 1, "killed after the change: patched and journaled");
    let out = net.pxelab(&["net", "restore", "--network", &net.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(net.inactive_xml(), original);
    assert!(!net.live_xml().contains("<bootp"));
    assert_eq!(net.journal_entries(), 0);
}

#[test]
fn a_vm_boots_from_the_network_and_is_removed_without_a_trace() {
    let net = TestNet::with_dhcp();
    let vm = net.vm_new();
    let name = vm["name"].as_str().unwrap().to_string();
    assert_eq!(vm["state"], "running");
    assert_eq!(vm["networks"][0], net.name.as_str());
    // The rule stated independently of pxelab's code: kvm only where /dev/kvm
    // opens and is backed by hardware virtualisation (not PVM), else tcg.
    let dev_kvm = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    let hw_backend = ["kvm_intel", "kvm_amd"].iter().any(|m| Path::new("/sys/module").join(m).exists());
    let cpu_flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let vmx = cpu_flags.lines().filter(|l| l.starts_with("flags")).any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let expected_accel = if dev_kvm && hw_backend && vmx { "kvm" } else { "tcg" };
    assert_eq!(vm["accel"], expected_accel, "{}", vm["accel_reason"]);
    assert!(!vm["accel_reason"].as_str().unwrap().is_empty());

    let xml = virsh_ok(&["dumpxml", &name]);
    let iface = &xml[xml.find("<interface type='network'>").unwrap()..];
    let iface = &iface[..iface.find("</interface>").unwrap()];
    assert!(iface.contains("<boot order='1'/>"), "network boots first: {iface}");
    let disk = &xml[xml.find("<disk type='volume'").unwrap()..];
    assert!(disk[..disk.find("</disk>").unwrap()].contains("<boot order='2'/>"), "then the disk");
    let log = vm["serial_log"].as_str().unwrap().to_string();
    // The console is read through libvirt, so the domain names no file on the libvirt host.
    assert!(!xml.contains("<log file"), "no serial log path in the domain: {xml}");
    assert!(xml.contains("address='127.0.0.1'"), "graphics on loopback only");
    assert!(xml.contains("http://pxelab.invalid/xmlns/vm/1"), "pxelab's metadata");

    // The PXE ROM asks the network's DHCP for an address.
    let mac = {
        let start = iface.find("<mac address='").unwrap() + "<mac address='".len();
        iface[start..start + 17].to_string()
    };
    wait_for("a DHCP lease for the VM", Duration::from_secs(120), || virsh_ok(&["net-dhcp-leases", &net.name]).contains(&mac));
    // `vm console -f` reads the console stream and records it; a reset
    // makes SeaBIOS and the PXE ROM write again.
    let mut follow = net.pxelab_command(&["vm", "console", "-f", &name]).stdout(std::process::Stdio::null()).spawn().unwrap();
    // The follower makes the record once it holds the console.
    wait_for("vm console -f to hold the console", Duration::from_secs(30), || Path::new(&log).exists());
    virsh_ok(&["reset", &name]);
    wait_for("the PXE ROM on the recorded console", Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("iPXE") || text.contains("PXE"))
    });
    let console = net.pxelab(&["vm", "console", &name]);
    assert!(String::from_utf8_lossy(&console.stdout).contains("PXE"));

    let volume_path = virsh_ok(&["vol-path", "--pool", vm["pool"].as_str().unwrap(), vm["volume"].as_str().unwrap()]);
    let out = net.pxelab(&["vm", "rm", &name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!virsh(&["dominfo", &name]).status.success(), "domain left behind");
    assert!(!PathBuf::from(volume_path.trim()).exists(), "volume left behind");
    assert!(!Path::new(&log).exists(), "serial log left behind");
    assert!(follow.wait().unwrap().success(), "vm console -f ends with its VM");
    let list = net.pxelab(&["--json", "vm", "list"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
}

#[test]
fn patching_under_a_running_guest_refuses_or_replugs_it() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let vm = net.vm_new();
    let name = vm["name"].as_str().unwrap().to_string();
    let xml = virsh_ok(&["dumpxml", &name]);
    let tap = {
        let start = xml.find("<target dev='vnet").unwrap() + "<target dev='".len();
        xml[start..start + xml[start..].find('\'').unwrap()].to_string()
    };
    assert_eq!(master_of(&tap).as_deref(), Some(net.bridge.as_str()));

    let out = net.pxelab(&["net", "patch", "--network", &net.name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&name) && stderr.contains("--force"), "{stderr}");
    assert_eq!(net.inactive_xml(), original, "a refusal changes nothing");
    assert_eq!(net.journal_entries(), 0);

    let out = net.pxelab(&["--json", "net", "patch", "--network", &net.name, "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(master_of(&tap).as_deref(), Some(net.bridge.as_str()), "the guest's tap is off the bridge after the restart");
    assert!(net.live_xml().contains("<bootp"));

    let out = net.pxelab(&["net", "restore", "--network", &net.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(master_of(&tap).as_deref(), Some(net.bridge.as_str()));
    assert_eq!(net.inactive_xml(), original);
}

#[test]
fn networks_pxelab_cannot_patch_are_refused_unchanged() {
    let missing = TestNet::with_dhcp();
    let out = missing.pxelab(&["net", "patch", "--network", "pxt-no-such-network"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    let no_dhcp = TestNet::new("");
    let before = no_dhcp.inactive_xml();
    let out = no_dhcp.pxelab(&["net", "patch", "--network", &no_dhcp.name]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no IPv4 <dhcp>"));
    assert_eq!(no_dhcp.inactive_xml(), before);

    let tftp_root = tempfile::tempdir().unwrap();
    let tftp = TestNet::new(&format!(
        "    <tftp root='{}'/>\n    <dhcp>\n      <range start='SUBNET.10' end='SUBNET.99'/>\n    </dhcp>\n",
        tftp_root.path().display()
    ));
    let before = tftp.inactive_xml();
    let out = tftp.pxelab(&["net", "patch", "--network", &tftp.name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("<tftp root=") && stderr.contains("remove the <tftp> element"), "{stderr}");
    assert_eq!(tftp.inactive_xml(), before);
    assert_eq!(tftp.journal_entries(), 0);
}

#[test]
fn vms_pxelab_did_not_make_are_left_alone() {
    let net = TestNet::with_dhcp();
    let foreign = format!("pxt-foreign-{}", std::process::id());
    let xml = format!("<domain type='qemu'><name>{foreign}</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), xml).unwrap();
    virsh_ok(&["define", file.path().to_str().unwrap()]);
    let out = net.pxelab(&["vm", "rm", &foreign]);
    let listed = net.pxelab(&["--json", "vm", "list"]);
    let _ = virsh(&["undefine", &foreign]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was not created by pxelab"));
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&foreign));
    let out = net.pxelab(&["vm", "new", "--pxe", "--network", &net.name, "--name", "bad name"]);
    assert_eq!(out.status.code(), Some(3));
}

/// `net restore` looks at the network before it restores: a DHCP host added
/// since the patch is kept (only pxelab's bootp goes), a network undefined
/// since is left gone unless --force, one patched while stopped and started
/// since keeps running, and a network that does not exist is named as
/// `net patch` names it.
#[test]
fn net_restore_never_undoes_a_change_pxelab_did_not_make() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let subnet = &net.ip[..net.ip.len() - 2];
    assert!(net.pxelab(&["net", "patch", "--network", &net.name]).status.success());
    let host = format!("<host mac='52:54:00:00:00:01' ip='{subnet}.50'/>");
    virsh_ok(&["net-update", &net.name, "add", "ip-dhcp-host", &host, "--config", "--live"]);
    let out = net.pxelab(&["--json", "net", "restore", "--network", &net.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["restored"].as_bool(), report["kept_changes"].as_bool()), (Some(true), Some(true)), "{report}");
    for (what, xml) in [("inactive", net.inactive_xml()), ("live", net.live_xml())] {
        assert!(xml.contains("52:54:00:00:00:01") && !xml.contains("<bootp"), "{what}: {xml}");
    }
    virsh_ok(&["net-update", &net.name, "delete", "ip-dhcp-host", &host, "--config", "--live"]);
    assert_eq!(net.inactive_xml(), original);

    // Undefined since the patch: left gone, the entry kept, until --force.
    assert!(net.pxelab(&["net", "patch", "--network", &net.name]).status.success());
    virsh_ok(&["net-destroy", &net.name]);
    virsh_ok(&["net-undefine", &net.name]);
    let out = net.pxelab(&["net", "restore", "--network", &net.name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("was undefined after pxelab patched it") && stderr.contains("--force"), "{stderr}");
    assert!(!virsh(&["net-info", &net.name]).status.success(), "a network someone undefined was defined again");
    assert_eq!(net.journal_entries(), 1);
    let out = net.pxelab(&["net", "restore", "--network", &net.name, "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(net.inactive_xml(), original);
    assert!(virsh_ok(&["net-info", &net.name]).contains("Active:         yes"));

    // Patched while stopped, started since: restored and still running.
    virsh_ok(&["net-destroy", &net.name]);
    assert!(net.pxelab(&["net", "patch", "--network", &net.name]).status.success());
    virsh_ok(&["net-start", &net.name]);
    assert!(net.live_xml().contains("<bootp"));
    assert!(net.pxelab(&["net", "restore", "--network", &net.name]).status.success());
    assert!(virsh_ok(&["net-info", &net.name]).contains("Active:         yes"), "someone started it: it keeps running");
    assert!(!net.live_xml().contains("<bootp"));
    assert_eq!(net.inactive_xml(), original);

    // No such network: the same answer as `net patch`.
    for verb in ["patch", "restore"] {
        let out = net.pxelab(&["net", verb, "--network", "pxt-no-such-network"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{verb}: {stderr}");
        assert!(stderr.contains("does not exist"), "{verb}: {stderr}");
    }
}

/// `net patch --server` takes a host's address only, as `dhcp-config`
/// does: no change, no restart, for each address no host can have.
#[test]
fn net_patch_refuses_addresses_no_host_has() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let subnet = &net.ip[..net.ip.len() - 2];
    for (server, says) in [
        ("0.0.0.0".to_string(), "unspecified"),
        ("255.255.255.255".into(), "broadcast address, no host's"),
        ("224.0.0.1".into(), "multicast"),
        (format!("{subnet}.0"), "network address"),
        (format!("{subnet}.255"), "broadcast address of"),
    ] {
        let out = net.pxelab(&["net", "patch", "--network", &net.name, "--server", &server]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{server}: {stderr}");
        assert!(stderr.contains(says), "{server}: {stderr}");
        assert_eq!(net.inactive_xml(), original, "{server}");
        assert_eq!(net.journal_entries(), 0, "{server}: journaled");
    }
}
