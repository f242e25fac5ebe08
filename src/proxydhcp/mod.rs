//! Proxy DHCP: boot information for PXE clients on a network whose DHCP
//! server pxelab leaves alone (a libvirt network the user will not have
//! patched, a host bridge, a site LAN with its own DHCP server).
//!
//! The network's server leases the address; pxelab answers only PXE
//! clients, only with where to boot from (`reply.rs` has the whole policy).
//! Two listeners, each on its own thread, started by [`ProxyDhcp::start`]
//! and joined by [`ProxyDhcp::stop`] (or drop):
//! - UDP 67 through a packet socket bound to the one interface
//!   (`link.rs`): libvirt's dnsmasq, or the site's server, already holds
//!   port 67, and a packet socket hears the broadcasts beside it without
//!   touching its socket. A kernel filter lets only DHCP through. Answers
//!   are whole frames sent back out of the same interface, to the client's
//!   MAC, from the server address. The same socket sees the DHCP server's
//!   ACKs, which tell the lab a VM's address where libvirt cannot (a
//!   bridge of the host's own).
//! - UDP 4011 on the server address, an ordinary socket: the boot-server
//!   requests a client sends there after it has its address.
//!
//! What the proxy did is sent as [`ProxyEvent`]s on a broadcast channel,
//! as the file servers do (`serve/transfer.rs`), and counted in [`Stats`]
//! for `doctor`. Answers are rate-limited (`limit.rs`); malformed messages
//! are counted and dropped (`message.rs`).

mod frame;
mod limit;
pub mod message;
pub mod reply;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast;

pub use frame::{build as build_frame, parse as parse_frame, Datagram, Ends};
pub use reply::{BootFiles, ClientKind, Port};

use crate::link::{self, Direction, PacketSocket};
use crate::mac::MacAddr;
use limit::Limiter;
use message::{Message, MessageType};

/// The proxy's ports: where clients send, where they listen.
pub const DHCP_SERVER_PORT: u16 = 67;
pub const DHCP_CLIENT_PORT: u16 = 68;
pub const PXE_PORT: u16 = 4011;
/// How often the threads look at their stop flag.
const WAKE: Duration = Duration::from_millis(200);

/// Something the proxy did or saw.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "proxy", rename_all = "snake_case")]
pub enum ProxyEvent {
    /// A PXE client was told where to boot from.
    Answered { mac: String, kind: ClientKind, port: Port, file: String },
    /// `mac` has this address: the network's DHCP server's ACK was heard,
    /// or, where the ACK went straight to the client (a switch or bridge
    /// forwards a unicast ACK only to its port), the client's broadcast
    /// DHCPREQUEST for it (option 50), a few milliseconds before the ACK.
    Leased { mac: String, ip: Ipv4Addr },
    /// Another server sent a PXE client an offer without an address:
    /// another proxy DHCP on the segment.
    OtherProxy { server: Ipv4Addr },
}

/// Counters since the start, for `doctor` and the summary.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub answered: AtomicU64,
    /// DHCP requests from clients that are not PXE clients, left to the DHCP server.
    pub not_pxe: AtomicU64,
    pub malformed: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Other proxy offers heard on the segment: another PXE proxy is there.
    pub other_proxies: AtomicU64,
}

/// The running proxy on one interface.
#[derive(Debug)]
pub struct ProxyDhcp {
    interface: String,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    events: broadcast::Sender<ProxyEvent>,
    stats: Arc<Stats>,
}

/// What one listener thread needs.
struct Listener {
    files: BootFiles,
    stop: Arc<AtomicBool>,
    events: broadcast::Sender<ProxyEvent>,
    stats: Arc<Stats>,
    limiter: Arc<Mutex<Limiter>>,
}

