//! Where blocking host work runs.
//!
//! The rule, for every part of pxelab:
//! - **libvirt** calls block on an RPC to libvirtd: they go through
//!   [`crate::virt::Libvirt::call`].
//! - **Everything else that can wait on the host** (a subprocess such as
//!   iptables, reading or rewriting a state file, polling a serial log, a
//!   socket probe with a timeout) goes through [`run`].
//! - The parts stay synchronous (`firewall.rs`, `read_appended`,
//!   `record::write`, doctor's probes): the lab decides where they run, so
//!   the same function serves a test, a blocking CLI verb and the runtime.
//! - Two exceptions, each for a reason. The TFTP server's reads: it has a
//!   thread of its own (see `serve/tftp.rs`), so its `pread`s block nothing
//!   else (FTP's reads of the ISO, on tokio's workers, go through [`run`] a
//!   chunk at a time, `serve/transfer.rs`). And the journal's records
//!   (`lab/journal.rs`): a host change must wait for its record anyway, it
//!   is a few small writes and an fsync once per change, and keeping them
//!   inline keeps "record, then change" visibly in order at each call site.
//!
//! Both boundaries run on tokio's blocking pool, never on the workers that
//! serve FTP and drive the lab's event loop.

/// Runs `f` on tokio's blocking pool and waits for it.
///
/// A panic in `f` is re-raised here: it is a bug, and hiding it behind an
/// error would make it look like a host problem.
pub async fn run<T, F>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled only when the runtime shuts down, after every verb returned.
        Err(e) => panic!("blocking task cancelled: {e}"),
    }
}
