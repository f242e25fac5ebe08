//! The router advertisement `up` sends on its bridge: only the bare RA,
//! only on the lab's bridge, only while the lab runs, and nothing left of it
//! afterwards. A veth pair plugged into each test bridge stands for a guest:
//! it sends a router solicitation and listens for what comes back.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use common::net::{wait_for, TestNet};

const ETH_P_IPV6: u16 = 0x86dd;

/// One end of a veth pair plugged into a bridge, the other end ours.
struct Guest {
    host_end: String,
    ours: String,
    socket: OwnedFd,
    ifindex: i32,
    mac: [u8; 6],
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().unwrap();
    assert!(ok.success(), "ip {args:?}");
}

fn mac_of(dev: &str) -> [u8; 6] {
    let text = std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).unwrap();
    let bytes: Vec<u8> = text.trim().split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    bytes.try_into().unwrap()
}

impl Guest {
    fn plug(net: &TestNet, tag: &str) -> Guest {
        let n = std::process::id() % 10000;
        let (host_end, ours) = (format!("pxr{n}{tag}h"), format!("pxr{n}{tag}g"));
        let _ = Command::new("ip").args(["link", "del", &host_end]).output();
        ip(&["link", "add", &host_end, "type", "veth", "peer", "name", &ours]);
        ip(&["link", "set", &host_end, "master", &net.bridge]);
        ip(&["link", "set", &host_end, "up"]);
        ip(&["link", "set", &ours, "up"]);
        // The bridge forwards a new port only once STP lets it (state 3).
        wait_for("the veth port to forward", Duration::from_secs(30), || {
            std::fs::read_to_string(format!("/sys/class/net/{host_end}/brport/state")).is_ok_and(|s| s.trim() == "3")
        });
        let name = std::ffi::CString::new(ours.clone()).unwrap();
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(ETH_P_IPV6.to_be())) };
        assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_IPV6.to_be();
        addr.sll_ifindex = ifindex;
        let bound = unsafe { libc::bind(fd, &addr as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_ll>() as u32) };
        assert_eq!(bound, 0);
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::packet_mreq>() as u32,
            )
        };
        let timeout = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
        unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout as *const _ as *const libc::c_void, std::mem::size_of::<libc::timeval>() as u32)
        };
        let mac = mac_of(&ours);
        Guest { host_end, ours, socket, ifindex, mac }
    }

    /// A router solicitation, as a guest's iPXE sends one.
    fn solicit(&self) {
        let src = pxelab::ra::link_local(self.mac);
        let dst: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut icmp = vec![133, 0, 0, 0, 0, 0, 0, 0, 1, 1];
        icmp.extend_from_slice(&self.mac);
        let sum = pxelab::ra::checksum(&src, &dst, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![0x33, 0x33, 0, 0, 0, 2];
        frame.extend_from_slice(&self.mac);
        frame.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        frame.extend_from_slice(&[0x60, 0, 0, 0]);
        frame.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        frame.extend_from_slice(&[58, 255]);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&icmp);
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = ETH_P_IPV6.to_be();
        to.sll_ifindex = self.ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&frame[..6]);
        let sent = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                &to as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert!(sent > 0, "sending a router solicitation: {}", std::io::Error::last_os_error());
    }

    /// Every router advertisement that arrives within `wait`.
    fn advertisements(&self, wait: Duration) -> Vec<Vec<u8>> {
        let until = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < until {
            let n = unsafe { libc::recv(self.socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 54 && buf[12..14] == ETH_P_IPV6.to_be_bytes() && buf[20] == 58 && buf[54] == 134 {
                got.push(buf[..n as usize].to_vec());
            }
        }
        got
    }

    /// Solicits, and returns the advertisements that answer within 3 s.
    fn ask(&self) -> Vec<Vec<u8>> {
        self.solicit();
        self.advertisements(Duration::from_secs(3))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_end]).output();
        let _ = &self.ours;
    }
}

fn bridge_flags(bridge: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{bridge}/flags")).unwrap().trim().to_string()
}

// `up` and `down` restart the network, which deletes and recreates its
// bridge: a veth stands for a guest only once plugged in after that.
#[test]
fn the_lab_answers_solicitations_with_the_bare_ra_on_its_bridge_only_while_it_runs() {
    let lab = TestNet::with_dhcp();
    let other = TestNet::with_dhcp();
    let original = lab.inactive_xml();
    let guest = Guest::plug(&lab, "a");
    assert!(guest.ask().is_empty(), "an RA before any lab runs");
    let flags_before = bridge_flags(&lab.bridge);
    drop(guest);

    lab.up_detached();
    let status: serde_json::Value = serde_json::from_slice(&lab.pxelab(&["--json", "status", "--network", &lab.name]).stdout).unwrap();
    assert_eq!(status["ra"], true, "{status}");
    let guest = Guest::plug(&lab, "a");
    let answers = guest.ask();
    assert!(!answers.is_empty(), "no RA answered the solicitation");
    let want = pxelab::ra::frame(mac_of(&lab.bridge));
    for ra in &answers {
        assert_eq!(ra, &want, "not the bare RA");
    }
    let stranger = Guest::plug(&other, "b");
    assert!(stranger.ask().is_empty(), "an RA on another network's bridge");
    let doctor: serde_json::Value = serde_json::from_slice(&lab.pxelab(&["--json", "doctor"]).stdout).unwrap();
    let check = doctor["checks"].as_array().unwrap().iter().find(|c| c["id"] == "network.ra").expect("a network.ra check").clone();
    assert_eq!(check["status"], "ok", "{check}");
    drop(guest);

    // After down: silence, and the bridge as it was.
    assert!(lab.pxelab(&["down"]).status.success());
    let guest = Guest::plug(&lab, "a");
    assert!(guest.ask().is_empty(), "an RA after the lab stopped");
    assert_eq!(bridge_flags(&lab.bridge), flags_before);
    lab.assert_restored(&original, "after down");
    drop(guest);

    // After kill -9: silence too (the socket dies with the process).
    lab.up_detached();
    let guest = Guest::plug(&lab, "a");
    assert!(!guest.ask().is_empty());
    let status: serde_json::Value = serde_json::from_slice(&lab.pxelab(&["--json", "status", "--network", &lab.name]).stdout).unwrap();
    let pid = status["pid"].as_u64().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for("the lab to die", Duration::from_secs(20), || !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists());
    assert!(guest.ask().is_empty(), "an RA after kill -9");
    assert_eq!(bridge_flags(&lab.bridge), flags_before, "the bridge kept allmulti");
    assert!(lab.pxelab(&["down"]).status.success());
    lab.assert_restored(&original, "after kill -9 and down");
}

#[test]
fn no_ra_sends_none() {
    let lab = TestNet::with_dhcp();
    let iso = common::fixture("centos-busybox.iso");
    let out = lab.pxelab(&["up", "--detach", "--no-vm", "--no-ra", "--iso", iso.to_str().unwrap(), "--network", &lab.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let guest = Guest::plug(&lab, "c");
    assert!(guest.ask().is_empty(), "an RA with --no-ra");
    let doctor: serde_json::Value = serde_json::from_slice(&lab.pxelab(&["--json", "doctor"]).stdout).unwrap();
    let check = doctor["checks"].as_array().unwrap().iter().find(|c| c["id"] == "network.ra").expect("a network.ra check").clone();
    assert_eq!(check["status"], "warn", "{check}");
    assert!(lab.pxelab(&["down"]).status.success());
}
