//! Who holds a port: read from /proc, so that "port 69 is busy" can say
//! "held by dnsmasq (pid 812)". Best effort: None when it cannot tell
//! (another user's process, no /proc).

use std::net::{IpAddr, SocketAddr};

/// The ports pxelab's servers listen on unless told otherwise. TFTP's is
/// not the user's to choose in a lab: a PXE client asks for 69 and no other.
pub const TFTP_PORT: u16 = 69;
pub const FTP_PORT: u16 = 21;
pub const HTTP_PORT: u16 = 80;

/// Whether `ip` is one of this host's addresses: a socket binds to it (nothing is sent).
pub fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        })
    }
}

/// A process that holds a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortOwner {
    /// Its command name (`/proc/PID/comm`).
    pub name: String,
    pub pid: u32,
}

impl std::fmt::Display for PortOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {})", self.name, self.pid)
    }
}

/// The process holding a socket bound to `addr` (that address, or any address, on its port).
pub fn owner(transport: Transport, addr: SocketAddr) -> Option<PortOwner> {
    let tables: &[&str] = match transport {
        Transport::Udp => &["/proc/net/udp", "/proc/net/udp6"],
        Transport::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
    };
    let inodes: Vec<String> = tables
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    let local = parse_local(cols.get(1)?)?;
                    // TCP sockets that hold a port for listening are in state 0A.
                    let listening = transport == Transport::Udp || cols.get(3) == Some(&"0A");
                    let holds = local.port() == addr.port() && (local.ip() == addr.ip() || local.ip().is_unspecified());
                    (holds && listening).then(|| cols.get(9).map(|s| s.to_string()))?
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = proc_entry.file_name();
        let Some(pid) = pid.to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let target = target.to_string_lossy();
            if inodes.iter().any(|i| target == format!("socket:[{i}]")) {
                let comm = std::fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
                return Some(PortOwner { name: comm.trim().to_string(), pid });
            }
        }
    }
    None
}

/// A `/proc/net/{udp,tcp}[6]` local address: hex address words in host
/// byte order (little-endian here), then the port.
fn parse_local(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip: std::net::IpAddr = match ip.len() {
        8 => std::net::Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes()).into(),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            // A v4-mapped listener (::ffff:a.b.c.d) holds the v4 address.
            v6.to_ipv4_mapped().map(Into::into).unwrap_or(v6.into())
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// pxelab's own ports must differ: FTP and HTTP (0 means "any free one"),
/// and neither inside the FTP passive range.
pub fn check_distinct(ftp: u16, http: Option<u16>, passive: &std::ops::RangeInclusive<u16>) -> Result<(), String> {
    if ftp != 0 && http == Some(ftp) {
        return Err(format!("--ftp-port and --http-port are both {ftp}: pxelab would ask for the same port twice; choose two ports"));
    }
    for (flag, port) in [("--ftp-port", Some(ftp)), ("--http-port", http)] {
        if let Some(port) = port.filter(|p| *p != 0 && passive.contains(p)) {
            return Err(format!(
                "--passive-ports {}-{} holds {flag} {port}: FTP data connections would take the port the server listens on; choose a range without it",
                passive.start(),
                passive.end()
            ));
        }
    }
    Ok(())
}

/// The FTP passive range on `ip`: an error when no port of it can be
/// bound (every download would fail with 425), a warning when some are held.
pub fn check_passive(ip: IpAddr, passive: &std::ops::RangeInclusive<u16>) -> Result<(), super::ServeError> {
    // Only a port in use counts: an address that is not this host's fails
    // every bind, and the control ports' own bind says that better.
    let in_use = |port: &u16| matches!(std::net::TcpListener::bind((ip, *port)), Err(e) if e.kind() == std::io::ErrorKind::AddrInUse);
    let busy: Vec<u16> = passive.clone().filter(in_use).collect();
    let total = passive.clone().count();
    if busy.is_empty() {
        return Ok(());
    }
    let by = owner(Transport::Tcp, SocketAddr::new(ip, busy[0])).map(|o| format!(" (port {} held by {o})", busy[0])).unwrap_or_default();
    if busy.len() == total {
        return Err(super::ServeError::PassiveBusy { ip, first: *passive.start(), last: *passive.end(), by });
    }
    tracing::warn!(
        "{} of the {total} FTP passive ports {}-{} on {ip} are in use{by}: fewer FTP downloads can run at once",
        busy.len(),
        passive.start(),
        passive.end()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let owner = owner(Transport::Tcp, listener.local_addr().unwrap()).expect("own socket found");
        assert_eq!(owner.pid, std::process::id(), "{owner}");
        assert!(owner.to_string().ends_with(&format!("(pid {})", std::process::id())), "{owner}");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(super::owner(Transport::Udp, udp.local_addr().unwrap()).is_some());
    }

    #[test]
    fn a_socket_on_another_address_is_not_the_owner() {
        let udp = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        assert!(owner(Transport::Udp, format!("127.0.0.2:{port}").parse().unwrap()).is_some());
        assert_eq!(owner(Transport::Udp, format!("127.0.0.3:{port}").parse().unwrap()), None);
        assert_eq!(parse_local("0100007F:0045"), Some("127.0.0.1:69".parse().unwrap()));
        assert_eq!(parse_local("00000000000000000000000001000000:0015"), Some("[::1]:21".parse().unwrap()));
    }
}
