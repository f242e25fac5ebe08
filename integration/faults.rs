//! Faults: signals at each step of `up`, a full state directory, and the
//! ISO truncated or removed under a running server. After each, the host
//! must be as it was (network XML byte-identical, no bootp in the running
//! network, no journal entry, no lab, no VM), or the server still serving.
//! (Two `up` at once and kill -9 are in `up.rs`; libvirtd restarting is in
//! `libvirtd_restart.rs`, alone, since it disturbs every libvirt test.)

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture;
use common::net::TestNet;
use common::served::Served;

#[test]
fn sigterm_and_sigint_at_each_step_of_up_restore_the_host() {
    let iso = fixture("centos-busybox.iso");
    for step in ["after-journal", "after-patch", "ready"] {
        for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
            let context = format!("{name} at {step}");
            let net = TestNet::with_dhcp();
            let original = net.inactive_xml();
            let mut args = vec!["-c", common::net::URI, "up", "--iso", iso.to_str().unwrap(), "--network", &net.name];
            // At `ready` a VM exists: the signal must remove it too.
            args.extend(if step == "ready" { &["--memory", "256", "--vcpus", "1", "--disk-size", "1"][..] } else { &["--no-vm"][..] });
            let mut child = common::pxelab()
                .args(&args)
                .env("PXELAB_STATE_DIR", net.state.path())
                .env("PXELAB_PAUSE_AT", step)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stderr = BufReader::new(child.stderr.take().unwrap());
            let mut seen = String::new();
            loop {
                let mut line = String::new();
                assert!(stderr.read_line(&mut line).unwrap() > 0, "{context}: up exited before pausing: {seen}");
                seen.push_str(&line);
                if line.contains(&format!("paused at {step}")) {
                    break;
                }
            }
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
            let started = Instant::now();
            unsafe { libc::kill(child.id() as i32, signal) };
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                assert!(started.elapsed() < Duration::from_secs(45), "{context}: up did not exit");
                std::thread::sleep(Duration::from_millis(100));
            };
            // A stop the user asked for, with the host restored, is a success.
            assert_eq!(status.code(), Some(0), "{context}: exited {status:?} after {:.1} s", started.elapsed().as_secs_f64());
            net.assert_restored(&original, &context);
        }
    }
}

/// A tmpfs of `kib` KiB mounted on a fresh directory, unmounted on drop.
struct TinyFs(tempfile::TempDir);

impl TinyFs {
    fn new(kib: u32) -> TinyFs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"]).arg(dir.path()).status().unwrap();
        assert!(ok.success(), "mount tmpfs");
        TinyFs(dir)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_state_directory_stops_up_before_any_change() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let full = TinyFs::new(64);
    // Fill it: every write after this fails with ENOSPC.
    let _ = Command::new("dd").args(["if=/dev/zero", "bs=4k"]).arg(format!("of={}/filler", full.0.path().display())).stderr(Stdio::null()).status();
    let iso = fixture("centos-busybox.iso");
    let out = common::pxelab()
        .args(["-c", common::net::URI, "up", "--no-vm", "--iso", iso.to_str().unwrap(), "--network", &net.name])
        .env("PXELAB_STATE_DIR", full.0.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("No space left on device"), "the cause is named: {stderr}");
    assert!(stderr.lines().filter(|l| l.starts_with("pxelab: error:")).count() == 1, "one error line: {stderr}");
    assert_eq!(net.inactive_xml(), original, "the network changed without a journal");
    assert!(!net.live_xml().contains("<bootp"));
    let leftovers: Vec<_> = std::fs::read_dir(full.0.path()).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != "filler").collect();
    assert!(leftovers.iter().all(|n| n == "journal" || n == "labs"), "partial files left: {leftovers:?}");
    // The lab's directory holds at most its lock and an empty journal: no record, no partial file.
    for lab in std::fs::read_dir(full.0.path().join("labs")).into_iter().flatten().flatten() {
        let inside: Vec<_> = std::fs::read_dir(lab.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert!(inside.iter().all(|n| n == "lock" || n == "journal"), "partial files left in {:?}: {inside:?}", lab.path());
        assert_eq!(std::fs::read_dir(lab.path().join("journal")).map(|d| d.count()).unwrap_or(0), 0);
    }
}

#[test]
fn an_iso_truncated_or_removed_while_serving_gives_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("copy.iso");
    std::fs::copy(fixture("centos-busybox.iso"), &iso).unwrap();
    let served = Served::start(&iso, "50351-50360", &[]);
    let curl = |url: String| Command::new("curl").args(["-s", "--max-time", "30", "-o", "/dev/null", "-w", "%{size_download}", &url]).output().unwrap();
    let stage2 = "images/install.img";
    let full = std::fs::metadata(fixture(&format!("centos-busybox.files/{stage2}"))).unwrap().len();
    assert_eq!(String::from_utf8_lossy(&curl(served.ftp_url(stage2)).stdout), full.to_string(), "before: whole file");

    // Truncated to 1 MiB: the stage2 image now lies past the end of the file.
    std::fs::OpenOptions::new().write(true).open(&iso).unwrap().set_len(1 << 20).unwrap();
    for url in [served.ftp_url(stage2), served.tftp_url(&format!("iso/{stage2}"))] {
        let out = curl(url.clone());
        assert!(!out.status.success(), "{url}: a truncated file was reported complete");
        let got: u64 = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
        assert!(got < full, "{url}: {got} bytes");
    }
    assert!(served.child_alive(), "the server died on a truncated ISO");
    // What is held in memory is still served, byte for byte.
    let pxelinux = Command::new("curl").args(["-s", &served.tftp_url("pxelinux.0")]).output().unwrap().stdout;
    assert_eq!(pxelinux, std::fs::read("/usr/lib/PXELINUX/pxelinux.0").unwrap());

    // Removed: the open file keeps its (truncated) bytes; still no crash.
    std::fs::remove_file(&iso).unwrap();
    assert!(!curl(served.ftp_url(stage2)).status.success());
    assert!(served.child_alive(), "the server died on a removed ISO");
}
