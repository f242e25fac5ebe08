//! `pxelab doctor`: each condition broken on purpose on an isolated test
//! network, and the finding and its fix asserted; plus the healthy cases,
//! so a check that always fails would be caught too.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::net::{virsh, virsh_ok, wait_for, TestNet, URI};
use common::pxelab;
use serde_json::Value;

/// Runs `doctor --json` with `args`; returns its exit code and report.
fn doctor(net: &TestNet, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json", "doctor"];
    all.extend_from_slice(args);
    report_of(net.pxelab(&all))
}

/// The exit code and the JSON report of a `doctor --json` run.
fn report_of(out: std::process::Output) -> (i32, Value) {
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor --json printed no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), report)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

fn assert_check(report: &Value, id: &str, status: &str, detail: &str, fix: &str) {
    let c = check(report, id);
    assert_eq!(c["status"], status, "{id}: {c:#}");
    assert!(c["detail"].as_str().unwrap().contains(detail), "{id} detail should contain {detail:?}: {c:#}");
    if fix.is_empty() {
        assert!(c.get("fix").is_none(), "{id}: an ok check has no fix: {c:#}");
    } else {
        assert!(c["fix"].as_str().unwrap_or_default().contains(fix), "{id} fix should contain {fix:?}: {c:#}");
    }
}

