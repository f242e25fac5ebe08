//! `pxelab doctor`: the seed's troubleshooting list (is DHCP answering, can
//! the TFTP files be fetched, is the VM's NIC on the right network, are
//! UDP 69 and TCP 21 listening) as checks, each with a status and, when it
//! is not ok, one line saying what to do.
//!
//! Doctor changes nothing. It reads libvirt (one blocking call gathers a
//! network's state, its live XML and the VM's XML), /proc, the firewall
//! listings and pxelab's own `lab.json`, and it talks to the lab's servers
//! as a client would: one TFTP read request, one FTP greeting.
//!
//! What counts as a failure depends on whether a lab runs on the network:
//! before `up`, a network without bootp and free ports is the expected
//! state (a warning says what `up` will do); while a lab runs, either is a
//! failure.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use serde::Serialize;

use super::record::LabRecord;
use super::{parse_port_range, status};
use crate::blocking;
use crate::boot::syslinux;
use crate::dhcp::LabDnsmasq;
use crate::error::{Error, Result};
use crate::firewall;
use crate::serve::ports::{self, Transport};
use crate::serve::Limits;
use crate::serve::{transport_of, Protocol};
use crate::virt::accel::{Accel, AccelChoice};
use crate::virt::domain;
use crate::virt::domxml::{self, Firmware, NetworkBoot};
use crate::virt::network::{self, NetworkState};
use crate::virt::netxml::{self, NetworkXml};
use crate::virt::{Libvirt, VirtError};

/// How long a probe of the lab's servers waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// What to do when the lab's own server does not answer.
const FIX_STUCK_LAB: &str = "the lab may be stuck: `pxelab down`, then `pxelab up` again (add -v for its log)";

#[derive(Debug, Clone)]
pub struct DoctorRequest {
    pub uri: String,
    /// The network to check; default: the running lab's, else the VM's, else `default`.
    pub network: Option<String>,
    pub vm: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable identifier, for scripts: `network.bootp`, `ports.tftp`, …
    pub id: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, for every status but ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    /// No check failed (warnings allowed): the exit status is 0.
    pub ok: bool,
    pub uri: String,
    pub network: Option<String>,
    pub vm: Option<String>,
    /// pid of the lab running on this network, if any.
    pub lab_pid: Option<u32>,
    pub checks: Vec<Check>,
}

/// Collects checks in order.
#[derive(Default)]
struct Findings(Vec<Check>);

impl Findings {
    fn ok(&mut self, id: &'static str, detail: impl Into<String>) {
        self.0.push(Check { id, status: Status::Ok, detail: detail.into(), fix: None });
    }
    fn warn(&mut self, id: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Check { id, status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) });
    }
    fn fail(&mut self, id: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Check { id, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) });
    }
    /// A warning before `up`, a failure while a lab runs.
    fn lab_dependent(&mut self, lab: bool, id: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        if lab {
            self.fail(id, detail, fix)
        } else {
            self.warn(id, detail, fix)
        }
    }
}

/// What libvirt says, gathered in one blocking call.
struct Gathered {
    network: std::result::Result<NetworkState, VirtError>,
    live_xml: Option<String>,
    vm: Option<std::result::Result<(String, bool), VirtError>>,
    /// The network's DHCP leases (MAC, address), when a VM is checked.
    leases: Vec<(String, std::net::IpAddr)>,
}

