//! The TFTP server: async-tftp with a handler over the [`BootTree`].
//!
//! async-tftp does the protocol (blksize, tsize, timeout, windowsize,
//! block-number rollover, a socket per transfer bound to the listening
//! address). The handler decides what may be served: it is read-only (every
//! WRQ is refused), answers only allowed clients, caps concurrent transfers,
//! and hands every path to [`BootTree::open`], which refuses anything that
//! could leave the tree.
//!
//! async-tftp is built on async-io, not tokio. Polled from a tokio task,
//! every packet would wake async-io's reactor thread, which then wakes a
//! tokio worker: two thread hops per block of a lock-step protocol. So the
//! server runs on a thread of its own under `async_io::block_on`, which
//! drives the reactor itself. async-tftp has no shutdown, so [`TftpServer`]
//! races it against a stop signal.
//!
//! Even so, a lock-step transfer spends most of each block waiting for the
//! kernel to wake the thread when the ACK arrives. pxelab's copy of
//! async-tftp (vendor/README.md) polls for the ACK for
//! [`Limits::tftp_ack_spin`] first, while a single transfer runs and the
//! client keeps up: 2.4× faster on loopback, for a busy core meanwhile.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use async_tftp::packet;
use async_tftp::server::{Handler, TftpServerBuilder};

use super::allow::AllowList;
use super::transfer::{Events, FileReader, Protocol, Slot, TransferRecord};
use super::Limits;
use crate::boot::{BootTree, OpenError};

struct TftpHandler {
    tree: Arc<BootTree>,
    allow: AllowList,
    events: Events,
    active: Arc<AtomicUsize>,
    max_transfers: usize,
}

impl Handler for TftpHandler {
    type Reader = FileReader;
    type Writer = futures::io::Sink;

    async fn read_req_open(&mut self, client: &SocketAddr, path: &Path) -> Result<(FileReader, Option<u64>), packet::Error> {
        // async-tftp parsed the name as UTF-8, so this conversion cannot fail.
        let request = path.to_string_lossy();
        let refuse = |reason: &str, error: packet::Error| {
            self.events.refused(Protocol::Tftp, *client, &request, reason);
            Err(error)
        };
        if !self.allow.allows(client.ip()) {
            return refuse("client not in --allow", packet::Error::PermissionDenied);
        }
        let file = match self.tree.open(&request) {
            Ok(file) => file,
            Err(OpenError::Rejected(why)) => return refuse(&why.to_string(), packet::Error::PermissionDenied),
            Err(OpenError::NotFound) => return refuse("no such file", packet::Error::FileNotFound),
        };
        let Some(slot) = Slot::take(&self.active, self.max_transfers) else {
            return refuse("too many transfers", packet::Error::Msg("server busy, try again".into()));
        };
        let size = file.size();
        let record = TransferRecord::new(&self.events, Protocol::Tftp, *client, &request, size, 0).with_slot(slot);
        Ok((FileReader::new(file, 0, record), Some(size)))
    }

    async fn write_req_open(&mut self, client: &SocketAddr, path: &Path, _size: Option<u64>) -> Result<futures::io::Sink, packet::Error> {
        self.events.refused(Protocol::Tftp, *client, &path.to_string_lossy(), "read-only server (WRQ)");
        Err(packet::Error::PermissionDenied)
    }
}

/// The running TFTP server's thread.
#[derive(Debug)]
pub struct TftpServer {
    stop: Option<futures::channel::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TftpServer {
    /// Stops the server and waits until its socket is closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TftpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds `addr`, starts serving on a thread of its own, and returns the bound address.
pub async fn start(addr: SocketAddr, tree: Arc<BootTree>, allow: AllowList, events: Events, limits: &Limits) -> std::io::Result<(TftpServer, SocketAddr)> {
    // Bind here, not inside async-tftp, so a busy port is an error now.
    let socket = UdpSocket::bind(addr)?;
    let handler = TftpHandler { tree, allow, events, active: Arc::new(AtomicUsize::new(0)), max_transfers: limits.max_tftp_transfers };
    let server = TftpServerBuilder::with_handler(handler)
        .std_socket(socket)
        .map_err(std::io::Error::other)?
        .block_size_limit(limits.tftp_max_block_size)
        .window_size_limit(limits.tftp_max_window_size)
        .timeout(limits.tftp_timeout)
        .max_send_retries(limits.tftp_max_retries)
        .ack_spin(limits.tftp_ack_spin)
        .build()
        .await
        .map_err(std::io::Error::other)?;
    let bound = server.listen_addr().map_err(std::io::Error::other)?;
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("pxelab-tftp".into()).spawn(move || {
        async_io::block_on(async move {
            let serve = std::pin::pin!(server.serve());
            if let futures::future::Either::Left((Err(e), _)) = futures::future::select(serve, stopped).await {
                tracing::error!("TFTP server stopped: {e}");
            }
        })
    })?;
    Ok((TftpServer { stop: Some(stop), thread: Some(thread) }, bound))
}
