//! A libvirt host that really is another host, as far as pxelab can tell:
//! a second libvirtd (with its virtlogd and an sshd) in network, mount and
//! UTS namespaces of its own, with its own hostname, its own address on one
//! end of a veth pair, and its own run, state, cache, log and image
//! directories (tmpfs over the host's). pxelab reaches it over
//! `qemu+ssh://`, finds a hostname that is not this host's, and so takes
//! the remote path: the accelerator from that libvirt's capabilities, no
//! firewall opening and no router advertisement here, `--server-ip` checked
//! against this host's addresses, isolated networks there refused.
//!
//! Network safety: the lab's network on the far host is a NAT network (an
//! isolated one is exactly what pxelab must refuse there), but the far host
//! is a namespace this test made, whose only link is the veth pair to this
//! host: its guests reach this host's end of the veth and nothing else.
//! Everything in the namespaces is killed when the test ends, even on panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::net::wait_for;
use common::{events, fixture, pxelab};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The namespaces' first process: makes the far host and sleeps.
const FAR_SH: &str = r#"#!/bin/bash
set -euo pipefail
D=$1 IFACE=$2 ADDR=$3 NAME=$4
echo $$ >"$D/ns.pid"
hostname "$NAME"
mount --make-rprivate /
for dir in /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /var/lib/pxelab/images; do
    mkdir -p "$dir"
    mount -t tmpfs tmpfs "$dir"
done
mount --bind "$D/etc-libvirt" /etc/libvirt
ip link set lo up
until ip link show "$IFACE" >/dev/null 2>&1; do sleep 0.1; done
ip addr add "$ADDR/30" dev "$IFACE"
ip link set "$IFACE" up
virtlogd -d -p "$D/virtlogd.pid"
libvirtd -d -p "$D/libvirtd.pid"
/usr/sbin/sshd -f "$D/sshd_config" -E "$D/sshd.log"
touch "$D/ready"
exec sleep infinity
"#;

/// The far host: its namespaces, its address, and an ssh URI to its libvirtd.
struct FarHost {
    dir: tempfile::TempDir,
    unshare: Child,
    /// The first process inside the namespaces.
    ns_pid: i32,
    /// This host's end of the veth pair, and its address.
    veth: String,
    here_ip: String,
    far_ip: String,
}