impl ProxyDhcp {
    /// Starts answering on `interface`, whose address must be `files.server`.
    /// Needs CAP_NET_RAW (root) for port 67.
    pub fn start(interface: &str, files: BootFiles) -> io::Result<ProxyDhcp> {
        let mac = link::mac_of(interface)?;
        let dhcp = PacketSocket::open(interface, frame::ETH_P_IP, WAKE)?;
        dhcp.filter(&frame::dhcp_filter())?;
        let pxe = UdpSocket::bind(SocketAddr::from((files.server, PXE_PORT)))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}:{PXE_PORT} (UDP) for PXE boot-server requests: {e}", files.server)))?;
        pxe.set_read_timeout(Some(WAKE))?;
        let (events, _) = broadcast::channel(256);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let limiter = Arc::new(Mutex::new(Limiter::new(Instant::now())));
        let listener = || Listener { files: files.clone(), stop: stop.clone(), events: events.clone(), stats: stats.clone(), limiter: limiter.clone() };
        let on_67 = listener();
        let on_4011 = listener();
        let threads = vec![
            std::thread::Builder::new().name(format!("dhcp-{interface}")).spawn(move || on_67.serve_dhcp(&dhcp, mac))?,
            std::thread::Builder::new().name(format!("pxe-{interface}")).spawn(move || on_4011.serve_pxe(&pxe))?,
        ];
        tracing::debug!("proxy DHCP on {interface}: PXE clients are sent to {}", files.server);
        Ok(ProxyDhcp { interface: interface.to_string(), stop, threads, events, stats })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ProxyEvent> {
        self.events.subscribe()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops answering; returns once both sockets are closed.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for ProxyDhcp {
    fn drop(&mut self) {
        self.halt();
    }
}

impl Listener {
    /// Port 67: clients' DISCOVERs in, offers out; servers' ACKs noted.
    fn serve_dhcp(&self, socket: &PacketSocket, own_mac: [u8; 6]) {
        let mut buf = vec![0u8; 2048];
        while !self.stop.load(Ordering::Relaxed) {
            let Some((n, direction)) = socket.recv(&mut buf) else { continue };
            let Some(d) = frame::parse(&buf[..n]) else { continue };
            match (d.src_port, d.dst_port) {
                // A client's request (only from the wire: never our host's own).
                (DHCP_CLIENT_PORT, DHCP_SERVER_PORT) if direction == Direction::Incoming => {
                    let Some(request) = self.read(d.payload) else { continue };
                    self.note_client(&request);
                    let Some(answer) = self.answer(&request, Port::Dhcp) else { continue };
                    let ends = Ends {
                        src_mac: own_mac,
                        dst_mac: answer.mac.0,
                        src: (self.files.server, DHCP_SERVER_PORT),
                        dst: (Ipv4Addr::BROADCAST, DHCP_CLIENT_PORT),
                    };
                    match socket.send(&frame::build(&ends, &answer.message.to_bytes())) {
                        Ok(()) => self.answered(answer, Port::Dhcp),
                        Err(e) => tracing::warn!("cannot send a proxy DHCP offer to {}: {e}", answer.mac),
                    }
                }
                // A server's answer: a lease (the network's server), or another proxy.
                (DHCP_SERVER_PORT, DHCP_CLIENT_PORT) => self.note_server(&d),
                _ => {}
            }
        }
    }

    /// Port 4011: boot-server requests in, ACKs back to the sender.
    fn serve_pxe(&self, socket: &UdpSocket) {
        let mut buf = vec![0u8; message::MAX_LEN + 1];
        while !self.stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            let Some(request) = self.read(&buf[..n]) else { continue };
            let Some(answer) = self.answer(&request, Port::BootServer) else { continue };
            match socket.send_to(&answer.message.to_bytes(), from) {
                Ok(_) => self.answered(answer, Port::BootServer),
                Err(e) => tracing::warn!("cannot answer {}'s boot-server request: {e}", answer.mac),
            }
        }
    }

    /// A request's bytes as a message; a malformed one is counted and dropped.
    fn read(&self, bytes: &[u8]) -> Option<Message> {
        match Message::parse(bytes) {
            Ok(m) => Some(m),
            Err(why) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("proxy DHCP: a malformed request ({why})");
                None
            }
        }
    }

    /// The answer to a request, if it gets one: judged, then rate-limited.
    fn answer(&self, request: &Message, port: Port) -> Option<reply::Answer> {
        let answer = match reply::answer(request, port, &self.files) {
            Ok(a) => a,
            Err(why) => {
                if why == reply::Ignored::NotPxe {
                    self.stats.not_pxe.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!("proxy DHCP: no answer to {:?} ({why})", request.mac().map(MacAddr));
                return None;
            }
        };
        let allowed = self.limiter.lock().map(|mut l| l.allow(answer.mac.0, Instant::now())).unwrap_or(false);
        if !allowed {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(answer)
    }

    fn answered(&self, answer: reply::Answer, port: Port) {
        self.stats.answered.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("proxy DHCP: {} ({:?}) boots {}", answer.mac, answer.kind, answer.file);
        let _ = self.events.send(ProxyEvent::Answered { mac: answer.mac.to_string(), kind: answer.kind, port, file: answer.file });
    }

    /// A client's broadcast DHCPREQUEST for an address (option 50): what
    /// it is about to have, seen where its server's ACK may not be.
    fn note_client(&self, m: &Message) {
        let requested = m.options.get(&message::opt::REQUESTED_IP).and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok());
        if let (Some(MessageType::Request), Some(ip), Some(mac)) = (m.message_type(), requested, m.mac()) {
            let _ = self.events.send(ProxyEvent::Leased { mac: MacAddr(mac).to_string(), ip: Ipv4Addr::from(ip) });
        }
    }

    /// A DHCP server's message to a client: an ACK with an address is a
    /// lease; an offer with no address from someone else is another proxy.
    fn note_server(&self, d: &Datagram<'_>) {
        let Ok(m) = Message::parse(d.payload) else { return };
        let Some(mac) = m.mac() else { return };
        match m.message_type() {
            Some(MessageType::Ack) if !m.yiaddr.is_unspecified() => {
                let _ = self.events.send(ProxyEvent::Leased { mac: MacAddr(mac).to_string(), ip: m.yiaddr });
            }
            Some(MessageType::Offer) if m.yiaddr.is_unspecified() && d.src_ip != self.files.server => {
                if self.stats.other_proxies.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("another proxy DHCP ({}) answers PXE clients on this segment", d.src_ip);
                }
                let _ = self.events.send(ProxyEvent::OtherProxy { server: d.src_ip });
            }
            _ => {}
        }
    }
}
