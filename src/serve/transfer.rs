//! What the servers report, and the file reader both of them use.
//!
//! Every transfer, finished or not, becomes one [`ServeEvent`] on a
//! broadcast channel and one log line. The lab turns those events into boot
//! progress (`bootloader` when pxelinux.0 went out, `kernel` when the kernel
//! and initrd did), so they are facts about bytes sent, not guesses.
//!
//! [`FileReader`] reads a [`BootFile`] through a 256 KiB buffer with
//! positioned reads: one `pread` feeds many TFTP blocks or FTP writes, and
//! any number of readers share one open ISO without a lock.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast;

use super::drain::{InFlight, InFlightGuard};
use crate::boot::BootFile;

/// How much of a file one positioned read fetches.
const READ_CHUNK: usize = 256 * 1024;
/// Events kept for slow subscribers before the oldest are dropped.
const EVENT_BACKLOG: usize = 4096;
/// A transfer in progress reports itself after each this many bytes.
const PROGRESS_STEP: u64 = 2 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tftp,
    Ftp,
    Http,
}

impl Protocol {
    /// How the JSON and people name it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tftp => "tftp",
            Protocol::Ftp => "ftp",
            Protocol::Http => "http",
        }
    }
}

/// One file sent, whole or in part.
#[derive(Debug, Clone, Serialize)]
pub struct Transfer {
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub path: String,
    /// Bytes handed to the protocol layer.
    pub bytes: u64,
    /// The file's size.
    pub size: u64,
    pub started_at_offset: u64,
    #[serde(with = "duration_secs")]
    pub duration: Duration,
    /// The whole file (from the starting offset) was read.
    pub complete: bool,
    /// When it ended: the lab stamps the stage it marks with this, not
    /// with the moment it handles the event.
    #[serde(skip)]
    pub ended: Instant,
}

/// What the servers report.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServeEvent {
    Transfer(Transfer),
    /// A transfer still going: bytes sent so far (every 2 MiB).
    Progress {
        protocol: Protocol,
        client: SocketAddr,
        path: String,
        bytes: u64,
        size: u64,
    },
    /// A request refused: a path outside the tree, a write, a client not
    /// allowed, a limit reached.
    Refused {
        protocol: Protocol,
        client: SocketAddr,
        request: String,
        reason: String,
    },
}

mod duration_secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Where events go: a broadcast channel and the log; and which transfers
/// are in flight, for a graceful stop.
#[derive(Debug, Clone)]
pub struct Events(broadcast::Sender<ServeEvent>, Arc<InFlight>);

