//! libvirtd restarting under a running lab, and `up` with no libvirtd.
//! A test binary of its own: stopping libvirtd would break every other
//! libvirt test running beside it, and cargo runs test binaries one by one.

mod common;

use std::process::Command;
use std::time::Duration;

use common::fixture;
use common::net::{virsh, wait_for, TestNet};

fn libvirtd_answers() -> bool {
    virsh(&["version"]).status.success()
}

/// The system libvirtd behind qemu:///system: the live libvirtd in this
/// process's mount namespace (not any process named libvirtd: another
/// daemon, in the namespaces of a remote-host test, may run beside it), and
/// its command line, so that whoever started it (`scripts/with-libvirtd.sh`,
/// by its pid file) still stops the restarted one.
fn libvirtd() -> (i32, Vec<String>) {
    let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let live = stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'));
            comm.trim() == "libvirtd" && live && std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().as_ref() == Some(&ours)
        })
        .expect("libvirtd runs");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("libvirtd runs");
    (pid, cmdline.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
}

/// Stops exactly that daemon and waits until it is gone: SIGTERM, and
/// SIGKILL if it has not exited 20 s later (a daemon busy with a stuck job
/// is still a daemon to restart).
fn stop_libvirtd(pid: i32) {
    let gone = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty() || stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'))
    };
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while !gone() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !gone() {
        eprintln!("libvirtd (pid {pid}) ignored SIGTERM for 20 s: killing it");
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    wait_for("libvirtd to stop", Duration::from_secs(10), gone);
}

fn start_libvirtd(command: &[String]) {
    if !libvirtd_answers() {
        let _ = Command::new(&command[0]).args(&command[1..]).status();
    }
    wait_for("libvirtd to answer", Duration::from_secs(30), libvirtd_answers);
}

/// Restarts libvirtd as it was even if the test panics half-way.
struct Restart(Vec<String>);

impl Drop for Restart {
    fn drop(&mut self) {
        start_libvirtd(&self.0);
    }
}

#[test]
fn a_libvirtd_restart_under_a_running_lab_still_lets_down_restore_the_host() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    net.up_detached();
    assert!(net.live_xml().contains("<bootp"));

    let (pid, command) = libvirtd();
    let guard = Restart(command);
    stop_libvirtd(pid);
    // While libvirtd is gone: `status` still answers from lab.json, and a
    // second lab fails clearly (exit 4) without touching anything.
    let status: serde_json::Value = serde_json::from_slice(&net.pxelab(&["--json", "status", "--network", &net.name]).stdout).unwrap();
    assert_eq!(status["running"], true);
    let out = net.pxelab(&["vm", "new", "--pxe", "--memory", "256", "--vcpus", "1", "--disk-size", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("libvirtd"), "{}", String::from_utf8_lossy(&out.stderr));
    drop(guard);

    // The lab's connection died with the old daemon; `down` must still
    // restore the network (from the journal, on a fresh connection).
    let out = net.pxelab(&["--json", "down"]);
    assert!(out.status.success(), "down after a libvirtd restart: {}", String::from_utf8_lossy(&out.stderr));
    net.assert_restored(&original, "down after a libvirtd restart");
}

#[test]
fn up_without_libvirtd_fails_clearly_and_changes_nothing() {
    // Not the real daemon: a URI whose socket does not exist stands for a
    // stopped libvirtd without disturbing the other test in this binary.
    let state = tempfile::tempdir().unwrap();
    let iso = fixture("centos-busybox.iso");
    let out = common::pxelab()
        .args(["-c", "qemu+unix:///system?socket=/nonexistent/libvirt-sock", "up", "--no-vm", "--iso", iso.to_str().unwrap()])
        .env("PXELAB_STATE_DIR", state.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("is libvirtd running?"), "{stderr}");
    assert!(common::journal_entries(state.path()) == 0);
}