/// `pxelab doctor`. Every check that reads the host or probes a port runs
/// through `blocking::run`; libvirt is read in one `Libvirt::call`.
pub async fn doctor(request: DoctorRequest) -> Result<DoctorReport> {
    let (mut f, lab) = blocking::run(|| {
        let mut f = Findings::default();
        let lab = running_lab(&mut f);
        host_checks(&mut f);
        (f, lab)
    })
    .await;

    let libvirt = match Libvirt::connect(&request.uri).await {
        Ok(l) => {
            f.ok("libvirt", format!("libvirtd answers at {}", request.uri));
            accel_check(&mut f, super::choose_accel(&l, super::libvirt_is_here(&l).await, None).await);
            l
        }
        Err(e) => {
            f.fail("libvirt", format!("cannot connect to {}", request.uri), Error::from(e).to_string());
            return Ok(report(request, None, None, f));
        }
    };

    let vm_name = request.vm.clone();
    let vm = match &vm_name {
        Some(name) => {
            let name = name.clone();
            Some(libvirt.call(move |c| Ok((domain::xml(c, &name)?, domain::is_running(c, &name)?))).await)
        }
        None => None,
    };
    let vm_network = vm.as_ref().and_then(|v| v.as_ref().ok()).and_then(|(xml, _)| domxml::interfaces(xml).into_iter().find_map(|i| i.network));
    let net_name = request.network.clone().or_else(|| lab.as_ref().map(|l| l.network.clone())).or(vm_network).unwrap_or_else(|| "default".into());
    let name = net_name.clone();
    tracing::debug!("reading network {name}");
    let gathered = libvirt
        .call(move |c| {
            let network = network::read(c, &name);
            let live_xml = match &network {
                Ok(state) if state.active => network::live_xml(c, &name).ok(),
                _ => None,
            };
            let leases = match (&vm, &network) {
                (Some(_), Ok(state)) if state.active => network::leases(c, &name).unwrap_or_default(),
                _ => Vec::new(),
            };
            Ok(Gathered { network, live_xml, vm, leases })
        })
        .await?;

    // The lab counts only if it runs on the network being checked.
    let lab = lab.filter(|l| l.network == net_name);
    let lab_pid = lab.as_ref().map(|l| l.pid);
    let checked = net_name.clone();
    let f = blocking::run(move || {
        match gathered.network {
            Ok(state) => {
                network_checks(&mut f, &state, gathered.live_xml.as_deref(), lab.as_ref());
            }
            Err(VirtError::NoNetwork(_)) => f.fail(
                "network",
                format!("network {checked:?} does not exist"),
                "pass --network NAME with one of `virsh net-list --all`, or create an isolated network (see README, \"A lab network\")",
            ),
            Err(e) => f.fail("network", format!("cannot read network {checked:?}"), Error::from(e).to_string()),
        }
        if let (Some(name), Some(vm)) = (&vm_name, gathered.vm) {
            vm_checks(&mut f, name, vm, &checked, &gathered.leases, lab.as_ref());
        }
        f
    })
    .await;
    Ok(report(request, Some(net_name), lab_pid, f))
}

fn report(request: DoctorRequest, network: Option<String>, lab_pid: Option<u32>, f: Findings) -> DoctorReport {
    DoctorReport { ok: f.0.iter().all(|c| c.status != Status::Fail), uri: request.uri, network, vm: request.vm, lab_pid, checks: f.0 }
}

/// The lab `pxelab status` sees, if its process runs.
fn running_lab(f: &mut Findings) -> Option<LabRecord> {
    match status() {
        Ok(report) => match report.lab {
            Some(lab) if report.running => {
                f.ok("lab", format!("a lab runs (pid {}) on network {} serving {}", lab.pid, lab.network, lab.iso));
                Some(lab)
            }
            Some(lab) => {
                f.warn(
                    "lab",
                    format!("the lab on network {} (pid {}) ended without `down`", lab.network, lab.pid),
                    "run `pxelab down` to restore the network and remove its VMs",
                );
                None
            }
            None => {
                f.ok("lab", "no lab is running");
                None
            }
        },
        Err(e) => {
            f.warn("lab", format!("cannot read the lab's state: {e}"), "remove the file named above if no lab runs, then `pxelab down`");
            None
        }
    }
}

/// Checks of this host itself: syslinux, OVMF, the UEFI loaders.
fn host_checks(f: &mut Findings) {
    match syslinux::load() {
        Ok(files) => f.ok("syslinux", format!("{} found", files.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))),
        Err(missing) => f.fail("syslinux", format!("{} is missing", missing.file), missing.to_string()),
    }
    match domxml::missing_ovmf() {
        None => f.ok("ovmf", "OVMF (plain and Secure Boot builds) found: UEFI VMs can run"),
        Some(file) => {
            f.warn("ovmf", format!("{file} is missing: UEFI VMs (--firmware uefi) cannot start"), "install the ovmf package; BIOS VMs are not affected")
        }
    }
    match crate::boot::UefiLoader::from_host() {
        Ok(_) => f.ok(
            "uefi.loaders",
            format!("{} and {} found: UEFI PXE clients boot even from ISOs without their own", crate::boot::uefi::HOST_SHIM, crate::boot::uefi::HOST_GRUB),
        ),
        Err(missing) => f.warn(
            "uefi.loaders",
            format!("no host shim and GRUB for UEFI PXE clients ({missing})"),
            "install shim-signed and grub-efi-amd64-signed; until then UEFI clients without iPXE boot only ISOs with their own EFI/BOOT shim",
        ),
    }
}