impl Default for Events {
    fn default() -> Self {
        Events(broadcast::channel(EVENT_BACKLOG).0, Arc::default())
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<ServeEvent> {
        self.0.subscribe()
    }

    pub fn in_flight(&self) -> &Arc<InFlight> {
        &self.1
    }

    pub fn refused(&self, protocol: Protocol, client: SocketAddr, request: &str, reason: &str) {
        // pxelinux asks for pxelinux.cfg/<uuid>, <mac>, <hex ip>… before
        // `default`: a missing file is routine, anything else is worth a warning.
        if reason == "no such file" {
            tracing::debug!(?protocol, %client, request, reason, "refused");
        } else {
            tracing::warn!(?protocol, %client, request, reason, "refused");
        }
        // No subscriber is fine: the log line above is the record.
        let _ = self.0.send(ServeEvent::Refused { protocol, client, request: request.chars().take(256).collect(), reason: reason.into() });
    }

    fn progress(&self, record: &TransferRecord) {
        let _ = self.0.send(ServeEvent::Progress {
            protocol: record.protocol,
            client: record.client,
            path: record.path.clone(),
            bytes: record.start + record.bytes,
            size: record.size,
        });
    }

    fn transfer(&self, t: Transfer) {
        let secs = t.duration.as_secs_f64().max(1e-6);
        let rate = (t.bytes as f64 / secs) / (1024.0 * 1024.0);
        tracing::info!(
            protocol = ?t.protocol,
            client = %t.client,
            path = %t.path,
            bytes = t.bytes,
            seconds = format_args!("{:.3}", t.duration.as_secs_f64()),
            mib_per_s = format_args!("{rate:.1}"),
            complete = t.complete,
            "transfer"
        );
        let _ = self.0.send(ServeEvent::Transfer(t));
    }
}

/// A slot among a server's concurrent transfers or sessions; given back on drop.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a slot if fewer than `max` are taken.
    pub fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok().map(|_| Slot(counter.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Records one transfer and reports it when dropped, however it ended.
#[derive(Debug)]
pub struct TransferRecord {
    events: Events,
    protocol: Protocol,
    client: SocketAddr,
    path: String,
    size: u64,
    start: u64,
    bytes: u64,
    started: Instant,
    _slot: Option<Slot>,
    _in_flight: InFlightGuard,
}

impl TransferRecord {
    pub fn new(events: &Events, protocol: Protocol, client: SocketAddr, path: &str, size: u64, start: u64) -> Self {
        let _in_flight = events.in_flight().start(protocol);
        TransferRecord {
            events: events.clone(),
            protocol,
            client,
            path: path.to_string(),
            size,
            start,
            bytes: 0,
            started: Instant::now(),
            _slot: None,
            _in_flight,
        }
    }

    /// Counts `n` more bytes sent, reporting progress at each step.
    fn add(&mut self, n: u64) {
        let before = self.bytes / PROGRESS_STEP;
        self.bytes += n;
        if self.bytes / PROGRESS_STEP != before && self.start + self.bytes < self.size {
            self.events.progress(self);
        }
    }

    /// Holds `slot` until the transfer ends.
    pub fn with_slot(mut self, slot: Slot) -> Self {
        self._slot = Some(slot);
        self
    }
}

impl Drop for TransferRecord {
    fn drop(&mut self) {
        self.events.transfer(Transfer {
            protocol: self.protocol,
            client: self.client,
            path: std::mem::take(&mut self.path),
            bytes: self.bytes,
            size: self.size,
            started_at_offset: self.start,
            duration: self.started.elapsed(),
            complete: self.start + self.bytes >= self.size,
            ended: Instant::now(),
        });
    }
}

/// Reads a [`BootFile`] from an offset, for either server's async runtime.
///
/// The two runtimes refill the buffer differently (see `crate::blocking`):
/// TFTP has a thread of its own and reads inline; FTP runs on tokio's
/// workers, so each refill of an ISO file runs on the blocking pool, one
/// hop per 256 KiB chunk.
#[derive(Debug)]
pub struct FileReader {
    file: BootFile,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
    buf_len: usize,
    /// A refill running on the blocking pool (FTP): the buffer travels with it.
    refill: Option<tokio::task::JoinHandle<(Vec<u8>, io::Result<usize>)>>,
    record: TransferRecord,
}

impl FileReader {
    pub fn new(file: BootFile, start: u64, record: TransferRecord) -> FileReader {
        let chunk = (file.size().saturating_sub(start)).min(READ_CHUNK as u64) as usize;
        FileReader { file, pos: start, buf: vec![0; chunk.max(1)], buf_start: start, buf_len: 0, refill: None, record }
    }

    fn buffered(&self) -> bool {
        self.pos < self.buf_start + self.buf_len as u64
    }

    /// Hands out what the buffer holds at `pos`.
    fn take(&mut self, out: &mut [u8]) -> usize {
        let offset = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf_len - offset);
        out[..n].copy_from_slice(&self.buf[offset..offset + n]);
        self.pos += n as u64;
        self.record.add(n as u64);
        n
    }

    /// A refill's outcome: `Ok(false)` at the end of the file.
    fn refilled(&mut self, read: io::Result<usize>) -> io::Result<bool> {
        // A file that shrank under us (the ISO replaced while serving)
        // ends the transfer with an error rather than short data.
        let n = read?;
        self.buf_start = self.pos;
        self.buf_len = n;
        Ok(n > 0)
    }

    /// Inline read, for the TFTP server's own thread.
    fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.buffered() {
            let read = self.file.read_at(self.pos, &mut self.buf);
            if !self.refilled(read)? {
                return Ok(0);
            }
        }
        Ok(self.take(out))
    }
}

impl futures::io::AsyncRead for FileReader {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().read_some(out))
    }
}

