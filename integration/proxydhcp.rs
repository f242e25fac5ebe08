//! `--proxy-dhcp`: PXE boots on networks whose DHCP pxelab does not touch.
//! The address comes from the network's own DHCP server (libvirt's
//! dnsmasq, or a site's), the boot file from pxelab's proxy; the network's
//! XML never changes, and clients that are not PXE clients hear nothing
//! from pxelab.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::net::TestNet;
use common::{events, fixture};

/// A lab on an isolated libvirt network that is not patched: a BIOS and a
/// UEFI VM get their addresses from libvirt's dnsmasq and their boot files
/// from pxelab, and reach the installer; the network's live and inactive
/// XML are byte-identical before, throughout and after.
#[test]
fn vms_on_an_unpatched_libvirt_network_boot_through_the_proxy() {
    let net = TestNet::with_dhcp();
    let (inactive, live) = (net.inactive_xml(), without_connections(&net.live_xml()));
    let iso = fixture("centos-busybox.iso");
    let child = net.pxelab_command(&proxy_lab_to_installer(&net, &iso, &["--firmware", "both"])).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Its output is read by a thread (a full pipe would stop the lab); the
    // XML, read throughout the lab: never a byte changed.
    let lab = std::thread::spawn(move || child.wait_with_output().unwrap());
    let mut samples = 0;
    let started = Instant::now();
    while !lab.is_finished() && started.elapsed() < Duration::from_secs(420) {
        assert_eq!(net.inactive_xml(), inactive, "the inactive XML changed while the lab ran");
        assert_eq!(without_connections(&net.live_xml()), live, "the live XML changed while the lab ran");
        samples += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = lab.join().unwrap();
    let events = events(&out);
    assert!(out.status.success(), "up failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    assert!(samples > 5, "the XML was read {samples} times");

    let vms: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "summary").flat_map(|e| e["vms"].as_array().unwrap()).collect();
    assert_eq!(vms.len(), 2, "a BIOS and a UEFI VM: {events:?}");
    for vm in &vms {
        let name = vm["name"].as_str().unwrap();
        assert_eq!(vm["stage"], "installer", "{vm}");
        // Its address is libvirt's dnsmasq's (the network's range), its boot file pxelab's.
        let ip = vm["ip"].as_str().unwrap_or_default();
        let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!(ip.starts_with(net.ip.trim_end_matches(".1")) && (10..=99).contains(&last), "{name}'s address {ip} is not from the network's range");
        let answered = format!("proxy DHCP: {name} (Ipxe PXE client) boots http://{}/boot.ipxe", net.ip);
        assert!(events.iter().any(|e| e["event"] == "step" && e["message"] == answered.as_str()), "no proxy answer to {name}: {events:?}");
    }
    let step =
        events.iter().find(|e| e["event"] == "step" && e["message"].as_str().is_some_and(|m| m.starts_with("proxy DHCP on "))).expect("the proxy's step");
    assert!(step["message"].as_str().unwrap().contains(&net.bridge), "{step}");
    assert!(!events.iter().any(|e| e["event"] == "step" && e["message"].as_str().is_some_and(|m| m.starts_with("network "))), "the network was patched");
    assert!(events.iter().any(|e| e["event"] == "teardown" && e["message"] == "proxy DHCP stopped"), "{events:?}");
    assert_eq!(net.inactive_xml(), inactive);
    assert_eq!(without_connections(&net.live_xml()), live);
    net.assert_restored(&inactive, "after the proxy lab");
}

/// `up --proxy-dhcp` on `net` with `iso`, one small VM per firmware in
/// `firmware`, to the busybox installer's marker.
fn proxy_lab_to_installer<'a>(net: &'a TestNet, iso: &'a std::path::Path, firmware: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--json", "up", "--proxy-dhcp", "--iso", iso.to_str().unwrap(), "--network", &net.name];
    args.extend_from_slice(firmware);
    args.extend_from_slice(&["--memory", "512", "--vcpus", "1", "--disk-size", "1", "--expect", "PXELAB-STAGE: installer ready", "--timeout", "400"]);
    args
}

/// The live XML without libvirt's count of attached guests
/// (`<network connections='2'>`): the VMs change it, not pxelab.
fn without_connections(xml: &str) -> String {
    regex::Regex::new(r" connections='\d+'").unwrap().replace(xml, "").into_owned()
}

