//! Answer files (#16, first part): `up --kickstart|--preseed|--autoinstall`
//! serves each VM its own copy of the template over HTTP and points its
//! installer there. The busybox installers fetch the file as the real ones
//! do (inst.ks=, url=, ds=nocloud-net;s=) and print its md5, which must be
//! the md5 of the template as rendered for that VM. A broken file, or one of
//! the wrong kind for the ISO, stops `up` before any change (exit 3).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::net::TestNet;
use common::{events, fixture, junit_cases};
use serde_json::Value;

/// The VM shape of every lab here: small, one vCPU (TCG).
const SHAPE: [&str; 6] = ["--vcpus", "1", "--disk-size", "1", "--memory", "512"];

fn md5(bytes: &[u8]) -> String {
    let mut child = Command::new("md5sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// `up` with `flag FILE` on `iso` to the installer; the VM's name, MAC and serial tail.
fn up_with(net: &TestNet, iso: &str, flag: &str, template: &str) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("answer");
    std::fs::write(&file, template).unwrap();
    let iso = fixture(iso);
    let mut args = vec!["--json", "up", "--iso", iso.to_str().unwrap(), "--network", &net.name, flag, file.to_str().unwrap()];
    args.extend_from_slice(&SHAPE);
    args.extend_from_slice(&["--wait-for", "installer", "--expect", "PXELAB-STAGE: installer ready", "--timeout", "400"]);
    let out = net.pxelab(&args);
    let events = events(&out);
    assert!(out.status.success(), "up {flag}: {}\n{:?}", String::from_utf8_lossy(&out.stderr), events.last());
    let summary = events.iter().find(|e| e["event"] == "summary").expect("a summary");
    let vm = &summary["vms"][0];
    let reached = events.iter().find(|e| e["event"] == "reached").unwrap();
    let tail: Vec<&str> = reached["vms"][0]["serial_tail"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    (vm["name"].as_str().unwrap().to_string(), vm["mac"].as_str().unwrap().to_string(), tail.join("\n"))
}

fn answer_line<'a>(tail: &'a str, kind: &str) -> &'a str {
    tail.lines().find(|l| l.starts_with(&format!("PXELAB-STAGE: answer {kind} "))).unwrap_or_else(|| panic!("no {kind} fetched:\n{tail}"))
}

#[test]
fn a_kickstart_template_is_rendered_for_the_vm_and_fetched_by_its_installer() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let template = "# {vm}\nurl --url={http}/iso/\nrootpw --plaintext pxelab\nnetwork --hostname={vm}\n%post\necho {mac} {server} ${HOME}\n%end\n";
    let (vm, mac, tail) = up_with(&net, "centos-busybox.iso", "--kickstart", template);
    let http = format!("http://{}", net.ip);
    // Written out, not rendered the way pxelab renders: `${HOME}` stays.
    let rendered =
        format!("# {vm}\nurl --url={http}/iso/\nrootpw --plaintext pxelab\nnetwork --hostname={vm}\n%post\necho {mac} {ip} ${{HOME}}\n%end\n", ip = net.ip);
    let url = format!("{http}/auto/{}/ks.cfg", mac.replace(':', "-"));
    assert_eq!(answer_line(&tail, "kickstart"), format!("PXELAB-STAGE: answer kickstart {url} md5 {}", md5(rendered.as_bytes())));
    net.assert_restored(&original, "after a kickstart lab");
}