/// The accelerator the VMs would get, on the host they run on.
fn accel_check(f: &mut Findings, choice: AccelChoice) {
    match choice.accel {
        Accel::Kvm => f.ok("accel", choice.reason),
        Accel::Tcg => f.warn(
            "accel",
            choice.reason,
            "nothing to do for the lab to work; guests run slower (an installer's first screen in about a minute); for kvm, use a host with kvm_intel or kvm_amd",
        ),
    }
}

fn network_checks(f: &mut Findings, state: &NetworkState, live_xml: Option<&str>, lab: Option<&LabRecord>) {
    let name = &state.name;
    let has_lab = lab.is_some();
    if state.persistent {
        f.ok("network.persistent", format!("network {name} is defined (persistent)"));
    } else {
        f.fail(
            "network.persistent",
            format!("network {name} is transient (not defined): `pxelab up` and `pxelab net patch` refuse it"),
            format!("define it: `virsh net-dumpxml {name} > {name}.xml && virsh net-define {name}.xml`"),
        );
    }
    if state.active {
        f.ok("network.active", format!("network {name} is active"));
    } else {
        f.lab_dependent(
            has_lab,
            "network.active",
            format!("network {name} is not active"),
            format!("`pxelab up --network {name}` starts it; or `virsh net-start {name}`"),
        );
    }

    let Some(dhcp4) = state.parsed.dhcp4() else {
        f.fail(
            "network.dhcp",
            format!("network {name} has no IPv4 <dhcp>: guests get no address and no boot file"),
            format!(
                "add <dhcp><range start=… end=…/></dhcp> to its IPv4 <ip> (`virsh net-edit {name}`), or run your own DHCP server with `pxelab dhcp-config`"
            ),
        );
        return;
    };
    let address = dhcp4.address;
    f.ok("network.dhcp", format!("IPv4 DHCP on {address}/{}", dhcp4.prefix.map(|p| p.to_string()).unwrap_or_else(|| "?".into())));

    match state.parsed.tftp_root() {
        Some(root) => f.fail(
            "network.tftp",
            format!("network {name} has <tftp root='{root}'/>: libvirt's dnsmasq then holds UDP 69 on {address}"),
            format!("remove the <tftp> element (`virsh net-edit {name}`, then restart the network); pxelab serves TFTP itself"),
        ),
        None => f.ok("network.tftp", "no <tftp> element: UDP 69 is left to pxelab"),
    }

    bootp_check(f, state, live_xml, address, has_lab);
    if let (Some(lab), Some(live)) = (lab, live_xml) {
        ipxe_check(f, state, live, lab);
    }
    if let Some(lab) = lab {
        let bridge = lab.bridge.as_deref().unwrap_or("its bridge");
        if lab.ra {
            f.ok("network.ra", format!("the lab answers IPv6 router solicitations on {bridge} (a bare RA: no prefix, router lifetime 0)"));
        } else {
            f.warn(
                "network.ra",
                format!("the lab does not answer router solicitations on {bridge}: iPXE guests wait about 10 s for IPv6 after their lease"),
                "drop --no-ra the next time (`pxelab down`, then `pxelab up`)",
            );
        }
    }

    if state.active {
        // The lab's own ports when one runs (it may have chosen others), else pxelab's defaults.
        port_check(f, Protocol::Tftp, SocketAddr::new(address, 69), lab, state);
        let ftp = lab.and_then(LabRecord::ftp_addr).unwrap_or(SocketAddr::new(address, 21));
        port_check(f, Protocol::Ftp, ftp, lab, state);
        match lab {
            Some(lab) => {
                if let Some(http) = lab.http_addr() {
                    port_check(f, Protocol::Http, http, Some(lab), state);
                }
            }
            None => port_check(f, Protocol::Http, SocketAddr::new(address, 80), None, state),
        }
    }
    if let Some(bridge) = &state.parsed.bridge {
        firewall_check(f, bridge, lab);
    }
}