impl FarHost {
    fn start() -> FarHost {
        let n = std::process::id() % 4000 * 4 + NEXT.fetch_add(1, Ordering::SeqCst) % 4;
        let (veth, far_if) = (format!("pxfh{n}h"), format!("pxfh{n}f"));
        let base = (n % 64) * 4;
        let here_ip = format!("10.251.{}.{}", n / 64 % 250, base + 1);
        let far_ip = format!("10.251.{}.{}", n / 64 % 250, base + 2);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        common::ssh::write_files(d, &far_ip, 22);
        copy_libvirt_config(&d.join("etc-libvirt"));
        std::fs::write(d.join("far.sh"), FAR_SH).unwrap();
        let unshare = Command::new("unshare")
            .args(["--mount", "--uts", "--net", "--fork", "bash"])
            .arg(d.join("far.sh"))
            .args([d.to_str().unwrap(), &far_if, &far_ip, &format!("pxelab-far-{n}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("the namespaces", Duration::from_secs(10), || d.join("ns.pid").exists());
        let ns_pid: i32 = std::fs::read_to_string(d.join("ns.pid")).unwrap().trim().parse().unwrap();
        let mut far = FarHost { dir, unshare, ns_pid, veth: veth.clone(), here_ip: here_ip.clone(), far_ip };
        run(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", &far_if]);
        run(&["ip", "link", "set", &far_if, "netns", &ns_pid.to_string()]);
        run(&["ip", "addr", "add", &format!("{here_ip}/30"), "dev", &veth]);
        run(&["ip", "link", "set", &veth, "up"]);
        let ready = far.dir.path().join("ready");
        wait_for("the far host's daemons", Duration::from_secs(30), || ready.exists() || far.unshare.try_wait().unwrap().is_some());
        assert!(ready.exists(), "the far host did not start: {:?}", far.unshare.try_wait());
        wait_for("the far libvirtd over ssh", Duration::from_secs(60), || far.virsh(&["version"]).status.success());
        far
    }

    fn uri(&self) -> String {
        format!("qemu+ssh://root@{}/system?keyfile={}&no_verify=1", self.far_ip, self.dir.path().join("client").display())
    }

    fn path_env(&self) -> String {
        common::ssh::path_env(self.dir.path())
    }

    fn virsh(&self, args: &[&str]) -> Output {
        Command::new("virsh").args(["-c", &self.uri()]).args(args).env("PATH", self.path_env()).output().unwrap()
    }

    fn virsh_ok(&self, args: &[&str]) -> String {
        let out = self.virsh(args);
        assert!(out.status.success(), "virsh on the far host {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// pxelab through the far host's URI, with its own state directory.
    fn pxelab(&self, state: &Path, args: &[&str]) -> Output {
        pxelab().args(["-c", &self.uri()]).args(args).env("PXELAB_STATE_DIR", state).env("PATH", self.path_env()).output().unwrap()
    }

    /// A network on the far host: NAT (`forward`) or isolated; returns its name.
    fn network(&self, forward: bool) -> String {
        let n = self.ns_pid as u32 % 200;
        let name = format!("pxfar-{}-{}", self.ns_pid, if forward { "nat" } else { "iso" });
        let octet = if forward { 1 } else { 2 };
        let xml = format!(
            "<network>\n  <name>{name}</name>\n  {fwd}<bridge name='pxfb{n}x{octet}' stp='off'/>\n  <ip address='10.252.{n}.{o}' netmask='255.255.255.128'>\n    <dhcp><range start='10.252.{n}.{s}' end='10.252.{n}.{e}'/></dhcp>\n  </ip>\n</network>\n",
            fwd = if forward { "<forward mode='nat'/>\n  " } else { "" },
            o = if forward { 1 } else { 129 },
            s = if forward { 10 } else { 140 },
            e = if forward { 99 } else { 199 },
        );
        let file = self.dir.path().join(format!("{name}.xml"));
        std::fs::write(&file, xml).unwrap();
        self.virsh_ok(&["net-define", file.to_str().unwrap()]);
        self.virsh_ok(&["net-start", &name]);
        name
    }
}

impl Drop for FarHost {
    fn drop(&mut self) {
        // Every process of the far host shares its mount namespace: kill
        // them all (QEMU, dnsmasq, the daemons, sshd), then the veth goes
        // with the network namespace.
        let theirs = std::fs::read_link(format!("/proc/{}/ns/mnt", self.ns_pid)).ok();
        if let Some(theirs) = theirs {
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
                if std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().as_ref() == Some(&theirs) {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        let _ = Command::new("ip").args(["link", "del", &self.veth]).stderr(Stdio::null()).status();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// This host's libvirt configuration, without its networks, pools and
/// domains (the far host starts with none), and without cgroups, which
/// the two daemons would otherwise share.
fn copy_libvirt_config(to: &Path) {
    run(&["cp", "-a", "/etc/libvirt", to.to_str().unwrap()]);
    for defined in ["qemu/networks", "storage", "qemu"] {
        let dir: PathBuf = to.join(defined);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "xml") {
                std::fs::remove_file(&path).unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(dir.join("autostart"));
    }
    let qemu_conf = to.join("qemu.conf");
    let mut conf = std::fs::read_to_string(&qemu_conf).unwrap();
    conf.push_str("\ncgroup_controllers = [ ]\n");
    std::fs::write(qemu_conf, conf).unwrap();
}

#[test]
fn a_lab_on_a_far_libvirt_host_boots_its_vm_through_this_hosts_servers() {
    let far = FarHost::start();
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(far.virsh_ok(&["hostname"]).trim(), here.trim(), "the far host has a name of its own");
    let state = tempfile::tempdir().unwrap();
    let iso = fixture("centos-busybox.iso");
    let iso = iso.to_str().unwrap();
    let shape = ["--memory", "512", "--vcpus", "1", "--disk-size", "1"];

    // An isolated network there is refused before any change: its guests
    // could reach only that host.
    let isolated = far.network(false);
    let before = far.virsh_ok(&["net-dumpxml", "--inactive", &isolated]);
    let out = far.pxelab(state.path(), &["up", "--iso", iso, "--network", &isolated, "--server-ip", &far.here_ip, "--no-vm"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("isolated") && stderr.contains(&far.here_ip), "{stderr}");
    assert_eq!(far.virsh_ok(&["net-dumpxml", "--inactive", &isolated]), before);

    // The lab's network, and a server address that is not this host's.
    let net = far.network(true);
    let original = far.virsh_ok(&["net-dumpxml", "--inactive", &net]);
    let out = far.pxelab(state.path(), &["up", "--iso", iso, "--network", &net, "--server-ip", &far.far_ip, "--no-vm"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("--server-ip {} is not an address of this host", far.far_ip)), "{stderr}");

    // doctor asks the far libvirt for kvm, not this host's /dev/kvm.
    let doctor = far.pxelab(state.path(), &["--json", "doctor", "--network", &net]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let accel = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "accel").unwrap();
    assert!(accel["detail"].as_str().unwrap().contains("the remote libvirt host"), "{accel}");

    // The lab: the VM on the far host boots from this host's servers
    // through that host's NAT, to its installer.
    let mut args = vec!["--json", "up", "--iso", iso, "--network", &net, "--server-ip", &far.here_ip, "--accel", "tcg"];
    args.extend_from_slice(&shape);
    args.extend_from_slice(&["--wait-for", "installer", "--expect", "PXELAB-STAGE: installer ready", "--timeout", "400"]);
    let out = far.pxelab(state.path(), &args);
    let events = events(&out);
    assert!(out.status.success(), "up on the far host: {}\n{:?}", String::from_utf8_lossy(&out.stderr), events.last());
    let stages: Vec<&str> = events.iter().filter(|e| e["event"] == "stage").filter_map(|e| e["stage"].as_str()).collect();
    for stage in ["dhcp", "bootloader", "kernel", "installer"] {
        assert!(stages.contains(&stage), "stage {stage} not reached: {stages:?}");
    }
    let steps: Vec<&str> = events.iter().filter(|e| e["event"] == "step").filter_map(|e| e["message"].as_str()).collect();
    assert!(!steps.iter().any(|s| s.contains("router solicitations") || s.contains("firewall")), "remote: no RA, no firewall here: {steps:?}");
    let transfers: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "transfer").collect();
    assert!(transfers.iter().any(|t| t["path"].as_str().is_some_and(|p| p.ends_with("install.img"))), "the stage2 came from this host");

    // The far host as it was: the network byte for byte, dnsmasq unpatched, no VM.
    assert_eq!(far.virsh_ok(&["net-dumpxml", "--inactive", &net]), original);
    assert!(!far.virsh_ok(&["net-dumpxml", &net]).contains("<bootp"));
    assert_eq!(far.virsh_ok(&["list", "--all", "--name"]).trim(), "", "a VM was left on the far host");
    assert_eq!(common::journal_entries(state.path()), 0);
}
