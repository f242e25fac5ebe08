//! `--allow CIDR`: which clients the servers answer (the seed's hosts.allow).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range such as `192.168.122.0/24` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an address range; write it as ADDRESS/PREFIX, e.g. 192.168.122.0/24")]
pub struct BadCidr(pub String);

impl FromStr for Cidr {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Cidr, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen through a dual-stack socket is still IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The clients a server answers: everyone when empty, else those in any range.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    pub fn new(ranges: Vec<Cidr>) -> AllowList {
        AllowList(ranges)
    }
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_as_expected() {
        let c: Cidr = "192.168.122.0/24".parse().unwrap();
        assert!(c.contains("192.168.122.77".parse().unwrap()));
        assert!(!c.contains("192.168.123.1".parse().unwrap()));
        assert!(c.contains("::ffff:192.168.122.9".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("10.1.2.3".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(host.to_string(), "127.0.0.1/32");
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
    }

    #[test]
    fn bad_ranges_are_refused() {
        for s in ["", "10.0.0.0/33", "::/129", "host/24", "10.0.0.0/-1", "10.0.0.0/x"] {
            assert!(s.parse::<Cidr>().is_err(), "{s}");
        }
    }

    #[test]
    fn empty_list_allows_everyone() {
        assert!(AllowList::default().allows("203.0.113.5".parse().unwrap()));
        let list = AllowList::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(list.allows("127.0.0.1".parse().unwrap()));
        assert!(!list.allows("203.0.113.5".parse().unwrap()));
    }
}