/// A lab that serves HTTP sends iPXE clients to boot.ipxe through dnsmasq
/// options on the running network.
fn ipxe_check(f: &mut Findings, state: &NetworkState, live_xml: &str, lab: &LabRecord) {
    let Some(http) = &lab.http else { return };
    let lab_lines = LabDnsmasq::of(&netxml::dnsmasq_options_of(live_xml));
    match lab_lines.ipxe_script {
        Some(url) => {
            let waits = if lab_lines.fast {
                ", with no ping and no ProxyDHCP wait before their first lease"
            } else {
                " (--no-fast-dhcp: dnsmasq pings, iPXE waits for ProxyDHCP)"
            };
            f.ok("network.ipxe", format!("iPXE clients are sent to {url}{waits}"))
        }
        _ => f.fail(
            "network.ipxe",
            format!("the lab serves HTTP on {http}, but network {} has no iPXE lines: iPXE guests fall back to pxelinux over TFTP", state.name),
            "`pxelab down`, then `pxelab up` again: it adds them when it patches the network",
        ),
    }
}

/// The bootp dnsmasq actually uses (live XML when running): present, at
/// an address of this host on the network, naming a file pxelab serves.
fn bootp_check(f: &mut Findings, state: &NetworkState, live_xml: Option<&str>, address: IpAddr, has_lab: bool) {
    let name = &state.name;
    let fix_patch = format!("`pxelab up --network {name}` sets it while the lab runs; or `pxelab net patch --network {name}`");
    let live = live_xml.and_then(|xml| netxml::parse(xml).ok());
    let in_use: &NetworkXml = live.as_ref().unwrap_or(&state.parsed);
    let Some(bootp) = in_use.bootp() else {
        if state.parsed.bootp().is_some() {
            f.fail(
                "network.bootp",
                format!("network {name}'s definition has a bootp but the running network does not (defined, not restarted)"),
                format!("restart it: `virsh net-destroy {name} && virsh net-start {name}` (or `pxelab net patch --network {name} --force`)"),
            );
        } else {
            f.lab_dependent(has_lab, "network.bootp", format!("network {name} has no <bootp>: DHCP offers no boot file"), fix_patch);
        }
        return;
    };
    let server: Option<IpAddr> = bootp.server.as_deref().and_then(|s| s.parse().ok());
    let server = server.unwrap_or(address);
    let file = bootp.file.trim_start_matches('/');
    let fix_repoint = format!("`pxelab net patch --network {name}` points it at {address}, the host's address on this network");
    if server != address && !is_local(server) {
        f.fail("network.bootp", format!("bootp server {server} is not an address of this host: guests ask another machine for {file}"), fix_repoint);
    } else if server != address {
        f.warn(
            "network.bootp",
            format!("bootp server {server} is this host's, but not its address on {name} ({address}): guests of an isolated network cannot reach it"),
            fix_repoint,
        );
    } else if !syslinux::ASSETS.contains(&file) {
        f.fail(
            "network.bootp",
            format!("bootp file {file:?} is not one pxelab serves: guests get file-not-found"),
            format!("`pxelab net patch --network {name} --file pxelinux.0`"),
        );
    } else {
        f.ok("network.bootp", format!("bootp: {file} from {server}"));
    }
}

