//! A graceful stop: the transfers in flight, counted per protocol.
//!
//! As mini-redis does on shutdown, a server that is told to stop first
//! stops accepting, then lets what it is sending finish, and only then
//! closes what is left (idle FTP sessions, keep-alive HTTP connections).
//! Every transfer holds an [`InFlightGuard`] from its first byte to its end
//! (the same span as its `TransferRecord`), so "nothing left to finish" is
//! a count reaching zero, not a guess. `Servers::stop` bounds the wait.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::Protocol;

/// Transfers in flight, per protocol.
#[derive(Debug, Default)]
pub struct InFlight {
    counts: [AtomicUsize; 3],
    ended: Notify,
}

fn slot(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Tftp => 0,
        Protocol::Ftp => 1,
        Protocol::Http => 2,
    }
}

impl InFlight {
    /// Counts one transfer until the guard is dropped.
    pub fn start(self: &Arc<Self>, protocol: Protocol) -> InFlightGuard {
        self.counts[slot(protocol)].fetch_add(1, Ordering::AcqRel);
        InFlightGuard { in_flight: self.clone(), protocol }
    }

    pub fn count(&self, protocol: Protocol) -> usize {
        self.counts[slot(protocol)].load(Ordering::Acquire)
    }

    /// Returns once no transfer of `protocol` is in flight.
    pub async fn idle(&self, protocol: Protocol) {
        loop {
            // Registered before the check, so an end between the two is not missed.
            let ended = self.ended.notified();
            if self.count(protocol) == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// One transfer in flight.
#[derive(Debug)]
pub struct InFlightGuard {
    in_flight: Arc<InFlight>,
    protocol: Protocol,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.in_flight.counts[slot(self.protocol)].fetch_sub(1, Ordering::AcqRel);
        self.in_flight.ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_the_last_transfer_of_its_protocol_only() {
        let in_flight = Arc::new(InFlight::default());
        let ftp = in_flight.start(Protocol::Ftp);
        let _tftp = in_flight.start(Protocol::Tftp);
        assert_eq!(in_flight.count(Protocol::Ftp), 1);
        let waiting = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.idle(Protocol::Ftp).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "an FTP transfer is still in flight");
        drop(ftp);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting).await.expect("idle once it ended").unwrap();
        in_flight.idle(Protocol::Http).await;
    }
}
