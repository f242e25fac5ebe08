//! Remote libvirt hosts (#17): every verb through `qemu+ssh://`, to an sshd
//! this test starts on loopback with throwaway keys. The libvirt host at the
//! far end is this machine, so the lab's isolated network is reachable at
//! its own address; what the test shows is that nothing pxelab does goes
//! around the URI: the VMs' consoles come through libvirt's console
//! stream, leases through the API, and `down` after a crash finds the host
//! in the journal.
//!
//! The ssh client is wrapped (a `ssh` first on pxelab's PATH) so that it
//! keeps its known-hosts file in the test's directory, not in root's home.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::net::{virsh_ok, wait_for, TestNet};
use common::{events, fixture, pxelab};

/// An sshd on 127.0.0.1 that lets a throwaway key in as root; stopped on drop.
struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        common::ssh::write_files(d, "127.0.0.1", port);
        let child = Command::new("/usr/sbin/sshd").args(["-D", "-e", "-f"]).arg(d.join("sshd_config")).stderr(Stdio::null()).spawn().expect("sshd runs");
        let sshd = Sshd { dir, child, port };
        wait_for("sshd to listen", Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        sshd
    }

    fn uri(&self) -> String {
        format!("qemu+ssh://root@127.0.0.1:{}/system?keyfile={}&no_verify=1", self.port, self.dir.path().join("client").display())
    }

    fn path_env(&self) -> String {
        common::ssh::path_env(self.dir.path())
    }

    /// pxelab through the ssh URI, with `net`'s state directory.
    fn pxelab(&self, net: &TestNet, args: &[&str]) -> Output {
        self.command(net, args).output().unwrap()
    }

    fn command(&self, net: &TestNet, args: &[&str]) -> Command {
        let mut cmd = pxelab();
        cmd.args(["-c", &self.uri()]).args(args).env("PXELAB_STATE_DIR", net.state.path()).env("PATH", self.path_env());
        cmd
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(out: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn up_through_ssh_boots_the_installer_and_down_restores_the_network() {
    let sshd = Sshd::start();
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let iso = fixture("centos-busybox.iso");
    // --expect makes the serial console the judge of `installer`: it is
    // read only through libvirt's console stream, over ssh.
    let out = sshd.pxelab(
        &net,
        &[
            "--json",
            "up",
            "--iso",
            iso.to_str().unwrap(),
            "--network",
            &net.name,
            "--server-ip",
            &net.ip,
            "--memory",
            "512",
            "--vcpus",
            "1",
            "--disk-size",
            "1",
            "--wait-for",
            "installer",
            "--expect",
            "PXELAB-STAGE: installer ready",
            "--timeout",
            "400",
        ],
    );
    let events = events(&out);
    assert!(out.status.success(), "up through ssh: {}", text(&out));
    let stages: Vec<&str> = events.iter().filter(|e| e["event"] == "stage").filter_map(|e| e["stage"].as_str()).collect();
    for stage in ["dhcp", "bootloader", "kernel", "installer"] {
        assert!(stages.contains(&stage), "stage {stage} not reached: {stages:?}");
    }
    // The lease came from the libvirt API: the dhcp stage names the address.
    let dhcp = events.iter().find(|e| e["event"] == "stage" && e["stage"] == "dhcp").unwrap();
    assert!(dhcp["ip"].as_str().is_some_and(|ip| ip.starts_with(&net.ip[..net.ip.len() - 1])), "{dhcp}");
    net.assert_restored(&original, "after up through ssh");
    let logs = common::lab_dir(net.state.path(), &net.name).join("logs");
    assert!(std::fs::read_dir(logs).map(|d| d.count()).unwrap_or(0) == 0, "console records left behind");
}

#[test]
fn vm_verbs_and_the_console_work_through_ssh() {
    let sshd = Sshd::start();
    let net = TestNet::with_dhcp();
    let out = sshd.pxelab(&net, &["--json", "vm", "new", "--pxe", "--network", &net.name, "--memory", "256", "--vcpus", "1", "--disk-size", "1"]);
    assert!(out.status.success(), "vm new through ssh: {}", text(&out));
    let vm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = vm["name"].as_str().unwrap().to_string();
    let xml = virsh_ok(&["dumpxml", &name]);
    assert!(!xml.contains("<log file"), "no path on the libvirt host: {xml}");

    let list = sshd.pxelab(&net, &["--json", "vm", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&name), "{}", text(&list));

    // Nobody recorded its console yet: a clear error, exit 4.
    let none = sshd.pxelab(&net, &["vm", "console", &name]);
    assert_eq!(none.status.code(), Some(4), "{}", text(&none));
    assert!(String::from_utf8_lossy(&none.stderr).contains("vm console -f"), "{}", text(&none));

    // `-f` reads the console stream: a reset makes the firmware write again.
    let record = PathBuf::from(vm["serial_log"].as_str().unwrap());
    let mut follow = sshd.command(&net, &["vm", "console", "-f", &name]).stdout(Stdio::piped()).spawn().unwrap();
    // The follower makes the record once it holds the console.
    wait_for("vm console -f to hold the console", Duration::from_secs(30), || record.exists());
    virsh_ok(&["reset", &name]);
    wait_for("the firmware on the recorded console", Duration::from_secs(60), || {
        std::fs::read_to_string(&record).is_ok_and(|t| t.contains("SeaBIOS") && t.contains("iPXE"))
    });
    // Now the record is there for a plain `vm console`, and the same bytes.
    let printed = sshd.pxelab(&net, &["vm", "console", &name]);
    assert!(printed.status.success(), "{}", text(&printed));
    assert!(String::from_utf8_lossy(&printed.stdout).contains("SeaBIOS"), "{}", text(&printed));

    let rm = sshd.pxelab(&net, &["vm", "rm", &name]);
    assert!(rm.status.success(), "vm rm through ssh: {}", text(&rm));
    // The follower ends with its VM.
    let status = wait_child(&mut follow, Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "vm console -f ends when its VM goes");
    let mut out = String::new();
    std::io::Read::read_to_string(follow.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains("SeaBIOS"), "vm console -f printed the console: {out}");
    assert!(!record.exists(), "vm rm removes the console record");

    // doctor talks to the remote libvirtd.
    let doctor = sshd.pxelab(&net, &["doctor", "--network", &net.name]);
    assert!(String::from_utf8_lossy(&doctor.stdout).contains("libvirtd answers at qemu+ssh://"), "{}", text(&doctor));
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let until = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    None
}

#[test]
fn down_after_a_crash_restores_the_host_named_in_the_journal() {
    let sshd = Sshd::start();
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let iso = fixture("centos-busybox.iso");
    let mut up = sshd
        .command(
            &net,
            &["up", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--server-ip", &net.ip, "--memory", "256", "--vcpus", "1", "--disk-size", "1"],
        )
        .env("PXELAB_PAUSE_AT", "ready")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the lab to be ready", Duration::from_secs(120), || {
        std::fs::read_to_string(common::lab_dir(net.state.path(), &net.name).join("lab.json"))
            .is_ok_and(|t| t.contains("\"ready\":true") || t.contains("\"ready\": true"))
    });
    assert!(net.live_xml().contains("<bootp"), "patched through ssh");
    up.kill().unwrap();
    up.wait().unwrap();
    // `down` with no -c: the journal says which host to restore.
    let down = pxelab().arg("down").env("PXELAB_STATE_DIR", net.state.path()).env("PATH", sshd.path_env()).output().unwrap();
    assert!(down.status.success(), "down after a crash: {}", text(&down));
    net.assert_restored(&original, "down after kill -9 of a lab on qemu+ssh");
}

#[test]
fn a_server_ip_that_is_not_this_hosts_is_refused_before_any_change() {
    let sshd = Sshd::start();
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let iso = fixture("centos-busybox.iso");
    // 192.0.2.1 (TEST-NET-1) is nobody's: only a bind is tried, nothing is sent.
    let out = sshd.pxelab(&net, &["up", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--server-ip", "192.0.2.1", "--no-vm"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--server-ip 192.0.2.1 is not an address of this host"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    net.assert_restored(&original, "refused --server-ip");
}

#[test]
fn net_patch_restore_and_status_work_through_ssh() {
    let sshd = Sshd::start();
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let patch = sshd.pxelab(&net, &["net", "patch", "--network", &net.name]);
    assert!(patch.status.success(), "net patch through ssh: {}", text(&patch));
    assert!(net.live_xml().contains("<bootp file='pxelinux.0'"), "patched on the libvirt host");
    // The journal names the host: `net restore` with the same URI finds it.
    let restore = sshd.pxelab(&net, &["net", "restore", "--network", &net.name]);
    assert!(restore.status.success(), "net restore through ssh: {}", text(&restore));
    assert_eq!(net.inactive_xml(), original);
    let status = sshd.pxelab(&net, &["--json", "status"]);
    assert!(status.status.success(), "{}", text(&status));
}