/// Whether `ip` is an address of this host.
fn is_local(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

fn port_check(f: &mut Findings, protocol: Protocol, addr: SocketAddr, lab: Option<&LabRecord>, state: &NetworkState) {
    let transport = transport_of(protocol);
    let id = match protocol {
        Protocol::Tftp => "ports.tftp",
        Protocol::Ftp => "ports.ftp",
        Protocol::Http => "ports.http",
    };
    let what = format!("{transport} {} on {}", addr.port(), addr.ip());
    let bound = match transport {
        Transport::Udp => UdpSocket::bind(addr).map(drop),
        Transport::Tcp => TcpListener::bind(addr).map(drop),
    };
    match bound {
        Ok(()) if lab.is_some() => {
            f.fail(id, format!("{what} is free: the lab's server is not listening"), FIX_STUCK_LAB);
            return;
        }
        // Before `up`, free is what is wanted.
        Ok(()) => {
            f.ok(id, format!("{what} is free for pxelab"));
            return;
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            f.warn(id, format!("cannot test {what}: {e}"), "run doctor as root to check ports below 1024");
            return;
        }
        Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
            f.warn(id, format!("cannot test {what}: {e}"), format!("check that network {} is active", state.name));
            return;
        }
        Err(_) => {}
    }
    let owner = ports::owner(transport, addr);
    let Some(owner) = owner.clone().filter(|o| o.name == "pxelab") else {
        let who = owner.map(|o| o.to_string()).unwrap_or_else(|| "another process (run as root to name it)".into());
        let fix = match transport {
            Transport::Udp if state.parsed.tftp_root().is_some() => format!("remove the network's <tftp> element (`virsh net-edit {}`)", state.name),
            _ => format!("stop {who} or make it listen elsewhere; pxelab needs {what}"),
        };
        f.fail(id, format!("{what} is held by {who}"), fix);
        return;
    };
    if lab.is_none_or(|l| l.pid != owner.pid) {
        // Another pxelab (`serve`, or a lab on another state directory):
        // `up` here would find the port taken.
        f.fail(
            id,
            format!("{what} is held by {owner}, which is not the lab on this network: `pxelab up` would find it taken"),
            format!("stop that pxelab (`kill {}`) before `pxelab up --network {}`", owner.pid, state.name),
        );
        return;
    }
    // The lab holds it: ask it as a guest would.
    let probe = match protocol {
        Protocol::Tftp => {
            let file = state.parsed.bootp().map(|b| b.file.clone()).unwrap_or_else(|| "pxelinux.0".into());
            tftp_probe(addr, &file).map(|n| format!("{file} answered ({n} bytes in block 1)"))
        }
        Protocol::Ftp => ftp_probe(addr).map(|greeting| format!("greeting {greeting:?}")),
        Protocol::Http => http_probe(addr).map(|status| format!("HEAD /pxelinux.0 answered {status:?}")),
    };
    match probe {
        Ok(answer) => f.ok(id, format!("{what} is served by {owner}: {answer}")),
        Err(e) => f.fail(id, format!("{what} is held by {owner} but {e}"), FIX_STUCK_LAB),
    }
}

/// Sends one TFTP read request and returns the size of the first block.
fn tftp_probe(server: SocketAddr, file: &str) -> std::result::Result<usize, String> {
    let any: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse().expect("literal") } else { "[::]:0".parse().expect("literal") };
    let socket = UdpSocket::bind(any).map_err(|e| format!("no local socket: {e}"))?;
    socket.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(file.as_bytes());
    rrq.push(0);
    rrq.extend_from_slice(b"octet\0");
    socket.send_to(&rrq, server).map_err(|e| format!("sending a read request failed: {e}"))?;
    let mut buf = [0u8; 1024];
    let (n, from) = socket.recv_from(&mut buf).map_err(|_| format!("no answer to a read request for {file} within {PROBE_TIMEOUT:?}"))?;
    // Stop the transfer politely: an ERROR packet to the transfer's port.
    let _ = socket.send_to(b"\0\x05\0\0pxelab doctor: done\0", from);
    match (buf.get(..2), buf.get(2..4)) {
        (Some([0, 3]), Some([0, 1])) => Ok(n - 4),
        (Some([0, 5]), _) => {
            let message = String::from_utf8_lossy(buf.get(4..n.saturating_sub(1)).unwrap_or_default()).into_owned();
            Err(format!("a read request for {file} got the error {message:?}"))
        }
        _ => Err(format!("a read request for {file} got an unexpected answer")),
    }
}

/// Asks an HTTP server for the head of `/pxelinux.0`; returns its status line.
fn http_probe(server: SocketAddr) -> std::result::Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&server, PROBE_TIMEOUT).map_err(|e| format!("connecting failed: {e}"))?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.write_all(b"HEAD /pxelinux.0 HTTP/1.1\r\nHost: pxelab-doctor\r\nConnection: close\r\n\r\n").map_err(|e| format!("sending failed: {e}"))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?;
    let line = line.trim_end().to_string();
    if line.starts_with("HTTP/1.1 200") {
        Ok(line)
    } else {
        Err(format!("HEAD /pxelinux.0 answered {line:?}, not 200"))
    }
}

