//! A bare IPv6 Router Advertisement on the lab's bridge, so that iPXE stops
//! waiting for IPv6 autoconfiguration.
//!
//! Why: after its DHCPv4 lease, iPXE (QEMU's NIC ROMs) keeps "Configuring"
//! until IPv6 autoconfiguration ends, and on a network with no router it
//! only ends after about 10 s of router solicitations. One advertisement
//! ends it at once (measured: 24.7 → 14.6 s to the installer, BOOT-FACTS).
//!
//! What is sent is the barest RA there is, and only where the lab is:
//! - router lifetime 0, no M/O flags, no prefix, no MTU: no guest gets an
//!   address, a route or a DNS server from it; the only option is the
//!   source link-layer address;
//! - from the bridge's own link-local address (EUI-64 of its MAC) to
//!   ff02::1, on the lab's bridge only, through a packet socket bound to
//!   it, so it works on a bridge where libvirt disabled IPv6 and changes
//!   nothing on the host (no address, no sysctl);
//! - as an answer to a router solicitation heard on that bridge, and once
//!   when a lab VM starts; never after the lab stops (the socket is closed
//!   and the thread joined by [`RaResponder::stop`], or by drop).
//!
//! Adding an IPv6 `<ip>` to the network would do the same, but it changes
//! the user's network and can turn on IPv6 forwarding on the host.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::link::{self, Direction, PacketSocket};

/// IPv6's ethertype.
const ETH_P_IPV6: u16 = 0x86dd;
/// How often the thread looks at its stop flag between frames.
const WAKE: Duration = Duration::from_millis(200);
/// ICMPv6 message types.
const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;

/// The bare RA frame for a bridge whose MAC is `mac`: Ethernet, IPv6 and
/// ICMPv6, checksum included.
pub fn frame(mac: [u8; 6]) -> Vec<u8> {
    let src_ip = link_local(mac);
    let dst_ip: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    // RA: type, code, checksum, cur hop limit 64, flags 0, router lifetime 0,
    // reachable time 0, retrans timer 0; then the source link-layer option.
    let mut icmp = vec![ROUTER_ADVERTISEMENT, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&mac);
    let sum = checksum(&src_ip, &dst_ip, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut out = Vec::with_capacity(14 + 40 + icmp.len());
    out.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    out.extend_from_slice(&mac);
    out.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    out.push(58); // next header: ICMPv6
    out.push(255); // hop limit: neighbour discovery requires 255
    out.extend_from_slice(&src_ip);
    out.extend_from_slice(&dst_ip);
    out.extend_from_slice(&icmp);
    out
}

/// fe80::/64 with the modified EUI-64 of `mac`.
pub fn link_local(mac: [u8; 6]) -> [u8; 16] {
    let mut ip = [0u8; 16];
    ip[0] = 0xfe;
    ip[1] = 0x80;
    ip[8..16].copy_from_slice(&[mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]]);
    ip
}

/// The ICMPv6 checksum (RFC 4443) over the pseudo-header and `message`.
pub fn checksum(src: &[u8; 16], dst: &[u8; 16], message: &[u8]) -> u16 {
    link::checksum(&[src, dst, &(message.len() as u32).to_be_bytes(), &[0, 0, 0, 58], message])
}

/// Whether an Ethernet frame is an IPv6 router solicitation (ICMPv6 133
/// directly after the IPv6 header; neighbour discovery uses no extension headers).
pub fn is_router_solicitation(frame: &[u8]) -> bool {
    frame.len() >= 14 + 40 + 4 && frame[12..14] == ETH_P_IPV6.to_be_bytes() && frame[14 + 6] == 58 && frame[14 + 40] == ROUTER_SOLICITATION
}

/// The running responder on one bridge.
#[derive(Debug)]
pub struct RaResponder {
    bridge: String,
    socket: Arc<PacketSocket>,
    frame: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RaResponder {
    /// Opens a packet socket on `bridge` and answers its router
    /// solicitations until stopped. Needs CAP_NET_RAW (root).
    pub fn start(bridge: &str) -> io::Result<RaResponder> {
        let mac = link::mac_of(bridge)?;
        let socket = PacketSocket::open(bridge, ETH_P_IPV6, WAKE)?;
        // Solicitations go to ff02::2, which a bridge with no IPv6 has not joined.
        socket.all_multicast()?;
        let socket = Arc::new(socket);
        let frame = Arc::new(frame(mac));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (socket, frame, stop, bridge) = (socket.clone(), frame.clone(), stop.clone(), bridge.to_string());
            std::thread::Builder::new().name(format!("ra-{bridge}")).spawn(move || answer(&socket, &frame, &stop, &bridge))?
        };
        tracing::debug!("answering router solicitations on {bridge}");
        Ok(RaResponder { bridge: bridge.to_string(), socket, frame, stop, thread: Some(thread) })
    }

    /// Sends one RA now (a lab VM just started).
    pub fn announce(&self) {
        if let Err(e) = self.socket.send(&self.frame) {
            tracing::warn!("cannot send a router advertisement on {}: {e}", self.bridge);
        }
    }

    /// Stops answering; returns once the socket is closed.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RaResponder {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The responder's thread: a router solicitation in, one RA out.
fn answer(socket: &PacketSocket, frame: &[u8], stop: &AtomicBool, bridge: &str) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        // `None`: the timeout, to look at the stop flag.
        let Some((n, direction)) = socket.recv(&mut buf) else { continue };
        // Our own frames come back as outgoing; only the guests' count.
        if direction == Direction::Outgoing || !is_router_solicitation(&buf[..n]) {
            continue;
        }
        tracing::debug!("router solicitation on {bridge}: answering");
        if let Err(e) = socket.send(frame) {
            tracing::warn!("cannot send a router advertisement on {bridge}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[test]
    fn the_frame_is_a_bare_router_advertisement() {
        let f = frame(MAC);
        assert_eq!(f.len(), 14 + 40 + 24);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1], "to all nodes");
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14] >> 4, 6);
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 24, "payload: the RA and one option");
        assert_eq!((f[20], f[21]), (58, 255));
        assert_eq!(&f[22..38], &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56]);
        let ra = &f[54..];
        assert_eq!((ra[0], ra[1]), (134, 0));
        assert_eq!(ra[4], 64, "cur hop limit");
        assert_eq!(ra[5], 0, "no M or O flag");
        assert_eq!(&ra[6..8], &[0, 0], "router lifetime 0: not a default router");
        assert_eq!(&ra[8..16], &[0; 8], "no reachable time, no retrans timer");
        assert_eq!(&ra[16..24], &[1, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56], "only the source link-layer address");
        // The checksum verifies: summing with it in place gives 0.
        let (src, dst): ([u8; 16], [u8; 16]) = (f[22..38].try_into().unwrap(), f[38..54].try_into().unwrap());
        assert_eq!(checksum(&src, &dst, ra), 0);
    }

    #[test]
    fn solicitations_are_recognised() {
        let mut rs = frame(MAC);
        rs[54] = ROUTER_SOLICITATION;
        assert!(is_router_solicitation(&rs));
        assert!(!is_router_solicitation(&frame(MAC)), "an RA is not a solicitation");
        assert!(!is_router_solicitation(&rs[..50]));
    }
}