/// Secure Boot through the proxy: edk2's own PXE (not iPXE) takes the
/// proxy's offer (option 43: boot this file, no discovery) and loads the
/// ISO's signed shim, GRUB and its config, on an unpatched network.
#[test]
fn a_secure_boot_vm_boots_the_signed_chain_through_the_proxy() {
    let net = TestNet::with_dhcp();
    let inactive = net.inactive_xml();
    let iso = fixture("centos-busybox.iso");
    let out = net.pxelab(&proxy_lab_to_installer(&net, &iso, &["--firmware", "uefi", "--secure-boot"]));
    let events = events(&out);
    assert!(out.status.success(), "up failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    let answered: Vec<&str> =
        events.iter().filter(|e| e["event"] == "step").filter_map(|e| e["message"].as_str()).filter(|m| m.starts_with("proxy DHCP: ")).collect();
    assert!(answered.iter().any(|m| m.contains("(Uefi PXE client) boots iso/EFI/BOOT/BOOTX64.EFI")), "{answered:?}");
    let served: Vec<&str> = events.iter().filter(|e| e["event"] == "transfer" && e["protocol"] == "tftp").filter_map(|e| e["path"].as_str()).collect();
    for file in ["iso/EFI/BOOT/BOOTX64.EFI", "iso/EFI/BOOT/grubx64.efi", "/iso/images/pxeboot/vmlinuz"] {
        assert!(served.contains(&file), "{file} not served: {served:?}");
    }
    net.assert_restored(&inactive, "after a Secure Boot proxy lab");
}

/// A site LAN pxelab did not make: a bridge of the host's (pxelab's
/// address on it), a "site" network namespace on it running dnsmasq as the
/// site's DHCP server (no PXE options, another address), and a "client"
/// namespace for ordinary DHCP clients. All removed on drop.
struct SiteLan {
    bridge: String,
    subnet: String,
    site_ns: String,
    client_ns: String,
    /// Namespaces added by a test (`plug`), removed with the rest.
    extra_ns: Vec<String>,
    dnsmasq: Vec<std::process::Child>,
    dir: tempfile::TempDir,
}

fn sh(args: &[&str]) -> std::process::Output {
    std::process::Command::new(args[0]).args(&args[1..]).output().unwrap()
}

fn sh_ok(args: &[&str]) {
    let out = sh(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl SiteLan {
    fn new() -> SiteLan {
        let (id, n) = (std::process::id() % 100_000, common::net::NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let unique = id * 4 + n;
        let subnet = format!("10.{}.{}", 230 + unique / 256 % 20, unique % 256);
        let lan = SiteLan {
            bridge: format!("pxsite{id}x{n}"),
            subnet: subnet.clone(),
            site_ns: format!("pxsite{id}x{n}"),
            client_ns: format!("pxcli{id}x{n}"),
            extra_ns: Vec::new(),
            dnsmasq: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        sh_ok(&["ip", "link", "add", &lan.bridge, "type", "bridge", "stp_state", "0"]);
        sh_ok(&["ip", "addr", "add", &format!("{subnet}.1/24"), "dev", &lan.bridge]);
        sh_ok(&["ip", "link", "set", &lan.bridge, "up"]);
        lan.plug(&lan.site_ns, Some(&format!("{subnet}.2/24")));
        lan.plug(&lan.client_ns, None);
        lan
    }

    /// A new namespace `ns` plugged into the bridge, its end named eth0, with `ip`.
    fn plug(&self, ns: &str, ip: Option<&str>) {
        let outside = format!("{ns}o");
        sh_ok(&["ip", "netns", "add", ns]);
        sh_ok(&["ip", "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", ns]);
        sh_ok(&["ip", "link", "set", &outside, "master", &self.bridge, "up"]);
        sh_ok(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        if let Some(ip) = ip {
            sh_ok(&["ip", "-n", ns, "addr", "add", ip, "dev", "eth0"]);
        }
    }

    /// The site's DHCP server: dnsmasq in its namespace, addresses .100-.150, no boot options.
    fn start_site_dhcp(&mut self) {
        let leases = self.dir.path().join("leases");
        let ns = self.site_ns.clone();
        let range = format!("--dhcp-range={0}.100,{0}.150,12h", self.subnet);
        self.dnsmasq(&ns, "dnsmasq.log", &[&range, &format!("--dhcp-leasefile={}", leases.display()), "--dhcp-authoritative", "--no-ping"]);
    }

    /// dnsmasq in namespace `ns` on its eth0, logging to `log` in the test's directory.
    fn dnsmasq(&mut self, ns: &str, log: &str, args: &[&str]) {
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0", "--bind-interfaces", "--log-dhcp"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap())
            .spawn()
            .unwrap();
        self.dnsmasq.push(child);
        std::thread::sleep(Duration::from_millis(500));
    }

    /// udhcpc in the client namespace, `extra` added; returns its output
    /// and what a capture on the client's link saw from pxelab's address.
    fn udhcpc(&self, extra: &[&str]) -> (String, Vec<String>) {
        self.udhcpc_hearing(extra, &format!("{}.1", self.subnet))
    }

    /// [`udhcpc`](Self::udhcpc), keeping what came from `server`'s port 67.
    fn udhcpc_hearing(&self, extra: &[&str], server: &str) -> (String, Vec<String>) {
        let pcap = self.dir.path().join(format!("capture{}.pcap", common::net::NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        let mut capture = std::process::Command::new("ip")
            .args(["netns", "exec", &self.client_ns, "tcpdump", "-i", "eth0", "-n", "-U", "-w", pcap.to_str().unwrap(), "udp port 67 or udp port 68"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(800));
        let mut args = vec!["ip", "netns", "exec", &self.client_ns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "3", "-T", "1", "-s", "/bin/true"];
        args.extend_from_slice(extra);
        let out = sh(&args);
        // Any late answer to the client is captured too.
        std::thread::sleep(Duration::from_millis(1500));
        let _ = capture.kill();
        let _ = capture.wait();
        let read = sh(&["tcpdump", "-r", pcap.to_str().unwrap(), "-n", "-v"]);
        let text = String::from_utf8_lossy(&read.stdout).into_owned();
        let from_pxelab = text.lines().filter(|l| l.contains(&format!("{server}.67 >"))).map(str::to_string).collect();
        (String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr), from_pxelab)
    }
}

impl Drop for SiteLan {
    fn drop(&mut self) {
        for d in &mut self.dnsmasq {
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in [&self.site_ns, &self.client_ns].into_iter().chain(&self.extra_ns) {
            let _ = sh(&["ip", "link", "del", &format!("{ns}o")]);
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        let _ = sh(&["ip", "link", "del", &self.bridge]);
    }
}

/// A site LAN: a VM plugged into a bridge pxelab did not make gets its
/// address from the site's DHCP server and its boot file from pxelab
/// (`up --proxy-dhcp --interface BRIDGE`), and installs; an ordinary DHCP
/// client on the same bridge gets its lease from the site and nothing from
/// pxelab (captured), while a PXE client there does get pxelab's offer.
#[test]
fn on_a_site_lan_only_pxe_clients_hear_pxelab_and_the_vm_installs() {
    let mut lan = SiteLan::new();
    lan.start_site_dhcp();
    let state = tempfile::tempdir().unwrap();
    let ks = state.path().join("ks.cfg");
    std::fs::write(&ks, "url --url={http}/iso/\nrootpw --plaintext pxelab\nreboot\n").unwrap();
    let iso = fixture("centos-busybox.iso");
    let mut up = common::pxelab();
    up.args(["-c", common::net::URI, "--json", "up", "--proxy-dhcp", "--interface", &lan.bridge, "--iso", iso.to_str().unwrap()])
        .args(["--kickstart", ks.to_str().unwrap(), "--memory", "512", "--vcpus", "1", "--disk-size", "1"])
        .args(["--expect-installed", "pxelab-installed login:", "--timeout", "400"])
        .env("PXELAB_STATE_DIR", state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let lab = std::thread::spawn(move || up.output().unwrap());
    // While the lab runs: an ordinary client, then a PXE-flavoured one.
    common::net::wait_for("the lab to serve", Duration::from_secs(60), || state.path().join("labs").read_dir().is_ok_and(|mut d| d.next().is_some()));
    std::thread::sleep(Duration::from_secs(3));
    let (plain, heard) = lan.udhcpc(&[]);
    assert!(plain.contains(&format!("obtained from {}.2", lan.subnet)), "the site's lease: {plain}");
    assert!(heard.is_empty(), "pxelab answered an ordinary DHCP client: {heard:?}");
    let (_, heard) = lan.udhcpc(&["-V", "PXEClient:Arch:00000:UNDI:002001"]);
    assert!(!heard.is_empty(), "pxelab did not answer a PXE client on the bridge");

    let out = lab.join().unwrap();
    let events = events(&out);
    assert!(out.status.success(), "up failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    let summary = events.iter().find(|e| e["event"] == "summary").expect("a summary");
    let vm = &summary["vms"][0];
    assert_eq!(vm["stage"], "installed", "{vm}");
    let ip = vm["ip"].as_str().unwrap_or_default();
    assert!(ip.starts_with(&format!("{}.1", lan.subnet)) && ip.len() > lan.subnet.len() + 3, "the VM's address {ip} is not the site's");
    let log = std::fs::read_to_string(lan.dir.path().join("dnsmasq.log")).unwrap();
    assert!(log.contains(&format!("DHCPACK(eth0) {ip}")), "the site's server did not lease {ip}:\n{log}");
    assert!(events.iter().any(|e| e["event"] == "step" && e["message"].as_str().is_some_and(|m| m.starts_with("proxy DHCP: pxelab-"))), "{events:?}");
}

/// A lab with no VM on a site LAN, as a script runs one: `up --detach
/// --proxy-dhcp --interface BRIDGE`, `doctor` while it answers, `down
/// --network BRIDGE`. doctor says the proxy answered, then warns once
/// another proxy (dnsmasq's proxy mode, in a third namespace) answers PXE
/// clients on the same bridge.
#[test]
fn doctor_sees_the_proxys_answers_and_another_proxy_on_the_segment() {
    let mut lan = SiteLan::new();
    lan.start_site_dhcp();
    let state = tempfile::tempdir().unwrap();
    let iso = fixture("centos-busybox.iso");
    let pxelab = |args: &[&str]| common::pxelab().args(["-c", common::net::URI]).args(args).env("PXELAB_STATE_DIR", state.path()).output().unwrap();
    let up = pxelab(&["up", "--detach", "--no-vm", "--proxy-dhcp", "--interface", &lan.bridge, "--iso", iso.to_str().unwrap()]);
    assert!(up.status.success(), "up --detach: {}", String::from_utf8_lossy(&up.stderr));
    let bridge = lan.bridge.clone();
    let doctor = |what: &str| -> Vec<serde_json::Value> {
        let out = pxelab(&["--json", "doctor", "--network", &bridge]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        report["checks"].as_array().unwrap().clone()
    };
    let check = |checks: &[serde_json::Value], id: &str| checks.iter().find(|c| c["id"] == id).cloned().unwrap_or_else(|| panic!("no {id}: {checks:?}"));

    // As a BIOS PXE ROM asks: broadcast replies, its architecture and UUID
    // (dnsmasq's proxy answers only a client that sends option 97).
    let pxe = ["-B", "-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "93:0000", "-x", "97:0000112233445566778899aabbccddeeff"];
    let (_, heard) = lan.udhcpc(&pxe);
    assert!(!heard.is_empty(), "pxelab did not answer");
    std::thread::sleep(Duration::from_millis(600)); // a poll of the lab: lab.json has the count
    let checks = doctor("after an answer");
    assert_eq!(check(&checks, "network")["status"], "ok", "{checks:?}");
    let answers = check(&checks, "proxy.answers");
    assert!(answers["status"] == "ok" && answers["detail"].as_str().unwrap().contains("answered 1 PXE request"), "{answers}");
    assert_eq!(check(&checks, "proxy.others")["status"], "ok");

    let other = format!("pxoth{}x{}", std::process::id() % 100_000, common::net::NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    lan.plug(&other, Some(&format!("{}.3/24", lan.subnet)));
    lan.extra_ns.push(other.clone());
    let proxy_range = format!("--dhcp-range={}.0,proxy", lan.subnet);
    lan.dnsmasq(&other, "other-proxy.log", &[&proxy_range, "--pxe-service=x86PC,other,other"]);
    lan.udhcpc(&pxe);
    std::thread::sleep(Duration::from_millis(600));
    let others = check(&doctor("after another proxy"), "proxy.others");
    assert_eq!(others["status"], "warn", "{others}");
    assert!(others["detail"].as_str().unwrap().contains("another proxy DHCP answers PXE clients"), "{others}");

    let status = pxelab(&["status", "--network", &lan.bridge]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("proxy DHCP on {} (", lan.bridge)) && text.contains("the network is not patched"), "{text}");
    let vm_new = pxelab(&["vm", "new", "--pxe"]);
    assert_eq!(vm_new.status.code(), Some(2), "vm new on a host-bridge lab: {}", String::from_utf8_lossy(&vm_new.stderr));
    assert!(String::from_utf8_lossy(&vm_new.stderr).contains("start that lab with --vms N"));
    // dhcp-config knows the running lab needs none of its settings.
    let config = pxelab(&["dhcp-config", "--format", "dnsmasq"]);
    let text = String::from_utf8_lossy(&config.stdout);
    assert!(text.contains(&format!("the running lab answers PXE clients itself with proxy DHCP on {}", lan.bridge)), "{text}");

    let down = pxelab(&["down", "--network", &lan.bridge]);
    assert!(down.status.success(), "down: {}", String::from_utf8_lossy(&down.stderr));
    assert!(!state.path().join("labs").join(&lan.bridge).join("lab.json").exists(), "the lab is gone");
    let (_, heard) = lan.udhcpc(&pxe);
    assert!(heard.is_empty(), "pxelab answered after down: {heard:?}");
}

/// `serve --proxy-dhcp`: the servers and the proxy, no libvirt; the
/// interface is the one holding --bind, each answer is a JSON line, and a
/// PXE client on another bridge hears nothing.
#[test]
fn serve_answers_pxe_clients_with_proxy_dhcp_on_the_binds_interface() {
    let mut lan = SiteLan::new();
    lan.start_site_dhcp();
    let bind = format!("{}.1", lan.subnet);
    let (mut serve, mut lines) = serve_proxy(&bind);
    let ready: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(ready["proxy_dhcp"], lan.bridge.as_str(), "{ready}");
    let (_, heard) = lan.udhcpc(&["-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "93:0007"]);
    assert!(!heard.is_empty(), "no answer to a UEFI PXE client");
    // An ARM64 UEFI client (client-arch 11): the arm64 shim.
    let (_, heard) = lan.udhcpc(&["-V", "PXEClient:Arch:00011:UNDI:003016", "-x", "93:000b"]);
    assert!(!heard.is_empty(), "no answer to an ARM64 UEFI PXE client");
    // A boot-server request on UDP 4011, as edk2 sends one once it has an
    // address: an ACK back, with the BIOS file and no address.
    let socket = std::net::UdpSocket::bind((bind.as_str(), 0)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    socket.send_to(&boot_server_request(), (bind.as_str(), 4011)).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).expect("an answer on 4011");
    let ack = &buf[..n];
    assert_eq!(ack[0], 2, "a BOOTREPLY");
    assert_eq!(&ack[16..20], &[0, 0, 0, 0], "no address");
    assert!(ack[240..].windows(3).any(|w| w == [53, 1, 5]), "a DHCPACK");
    assert!(ack[108..236].starts_with(b"pxelinux.0\0"), "the BIOS boot file: {:?}", &ack[108..140]);
    // Nothing leaves the chosen interface: a PXE client on another bridge of
    // this host, with its own DHCP server, hears nothing from pxelab.
    let mut elsewhere = SiteLan::new();
    elsewhere.start_site_dhcp();
    let (lease, heard) = elsewhere.udhcpc_hearing(&["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "93:0000"], &bind);
    assert!(lease.contains("obtained from"), "{lease}");
    assert!(heard.is_empty(), "pxelab answered on another interface: {heard:?}");
    let _ = serve.kill();
    let _ = serve.wait();
    let answered: Vec<serde_json::Value> =
        lines.map_while(|l| l.ok()).filter_map(|l| serde_json::from_str(&l).ok()).filter(|e: &serde_json::Value| e["proxy"] == "answered").collect();
    assert!(!answered.is_empty(), "no answered event");
    assert_eq!((&answered[0]["kind"], &answered[0]["port"]), (&"uefi".into(), &"dhcp".into()), "{answered:?}");
    assert!(answered[0]["file"].as_str().unwrap().ends_with(".EFI") || answered[0]["file"].as_str().unwrap().ends_with(".efi"), "{answered:?}");
    // The x86-64 ISO has no arm64 shim: the host's Debian one (debian-installer-12-netboot-arm64).
    let arm = answered.iter().find(|e| e["kind"] == "uefi_arm64").unwrap_or_else(|| panic!("no ARM64 answer: {answered:?}"));
    assert_eq!(arm["file"], "efi/bootaa64.efi", "{arm}");
}

/// A BIOS PXE client's DHCPREQUEST to the boot server (UDP 4011).
fn boot_server_request() -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[..3].copy_from_slice(&[1, 1, 6]);
    m[4..8].copy_from_slice(&[1, 2, 3, 4]);
    m[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x0b, 0x0a, 0x01]);
    m.extend_from_slice(&[99, 130, 83, 99, 53, 1, 3, 93, 2, 0, 0]);
    m.extend_from_slice(&[60, 9]);
    m.extend_from_slice(b"PXEClient");
    m.push(255);
    m
}

/// A flood of PXE DISCOVERs from 20 000 MACs (a script in the client
/// namespace, about 10 000 a second) gets at most the proxy's rate of
/// answers, and the server's memory stays where it was.
#[test]
fn a_flood_of_discovers_is_answered_at_the_proxys_rate_in_bounded_memory() {
    let mut lan = SiteLan::new();
    lan.start_site_dhcp();
    let bind = format!("{}.1", lan.subnet);
    let (mut serve, mut lines) = serve_proxy(&bind);
    lines.next().unwrap().unwrap();
    let rss_before = common::proc_status_kib(serve.id(), "VmRSS");
    let flood = r#"
import socket, struct, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
t0 = time.monotonic()
for i in range(20000):
    mac = bytes([0x02, 0x70, (i >> 16) & 255, (i >> 8) & 255, i & 255, 7])
    m = bytearray(236); m[0:3] = b"\x01\x01\x06"; m[4:8] = struct.pack("!I", i); m[28:34] = mac
    m += bytes([99, 130, 83, 99, 53, 1, 1, 60, 9]) + b"PXEClient" + bytes([93, 2, 0, 0, 255])
    udp = struct.pack("!HHHH", 68, 67, 8 + len(m), 0) + m
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), b"\xff" * 4))
    # A valid header checksum: br_netfilter drops IPv4 with a bad one.
    c = sum(struct.unpack("!10H", ip)); c = (c & 0xffff) + (c >> 16); c = (c & 0xffff) + (c >> 16)
    ip[10:12] = struct.pack("!H", ~c & 0xffff)
    s.send(b"\xff" * 6 + mac + b"\x08\x00" + bytes(ip) + udp)
    if i % 200 == 199:
        time.sleep(0.02)  # ~10 000 a second: the socket's buffer keeps up, the limiter decides
print(time.monotonic() - t0)
"#;
    let out = sh(&["ip", "netns", "exec", &lan.client_ns, "python3", "-c", flood]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = common::proc_status_kib(serve.id(), "VmRSS");
    let _ = serve.kill();
    let _ = serve.wait();
    let answered = lines.map_while(|l| l.ok()).filter(|l| l.contains(r#""proxy":"answered""#)).count();
    // 64 a second: in whole windows, one more for the window the flood began in.
    let most = 64 * (seconds.ceil() as usize + 2);
    eprintln!("{answered} answers to 20000 DISCOVERs in {seconds:.1} s");
    assert!(answered > 0 && answered <= most, "{answered} answers to 20000 DISCOVERs in {seconds:.1} s (at most {most})");
    assert!(rss_after < rss_before + 8 * 1024, "RSS {rss_before} KiB before the flood, {rss_after} KiB after");
}

/// Bad input for proxy DHCP: one line naming the problem and what to do,
/// a distinct exit code, nothing started.
#[test]
fn bad_proxy_input_is_refused_in_one_line_before_anything_starts() {
    let state = tempfile::tempdir().unwrap();
    let iso = fixture("centos-busybox.iso");
    let iso = iso.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = common::pxelab().args(["-c", common::net::URI]).args(args).env("PXELAB_STATE_DIR", state.path()).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).trim().to_string())
    };
    let cases: [(&[&str], i32, &str); 6] = [
        (&["up", "--proxy-dhcp", "--interface", "pxnone0", "--iso", iso, "--no-vm"], 3, "no such network interface"),
        (&["up", "--proxy-dhcp", "--interface", "lo", "--iso", iso, "--no-vm"], 3, "is not a bridge"),
        (&["up", "--interface", "lo", "--iso", iso], 2, "--proxy-dhcp"),
        (&["up", "--proxy-dhcp", "--interface", "lo", "--network", "default", "--iso", iso], 2, "cannot be used with"),
        (&["serve", "--proxy-dhcp", "--bind", "192.0.2.77", "--iso", iso], 3, "is not an address of this host"),
        (&["serve", "--proxy-dhcp", "--bind", "127.0.0.1", "--interface", "pxnone0", "--iso", iso], 3, "is not an address of --interface pxnone0"),
    ];
    for (args, code, words) in cases {
        let (got, stderr) = run(args);
        assert_eq!(got, Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
        if code != 2 {
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        }
    }
    let labs = state.path().join("labs");
    assert!(!labs.exists() || labs.read_dir().unwrap().all(|d| !d.unwrap().path().join("lab.json").exists()), "a lab was left");
}

/// An installer for an architecture pxelab makes no VMs for (here a RHEL
/// ppc64le layout) is refused before any change, with the proxy or without.
#[test]
fn an_installer_for_another_architecture_is_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("images/pxeboot")).unwrap();
    std::fs::write(tree.join("images/pxeboot/vmlinuz"), b"ppc64le kernel").unwrap();
    std::fs::write(tree.join("images/pxeboot/initrd.img"), b"ppc64le initrd").unwrap();
    let iso = dir.path().join("rhel-ppc64le.iso");
    sh_ok(&["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "RHEL-9-4-0-BaseOS-ppc64le", "-o", iso.to_str().unwrap(), tree.to_str().unwrap()]);
    let net = TestNet::with_dhcp();
    let inactive = net.inactive_xml();
    for proxy in [&[][..], &["--proxy-dhcp"][..]] {
        let mut args = vec!["up", "--iso", iso.to_str().unwrap(), "--network", &net.name];
        args.extend_from_slice(proxy);
        let out = net.pxelab(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("an installer for ppc64le") && stderr.contains("x86_64 and aarch64 VMs only"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        net.assert_restored(&inactive, "after the refusal");
    }
}

/// `serve --json --proxy-dhcp --bind BIND` on the busybox fixture, and its output's lines.
fn serve_proxy(bind: &str) -> (std::process::Child, std::io::Lines<std::io::BufReader<std::process::ChildStdout>>) {
    let iso = fixture("centos-busybox.iso");
    let mut serve = common::pxelab()
        .args(["--json", "serve", "--proxy-dhcp", "--bind", bind, "--http-port", "0", "--ftp-port", "0", "--iso", iso.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(serve.stdout.take().unwrap()));
    (serve, lines)
}

/// A stopped network is refused by `up --proxy-dhcp`, which neither starts
/// nor changes it: exit 4, one line with the command that starts it, the
/// network still stopped and as it was.
#[test]
fn a_stopped_network_is_refused_with_how_to_start_it() {
    let net = TestNet::with_dhcp();
    common::net::virsh_ok(&["net-destroy", &net.name]);
    let inactive = net.inactive_xml();
    let iso = fixture("centos-busybox.iso");
    let out = net.pxelab(&["up", "--proxy-dhcp", "--no-vm", "--iso", iso.to_str().unwrap(), "--network", &net.name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("is not running") && stderr.contains(&format!("virsh net-start {}", net.name)), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(net.inactive_xml(), inactive);
    assert!(!common::net::virsh_ok(&["net-info", &net.name]).lines().any(|l| l.starts_with("Active:") && l.ends_with("yes")), "the network was started");
}
