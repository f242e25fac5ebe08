//! The lab's ports: free before `up`, held by the lab while it runs, and
//! answering as a guest would ask (one TFTP read request, one FTP greeting,
//! one HTTP HEAD). The ports are the servers' own constants, or the lab's
//! record when it chose others.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use super::{Findings, FIX_STUCK_LAB};
use crate::lab::record::LabRecord;
use crate::serve::ports::{self, Transport};
use crate::serve::{transport_of, Protocol, FTP_PORT, HTTP_PORT, TFTP_PORT};
use crate::virt::network::NetworkState;

/// How long a probe of the lab's servers waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// TFTP, FTP and HTTP on the network's `address`: the lab's own ports when
/// one runs (it may have chosen others), else pxelab's defaults.
pub(super) fn port_checks(f: &mut Findings, address: IpAddr, lab: Option<&LabRecord>, state: &NetworkState) {
    port_check(f, Protocol::Tftp, SocketAddr::new(address, TFTP_PORT), lab, state);
    let ftp = lab.and_then(LabRecord::ftp_addr).unwrap_or(SocketAddr::new(address, FTP_PORT));
    port_check(f, Protocol::Ftp, ftp, lab, state);
    match lab {
        Some(lab) => {
            if let Some(http) = lab.http_addr() {
                port_check(f, Protocol::Http, http, Some(lab), state);
            }
        }
        None => port_check(f, Protocol::Http, SocketAddr::new(address, HTTP_PORT), None, state),
    }
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
    let file = state.parsed.bootp().map(|b| b.file.clone()).unwrap_or_else(|| "pxelinux.0".into());
    match probe(protocol, addr, &file) {
        Ok(answer) => f.ok(id, format!("{what} is served by {owner}: {answer}")),
        Err(e) => f.fail(id, format!("{what} is held by {owner} but {e}"), FIX_STUCK_LAB),
    }
}

/// The one probe client: asks a server of `protocol` as a guest would.
fn probe(protocol: Protocol, addr: SocketAddr, tftp_file: &str) -> std::result::Result<String, String> {
    match protocol {
        Protocol::Tftp => tftp_probe(addr, tftp_file).map(|n| format!("{tftp_file} answered ({n} bytes in block 1)")),
        Protocol::Ftp => ftp_probe(addr).map(|greeting| format!("greeting {greeting:?}")),
        Protocol::Http => http_probe(addr).map(|status| format!("HEAD /pxelinux.0 answered {status:?}")),
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