#[test]
fn preseed_and_autoinstall_arguments_reach_their_installers_intact() {
    let net = TestNet::with_dhcp();
    let http = format!("http://{}", net.ip);

    let preseed = "d-i debian-installer/locale string en_US\nd-i netcfg/get_hostname string {vm}\n";
    let (vm, mac, tail) = up_with(&net, "debian-busybox.iso", "--preseed", preseed);
    let url = format!("{http}/auto/{}/preseed.cfg", mac.replace(':', "-"));
    let rendered = format!("d-i debian-installer/locale string en_US\nd-i netcfg/get_hostname string {vm}\n");
    assert_eq!(answer_line(&tail, "preseed"), format!("PXELAB-STAGE: answer preseed {url} md5 {}", md5(rendered.as_bytes())));
    assert!(tail.contains("PXELAB-STAGE: mirror ok"), "{tail}");

    let user_data = "#cloud-config\nautoinstall:\n  version: 1\n  identity: {hostname: {vm}}\n";
    let (vm, mac, tail) = up_with(&net, "ubuntu-busybox.iso", "--autoinstall", user_data);
    // The `;` of ds=nocloud-net;s= survives the boot loader's command line.
    let ds = format!("nocloud-net;s={http}/auto/{}/", mac.replace(':', "-"));
    let rendered = format!("#cloud-config\nautoinstall:\n  version: 1\n  identity: {{hostname: {vm}}}\n");
    assert_eq!(answer_line(&tail, "autoinstall"), format!("PXELAB-STAGE: answer autoinstall {ds} md5 {}", md5(rendered.as_bytes())));
}

#[test]
fn a_broken_or_wrong_kind_answer_file_exits_3_and_changes_nothing() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let cases = [
        ("centos-busybox.iso", "--kickstart", write("empty.ks", "\n\n"), "the file is empty"),
        (
            "debian-busybox.iso",
            "--preseed",
            write("bad.preseed", "d-i debian-installer/locale string en_US\nnot a preseed\n"),
            "is not `owner question type value`",
        ),
        ("ubuntu-busybox.iso", "--autoinstall", write("no-key.yaml", "#cloud-config\nusers: []\n"), "no top-level `autoinstall:`"),
        ("centos-busybox.iso", "--kickstart", "/nonexistent/ks.cfg".to_string(), "cannot read it"),
        // A preseed for a RHEL ISO, given as one and as a kickstart.
        ("centos-busybox.iso", "--preseed", write("ok.preseed", "d-i debian-installer/locale string en_US\n"), "the ISO's installer is anaconda"),
        ("centos-busybox.iso", "--kickstart", write("ok2.preseed", "d-i debian-installer/locale string en_US\n"), "looks like a preseed"),
    ];
    for (iso, flag, file, why) in cases {
        let iso = fixture(iso);
        // `timeout`: a file that slipped through would start a lab that runs until stopped.
        let out = Command::new("timeout")
            .arg("60")
            .arg(env!("CARGO_BIN_EXE_pxelab"))
            .args(["-c", common::net::URI, "up", "--iso", iso.to_str().unwrap(), "--network", &net.name, flag, &file, "--no-vm"])
            .env("PXELAB_STATE_DIR", net.state.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{flag} {file}: {stderr}");
        assert!(stderr.contains(why), "{flag} {file}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        net.assert_restored(&original, &format!("refused {flag} {file}"));
    }
    let both = net.pxelab(&["up", "--iso", "x.iso", "--kickstart", "a", "--preseed", "b"]);
    assert_eq!(both.status.code(), Some(2), "one answer file at a time");
}

/// `up --kickstart` to `installed`: the busybox installer writes a system
/// to the VM's disk and reboots; the lab has switched the VM's own boot
/// config to local boot, so the firmware boots the disk, whose system prints
/// a login prompt on the serial console (`--expect-installed`).
#[test]
fn a_kickstart_install_reboots_into_the_installed_system() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let events = install(&net, "url --url={http}/iso/\nrootpw --plaintext pxelab\nreboot\n", &["--expect-installed", "pxelab-installed login:"]);
    let tail = reached_tail(&events);
    // The installed system, after a boot from the disk (SeaBIOS and iPXE
    // above it in the tail: the firmware handed over to the disk).
    for line in ["PXELAB-INSTALLED: booted from its disk", "pxelab-installed login:"] {
        assert!(tail.contains(line), "{line:?} not on the console:\n{tail}");
    }
    // After the installer: the system image written, then the reboot handed
    // the VM's own (local-boot) script, and never the installer again.
    let at = events.iter().position(|e| e["event"] == "stage" && e["stage"] == "installer").unwrap();
    let after: Vec<&str> = events[at..].iter().filter(|e| e["event"] == "transfer").filter_map(|e| e["path"].as_str()).collect();
    let image = after.iter().position(|p| *p == "/iso/images/pxelab-disk.img.gz").unwrap_or_else(|| panic!("the disk image: {after:?}"));
    assert!(after[image..].iter().any(|p| p.starts_with("/mac/")), "the VM's own script after the install: {after:?}");
    assert!(!after.iter().any(|p| p.ends_with("/vmlinuz")), "no installer kernel after the installer: {after:?}");
    assert_order(&events);
    net.assert_restored(&original, "after an install");
}

