//! DHCP messages (RFC 2131/2132) as the proxy reads and writes them.
//!
//! Hand-written, and strict, after trying `dhcproto` 0.15, the usual crate:
//! it costs 41 more crates (hickory-proto and ICU, for domain-name options
//! a proxy never reads), it accepts any magic cookie, and its option decoder
//! trusts each option's type over its length: option 93 with length 1 read
//! on into the next option and returned no options at all (option 60
//! lost), and option 94 with length 1 hit a `debug_assert!` (a panic in
//! debug builds and under the fuzzer). The proxy needs a dozen fields and
//! six options; this reads exactly those, refuses every length that does
//! not add up, and is fuzzed (`fuzz/fuzz_targets/dhcp.rs`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The fixed part of a BOOTP/DHCP message, before the magic cookie.
const FIXED: usize = 236;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// The largest message the proxy reads (a full Ethernet frame's worth).
pub const MAX_LEN: usize = 1500;

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;

/// Option codes the proxy reads or writes.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const VENDOR_CLASS: u8 = 60;
    pub const BOOTFILE: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_UUID: u8 = 97;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Ack,
    Inform,
    Other(u8),
}

impl MessageType {
    fn of(n: u8) -> MessageType {
        match n {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            5 => MessageType::Ack,
            8 => MessageType::Inform,
            n => MessageType::Other(n),
        }
    }

    fn code(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Ack => 5,
            MessageType::Inform => 8,
            MessageType::Other(n) => n,
        }
    }
}

/// Why a message was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Short,
    TooLong,
    Cookie,
    /// An option whose length runs past the message.
    Truncated(u8),
    /// The same option twice (RFC 3396's concatenation is not needed here).
    Repeated(u8),
    /// A known option with a length its type cannot have.
    Length(u8),
    NoEnd,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Short => write!(f, "shorter than a DHCP header"),
            Malformed::TooLong => write!(f, "longer than {MAX_LEN} bytes"),
            Malformed::Cookie => write!(f, "no DHCP magic cookie"),
            Malformed::Truncated(c) => write!(f, "option {c} runs past the end"),
            Malformed::Repeated(c) => write!(f, "option {c} given twice"),
            Malformed::Length(c) => write!(f, "option {c} has an impossible length"),
            Malformed::NoEnd => write!(f, "no end option"),
        }
    }
}

/// A DHCP message: the header fields and the options, each option's bytes
/// by code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// The boot file name field (`file`), up to its first NUL.
    pub file: Vec<u8>,
    pub options: BTreeMap<u8, Vec<u8>>,
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

impl Message {
    /// Reads `bytes`; anything that does not add up is [`Malformed`].
    pub fn parse(bytes: &[u8]) -> Result<Message, Malformed> {
        if bytes.len() > MAX_LEN {
            return Err(Malformed::TooLong);
        }
        if bytes.len() < FIXED + MAGIC.len() {
            return Err(Malformed::Short);
        }
        if bytes[FIXED..FIXED + 4] != MAGIC {
            return Err(Malformed::Cookie);
        }
        let file = &bytes[108..236];
        let file = file[..file.iter().position(|&b| b == 0).unwrap_or(file.len())].to_vec();
        Ok(Message {
            op: bytes[0],
            htype: bytes[1],
            hlen: bytes[2],
            xid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            secs: u16::from_be_bytes([bytes[8], bytes[9]]),
            flags: u16::from_be_bytes([bytes[10], bytes[11]]),
            ciaddr: ip_at(bytes, 12),
            yiaddr: ip_at(bytes, 16),
            siaddr: ip_at(bytes, 20),
            giaddr: ip_at(bytes, 24),
            chaddr: bytes[28..44].try_into().map_err(|_| Malformed::Short)?,
            file,
            options: parse_options(&bytes[FIXED + 4..])?,
        })
    }

    pub fn message_type(&self) -> Option<MessageType> {
        self.options.get(&opt::MESSAGE_TYPE).and_then(|v| v.first()).map(|&t| MessageType::of(t))
    }

    pub fn set_message_type(&mut self, t: MessageType) {
        self.options.insert(opt::MESSAGE_TYPE, vec![t.code()]);
    }

    /// The client's Ethernet address, when it says it has one.
    pub fn mac(&self) -> Option<[u8; 6]> {
        (self.htype == 1 && self.hlen == 6).then(|| self.chaddr[..6].try_into().ok()).flatten()
    }

