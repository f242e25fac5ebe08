//! The HTTP server: hyper 1.x (HTTP/1.1), read-only, serving the boot tree
//! at `/` (the same tree TFTP serves: `pxelinux.0`, the menus, `iso/…`) and
//! the ISO image itself at `/<ISO file name>` (what Ubuntu's casper fetches
//! from `url=`).
//!
//! Why it is shaped this way:
//! - One normalisation point: a request's path is percent-decoded once and
//!   handed to [`BootTree::open`], the same function TFTP uses. Encoded
//!   traversal (`%2e%2e`, `%2f`), NUL and backslashes are refused there, and
//!   nothing outside the tree exists. Query strings are ignored.
//! - Files are streamed from the ISO in place as [`ChunkStream`]s: 256 KiB
//!   positioned reads on tokio's blocking pool, each straight into the
//!   buffer hyper sends, the next read while the current chunk goes out; so
//!   a transfer holds at most 512 KiB whatever the file's size.
//! - `GET` and `HEAD`, one `Range` (`bytes=A-B`, `A-`, `-N`) answered 206 or
//!   416 as RFC 9110 says (several ranges get the whole file, which the RFC
//!   allows), `Last-Modified` (the ISO's mtime) and `If-Modified-Since`
//!   (304), keep-alive.
//! - Bounded by what costs memory: at most `max_http_transfers` bodies in
//!   flight (more get `503`), headers of at most 16 KiB. Sockets are bounded
//!   too (`max_http_sockets`), but a full table closes its oldest idle
//!   connection rather than turning a new client away (`conns.rs`); and a
//!   connection that has not sent a whole request head within
//!   `http_header_timeout` (slowloris, or an idle keep-alive) is closed.
//! - pxelab accepts connections itself, as for FTP, so `--allow` is applied
//!   before a client gets an answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::allow::AllowList;
use super::conns::{Conn, Conns, InProgress};
use super::transfer::{ChunkStream, Events, Protocol, Slot, TransferRecord};
use super::Limits;
use crate::boot::{BootFile, BootTree, OpenError};
use crate::mac::MacAddr;
use tokio_util::sync::CancellationToken;

/// `body`, holding `guard` until it is dropped (sent, or the connection gone).
fn holding(body: Body, guard: InProgress) -> Body {
    body.map_frame(move |frame| {
        let _held = &guard;
        frame
    })
    .boxed()
}

/// Largest request head accepted (request line and headers).
const MAX_HEAD: usize = 16 * 1024;

type Body = BoxBody<Bytes, std::io::Error>;

/// What the HTTP server serves.
struct Site {
    tree: Arc<BootTree>,
    /// Bodies in flight, and how many may be.
    transfers: Arc<AtomicUsize>,
    max_transfers: usize,
    /// `/<name>` is the ISO image itself.
    iso_name: String,
    /// `Last-Modified` of every file: the ISO's mtime (generated files
    /// change only when the ISO does, or when pxelab restarts).
    modified: SystemTime,
    events: Events,
}

/// Binds `addr` and returns the server's future and its bound address.
pub async fn start(
    addr: SocketAddr,
    tree: Arc<BootTree>,
    allow: AllowList,
    events: Events,
    limits: &Limits,
    stop: CancellationToken,
) -> std::io::Result<(impl std::future::Future<Output = ()>, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let iso = tree.iso().clone();
    let iso_name = iso.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "image.iso".into());
    let modified = std::fs::metadata(iso.path()).and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now());
    let (transfers, max_transfers) = (Arc::new(AtomicUsize::new(0)), limits.max_http_transfers);
    let site = Arc::new(Site { tree, transfers, max_transfers, iso_name, modified, events: events.clone() });
    let conns = Conns::new(limits.max_http_sockets);
    let header_timeout = limits.http_header_timeout;
    let run = async move {
        // Connections live in this set: when this future is dropped, every
        // transfer in flight stops with it. On `stop`, the listener closes
        // and each connection finishes the response it is sending, then
        // closes (hyper's graceful shutdown); the future ends when the last
        // one has, within the deadline `Servers::stop` gives it.
        let mut open = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
                Some(_) = open.join_next() => continue,
            };
            let (mut stream, client) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !allow.allows(client.ip()) {
                events.refused(Protocol::Http, client, "(connection)", "client not in --allow");
                continue;
            }
            let Some(conn) = conns.admit() else {
                events.refused(Protocol::Http, client, "(connection)", "every connection is busy sending");
                open.spawn(async move {
                    let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                });
                continue;
            };
            open.spawn(connection(stream, client, site.clone(), conn, stop.clone(), header_timeout));
        }
        drop(listener);
        while open.join_next().await.is_some() {}
    };
    Ok((run, local))
}