/// Connects to an FTP server and returns its greeting line.
fn ftp_probe(server: SocketAddr) -> std::result::Result<String, String> {
    let stream = TcpStream::connect_timeout(&server, PROBE_TIMEOUT).map_err(|e| format!("connecting failed: {e}"))?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).map_err(|_| format!("no greeting within {PROBE_TIMEOUT:?}"))?;
    let _ = (&stream).write_all(b"QUIT\r\n");
    let line = line.trim_end().to_string();
    if line.starts_with("220") {
        Ok(line)
    } else {
        Err(format!("its greeting is {line:?}, not 220"))
    }
}

fn firewall_check(f: &mut Findings, bridge: &str, lab: Option<&LabRecord>) {
    let range = lab.and_then(|l| l.passive_ports.as_deref()).and_then(|p| parse_port_range(p).ok()).unwrap_or_else(|| Limits::default().passive_ports);
    let passive = format!("{}-{}", range.start(), range.end());
    let ftp_port = lab.and_then(LabRecord::ftp_addr).map(|a| a.port()).unwrap_or(21);
    let http_port = lab.and_then(LabRecord::http_addr).map(|a| a.port());
    let rules = firewall::lab_rules(69, ftp_port, http_port, &range);
    let ports = match http_port {
        Some(http) => format!("69/udp, {ftp_port}/tcp, {http}/tcp and {passive}/tcp"),
        None => format!("69/udp, {ftp_port}/tcp and {passive}/tcp"),
    };
    let mut clear = true;
    if let Some(rule) = firewall::blocking_rule(bridge, &rules) {
        clear = false;
        if firewall::opened(bridge, &rules) {
            f.ok("firewall.iptables", format!("INPUT has {rule:?}, but pxelab's ACCEPT rules for {ports} on {bridge} come first"));
        } else {
            f.lab_dependent(
                lab.is_some(),
                "firewall.iptables",
                format!("iptables INPUT would stop {ports} from {bridge}: {rule:?}"),
                format!("`pxelab up` adds ACCEPT rules for them while the lab runs; by hand: `iptables -I INPUT -i {bridge} -p udp --dport 69 -j ACCEPT` (and 21, {passive})"),
            );
        }
    }
    if let Some((zone, missing)) = firewall::firewalld_gap(bridge, &rules) {
        clear = false;
        f.fail(
            "firewall.firewalld",
            format!("firewalld's zone {zone} for {bridge} does not open {}", missing.join(" ").replace("--add-port=", "")),
            format!("firewall-cmd --zone={zone} {}", missing.join(" ")),
        );
    }
    if let Some(chain) = firewall::nft_dropping_input() {
        clear = false;
        f.warn(
            "firewall.nftables",
            format!("nftables {chain} drops input by default, and pxelab does not read nft rules"),
            format!("make sure it accepts {ports} arriving on {bridge} (`iifname \"{bridge}\" udp dport 69 accept`, …)"),
        );
    }
    if clear {
        f.ok("firewall", format!("nothing in iptables, firewalld or nftables stops {ports} from {bridge}"));
    }
}

/// A VM's firmware against what the lab serves its kind of client.
fn firmware_check(f: &mut Findings, name: &str, firmware: Firmware, lab: Option<&LabRecord>) {
    let served = lab.and_then(|l| l.uefi_file.clone());
    match (firmware, lab, served) {
        (Firmware::Bios, _, _) => f.ok("vm.firmware", format!("{name} boots by BIOS: the lab's pxelinux.0 (or iPXE over HTTP)")),
        (Firmware::Uefi, _, _) => f.ok("vm.firmware", format!("{name} boots by UEFI: QEMU's iPXE EFI ROM takes the HTTP path")),
        (Firmware::SecureBoot, None, _) => f.ok("vm.firmware", format!("{name} boots by UEFI with Secure Boot (edk2's own PXE, then a signed shim)")),
        (Firmware::SecureBoot, Some(_), Some(file)) if file.starts_with(&format!("{}/", crate::boot::ISO_DIR)) => {
            f.ok("vm.firmware", format!("{name} boots by UEFI with Secure Boot: the lab serves the ISO's signed shim {file}"))
        }
        (Firmware::SecureBoot, Some(_), None) => f.fail(
            "vm.firmware",
            format!("{name} boots with Secure Boot, but the lab serves no shim to UEFI clients"),
            "install shim-signed and grub-efi-amd64-signed, or serve an ISO with a signed EFI/BOOT shim and GRUB",
        ),
        (Firmware::SecureBoot, Some(_), Some(other)) => f.warn(
            "vm.firmware",
            format!("{name} boots with Secure Boot, but the lab serves the host's Debian shim ({other}), which verifies only kernels Debian signed"),
            format!("turn Secure Boot off for it (`pxelab vm rm {name}` and `vm new --firmware uefi`), or serve an ISO with a signed EFI/BOOT shim and GRUB"),
        ),
    }
}