    /// The message in wire form, options in code order, padded to BOOTP's 300 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; FIXED];
        out[0] = self.op;
        out[1] = self.htype;
        out[2] = self.hlen;
        out[4..8].copy_from_slice(&self.xid.to_be_bytes());
        out[8..10].copy_from_slice(&self.secs.to_be_bytes());
        out[10..12].copy_from_slice(&self.flags.to_be_bytes());
        for (at, ip) in [(12, self.ciaddr), (16, self.yiaddr), (20, self.siaddr), (24, self.giaddr)] {
            out[at..at + 4].copy_from_slice(&ip.octets());
        }
        out[28..44].copy_from_slice(&self.chaddr);
        let file = &self.file[..self.file.len().min(128)];
        out[108..108 + file.len()].copy_from_slice(file);
        out.extend_from_slice(&MAGIC);
        // Message type first: some clients look only there.
        let first = self.options.get_key_value(&opt::MESSAGE_TYPE);
        for (code, value) in first.into_iter().chain(self.options.iter().filter(|(c, _)| **c != opt::MESSAGE_TYPE)) {
            // An empty option is still written (found by the fuzzer: `chunks` yields nothing).
            let chunks: Vec<&[u8]> = if value.is_empty() { vec![&[]] } else { value.chunks(255).collect() };
            for chunk in chunks {
                out.push(*code);
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        out.push(opt::END);
        if out.len() < 300 {
            out.resize(300, 0);
        }
        out
    }
}

/// The options after the cookie: code, length, value, until `END`.
fn parse_options(mut rest: &[u8]) -> Result<BTreeMap<u8, Vec<u8>>, Malformed> {
    let mut options = BTreeMap::new();
    loop {
        let Some((&code, tail)) = rest.split_first() else { return Err(Malformed::NoEnd) };
        match code {
            opt::END => return Ok(options),
            opt::PAD => rest = tail,
            _ => {
                let Some((&len, tail)) = tail.split_first() else { return Err(Malformed::Truncated(code)) };
                let len = usize::from(len);
                if tail.len() < len {
                    return Err(Malformed::Truncated(code));
                }
                let value = &tail[..len];
                let fits = match code {
                    opt::MESSAGE_TYPE => len == 1,
                    opt::SERVER_ID => len == 4,
                    opt::CLIENT_ARCH => len >= 2 && len % 2 == 0,
                    _ => true,
                };
                if !fits {
                    return Err(Malformed::Length(code));
                }
                if options.insert(code, value.to_vec()).is_some() {
                    return Err(Malformed::Repeated(code));
                }
                rest = &tail[len..];
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One option for [`discover`].
    pub(crate) fn o(code: u8, value: impl AsRef<[u8]>) -> (u8, Vec<u8>) {
        (code, value.as_ref().to_vec())
    }

    /// A DHCPDISCOVER-shaped request from 52:54:00:aa:bb:cc with `options`.
    pub(crate) fn discover(options: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0u8; FIXED];
        m[0] = BOOTREQUEST;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        m[28..34].copy_from_slice(&[0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
        m.extend_from_slice(&MAGIC);
        for (code, value) in options {
            m.push(*code);
            m.push(value.len() as u8);
            m.extend_from_slice(value);
        }
        m.push(opt::END);
        m
    }

    #[test]
    fn a_pxe_discover_is_read() {
        let m = Message::parse(&discover(&[o(53, [1]), o(60, b"PXEClient:Arch:00000:UNDI:002001"), o(93, [0, 0])])).unwrap();
        assert_eq!(m.message_type(), Some(MessageType::Discover));
        assert_eq!(m.mac(), Some([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]));
        assert_eq!(m.xid, 0x1234_5678);
        assert_eq!(m.options[&60], b"PXEClient:Arch:00000:UNDI:002001");
    }

    #[test]
    fn what_dhcproto_let_through_is_refused() {
        // Option 93 of length 1: refused, not read on into option 60.
        assert_eq!(Message::parse(&discover(&[o(93, [0]), o(60, b"PXEClient")])), Err(Malformed::Length(93)));
        let mut cookie = discover(&[o(53, [1])]);
        cookie[FIXED] = 1;
        assert_eq!(Message::parse(&cookie), Err(Malformed::Cookie));
        assert_eq!(Message::parse(&discover(&[o(53, [1, 1])])), Err(Malformed::Length(53)));
        assert_eq!(Message::parse(&discover(&[o(54, [10, 0, 0])])), Err(Malformed::Length(54)));
    }

    #[test]
    fn truncated_repeated_and_oversized_messages_are_refused() {
        let full = discover(&[o(53, [1]), o(60, b"PXEClient")]);
        // Cut inside option 60's value, and before its length.
        assert_eq!(Message::parse(&full[..full.len() - 4]), Err(Malformed::Truncated(60)));
        assert_eq!(Message::parse(&full[..FIXED + 4 + 3 + 1]), Err(Malformed::Truncated(60)));
        assert_eq!(Message::parse(&full[..full.len() - 1]), Err(Malformed::NoEnd));
        assert_eq!(Message::parse(&full[..100]), Err(Malformed::Short));
        assert_eq!(Message::parse(&discover(&[o(60, b"a"), o(60, b"b")])), Err(Malformed::Repeated(60)));
        let mut huge = discover(&[o(53, [1])]);
        huge.resize(MAX_LEN + 1, 0);
        assert_eq!(Message::parse(&huge), Err(Malformed::TooLong));
        // Pads before the end are fine.
        let mut padded = discover(&[o(53, [1])]);
        padded.pop();
        padded.extend_from_slice(&[0, 0, 0, 255]);
        assert!(Message::parse(&padded).is_ok());
    }

    #[test]
    fn a_written_message_reads_back_the_same() {
        let mut m = Message::parse(&discover(&[o(53, [1]), o(97, [0; 17]), o(213, [])])).unwrap();
        m.op = BOOTREPLY;
        m.siaddr = Ipv4Addr::new(10, 0, 0, 1);
        m.file = b"pxelinux.0".to_vec();
        m.set_message_type(MessageType::Offer);
        m.options.insert(opt::VENDOR_SPECIFIC, vec![6, 1, 8, 255]);
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), 300);
        assert_eq!(&bytes[FIXED + 4..FIXED + 7], &[53, 1, 2], "the message type comes first");
        assert_eq!(Message::parse(&bytes).unwrap(), m);
    }
}
