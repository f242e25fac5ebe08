//! HTTP connections: how many may be open, and which one makes room.
//!
//! What costs memory is a body in flight (up to 512 KiB, see `http.rs`),
//! not a socket: an idle connection is a task and a small read buffer. So
//! bodies are bounded on their own (`max_http_transfers`, `503` past it),
//! and sockets get a larger bound, `max_http_sockets`. When that is full, a
//! new client is not refused: the oldest connection with no request in
//! progress (one that has sent nothing yet, or an idle keep-alive) is
//! closed to make room. A local client holding hundreds of idle sockets
//! therefore delays nobody, and only connections that are all busy sending
//! turn a new client away.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Every open HTTP connection, oldest first.
#[derive(Debug)]
pub struct Conns {
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    open: BTreeMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    requests: Arc<AtomicUsize>,
    shed: CancellationToken,
}

/// An admitted connection: removed from the registry when dropped.
#[derive(Debug)]
pub struct Conn {
    conns: Arc<Conns>,
    id: u64,
    requests: Arc<AtomicUsize>,
    /// Cancelled when the connection is closed to make room.
    pub shed: CancellationToken,
}

/// A request in progress on its connection, until its response body ends.
#[derive(Debug)]
pub struct InProgress(Arc<AtomicUsize>);

impl Conns {
    pub fn new(max: usize) -> Arc<Conns> {
        Arc::new(Conns { max, inner: Mutex::default() })
    }

    /// Admits a new connection, closing the oldest idle one if the table is
    /// full; `None` when every open connection has a request in progress.
    pub fn admit(self: &Arc<Self>) -> Option<Conn> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.open.len() >= self.max {
            let idle = inner.open.iter().find(|(_, e)| e.requests.load(Ordering::Acquire) == 0).map(|(id, _)| *id)?;
            if let Some(entry) = inner.open.remove(&idle) {
                entry.shed.cancel();
            }
        }
        let id = inner.next;
        inner.next += 1;
        let (requests, shed) = (Arc::new(AtomicUsize::new(0)), CancellationToken::new());
        inner.open.insert(id, Entry { requests: requests.clone(), shed: shed.clone() });
        Some(Conn { conns: self.clone(), id, requests, shed })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).open.len()
    }
}

impl Conn {
    /// Marks a request in progress (its head is in) until the returned
    /// guard, held by the response body, is dropped.
    pub fn request(&self) -> InProgress {
        self.requests.fetch_add(1, Ordering::AcqRel);
        InProgress(self.requests.clone())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.conns.inner.lock().unwrap_or_else(|e| e.into_inner()).open.remove(&self.id);
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_closes_the_oldest_idle_connection_and_never_a_busy_one() {
        let conns = Conns::new(3);
        let (a, b, c) = (conns.admit().unwrap(), conns.admit().unwrap(), conns.admit().unwrap());
        let busy_a = a.request();
        // Full: b is the oldest idle one.
        let d = conns.admit().unwrap();
        assert!(!a.shed.is_cancelled() && b.shed.is_cancelled() && !c.shed.is_cancelled());
        assert_eq!(conns.len(), 3);
        drop(b);
        assert_eq!(conns.len(), 3, "a shed connection's own drop removes nothing more");
        let _busy = (c.request(), d.request());
        assert!(conns.admit().is_none(), "all busy: the new one is turned away");
        drop(busy_a);
        let e = conns.admit().unwrap();
        assert!(a.shed.is_cancelled(), "a went idle again and is the oldest");
        drop((c, d, e));
        assert_eq!(conns.len(), 0);
    }
}