fn vm_checks(
    f: &mut Findings,
    name: &str,
    vm: std::result::Result<(String, bool), VirtError>,
    network: &str,
    leases: &[(String, std::net::IpAddr)],
    lab: Option<&LabRecord>,
) {
    let (xml, running) = match vm {
        Ok(found) => found,
        Err(VirtError::NoDomain(_)) => {
            f.fail("vm", format!("domain {name:?} does not exist"), "list domains with `virsh list --all`, or create one with `pxelab vm new --pxe`");
            return;
        }
        Err(e) => {
            f.fail("vm", format!("cannot read domain {name:?}"), Error::from(e).to_string());
            return;
        }
    };
    let interfaces = domxml::interfaces(&xml);
    let on_network: Vec<_> = interfaces.iter().filter(|i| i.network.as_deref() == Some(network)).collect();
    if on_network.is_empty() {
        let elsewhere: Vec<String> =
            interfaces.iter().map(|i| i.network.clone().or_else(|| i.bridge.as_ref().map(|b| format!("bridge {b}"))).unwrap_or_else(|| "?".into())).collect();
        let detail = if elsewhere.is_empty() {
            format!("{name} has no network interface")
        } else {
            format!("{name}'s NIC is on {}, not on network {network}", elsewhere.join(", "))
        };
        f.fail(
            "vm.network",
            detail,
            format!("attach it: `virsh attach-interface {name} network {network} --model virtio --config`, or create a VM with `pxelab vm new --pxe --network {network}`"),
        );
    } else {
        f.ok("vm.network", format!("{name}'s NIC is on network {network}"));
    }

    firmware_check(f, name, domxml::firmware_of(&xml), lab);

    match domxml::network_boot(&xml) {
        NetworkBoot::First => f.ok("vm.boot", format!("{name} boots from the network first")),
        NetworkBoot::Later => f.warn(
            "vm.boot",
            format!("{name} tries the network only after another device: a disk that boots skips PXE"),
            format!("give its <interface> <boot order='1'/> (`virsh edit {name}`)"),
        ),
        NetworkBoot::Never => f.fail(
            "vm.boot",
            format!("{name}'s boot order has no network device"),
            format!("add <boot order='1'/> to its <interface> (`virsh edit {name}`), or create one with `pxelab vm new --pxe`"),
        ),
    }

    let progress = lab.and_then(|l| l.vms.iter().find(|v| v.name == name));
    let mac = on_network.first().and_then(|i| i.mac.clone()).map(|m| m.to_ascii_lowercase());
    let lease = mac.as_ref().and_then(|mac| leases.iter().find(|(m, _)| m.eq_ignore_ascii_case(mac)).map(|(_, ip)| *ip));
    let lease_text = lease.map(|ip| format!("; DHCP lease {ip}")).unwrap_or_default();
    match (running, progress) {
        (false, _) => f.warn("vm.stage", format!("{name} is not running"), format!("start it: `virsh start {name}`")),
        (true, Some(p)) => {
            let at = p.reached.get(&p.stage).map(|s| format!(" at {s:.0} s")).unwrap_or_default();
            f.ok("vm.stage", format!("{name} reached {}{at}{lease_text}", p.stage.name()))
        }
        (true, None) if lease.is_some() => f.ok("vm.stage", format!("{name} runs{lease_text}")),
        (true, None) => f.warn(
            "vm.stage",
            format!("{name} runs but has no DHCP lease on network {network} yet"),
            format!("watch its console (`pxelab vm console {name}` or `virsh console {name}`) for the PXE ROM's messages"),
        ),
    }
}
