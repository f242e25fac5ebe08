//! The TFTP server: async-tftp with a handler over the [`BootTree`].
//!
//! async-tftp does the protocol (blksize, tsize, timeout, windowsize,
//! block-number rollover, a socket per transfer bound to the listening
//! address). The handler decides what may be served: it is read-only (every
//! WRQ is refused), answers only allowed clients, caps concurrent transfers,
//! and hands every path to [`BootTree::open`], which refuses anything that
//! could leave the tree. async-tftp has no shutdown of its own, so the
//! server runs in a task that [`super::Servers::stop`] aborts.

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

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(FileReader, Option<u64>), packet::Error> {
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

    async fn write_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
        _size: Option<u64>,
    ) -> Result<futures::io::Sink, packet::Error> {
        self.events.refused(Protocol::Tftp, *client, &path.to_string_lossy(), "read-only server (WRQ)");
        Err(packet::Error::PermissionDenied)
    }
}

/// Binds `addr` and returns the server future (run it in a task) and the bound address.
pub async fn start(
    addr: SocketAddr,
    tree: Arc<BootTree>,
    allow: AllowList,
    events: Events,
    limits: &Limits,
) -> std::io::Result<(impl std::future::Future<Output = ()> + Send + 'static, SocketAddr)> {
    // Bind here, not inside async-tftp, so a busy port is an error now.
    let socket = UdpSocket::bind(addr)?;
    let handler = TftpHandler {
        tree,
        allow,
        events,
        active: Arc::new(AtomicUsize::new(0)),
        max_transfers: limits.max_tftp_transfers,
    };
    let server = TftpServerBuilder::with_handler(handler)
        .std_socket(socket)
        .map_err(std::io::Error::other)?
        .block_size_limit(limits.tftp_max_block_size)
        .window_size_limit(limits.tftp_max_window_size)
        .timeout(limits.tftp_timeout)
        .build()
        .await
        .map_err(std::io::Error::other)?;
    let bound = server.listen_addr().map_err(std::io::Error::other)?;
    let run = async move {
        if let Err(e) = server.serve().await {
            tracing::error!("TFTP server stopped: {e}");
        }
    };
    Ok((run, bound))
}
