//! Every documented verb tried as a new user would, on isolated networks:
//! the defects found that way, each kept as a test. A refused command
//! leaves a running lab alone, errors name options that exist, `doctor`
//! agrees with `up`, a closed stdout is no crash, and logs say what `up`
//! does.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::net::{virsh, virsh_ok, wait_for, TestNet, URI};
use common::{fixture, pxelab};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn busybox() -> String {
    fixture("centos-busybox.iso").to_str().unwrap().to_string()
}

/// Every `--option` a message names, and whether `pxelab VERB --help` has it.
fn assert_options_exist(verb: &[&str], message: &str) {
    let help = String::from_utf8(pxelab().args(verb).arg("--help").output().unwrap().stdout).unwrap();
    let named: Vec<&str> = message.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).filter(|w| w.starts_with("--") && w.len() > 2).collect();
    for option in named {
        assert!(
            help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).any(|w| w == option),
            "`pxelab {}` has no {option}, which its error names: {message}",
            verb.join(" ")
        );
    }
}

#[test]
fn a_refused_second_lab_leaves_the_running_labs_files_and_network_alone() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    net.up_detached();
    let log_path = net.lab_dir().join("lab.log");
    let log_before = std::fs::read(&log_path).unwrap();
    assert!(!log_before.is_empty());

    // A second `up --detach`: refused, and the lab's log is byte for byte as it was.
    let out = net.pxelab(&["up", "--detach", "--no-vm", "--iso", &busybox(), "--network", &net.name]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("already running"), "{}", stderr_of(&out));
    let log_after = std::fs::read(&log_path).unwrap();
    assert!(log_after.starts_with(&log_before), "the running lab's log was rewritten");
    assert!(!log_after.contains(&0u8), "NUL bytes in the log");

    // `net restore` under the running lab: refused, naming it; the lab keeps its bootp.
    let lab: serde_json::Value = serde_json::from_slice(&net.pxelab(&["--json", "status", "--network", &net.name]).stdout).unwrap();
    let out = net.pxelab(&["net", "restore", "--network", &net.name]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains(&format!("pid {}", lab["pid"])), "the lab is named: {}", stderr_of(&out));
    assert!(net.live_xml().contains("<bootp"), "the lab lost its bootp");
    assert_options_exist(&["net", "restore"], &stderr_of(&out));
    // doctor's fix for a missing bootp is not a command that would be refused.
    let doctor = net.pxelab(&["--json", "doctor", "--network", &net.name]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let bootp = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "network.bootp").unwrap();
    assert_eq!(bootp["status"], "ok", "{bootp}");

    // --force restores it anyway; `down` then finds the network restored already.
    let out = net.pxelab(&["net", "restore", "--network", &net.name, "--force"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!net.live_xml().contains("<bootp"));
    let out = net.pxelab(&["down"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    net.assert_restored(&original, "after down");
}

#[test]
fn a_lab_that_fails_to_start_in_the_background_says_why_once() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let out = net.pxelab(&["up", "--detach", "--no-vm", "--iso", fixture("not-an-iso.iso").to_str().unwrap(), "--network", &net.name]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "the lab's own exit code: {stderr}");
    assert_eq!(stderr.matches("pxelab: error:").count(), 1, "{stderr}");
    assert!(stderr.contains("is not an ISO 9660 image") && stderr.contains("lab.log"), "{stderr}");
    net.assert_restored(&original, "after a failed start");
}

#[test]
fn net_patch_takes_only_boot_file_names() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    for file in ["../etc/passwd", "/etc/passwd", "a b", "x'/><evil/>"] {
        let out = net.pxelab(&["net", "patch", "--network", &net.name, "--file", file]);
        assert_eq!(out.status.code(), Some(3), "{file}: {}", stderr_of(&out));
        assert_eq!(stderr_of(&out).lines().count(), 1);
        assert_eq!(net.inactive_xml(), original, "{file} was written into the network");
    }
    let out = net.pxelab(&["net", "patch", "--network", &net.name, "--file", "boot/pxelinux.0"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(net.live_xml().contains("file='boot/pxelinux.0'") || net.live_xml().contains("file=\"boot/pxelinux.0\""));
    assert!(net.pxelab(&["net", "restore", "--network", &net.name]).status.success());
    assert_eq!(net.inactive_xml(), original);
}

/// Holds `port` on `ip` (UDP for 69, else TCP) until dropped.
enum Holder {
    Udp(#[allow(dead_code)] UdpSocket),
    Tcp(#[allow(dead_code)] std::net::TcpListener),
}

fn hold(ip: &str, port: u16, udp: bool) -> Holder {
    if udp {
        Holder::Udp(UdpSocket::bind((ip, port)).unwrap())
    } else {
        Holder::Tcp(std::net::TcpListener::bind((ip, port)).unwrap())
    }
}

#[test]
fn every_option_an_up_or_serve_error_names_exists() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let iso = busybox();
    let mut messages = Vec::new();
    for (port, udp) in [(69, true), (21, false)] {
        let _held = hold(&net.ip, port, udp);
        let out = net.pxelab(&["up", "--no-vm", "--iso", &iso, "--network", &net.name]);
        assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
        assert!(stderr_of(&out).contains("already in use"), "{}", stderr_of(&out));
        assert_options_exist(&["up"], &stderr_of(&out));
        messages.push(stderr_of(&out));
        let out = net.pxelab(&["serve", "--iso", &iso, "--bind", &net.ip]);
        assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
        assert_options_exist(&["serve"], &stderr_of(&out));
        messages.push(stderr_of(&out));
    }
    // An address that is not this host's.
    let out = net.pxelab(&["up", "--no-vm", "--iso", &iso, "--network", &net.name, "--server-ip", "192.0.2.7"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("--server-ip"), "{}", stderr_of(&out));
    assert_options_exist(&["up"], &stderr_of(&out));
    let out = net.pxelab(&["serve", "--iso", &iso, "--bind", "192.0.2.7"]);
    assert!(stderr_of(&out).contains("--bind"), "{}", stderr_of(&out));
    assert_options_exist(&["serve"], &stderr_of(&out));
    // up's FTP port is the user's to choose: --ftp-port 0 takes a free one.
    let _held = hold(&net.ip, 21, false);
    let out = net.pxelab(&["--json", "up", "--detach", "--no-vm", "--iso", &iso, "--network", &net.name, "--ftp-port", "0", "--repo", "ftp"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let detached: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(detached["event"], "detached");
    let ftp: std::net::SocketAddr = detached["lab"]["ftp"].as_str().unwrap().parse().unwrap();
    assert_ne!(ftp.port(), 21);
    assert!(detached["lab"]["kernel_args"].as_str().unwrap().contains(&format!("ftp://{}:{}/", net.ip, ftp.port())), "{detached}");
    assert!(net.pxelab(&["down"]).status.success());
    net.assert_restored(&original, "after the lab");
    println!("{}", messages.join(""));
}

#[test]
fn doctor_agrees_with_up_about_a_port_held_by_another_pxelab() {
    let net = TestNet::with_dhcp();
    let mut serve = pxelab().args(["serve", "--iso", &busybox(), "--bind", &net.ip, "--json"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut ready = String::new();
    BufReader::new(serve.stdout.as_mut().unwrap()).read_line(&mut ready).unwrap();
    assert!(ready.contains("\"ready\""), "{ready}");
    let doctor = net.pxelab(&["--json", "doctor", "--network", &net.name]);
    let up = net.pxelab(&["up", "--no-vm", "--iso", &busybox(), "--network", &net.name]);
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(up.status.code(), Some(4), "up: {}", stderr_of(&up));
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(doctor.status.code(), Some(1), "doctor must fail when up would: {report}");
    let tftp = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "ports.tftp").unwrap();
    assert_eq!(tftp["status"], "fail", "{tftp}");
    assert!(tftp["detail"].as_str().unwrap().contains(&format!("pid {}", serve.id())), "{tftp}");
    assert!(tftp["fix"].as_str().unwrap().contains(&format!("kill {}", serve.id())), "{tftp}");
}

#[test]
fn doctor_flags_a_transient_network() {
    let n = std::process::id() % 10000;
    let name = format!("pxt-transient-{n}");
    let xml = format!(
        "<network><name>{name}</name><bridge name='pxttr{n}' stp='on' delay='0'/><ip address='10.250.{}.1' netmask='255.255.255.0'><dhcp><range start='10.250.{0}.10' end='10.250.{0}.20'/></dhcp></ip></network>",
        n % 250
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), xml).unwrap();
    virsh_ok(&["net-create", file.path().to_str().unwrap()]);
    let state = tempfile::tempdir().unwrap();
    let doctor = pxelab().args(["-c", URI, "--json", "doctor", "--network", &name]).env("PXELAB_STATE_DIR", state.path()).output().unwrap();
    let patch = pxelab().args(["-c", URI, "net", "patch", "--network", &name]).env("PXELAB_STATE_DIR", state.path()).output().unwrap();
    let _ = virsh(&["net-destroy", &name]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let check = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "network.persistent").expect("a persistence check");
    assert_eq!(check["status"], "fail", "{check}");
    assert_eq!(patch.status.code(), Some(4), "net patch refuses it: {}", stderr_of(&patch));
}

#[test]
fn doctor_keeps_iptables_quiet() {
    let net = TestNet::with_dhcp();
    let rule = ["-i", &net.bridge, "-p", "udp", "--dport", "69", "-j", "REJECT"];
    assert!(Command::new("iptables").args(["-w", "-I", "INPUT"]).args(rule).status().unwrap().success());
    let out = net.pxelab(&["doctor", "--network", &net.name]);
    let _ = Command::new("iptables").args(["-w", "-D", "INPUT"]).args(rule).status();
    let stderr = stderr_of(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("firewall.iptables"), "the rule was seen");
    assert!(!stderr.contains("iptables") && !stderr.contains("Bad rule"), "iptables' own output leaked: {stderr}");
}

#[test]
fn verbose_logs_trace_the_steps_without_colour_codes() {
    let net = TestNet::with_dhcp();
    let quiet = net.pxelab(&["vm", "list"]);
    assert!(stderr_of(&quiet).is_empty(), "{}", stderr_of(&quiet));
    let v = net.pxelab(&["-v", "vm", "list"]);
    assert!(stderr_of(&v).contains("connecting to libvirt at qemu:///system"), "{}", stderr_of(&v));
    let vv = net.pxelab(&["-vv", "vm", "list"]);
    assert!(stderr_of(&vv).contains("libvirt call at src/lab/vm.rs"), "{}", stderr_of(&vv));
    let up = net.pxelab(&["-v", "up", "--no-vm", "--iso", &busybox(), "--network", &net.name, "--ftp-port", "0", "--detach"]);
    assert!(up.status.success(), "{}", stderr_of(&up));
    assert!(net.pxelab(&["down"]).status.success());
    let log = std::fs::read_to_string(net.lab_dir().join("lab.log")).unwrap();
    for step in ["connecting to libvirt", "reading network", "starting the servers", "defining the patched network", "restoring network"] {
        assert!(log.contains(step), "-v does not log {step:?}:\n{log}");
    }
    for text in [stderr_of(&v), stderr_of(&vv), log] {
        assert!(!text.contains('\x1b'), "colour codes in a pipe or file: {text:?}");
    }
}

/// `up --json` whose reader goes away: the lab runs on and still restores
/// the host when it stops.
#[test]
fn up_survives_a_reader_that_closes_the_pipe() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    let mut child = pxelab()
        .args(["-c", URI, "--json", "up", "--no-vm", "--iso", &busybox(), "--network", &net.name])
        .env("PXELAB_STATE_DIR", net.state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("\"event\""), "{first}");
    // The reader is gone now; the lab goes on printing into a closed pipe.
    wait_for("the lab to be ready", Duration::from_secs(60), || {
        std::fs::read_to_string(net.lab_dir().join("lab.json")).is_ok_and(|t| t.contains("\"ready\": true"))
    });
    assert!(net.live_xml().contains("<bootp"));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));
    net.assert_restored(&original, "after a closed pipe");
}

/// `serve --json | head -1`: the server stops quietly once nobody reads.
#[test]
fn serve_stops_quietly_when_its_reader_goes_away() {
    let mut child = pxelab()
        .args(["--json", "serve", "--iso", &busybox(), "--bind", "127.0.0.1", "--tftp-port", "0", "--ftp-port", "0", "--http-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut ready).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    drop(stdout);
    // The next event is written into the closed pipe.
    let tftp: std::net::SocketAddr = ready["tftp"].as_str().unwrap().parse().unwrap();
    let got = Command::new("curl").args(["-s", "-o", "/dev/null", &format!("tftp://{tftp}/pxelinux.0")]).status().unwrap();
    assert!(got.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "serve kept running with nobody reading");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn libvirt_verbs_take_a_closed_stdout_too() {
    let net = TestNet::with_dhcp();
    for args in
        [&["vm", "list"][..], &["--json", "vm", "list"], &["doctor", "--network", &net.name], &["down"], &["--json", "net", "restore", "--network", &net.name]]
    {
        let mut child =
            pxelab().args(["-c", URI]).args(args).env("PXELAB_STATE_DIR", net.state.path()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(!stderr_of(&out).contains("panicked"), "{args:?}: {}", stderr_of(&out));
        assert!(matches!(out.status.code(), Some(0 | 1)), "{args:?}: {:?} {}", out.status.code(), stderr_of(&out));
    }
}

/// `vm console -f` with no new output (a paused VM) whose reader goes
/// away ends within a second or two, as `status --watch` does; a plain
/// `vm console` into a full disk says so and fails.
#[test]
fn vm_console_notices_a_closed_reader_and_a_full_disk() {
    let net = TestNet::with_dhcp();
    let vm = net.vm_new();
    let name = vm["name"].as_str().unwrap().to_string();
    let record = vm["serial_log"].as_str().unwrap().to_string();
    let mut follow = net.pxelab_command(&["vm", "console", "-f", &name]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(follow.stdout.take().unwrap());
    // A reset makes SeaBIOS write again: the follower has the console once
    // a line of it comes through.
    let mut first = String::new();
    let reads = std::thread::spawn(move || {
        reader.read_line(&mut first).unwrap();
        reader
    });
    wait_for("the console record", Duration::from_secs(60), || {
        virsh_ok(&["reset", &name]);
        std::thread::sleep(Duration::from_millis(500));
        std::fs::metadata(&record).is_ok_and(|m| m.len() > 0)
    });
    let reader = reads.join().unwrap();
    virsh_ok(&["suspend", &name]);
    // What the guest printed before the pause is drained (into the pipe,
    // which holds 64 KiB unread) once the record stops growing.
    let size = || std::fs::metadata(&record).map(|m| m.len()).unwrap_or(0);
    let mut last = size();
    wait_for("the follower to drain the paused console", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_secs(1));
        std::mem::replace(&mut last, size()) == last
    });
    // Nothing more is printed: only a check of the reader can end it.
    drop(reader);
    let dropped = std::time::Instant::now();
    wait_for("vm console -f to end with its reader gone", Duration::from_secs(10), || follow.try_wait().unwrap().is_some());
    assert!(dropped.elapsed() < Duration::from_secs(3), "took {:?}", dropped.elapsed());
    let out = follow.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = net.pxelab_command(&["vm", "console", &name]).stdout(full).output().unwrap();
    assert_ne!(out.status.code(), Some(0), "a console that could not be written is a failure");
    assert!(stderr_of(&out).contains("cannot write to standard output") && stderr_of(&out).contains("No space left"), "{}", stderr_of(&out));
}

#[test]
fn down_says_which_vms_it_kept_and_status_shows_a_crashed_lab() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    // A relative ISO path: `status` must show it absolute.
    let dir = fixture("centos-busybox.iso").parent().unwrap().to_path_buf();
    let out = pxelab()
        .current_dir(&dir)
        .args(["-c", URI, "--json", "up", "--detach", "--keep", "--iso", "centos-busybox.iso", "--network", &net.name])
        .args(["--memory", "256", "--vcpus", "1", "--disk-size", "1"])
        .env("PXELAB_STATE_DIR", net.state.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let detached: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(detached["lab"]["iso"], dir.join("centos-busybox.iso").to_str().unwrap());
    let vm = detached["lab"]["vms"][0]["name"].as_str().unwrap().to_string();
    let out = net.pxelab(&["down"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text.contains("kept") && text.contains(&vm), "down does not say it kept {vm}: {text}");
    assert!(virsh(&["domstate", &vm]).status.success(), "the kept VM is gone");
    assert!(net.pxelab(&["vm", "rm", &vm]).status.success());

    // A lab killed with -9: status says crashed, not ready.
    net.up_detached();
    let lab: serde_json::Value = serde_json::from_slice(&net.pxelab(&["--json", "status", "--network", &net.name]).stdout).unwrap();
    let pid = lab["pid"].as_u64().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for("the lab to die", Duration::from_secs(20), || !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists());
    let status = String::from_utf8_lossy(&net.pxelab(&["status"]).stdout).into_owned();
    assert!(status.contains("(crashed)") && !status.contains("(ready)"), "{status}");
    assert!(net.pxelab(&["down"]).status.success());
    net.assert_restored(&original, "after down");
}

#[test]
fn a_vm_that_fails_to_start_leaves_no_serial_log() {
    let net = TestNet::with_dhcp();
    let logs = tempfile::tempdir().unwrap();
    // libvirt opens the serial log, then QEMU fails: memory no host has
    // (anywhere), and kvm on a host whose kvm cannot run it (this one: PVM,
    // or no /dev/kvm). Where kvm does run guests, kvm fails by memory too.
    let kvm_works = std::path::Path::new("/dev/kvm").exists() && !std::path::Path::new("/sys/module/kvm_pvm").exists();
    let kvm_memory = if kvm_works { "300000000" } else { "256" };
    for (accel, memory) in [("tcg", "300000000"), ("kvm", kvm_memory)] {
        let log = logs.path().join(format!("{accel}.serial.log"));
        let out = net.pxelab(&[
            "vm",
            "new",
            "--pxe",
            "--network",
            &net.name,
            "--memory",
            memory,
            "--vcpus",
            "1",
            "--disk-size",
            "1",
            "--accel",
            accel,
            "--serial-log",
            log.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{accel}: a VM with {memory} MiB started");
        assert!(!log.exists(), "{accel}: the failed VM left {} behind ({})", log.display(), stderr_of(&out));
    }
}

/// `status --watch --json` prints the lab's state as it changes, until SIGTERM.
#[test]
fn status_watch_follows_the_lab_until_signalled() {
    let net = TestNet::with_dhcp();
    let original = net.inactive_xml();
    net.up_detached();
    let mut watch = pxelab()
        .args(["-c", URI, "--json", "status", "--watch", "--network", &net.name])
        .env("PXELAB_STATE_DIR", net.state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["running"], true, "{first}");
    let out = net.pxelab(&["down"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The next line it prints is the lab gone.
    let gone = lines.map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap()).find(|s| s["running"] != true);
    assert!(gone.is_some_and(|s| s["running"] == false), "watch did not see the lab go");
    unsafe { libc::kill(watch.id() as i32, libc::SIGTERM) };
    let status = watch.wait().unwrap();
    assert!(status.success(), "status --watch exits 0 on SIGTERM: {status:?}");
    net.assert_restored(&original, "after the lab");
}