/// One client's connection, until it closes, is closed to make room, or the
/// server stops (then the response being sent is finished first).
async fn connection(stream: tokio::net::TcpStream, client: SocketAddr, site: Arc<Site>, conn: Conn, stop: CancellationToken, header_timeout: Duration) {
    let shed = conn.shed.clone();
    let conn = Arc::new(conn);
    let service = hyper::service::service_fn(move |request| {
        let (site, in_progress) = (site.clone(), conn.request());
        // The connection is busy until the response's body ends.
        async move { Ok::<_, Infallible>(site.answer(client, request).map(|body| holding(body, in_progress))) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(MAX_HEAD).keep_alive(true);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        // Closed to make room for a new client (see `conns.rs`).
        _ = shed.cancelled() => return,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%client, "HTTP connection ended: {e}");
    }
}

impl Site {
    fn answer(&self, client: SocketAddr, request: Request<Incoming>) -> Response<Body> {
        let head = request.method() == Method::HEAD;
        if request.method() != Method::GET && !head {
            self.events.refused(Protocol::Http, client, request.uri().path(), &format!("method {} (read-only server)", request.method()));
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let raw = request.uri().path();
        let Some(path) = percent_decode(raw) else {
            self.events.refused(Protocol::Http, client, raw, "bad percent-encoding");
            return status(StatusCode::BAD_REQUEST);
        };
        let file = match self.open(&path) {
            Ok(file) => file,
            Err(OpenError::Rejected(why)) => {
                self.events.refused(Protocol::Http, client, &path, &why.to_string());
                return status(StatusCode::FORBIDDEN);
            }
            Err(OpenError::NotFound) => {
                self.events.refused(Protocol::Http, client, &path, "no such file");
                return status(StatusCode::NOT_FOUND);
            }
        };
        let size = file.size();
        let last_modified = httpdate::fmt_http_date(self.modified);
        if let Some(since) = request.headers().get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) {
            if httpdate::parse_http_date(since).is_ok_and(|since| secs(self.modified) <= secs(since)) {
                let mut response = status(StatusCode::NOT_MODIFIED);
                response.headers_mut().insert(header::LAST_MODIFIED, value(&last_modified));
                return response;
            }
        }
        // If-Range with another date: the client's copy is stale, send it all.
        let if_range_ok = request.headers().get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| v.trim() == last_modified);
        let range = match request.headers().get(header::RANGE).and_then(|v| v.to_str().ok()) {
            Some(spec) if if_range_ok => match parse_range(spec, size) {
                RangeAnswer::Whole => None,
                RangeAnswer::Part(start, end) => Some((start, end)),
                RangeAnswer::Unsatisfiable => {
                    let mut response = status(StatusCode::RANGE_NOT_SATISFIABLE);
                    response.headers_mut().insert(header::CONTENT_RANGE, value(&format!("bytes */{size}")));
                    return response;
                }
            },
            _ => None,
        };
        let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
        let length = if size == 0 { 0 } else { end - start + 1 };
        let shown = format!("/{}", path.trim_start_matches('/'));
        let body: Body = if head || length == 0 {
            Empty::new().map_err(|never| match never {}).boxed()
        } else {
            let Some(slot) = Slot::take(&self.transfers, self.max_transfers) else {
                self.events.refused(Protocol::Http, client, &shown, "too many transfers");
                return status(StatusCode::SERVICE_UNAVAILABLE);
            };
            let record = TransferRecord::new(&self.events, Protocol::Http, client, &shown, end + 1, start).with_slot(slot);
            let chunks = ChunkStream::new(file, start, end + 1, record);
            BodyExt::boxed(StreamBody::new(futures::StreamExt::map(chunks, |chunk| chunk.map(Frame::data))))
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, value(&length.to_string()));
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(header::LAST_MODIFIED, value(&last_modified));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        if range.is_some() {
            headers.insert(header::CONTENT_RANGE, value(&format!("bytes {start}-{end}/{size}")));
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        response
    }

    /// The boot tree's file, or the ISO image at `/<its file name>` (and at
    /// `/cdrom/<mac>/<its file name>`, where a lab VM's CD-ROM reads it).
    fn open(&self, path: &str) -> Result<BootFile, OpenError> {
        let cdrom = MacAddr::from_cdrom_path(path).is_some() && path.rsplit('/').next() == Some(self.iso_name.as_str());
        if cdrom || path.trim_start_matches('/') == self.iso_name {
            let iso = self.tree.iso().clone();
            let file = iso.whole_image();
            return Ok(BootFile::Iso { iso, file });
        }
        self.tree.open(path)
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed());
    *response.status_mut() = code;
    response
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `%XX` decoded once; `None` for a malformed escape or bytes that are not
/// UTF-8. What it decodes to (`..`, `/`, NUL) is then judged by the boot
/// tree like any other path.
pub fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable single byte range: send the whole file (200).
    Whole,
    /// Bytes `start..=end` (206).
    Part(u64, u64),
    /// A range wholly past the end (416).
    Unsatisfiable,
}

/// Reads one `bytes=` range (RFC 9110 §14.1.2).
pub fn parse_range(spec: &str, size: u64) -> RangeAnswer {
    let Some(ranges) = spec.trim().strip_prefix("bytes=") else { return RangeAnswer::Whole };
    if ranges.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = ranges.trim().split_once('-') else { return RangeAnswer::Whole };
    let (first, last) = (first.trim(), last.trim());
    match (first.parse::<u64>(), last.parse::<u64>()) {
        // -N: the last N bytes.
        (Err(_), Ok(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Part(size.saturating_sub(n), size - 1)
            }
        }
        (Ok(a), Err(_)) if last.is_empty() => {
            if a >= size {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Part(a, size - 1)
            }
        }
        (Ok(a), Ok(b)) if a <= b => {
            if a >= size {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Part(a, b.min(size - 1))
            }
        }
        _ => RangeAnswer::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        use RangeAnswer::*;
        assert_eq!(parse_range("bytes=0-99", 1000), Part(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), Part(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), Part(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), Part(0, 999));
        assert_eq!(parse_range("bytes=990-5000", 1000), Part(990, 999));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-1001", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Whole);
        assert_eq!(parse_range("items=0-1", 1000), Whole);
        assert_eq!(parse_range("bytes=x-y", 1000), Whole);
        assert_eq!(parse_range("bytes=5000000000-", 5_100_000_000), Part(5_000_000_000, 5_099_999_999));
    }

    #[test]
    fn percent_decoding_happens_once() {
        assert_eq!(percent_decode("/iso/a%20b").as_deref(), Some("/iso/a b"));
        assert_eq!(percent_decode("/%2e%2e/etc/passwd").as_deref(), Some("/../etc/passwd"));
        assert_eq!(percent_decode("/%252e%252e").as_deref(), Some("/%2e%2e"), "decoded once, not twice");
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%f"), None);
        assert_eq!(percent_decode("/%ff%fe"), None, "not UTF-8");
    }
}