/// The same install on a UEFI VM (OVMF, iPXE EFI): the VM tries its disk
/// first, empty on the first boot (it falls through to the network), and
/// after the install OVMF boots it; without `--expect-installed`, OVMF
/// starting the disk's boot option after the installer is `installed`.
#[test]
fn a_uefi_kickstart_install_is_installed_when_the_firmware_starts_its_disk() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let reports = tempfile::tempdir().unwrap();
    let artifacts = reports.path().join("artifacts");
    let events = install(
        &net,
        "url --url={http}/iso/\nrootpw --plaintext pxelab\nreboot\n",
        &["--firmware", "uefi", "--wait-for", "installed", "--artifacts", artifacts.to_str().unwrap()],
    );
    assert_order(&events);
    let vm = events.iter().find(|e| e["event"] == "summary").unwrap()["vms"][0]["name"].as_str().unwrap().to_string();
    let console = std::fs::read_to_string(artifacts.join(format!("{vm}.serial.log"))).unwrap();
    let empty = console.find("BdsDxe: failed to load Boot0001 \"UEFI Misc Device\"").unwrap_or_else(|| panic!("the empty disk first:\n{console}"));
    let written = console.find("PXELAB-STAGE: disk written").unwrap_or_else(|| panic!("{console}"));
    let booted = console.rfind("BdsDxe: starting Boot0001 \"UEFI Misc Device\"").unwrap_or_else(|| panic!("OVMF did not boot the disk:\n{console}"));
    assert!(empty < written && written < booted, "{console}");
    // After the installer, nothing from the lab: the firmware went to its disk.
    let at = events.iter().position(|e| e["event"] == "stage" && e["stage"] == "installer").unwrap();
    let after: Vec<&str> = events[at..].iter().filter(|e| e["event"] == "transfer").filter_map(|e| e["path"].as_str()).collect();
    assert!(after.iter().all(|p| p.starts_with("/iso/images/") || p.starts_with("/auto/")), "{after:?}");
    net.assert_restored(&original, "after a UEFI install");
}

