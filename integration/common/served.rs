//! A running `pxelab serve` on loopback, and raw TFTP and FTP clients for
//! what real clients would never send.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pxelab;

/// A running `pxelab serve`, stopped with SIGTERM when dropped.
pub struct Served {
    pub child: Child,
    pub tftp: SocketAddr,
    pub ftp: SocketAddr,
    pub http: SocketAddr,
    pub ready_after: Duration,
    pub events: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Served {
    pub fn start(iso: &Path, passive: &str, extra: &[&str]) -> Served {
        let started = Instant::now();
        let mut child = pxelab()
            .args(["serve", "--json", "--bind", "127.0.0.1", "--tftp-port", "0", "--ftp-port", "0", "--http-port", "0"])
            .args(["--passive-ports", passive, "--iso"])
            .arg(iso)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if line.is_empty() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("pxelab serve exited before it was ready: {err}");
        }
        let ready_after = started.elapsed();
        let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(ready["event"], "ready");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        // Drain stderr so the server never blocks on a full pipe.
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let addr = |key: &str| ready[key].as_str().unwrap_or_else(|| panic!("no {key} in {ready}")).parse().unwrap();
        Served { child, tftp: addr("tftp"), ftp: addr("ftp"), http: addr("http"), ready_after, events }
    }

    /// The server process still runs (not exited, not a zombie).
    pub fn child_alive(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    }

    pub fn tftp_url(&self, path: &str) -> String {
        format!("tftp://{}/{path}", self.tftp)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.http)
    }

    pub fn ftp_url(&self, path: &str) -> String {
        format!("ftp://{}/{path}", self.ftp)
    }

    /// Waits briefly for an event matching `pred` (events arrive asynchronously).
    pub fn saw(&self, pred: impl Fn(&serde_json::Value) -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if self.events.lock().unwrap().iter().any(&pred) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw TFTP request, for what curl and atftp would never send.
pub fn tftp_raw(server: SocketAddr, packet: &[u8]) -> Option<(u16, u16, Vec<u8>)> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    socket.send_to(packet, server).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    let opcode = u16::from_be_bytes([buf[0], buf[1]]);
    let code = u16::from_be_bytes([buf[2], buf[3]]);
    Some((opcode, code, buf[4..n].to_vec()))
}

pub fn request(opcode: u8, name: &[u8], opts: &[(&str, &str)]) -> Vec<u8> {
    let mut p = vec![0, opcode];
    p.extend_from_slice(name);
    p.extend_from_slice(b"\0octet\0");
    for (k, v) in opts {
        p.extend_from_slice(k.as_bytes());
        p.push(0);
        p.extend_from_slice(v.as_bytes());
        p.push(0);
    }
    p
}

pub const TFTP_DATA: u16 = 3;
pub const TFTP_ERROR: u16 = 5;
pub const ACCESS_VIOLATION: u16 = 2;

/// Sends FTP commands on one control connection; returns each reply's first line.
pub fn ftp_session(server: SocketAddr, commands: &[&str]) -> Vec<String> {
    let stream = TcpStream::connect(server).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut read_reply = || {
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        // Multi-line replies ("123-…") end with "123 …".
        if first.len() > 3 && first.as_bytes()[3] == b'-' {
            let code = first[..3].to_string();
            loop {
                let mut more = String::new();
                if reader.read_line(&mut more).unwrap() == 0 || more.starts_with(&format!("{code} ")) {
                    break;
                }
            }
        }
        first.trim_end().to_string()
    };
    let mut replies = vec![read_reply()];
    for command in commands {
        writer.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        replies.push(read_reply());
    }
    replies
}
