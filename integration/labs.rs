//! Several labs at once on one host, one per network, sharing one state
//! directory as a CI runner's parallel jobs do: started at the same instant
//! they all run, a second lab on a taken network is refused however close
//! together the two start, and a lab killed with -9 is cleaned up alone
//! while the others keep serving and their VMs keep booting.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::net::{wait_for, TestNet, URI};
use common::{fixture, pxelab};

/// A state directory shared by every lab of a test; on drop, `down --all`
/// (a failed test leaves nothing running).
struct Shared(tempfile::TempDir);

impl Shared {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = pxelab();
        cmd.args(["-c", URI]).args(args).env("PXELAB_STATE_DIR", self.0.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `up --detach` on `net`, not waited for.
    fn up_detached(&self, net: &TestNet) -> std::process::Child {
        let iso = fixture("centos-busybox.iso");
        let args = ["up", "--detach", "--iso", iso.to_str().unwrap(), "--network", &net.name, "--memory", "512", "--vcpus", "1", "--disk-size", "1"];
        self.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    fn status(&self) -> Vec<serde_json::Value> {
        serde_json::from_slice(&self.run(&["--json", "status"]).stdout).unwrap()
    }

    fn lab_on(&self, net: &TestNet) -> serde_json::Value {
        serde_json::from_slice(&self.run(&["--json", "status", "--network", &net.name]).stdout).unwrap()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--all"]);
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The network as it was and nothing of pxelab's on it.
fn assert_restored(net: &TestNet, original: &str, context: &str) {
    assert_eq!(net.inactive_xml(), original, "{context}: {}'s XML changed", net.name);
    assert!(!net.live_xml().contains("<bootp"), "{context}: {} still patched", net.name);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&pxelab().args(["-c", URI, "--json", "vm", "list"]).output().unwrap().stdout).unwrap();
    let left: Vec<&serde_json::Value> = list.iter().filter(|vm| vm["networks"].as_array().is_some_and(|n| n.iter().any(|x| x == net.name.as_str()))).collect();
    assert!(left.is_empty(), "{context}: VMs left on {}: {left:?}", net.name);
}

fn kill9(pid: u64) {
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("the lab to die", Duration::from_secs(20), || !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists());
}

#[test]
fn three_labs_at_once_and_one_killed_is_cleaned_up_alone() {
    let shared = Shared(tempfile::tempdir().unwrap());
    let nets = [TestNet::with_dhcp(), TestNet::with_dhcp(), TestNet::with_dhcp()];
    let originals: Vec<String> = nets.iter().map(TestNet::inactive_xml).collect();

    // Three networks and, at the same instant, a second lab on the first.
    let mut children: Vec<_> = nets.iter().map(|n| shared.up_detached(n)).collect();
    children.push(shared.up_detached(&nets[0]));
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let ok: Vec<bool> = outs.iter().map(|o| o.status.success()).collect();
    assert!(ok[1] && ok[2], "labs on free networks: {:?}", outs.iter().map(stderr).collect::<Vec<_>>());
    assert!(ok[0] != ok[3], "exactly one lab on the first network: {:?}", outs.iter().map(stderr).collect::<Vec<_>>());
    let refused = if ok[0] { &outs[3] } else { &outs[0] };
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(refused));
    assert!(stderr(refused).contains(&format!("a lab is already running on network {}", nets[0].name)), "{}", stderr(refused));

    let labs = shared.status();
    assert_eq!(labs.len(), 3, "{labs:#?}");
    let mut networks: Vec<&str> = labs.iter().map(|l| l["network"].as_str().unwrap()).collect();
    networks.sort();
    let mut want: Vec<&str> = nets.iter().map(|n| n.name.as_str()).collect();
    want.sort();
    assert_eq!(networks, want);
    assert!(labs.iter().all(|l| l["running"] == true), "{labs:#?}");
    // Each serves on its own bridge's address.
    for net in &nets {
        let lab = shared.lab_on(net);
        assert_eq!(lab["server_ip"], net.ip.as_str(), "{lab}");
        assert!(lab["tftp"].as_str().unwrap().starts_with(&net.ip), "{lab}");
    }
    // `down` with several labs asks which.
    let down = shared.run(&["down"]);
    assert_eq!(down.status.code(), Some(2), "{}", stderr(&down));
    assert!(stderr(&down).contains("pass --network NAME for one, or --all"), "{}", stderr(&down));

    // kill -9 the second lab; `down --network` restores its network alone.
    let killed = shared.lab_on(&nets[1]);
    kill9(killed["pid"].as_u64().unwrap());
    assert_eq!(shared.lab_on(&nets[1])["crashed"], true);
    let down = shared.run(&["--json", "down", "--network", &nets[1].name]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert_restored(&nets[1], &originals[1], "after down --network");
    for i in [0, 2] {
        let lab = shared.lab_on(&nets[i]);
        assert_eq!(lab["running"], true, "{} stopped with the other: {lab}", nets[i].name);
        assert!(nets[i].live_xml().contains("<bootp"), "{} lost its patch", nets[i].name);
    }
    // The others' VMs go on to their installers.
    for i in [0, 2] {
        wait_for("the other labs' VMs to reach their installers", Duration::from_secs(400), || {
            shared.lab_on(&nets[i])["vms"].as_array().is_some_and(|v| v.iter().all(|vm| vm["stage"] == "installer"))
        });
    }

    // kill -9 both; `down --all` restores everything.
    for i in [0, 2] {
        kill9(shared.lab_on(&nets[i])["pid"].as_u64().unwrap());
    }
    let down = shared.run(&["down", "--all"]);
    assert!(down.status.success(), "{}", stderr(&down));
    for (net, original) in nets.iter().zip(&originals) {
        assert_restored(net, original, "after down --all");
    }
    assert_eq!(common::journal_entries(shared.0.path()), 0, "journal entries left");
    assert!(shared.status().is_empty(), "{:?}", shared.status());
}

/// A state directory an older pxelab left (one lab, its files at the top):
/// a lab that crashed there is listed, and `down` undoes it.
#[test]
fn a_crashed_lab_in_an_older_state_directory_is_still_undone() {
    let shared = Shared(tempfile::tempdir().unwrap());
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let out = shared.up_detached(&net).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    kill9(shared.lab_on(&net)["pid"].as_u64().unwrap());
    // The older layout: lab.json and the journal at the top.
    let lab_dir = shared.0.path().join("labs").join(&net.name);
    for name in ["lab.json", "journal"] {
        std::fs::rename(lab_dir.join(name), shared.0.path().join(name)).unwrap();
    }
    let labs = shared.status();
    assert_eq!(labs.len(), 1, "{labs:#?}");
    assert_eq!((labs[0]["network"].as_str(), labs[0]["crashed"].as_bool()), (Some(net.name.as_str()), Some(true)));
    // A new lab on that network waits for it to be undone.
    let again = shared.up_detached(&net).wait_with_output().unwrap();
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));
    assert!(stderr(&again).contains("older pxelab"), "{}", stderr(&again));
    let down = shared.run(&["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert_restored(&net, &original, "after down of the older layout");
    assert!(shared.status().is_empty());
}