#[test]
fn a_kickstart_that_ends_in_poweroff_is_installed_when_the_vm_powers_off() {
    let net = TestNet::with_dhcp();
    let reports = tempfile::tempdir().unwrap();
    let (junit, artifacts) = (reports.path().join("report.xml"), reports.path().join("artifacts"));
    let events = install(
        &net,
        "url --url={http}/iso/\nrootpw --plaintext pxelab\npoweroff\n",
        &["--wait-for", "installed", "--junit", junit.to_str().unwrap(), "--artifacts", artifacts.to_str().unwrap()],
    );
    let summary = events.iter().find(|e| e["event"] == "summary").unwrap();
    assert_eq!(summary["vms"][0]["stage"], "installed", "{summary}");
    assert_order(&events);
    let vm = summary["vms"][0]["name"].as_str().unwrap();

    // The JUnit report, as a JUnit reader (Debian's python3-junitparser) sees it.
    let read = junit_cases(&junit);
    assert_eq!(read, format!("suite centos-busybox.iso tests=1 failures=0\ncase {vm} passed\n"), "{}", std::fs::read_to_string(&junit).unwrap());
    // The artifacts: the serial console, the events, the files served.
    let console = std::fs::read_to_string(artifacts.join(format!("{vm}.serial.log"))).unwrap();
    assert!(console.contains("PXELAB-STAGE: powering off"), "{console}");
    let jsonl = std::fs::read_to_string(artifacts.join("events.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), events.len(), "every event kept");
    let served = std::fs::read_to_string(artifacts.join("served.tsv")).unwrap();
    assert!(served.lines().any(|l| l.contains("/iso/images/pxelab-disk.img.gz")), "{served}");
}

#[test]
fn a_vm_that_powers_off_before_its_installer_exits_1() {
    let net = TestNet::with_dhcp();
    let iso = fixture("centos-busybox.iso");
    let reports = tempfile::tempdir().unwrap();
    let junit = reports.path().join("report.xml");
    // The busybox installer powers off when it fails (pxelab.poweroff): here
    // it cannot find the repository.
    let mut args = vec!["--json", "up", "--iso", iso.to_str().unwrap(), "--network", &net.name];
    args.extend_from_slice(&["--append", "inst.repo=http://{server}/nowhere/ pxelab.poweroff console=ttyS0,115200"]);
    args.extend_from_slice(&SHAPE);
    args.extend_from_slice(&["--wait-for", "installed", "--timeout", "300", "--junit", junit.to_str().unwrap()]);
    let out = net.pxelab(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("powered off before its installer started"), "{stderr}");
    // A red job still gets its report: the VM failed, with the reason.
    let read = junit_cases(&junit);
    assert!(read.starts_with("suite centos-busybox.iso tests=1 failures=1\ncase "), "{read}");
    assert!(read.contains(" failed: reached ") && read.contains("not installed: ") && read.contains("powered off before its installer started"), "{read}");
    assert!(std::fs::read_to_string(&junit).unwrap().contains("PXELAB-STAGE: failed"), "the console in the failure");
}

fn install(net: &TestNet, kickstart: &str, extra: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ks.cfg");
    std::fs::write(&file, kickstart).unwrap();
    let iso = fixture("centos-busybox.iso");
    let mut args = vec!["--json", "up", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--kickstart", file.to_str().unwrap()];
    args.extend_from_slice(&SHAPE);
    args.extend_from_slice(&["--timeout", "400"]);
    args.extend_from_slice(extra);
    let out = net.pxelab(&args);
    let events = events(&out);
    assert!(out.status.success(), "up to installed: {}\n{:?}", String::from_utf8_lossy(&out.stderr), events.last());
    events
}

fn reached_tail(events: &[Value]) -> String {
    let reached = events.iter().find(|e| e["event"] == "reached").expect("reached");
    reached["vms"][0]["serial_tail"].as_array().unwrap().iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n")
}

/// `installed` comes after `installer`, both reported once.
fn assert_order(events: &[Value]) {
    let at = |stage: &str| {
        let found: Vec<f64> = events.iter().filter(|e| e["event"] == "stage" && e["stage"] == stage).filter_map(|e| e["at"].as_f64()).collect();
        assert_eq!(found.len(), 1, "{stage} once: {found:?}");
        found[0]
    };
    assert!(at("installer") <= at("installed"));
}

/// A VM made with `vm new` joins the lab and gets its own answer file too,
/// over HTTP and FTP alike, rendered for it.
#[test]
fn a_vm_that_joins_the_lab_gets_its_answer_file_over_http_and_ftp() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ks.cfg");
    let template = "network --hostname={vm}\n# {mac} {server} {http}\n";
    std::fs::write(&file, template).unwrap();
    let iso = fixture("centos-busybox.iso");
    let up = net.pxelab(&["up", "--detach", "--no-vm", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--kickstart", file.to_str().unwrap()]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let vm = net.vm_new();
    let name = vm["name"].as_str().unwrap().to_string();
    let xml = common::net::virsh_ok(&["dumpxml", &name]);
    let mac = xml.split("<mac address='").nth(1).unwrap()[..17].to_string();
    let expected = format!("network --hostname={name}\n# {mac} {ip} http://{ip}\n", ip = net.ip);
    let path = format!("auto/{}/ks.cfg", mac.replace(':', "-"));
    for url in [format!("http://{}/{path}", net.ip), format!("ftp://{}/{path}", net.ip)] {
        let mut got = String::new();
        common::net::wait_for(&format!("{url} once the lab adopted {name}"), std::time::Duration::from_secs(30), || {
            let out = Command::new("curl").args(["-sf", "--max-time", "5", &url]).output().unwrap();
            got = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.success()
        });
        assert_eq!(got, expected, "{url}");
    }
    assert!(net.pxelab(&["down"]).status.success());
    net.assert_restored(&original, "after a lab with a joined VM");
}
