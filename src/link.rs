//! A packet socket on one network interface, and what pxelab reads of the
//! interface: its index, MAC and IPv4 address.
//!
//! Why packet sockets: what pxelab sends on a lab's bridge itself (the
//! router advertisement in `ra.rs`, proxy DHCP in `proxydhcp/`) must go out
//! of that interface and no other, and must work beside servers that
//! already hold the usual sockets (libvirt's dnsmasq owns UDP 67 on its
//! networks). A socket bound to one interface index hears and speaks only
//! there, whatever the routing table says, and changes nothing on the host:
//! no address, no sysctl. It needs CAP_NET_RAW (root), as libvirt does.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// An open packet socket, bound to one interface and one ethertype.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    ethertype: u16,
}

/// Where a received frame came from, as the kernel tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent by this host (our own frames, and those of other programs here).
    Outgoing,
    /// Heard on the interface.
    Incoming,
}

impl PacketSocket {
    /// Opens a socket on `interface` for frames of `ethertype`, waking from
    /// `recv` every `wake` so its owner can look at a stop flag.
    pub fn open(interface: &str, ethertype: u16, wake: Duration) -> io::Result<PacketSocket> {
        let ifindex = index_of(interface)?;
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(ethertype.to_be())) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let socket = PacketSocket { fd: unsafe { OwnedFd::from_raw_fd(fd) }, ifindex, ethertype };
        let addr = socket.address(None);
        let bound = unsafe {
            libc::bind(socket.fd.as_raw_fd(), &addr as *const libc::sockaddr_ll as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_ll>() as u32)
        };
        if bound != 0 {
            return Err(io::Error::last_os_error());
        }
        let timeout = libc::timeval { tv_sec: wake.as_secs() as libc::time_t, tv_usec: wake.subsec_micros() as libc::suseconds_t };
        socket.set_option(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
        Ok(socket)
    }

    /// Hears every multicast frame on the interface while the socket is
    /// open (the kernel drops the membership with the socket).
    pub fn all_multicast(&self) -> io::Result<()> {
        let mut membership: libc::packet_mreq = unsafe { std::mem::zeroed() };
        membership.mr_ifindex = self.ifindex;
        membership.mr_type = libc::PACKET_MR_ALLMULTI as u16;
        self.set_option(libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &membership)
    }

    /// Lets only frames `program` accepts reach the socket (classic BPF),
    /// and drops what queued before it was attached.
    pub fn filter(&self, program: &[libc::sock_filter]) -> io::Result<()> {
        let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
        self.set_option(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
        let mut scratch = [0u8; 64];
        while unsafe { libc::recv(self.fd.as_raw_fd(), scratch.as_mut_ptr().cast(), scratch.len(), libc::MSG_DONTWAIT) } >= 0 {}
        Ok(())
    }

    /// The next frame into `buf`: its length and direction, or `None` when
    /// the wake-up time passed first.
    pub fn recv(&self, buf: &mut [u8]) -> Option<(usize, Direction)> {
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        let n = unsafe {
            libc::recvfrom(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0, &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr, &mut len)
        };
        if n <= 0 {
            return None;
        }
        let direction = if from.sll_pkttype == libc::PACKET_OUTGOING { Direction::Outgoing } else { Direction::Incoming };
        Some((n as usize, direction))
    }

    /// Sends a whole Ethernet frame (its first 6 bytes are where it goes).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let to = self.address(frame.get(..6));
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                &to as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn address(&self, dst: Option<&[u8]>) -> libc::sockaddr_ll {
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = self.ethertype.to_be();
        addr.sll_ifindex = self.ifindex;
        if let Some(dst) = dst {
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(dst);
        }
        addr
    }

    fn set_option<T>(&self, level: i32, name: i32, value: &T) -> io::Result<()> {
        let done = unsafe { libc::setsockopt(self.fd.as_raw_fd(), level, name, (value as *const T).cast(), std::mem::size_of::<T>() as u32) };
        if done != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The Internet checksum (RFC 1071) over `parts` taken one after another
/// as 16-bit words, each part's odd last byte padded with a zero: what the
/// IPv4 header, UDP and ICMPv6 each carry. A message summed with its
/// checksum in place gives 0.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The interface's index; an error naming it when there is none.
pub fn index_of(interface: &str) -> io::Result<i32> {
    let name = CString::new(interface).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::new(io::ErrorKind::NotFound, format!("no network interface {interface:?} on this host"))),
        i => Ok(i as i32),
    }
}

/// The interface's MAC address, from sysfs.
pub fn mac_of(interface: &str) -> io::Result<[u8; 6]> {
    if interface.contains('/') || interface.starts_with('.') || interface.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{interface:?} is not an interface name")));
    }
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address"))?;
    let bytes: Vec<u8> = text.trim().split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
    bytes.try_into().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{interface} has no Ethernet address")))
}

/// The interface's IPv4 addresses with their prefix lengths, in the
/// kernel's order (the first is its primary one).
pub fn ipv4_of(interface: &str) -> io::Result<Vec<(Ipv4Addr, u8)>> {
    Ok(ipv4_addresses()?.into_iter().filter(|(name, _, _)| name == interface).map(|(_, a, p)| (a, p)).collect())
}

/// The interface that holds `ip`, if one does.
pub fn interface_with(ip: Ipv4Addr) -> io::Result<Option<String>> {
    Ok(ipv4_addresses()?.into_iter().find(|(_, a, _)| *a == ip).map(|(name, _, _)| name))
}

/// Every IPv4 address of this host: interface, address, prefix length.
fn ipv4_addresses() -> io::Result<Vec<(String, Ipv4Addr, u8)>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut at = list;
    while !at.is_null() {
        let entry = unsafe { &*at };
        at = entry.ifa_next;
        if entry.ifa_addr.is_null() || unsafe { (*entry.ifa_addr).sa_family } != libc::AF_INET as u16 {
            continue;
        }
        let name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) }.to_string_lossy().into_owned();
        let addr = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
        let prefix = if entry.ifa_netmask.is_null() {
            32
        } else {
            let mask = unsafe { &*(entry.ifa_netmask as *const libc::sockaddr_in) };
            u32::from_be(mask.sin_addr.s_addr).count_ones() as u8
        };
        found.push((name, Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)), prefix));
    }
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_read_and_a_missing_interface_is_named() {
        assert!(index_of("lo").unwrap() > 0);
        assert!(ipv4_of("lo").unwrap().contains(&(Ipv4Addr::LOCALHOST, 8)));
        assert_eq!(interface_with(Ipv4Addr::LOCALHOST).unwrap().as_deref(), Some("lo"));
        let e = index_of("pxelab-none0").unwrap_err();
        assert!(e.to_string().contains("pxelab-none0"), "{e}");
        assert!(mac_of("../etc").is_err());
    }
}