#[test]
fn a_network_without_bootp_is_named_and_patching_it_makes_doctor_pass() {
    let net = TestNet::with_dhcp();
    let (code, report) = doctor(&net, &["--network", &net.name]);
    // Before `up`, no bootp is expected: a warning that says what `up` does.
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_check(&report, "network.bootp", "warn", "has no <bootp>", &format!("pxelab net patch --network {}", net.name));
    // The test network has libvirt's default STP: said, with what removes its wait.
    assert_check(&report, "network.stp", "warn", &format!("STP is on for {}", net.bridge), "stp='off'");
    assert_check(&report, "ports.tftp", "ok", &format!("UDP 69 on {} is free", net.ip), "");
    assert_check(&report, "ports.ftp", "ok", &format!("TCP 21 on {} is free", net.ip), "");
    assert_check(&report, "network.tftp", "ok", "no <tftp>", "");
    assert_check(&report, "libvirt", "ok", "answers", "");

    let out = net.pxelab(&["net", "patch", "--network", &net.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, report) = doctor(&net, &["--network", &net.name]);
    assert_eq!(code, 0, "{report:#}");
    assert_check(&report, "network.bootp", "ok", &format!("pxelinux.0 from {}", net.ip), "");
    // doctor changed nothing: the journal still holds exactly the patch.
    assert_eq!(net.journal_entries(), 1);
    let out = net.pxelab(&["net", "restore", "--network", &net.name]);
    assert!(out.status.success());
}

#[test]
fn a_bootp_pointing_elsewhere_fails_with_the_fix() {
    let net = TestNet::with_dhcp();
    let out = net.pxelab(&["net", "patch", "--network", &net.name, "--server", "192.0.2.7"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, report) = doctor(&net, &["--network", &net.name]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false);
    assert_check(
        &report,
        "network.bootp",
        "fail",
        "bootp server 192.0.2.7 is not an address of this host",
        &format!("`pxelab net patch --network {}` points it at {}", net.name, net.ip),
    );
    // A file pxelab does not serve is the other way to point elsewhere.
    let out = net.pxelab(&["net", "patch", "--network", &net.name, "--file", "grubx64.efi"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, report) = doctor(&net, &["--network", &net.name]);
    assert_eq!(code, 1);
    assert_check(&report, "network.bootp", "fail", "\"grubx64.efi\" is not one pxelab serves", "--file pxelinux.0");
    // Text output: the finding and its fix, one line each.
    let text = net.pxelab(&["doctor", "--network", &net.name]);
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().any(|l| l.starts_with("FAIL  network.bootp") && l.contains("grubx64.efi")), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("fix: `pxelab net patch")), "{text}");
    assert!(net.pxelab(&["net", "restore", "--network", &net.name]).status.success());
}

#[test]
fn a_tftp_element_fails_twice_network_and_port() {
    let root = tempfile::tempdir().unwrap();
    let net =
        TestNet::new(&format!("    <tftp root='{}'/>\n    <dhcp>\n      <range start='SUBNET.10' end='SUBNET.99'/>\n    </dhcp>\n", root.path().display()));
    let (code, report) = doctor(&net, &["--network", &net.name]);
    assert_eq!(code, 1, "{report:#}");
    assert_check(&report, "network.tftp", "fail", &format!("<tftp root='{}'/>", root.path().display()), "remove the <tftp> element");
    // libvirt's dnsmasq holds UDP 69 on the bridge address because of it.
    assert_check(&report, "ports.tftp", "fail", "is held by dnsmasq", "remove the network's <tftp> element");
}

#[test]
fn ports_held_by_another_process_name_it() {
    let net = TestNet::with_dhcp();
    // A separate process (not this test), so the name doctor reports is checkable.
    let script = format!(
        "import socket,sys,time\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.bind(('{ip}',69))\nt=socket.socket();t.bind(('{ip}',21));t.listen()\nprint('ready',flush=True)\ntime.sleep(120)\n",
        ip = net.ip
    );
    let mut holder = Holder(Command::new("python3").args(["-c", &script]).stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.0.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = holder.0.id();

    let (code, report) = doctor(&net, &["--network", &net.name]);
    assert_eq!(code, 1, "{report:#}");
    let held = format!("is held by python3 (pid {pid})");
    assert_check(&report, "ports.tftp", "fail", &held, &format!("stop python3 (pid {pid})"));
    assert_check(&report, "ports.ftp", "fail", &held, "pxelab needs TCP 21");
    drop(holder);
    let (code, report) = doctor(&net, &["--network", &net.name]);
    assert_eq!(code, 0, "freed ports pass again: {report:#}");
}

struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_guest_on_another_network_and_one_that_never_boots_from_it() {
    let lab_net = TestNet::with_dhcp();
    let other = TestNet::with_dhcp();
    // A pxelab VM on the other network.
    let vm = other.vm_new();
    let name = vm["name"].as_str().unwrap();
    let (code, report) = doctor(&lab_net, &["--network", &lab_net.name, "--vm", name]);
    assert_eq!(code, 1, "{report:#}");
    assert_check(
        &report,
        "vm.network",
        "fail",
        &format!("NIC is on {}, not on network {}", other.name, lab_net.name),
        &format!("virsh attach-interface {name} network {}", lab_net.name),
    );
    // The same VM against its own network: on it, and network boot first.
    let (_, report) = doctor(&other, &["--network", &other.name, "--vm", name]);
    assert_check(&report, "vm.network", "ok", &format!("on network {}", other.name), "");
    assert_check(&report, "vm.boot", "ok", "boots from the network first", "");

    // A domain of the user's own that boots from its disk only, shut off.
    let domain = format!("pxt-doc-{}", std::process::id());
    let xml = format!(
        "<domain type='qemu'><name>{domain}</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>\
         <devices><interface type='network'><source network='{}'/></interface></devices></domain>",
        lab_net.name
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), xml).unwrap();
    virsh_ok(&["define", file.path().to_str().unwrap()]);
    let (code, report) = doctor(&lab_net, &["--vm", &domain, "--network", &lab_net.name]);
    let _ = virsh(&["undefine", &domain]);
    assert_eq!(code, 1, "{report:#}");
    assert_check(&report, "vm.network", "ok", "", "");
    assert_check(&report, "vm.boot", "fail", "boot order has no network device", "<boot order='1'/>");
    assert_check(&report, "vm.stage", "warn", "is not running", &format!("virsh start {domain}"));

    let (code, report) = doctor(&lab_net, &["--vm", "pxt-no-such-vm", "--network", &lab_net.name]);
    assert_eq!(code, 1);
    assert_check(&report, "vm", "fail", "does not exist", "virsh list --all");
}

#[test]
fn a_running_lab_is_probed_as_a_guest_would() {
    let net = TestNet::with_dhcp();
    net.up_detached();
    let status: Value = serde_json::from_slice(&net.pxelab(&["--json", "status", "--network", &net.name]).stdout).unwrap();
    let pid = status["pid"].as_u64().unwrap();

    // No --network: doctor checks the running lab's.
    let (code, report) = doctor(&net, &[]);
    assert_eq!(report["network"], net.name.as_str());
    assert_eq!(report["lab_pid"], pid);
    assert_check(&report, "lab", "ok", &format!("a lab runs (pid {pid})"), "");
    assert_check(&report, "network.bootp", "ok", "pxelinux.0", "");
    // The TFTP probe fetched a real block and the FTP server greeted it.
    assert_check(&report, "ports.tftp", "ok", &format!("served by pxelab (pid {pid}): pxelinux.0 answered (512 bytes in block 1)"), "");
    assert_check(&report, "ports.ftp", "ok", "greeting \"220", "");
    // HTTP answered, and the network sends iPXE clients to it.
    assert_check(&report, "ports.http", "ok", "HEAD /pxelinux.0 answered \"HTTP/1.1 200", "");
    assert_check(&report, "network.ipxe", "ok", &format!("iPXE clients are sent to http://{}/boot.ipxe, with no ping and no ProxyDHCP wait", net.ip), "");
    assert_eq!(code, 0, "{report:#}");

    // A VM joins the lab: doctor follows it to a DHCP lease and a stage.
    let joined = net.pxelab(&["--json", "vm", "new", "--pxe", "--memory", "256", "--vcpus", "1", "--disk-size", "1"]);
    assert!(joined.status.success(), "{}", String::from_utf8_lossy(&joined.stderr));
    let joined: Value = serde_json::from_slice(&joined.stdout).unwrap();
    let name = joined["name"].as_str().unwrap().to_string();
    wait_for("doctor to see the VM past DHCP", Duration::from_secs(90), || {
        let (_, report) = doctor(&net, &["--vm", &name]);
        let stage = check(&report, "vm.stage");
        stage["status"] == "ok" && stage["detail"].as_str().unwrap().contains("DHCP lease")
    });

    // While a lab runs, its servers going away is a failure, not "free for pxelab".
    let out = net.pxelab(&["down"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, report) = doctor(&net, &["--network", &net.name]);
    assert_check(&report, "lab", "ok", "no lab is running", "");
    assert_check(&report, "network.bootp", "warn", "has no <bootp>", "net patch");
}

#[test]
fn an_unreachable_libvirtd_or_missing_network_fails_clearly() {
    let state = tempfile::tempdir().unwrap();
    // No TestNet here: one of the two has no libvirtd to make it on.
    let run = |args: &[&str]| report_of(pxelab().args(args).env("PXELAB_STATE_DIR", state.path()).output().unwrap());
    let (code, report) = run(&["-c", "qemu+unix:///system?socket=/nonexistent/libvirt-sock", "--json", "doctor"]);
    assert_eq!(code, 1);
    assert_check(&report, "libvirt", "fail", "cannot connect", "libvirtd -d");
    // The host checks still ran.
    assert!(check(&report, "syslinux")["status"].is_string());

    let (code, report) = run(&["-c", URI, "--json", "doctor", "--network", "pxt-no-such-network"]);
    assert_eq!(code, 1);
    assert_check(&report, "network", "fail", "\"pxt-no-such-network\" does not exist", "virsh net-list --all");
}
