//! Who holds a port: read from /proc, so that "port 69 is busy" can say
//! "held by dnsmasq (pid 812)". Best effort: None when it cannot tell
//! (another user's process, no /proc).

use std::net::SocketAddr;

/// Transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The process holding a socket bound to `addr`'s port (on that address or any).
pub fn owner(transport: Transport, addr: SocketAddr) -> Option<String> {
    let tables: &[&str] = match transport {
        Transport::Udp => &["/proc/net/udp", "/proc/net/udp6"],
        Transport::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
    };
    let port = format!(":{:04X}", addr.port());
    let inodes: Vec<String> = tables
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    let local = cols.get(1)?;
                    // TCP sockets that hold a port for listening are in state 0A.
                    let listening = transport == Transport::Udp || cols.get(3) == Some(&"0A");
                    (local.ends_with(&port) && listening).then(|| cols.get(9).map(|s| s.to_string()))?
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = proc_entry.file_name();
        let Some(pid) = pid.to_str().filter(|p| p.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let target = target.to_string_lossy();
            if inodes.iter().any(|i| target == format!("socket:[{i}]")) {
                let comm = std::fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
                return Some(format!("{} (pid {pid})", comm.trim()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let owner = owner(Transport::Tcp, listener.local_addr().unwrap()).expect("own socket found");
        assert!(owner.contains(&format!("pid {}", std::process::id())), "{owner}");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(super::owner(Transport::Udp, udp.local_addr().unwrap()).is_some());
    }
}