impl tokio::io::AsyncRead for FileReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.buffered() {
                let n = this.take(out.initialize_unfilled());
                out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let BootFile::Memory(_) = this.file {
                // Bytes in memory: nothing to wait for.
                let n = this.read_some(out.initialize_unfilled())?;
                out.advance(n);
                return Poll::Ready(Ok(()));
            }
            let refill = this.refill.get_or_insert_with(|| {
                let (file, pos, mut buf) = (this.file.clone(), this.pos, std::mem::take(&mut this.buf));
                tokio::task::spawn_blocking(move || {
                    let read = file.read_at(pos, &mut buf);
                    (buf, read)
                })
            });
            let (buf, read) = match Pin::new(refill).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(done)) => done,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            };
            this.refill = None;
            this.buf = buf;
            if !this.refilled(read)? {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// A byte range of a [`BootFile`] as a stream of chunks, for HTTP bodies.
///
/// Each chunk is read on the blocking pool straight into the buffer hyper
/// sends (no copy in between), and the next one is read while the current
/// one is being sent: at most two chunks (512 KiB) per transfer in memory.
#[derive(Debug)]
pub struct ChunkStream {
    file: BootFile,
    /// Where the next read starts.
    next_at: u64,
    end: u64,
    reading: Option<tokio::task::JoinHandle<io::Result<bytes::Bytes>>>,
    record: TransferRecord,
}

impl ChunkStream {
    /// Bytes `start..end` of `file`.
    pub fn new(file: BootFile, start: u64, end: u64, record: TransferRecord) -> ChunkStream {
        let mut stream = ChunkStream { file, next_at: start, end, reading: None, record };
        stream.read_ahead();
        stream
    }

    /// Starts reading the next chunk, if there is one.
    fn read_ahead(&mut self) {
        if self.next_at >= self.end {
            return;
        }
        let (file, at) = (self.file.clone(), self.next_at);
        let len = (self.end - at).min(READ_CHUNK as u64) as usize;
        self.next_at += len as u64;
        self.reading = Some(tokio::task::spawn_blocking(move || {
            let mut buf = bytes::BytesMut::zeroed(len);
            let mut done = 0;
            while done < len {
                match file.read_at(at + done as u64, &mut buf[done..])? {
                    // The ISO shrank under us: an error, never short data.
                    0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ended early")),
                    n => done += n,
                }
            }
            Ok(buf.freeze())
        }));
    }
}

impl futures::Stream for ChunkStream {
    type Item = io::Result<bytes::Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(reading) = this.reading.as_mut() else { return Poll::Ready(None) };
        let chunk = match Pin::new(reading).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(chunk)) => chunk,
            Poll::Ready(Err(e)) => Err(io::Error::other(e)),
        };
        this.reading = None;
        match chunk {
            Ok(chunk) => {
                this.record.add(chunk.len() as u64);
                this.read_ahead();
                Poll::Ready(Some(Ok(chunk)))
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

/// Counts what passes through another tokio reader (for `--tree` files).
pub struct Counted<R> {
    inner: R,
    record: TransferRecord,
}

impl<R> Counted<R> {
    pub fn new(inner: R, record: TransferRecord) -> Self {
        Counted { inner, record }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = out.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, out);
        this.record.add((out.filled().len() - before) as u64);
        result
    }
}
