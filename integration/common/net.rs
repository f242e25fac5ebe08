//! An isolated libvirt network per test, removed (with pxelab's VMs on it)
//! when dropped, even on panic.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::pxelab;

pub const URI: &str = "qemu:///system";
pub static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn virsh(args: &[&str]) -> Output {
    Command::new("virsh").arg("-c").arg(URI).args(args).output().expect("virsh runs")
}

pub fn virsh_ok(args: &[&str]) -> String {
    let out = virsh(args);
    assert!(out.status.success(), "virsh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// An isolated network for one test, removed on drop with every pxelab VM on it.
pub struct TestNet {
    pub name: String,
    pub bridge: String,
    pub ip: String,
    pub state: tempfile::TempDir,
}

impl TestNet {
    pub fn new(dhcp: &str) -> TestNet {
        TestNet::new_with(dhcp, "")
    }

    /// A network with `dhcp` in its IPv4 `<ip>` (`SUBNET` stands for its
    /// first three octets) and `extra` elements of its own (dnsmasq options).
    pub fn new_with(dhcp: &str, extra: &str) -> TestNet {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id() % 10000;
        let name = format!("pxt-{pid}-{n}");
        let bridge = format!("pxtb{pid}x{n}");
        // Unique per process and test, so suites running side by side do not collide.
        let index = std::process::id() * 16 + n;
        let subnet = format!("10.{}.{}", 20 + (index / 256) % 200, index % 256);
        let ip = format!("{subnet}.1");
        let xml = format!(
            "<network{xmlns}>\n  <name>{name}</name>\n  <bridge name='{bridge}' stp='on' delay='0'/>\n  <ip address='{ip}' netmask='255.255.255.0'>\n{dhcp}  </ip>\n{extra}</network>\n",
            xmlns = if extra.contains("dnsmasq:") { " xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'" } else { "" },
            dhcp = dhcp.replace("SUBNET", &subnet)
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), xml).unwrap();
        virsh_ok(&["net-define", file.path().to_str().unwrap()]);
        // The guard exists before the start, so a failed start is cleaned up too.
        let net = TestNet { name, bridge, ip, state: tempfile::tempdir().unwrap() };
        virsh_ok(&["net-start", &net.name]);
        net
    }

    pub fn with_dhcp() -> TestNet {
        TestNet::new("    <dhcp>\n      <range start='SUBNET.10' end='SUBNET.99'/>\n    </dhcp>\n")
    }

    pub fn pxelab(&self, args: &[&str]) -> Output {
        self.pxelab_command(args).output().unwrap()
    }

    /// pxelab on this network's state directory, to spawn.
    pub fn pxelab_command(&self, args: &[&str]) -> Command {
        let mut cmd = pxelab();
        cmd.args(["-c", URI]).args(args).env("PXELAB_STATE_DIR", self.state.path());
        cmd
    }

    pub fn inactive_xml(&self) -> String {
        virsh_ok(&["net-dumpxml", &self.name, "--inactive"])
    }

    pub fn live_xml(&self) -> String {
        virsh_ok(&["net-dumpxml", &self.name])
    }

    pub fn journal_entries(&self) -> usize {
        super::journal_entries(self.state.path())
    }

    /// This network's lab directory in the state directory (`labs/<name>`).
    pub fn lab_dir(&self) -> std::path::PathBuf {
        self.state.path().join("labs").join(&self.name)
    }

    /// No pxelab VM on the network, its XML as it was, nothing in the
    /// journal, no lab: the host as it was before `up`. `context` names the case.
    pub fn assert_restored(&self, original: &str, context: &str) {
        let list = self.pxelab(&["--json", "vm", "list"]);
        let vms: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
        assert!(
            !vms.iter().any(|vm| vm["networks"].as_array().is_some_and(|n| n.iter().any(|x| x == self.name.as_str()))),
            "{context}: a VM was left behind: {vms:?}"
        );
        assert_eq!(self.inactive_xml(), original, "{context}: the network's XML changed");
        assert!(!self.live_xml().contains("<bootp"), "{context}: the running network still has the patch");
        assert_eq!(self.journal_entries(), 0, "{context}: journal entries left");
        assert!(!self.lab_dir().join("lab.json").exists() && !self.state.path().join("lab.json").exists(), "{context}: lab.json left");
    }

    /// `up --detach --no-vm` with the busybox ISO on this network; asserts it started.
    pub fn up_detached(&self) {
        let iso = super::fixture("centos-busybox.iso");
        let out = self.pxelab(&["up", "--detach", "--no-vm", "--iso", iso.to_str().unwrap(), "--network", &self.name]);
        assert!(out.status.success(), "up --detach: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `vm new --pxe` on this network; returns the VM's JSON report.
    pub fn vm_new(&self) -> serde_json::Value {
        let out = self.pxelab(&["--json", "vm", "new", "--pxe", "--network", &self.name, "--memory", "256", "--vcpus", "1", "--disk-size", "1"]);
        assert!(out.status.success(), "vm new: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // A test that failed half-way may leave its lab running: stop it
        // first (restoring the network), then remove pxelab's VMs on this
        // network, then the network itself.
        let _ = self.pxelab(&["down"]);
        let list = self.pxelab(&["--json", "vm", "list"]);
        if let Ok(vms) = serde_json::from_slice::<Vec<serde_json::Value>>(&list.stdout) {
            for vm in vms.iter().filter(|vm| vm["networks"].as_array().is_some_and(|n| n.iter().any(|x| x == &self.name))) {
                let _ = self.pxelab(&["vm", "rm", vm["name"].as_str().unwrap_or_default()]);
            }
        }
        let _ = virsh(&["net-destroy", &self.name]);
        let _ = virsh(&["net-undefine", &self.name]);
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}
