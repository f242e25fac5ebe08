//! Ethernet, IPv4 and UDP around the proxy's DHCP messages, read and
//! written by hand: the proxy hears and answers on port 67 through a packet
//! socket (port 67 is libvirt's dnsmasq's, or the site's DHCP server's), so
//! it sees whole frames and must build whole frames.
//!
//! Only what DHCP needs is read: an IPv4 header of any legal length, no
//! fragments (a DHCP message fits one frame), UDP with its length checked
//! against the frame. Everything else is `None`, never a panic: the bytes
//! come from anyone on the segment.

use std::net::Ipv4Addr;

/// IPv4's ethertype.
pub const ETH_P_IP: u16 = 0x0800;
const ETH_HEADER: usize = 14;
const IP_UDP: u8 = 17;

/// A UDP datagram carried in an Ethernet frame, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// The UDP datagram in `frame`, if it is an unfragmented IPv4 one whose
/// lengths agree with the frame.
pub fn parse(frame: &[u8]) -> Option<Datagram<'_>> {
    if frame.len() < ETH_HEADER + 20 + 8 || frame[12..14] != ETH_P_IP.to_be_bytes() {
        return None;
    }
    let ip = &frame[ETH_HEADER..];
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if ip[0] >> 4 != 4 || header_len < 20 || ip[9] != IP_UDP || fragmented || total_len > ip.len() || total_len < header_len + 8 {
        return None;
    }
    let udp = &ip[header_len..total_len];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > udp.len() {
        return None;
    }
    Some(Datagram {
        src_mac: frame[6..12].try_into().ok()?,
        src_ip: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst_ip: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        payload: &udp[8..udp_len],
    })
}

/// Where a built frame goes and comes from.
#[derive(Debug, Clone, Copy)]
pub struct Ends {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
}

/// An Ethernet frame carrying `payload` in UDP over IPv4, both checksums set.
pub fn build(ends: &Ends, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut out = Vec::with_capacity(ETH_HEADER + total);
    out.extend_from_slice(&ends.dst_mac);
    out.extend_from_slice(&ends.src_mac);
    out.extend_from_slice(&ETH_P_IP.to_be_bytes());
    // Version 4, 20-byte header, no DSCP; no fragment id; don't fragment; TTL 64.
    let mut ip = [0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, IP_UDP, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[12..16].copy_from_slice(&ends.src.0.octets());
    ip[16..20].copy_from_slice(&ends.dst.0.octets());
    let sum = crate::link::checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(&ip);

    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&ends.src.1.to_be_bytes());
    udp.extend_from_slice(&ends.dst.1.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let pseudo = [&ends.src.0.octets()[..], &ends.dst.0.octets(), &[0, IP_UDP], &(udp_len as u16).to_be_bytes()].concat();
    let sum = match crate::link::checksum(&[&pseudo, &udp]) {
        0 => 0xffff, // 0 would mean "no checksum" (RFC 768)
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(&udp);
    out
}

/// The classic BPF program the packet socket runs in the kernel, so that
/// only DHCP reaches the proxy however busy the segment is: IPv4, UDP, not
/// a fragment, to port 67 (clients) or 68 (servers' answers, for leases).
/// As `tcpdump -dd 'ip and udp and not ip[6:2] & 0x1fff != 0 and (udp dst port 67 or udp dst port 68)'`.
pub fn dhcp_filter() -> Vec<libc::sock_filter> {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    vec![
        op(0x28, 0, 0, 12),     // ldh [12]: ethertype
        op(0x15, 0, 9, 0x0800), // jeq IPv4, else drop
        op(0x30, 0, 0, 23),     // ldb [23]: protocol
        op(0x15, 0, 7, 17),     // jeq UDP, else drop
        op(0x28, 0, 0, 20),     // ldh [20]: flags and fragment offset
        op(0x45, 5, 0, 0x1fff), // jset offset: a fragment, drop
        op(0xb1, 0, 0, 14),     // ldxb 4*([14]&0xf): the IP header's length
        op(0x48, 0, 0, 16),     // ldh [x+16]: UDP destination port
        op(0x15, 1, 0, 67),     // jeq 67: keep
        op(0x15, 0, 1, 68),     // jeq 68: keep, else drop
        op(0x06, 0, 0, 0xffff), // keep the whole frame
        op(0x06, 0, 0, 0),      // drop
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends() -> Ends {
        Ends { src_mac: [0x52, 0x54, 0, 1, 2, 3], dst_mac: [0xff; 6], src: (Ipv4Addr::new(10, 0, 0, 1), 67), dst: (Ipv4Addr::BROADCAST, 68) }
    }

    #[test]
    fn a_built_frame_parses_back_with_valid_checksums() {
        let frame = build(&ends(), b"hello dhcp");
        let d = parse(&frame).expect("parses");
        assert_eq!(d.src_mac, [0x52, 0x54, 0, 1, 2, 3]);
        assert_eq!((d.src_ip, d.src_port), (Ipv4Addr::new(10, 0, 0, 1), 67));
        assert_eq!((d.dst_ip, d.dst_port), (Ipv4Addr::BROADCAST, 68));
        assert_eq!(d.payload, b"hello dhcp");
        // Summing a header with its checksum in place gives 0.
        assert_eq!(crate::link::checksum(&[&frame[14..34]]), 0, "IPv4 header checksum");
        let udp = &frame[34..];
        let mut pseudo = vec![10, 0, 0, 1, 255, 255, 255, 255, 0, 17];
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        assert_eq!(crate::link::checksum(&[&pseudo, udp]), 0, "UDP checksum");
    }

    #[test]
    fn frames_that_lie_about_their_lengths_are_refused() {
        let good = build(&ends(), &[7u8; 300]);
        for cut in [0, 13, 14, 33, 41, good.len() - 1] {
            assert!(parse(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut long_udp = good.clone();
        long_udp[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&2000u16.to_be_bytes());
        assert!(parse(&long_udp).is_none(), "UDP length past the frame");
        let mut fragment = good.clone();
        fragment[14 + 6] = 0x20; // more fragments
        assert!(parse(&fragment).is_none());
        let mut tcp = good.clone();
        tcp[14 + 9] = 6;
        assert!(parse(&tcp).is_none());
        let mut short_header = good;
        short_header[14] = 0x44;
        assert!(parse(&short_header).is_none(), "an IHL under 5");
    }
}
