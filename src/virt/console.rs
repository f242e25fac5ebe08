//! A domain's serial console, read through libvirt (`virDomainOpenConsole`).
//!
//! pxelab reads what its VMs write on their serial port through a console
//! stream, not from a log file: a log file is a path on the libvirt host,
//! and with `-c qemu+ssh://…` that host is another machine. The stream
//! works the same over the local socket and over SSH, so one code path
//! serves both.
//!
//! The stream is opened non-blocking and drained by polling
//! ([`Console::drain`]): `up` already polls once a tick for leases, and a
//! non-blocking read returns at once when the guest wrote nothing, so no
//! thread is parked per VM and teardown never waits on a read.
//!
//! A pty console has one reader at a time: libvirt refuses a second one
//! (unless it forces the first off). Whoever holds it should keep a record
//! for the others; in pxelab that is the lab (see `lab/console.rs`).
//! Nothing is replayed: a stream carries what the guest writes from the
//! moment it opens, so a new VM is started paused, its console opened,
//! and only then resumed ([`super::domain::create`]).

use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

use super::VirtError;

/// The most read from one console per [`Console::drain`]: a guest that
/// floods its serial port cannot hold a poll up.
const DRAIN_LIMIT: usize = 1 << 20;

/// An open console stream.
pub struct Console {
    stream: sys::virStreamPtr,
}

// A stream is used by one thread at a time (whoever holds the `Console`);
// libvirt's objects may move between threads.
unsafe impl Send for Console {}

/// What one [`Console::drain`] found.
#[derive(Debug, Default)]
pub struct Drained {
    pub bytes: Vec<u8>,
    /// The stream ended (the domain stopped, or another reader forced it
    /// off): open it again to read on.
    pub ended: bool,
}

impl Console {
    /// Opens `name`'s serial console. With `force`, a reader that holds it
    /// already (a `virsh console`) is disconnected; without, that is an error.
    pub fn open(conn: &Connect, name: &str, force: bool) -> Result<Console, VirtError> {
        let dom = Domain::lookup_by_name(conn, name).map_err(|_| VirtError::NoDomain(name.to_string()))?;
        let stream = unsafe { sys::virStreamNew(conn.as_ptr(), sys::VIR_STREAM_NONBLOCK) };
        if stream.is_null() {
            return Err(VirtError::libvirt(format!("opening a stream for {name}'s console"), virt::error::Error::last_error()));
        }
        let console = Console { stream };
        // SAFE: refuse consoles libvirt cannot lock against a second reader.
        let flags = sys::VIR_DOMAIN_CONSOLE_SAFE | if force { sys::VIR_DOMAIN_CONSOLE_FORCE } else { 0 };
        if unsafe { sys::virDomainOpenConsole(dom.as_ptr(), std::ptr::null(), stream, flags) } < 0 {
            let e = virt::error::Error::last_error();
            return Err(VirtError::libvirt(format!("opening {name}'s serial console"), e));
        }
        Ok(console)
    }

    /// Reads whatever the guest wrote since the last drain, without waiting.
    pub fn drain(&mut self) -> Result<Drained, VirtError> {
        let mut out = Drained::default();
        let mut buf = [0u8; 16 * 1024];
        while out.bytes.len() < DRAIN_LIMIT {
            let n = unsafe { sys::virStreamRecv(self.stream, buf.as_mut_ptr().cast(), buf.len()) };
            match n {
                n if n > 0 => out.bytes.extend_from_slice(&buf[..n as usize]),
                0 => {
                    out.ended = true;
                    break;
                }
                // -2: nothing to read now.
                -2 => break,
                _ => {
                    let e = virt::error::Error::last_error();
                    // What was read is still the guest's; the caller sees the end.
                    if out.bytes.is_empty() {
                        return Err(VirtError::libvirt("reading a serial console", e));
                    }
                    out.ended = true;
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Types `bytes` on the console, as keys pressed, without waiting.
    /// False when the stream cannot take them now (the guest's UART is
    /// full): a key is worth one try, not a wait.
    pub fn send(&mut self, bytes: &[u8]) -> Result<bool, VirtError> {
        let n = unsafe { sys::virStreamSend(self.stream, bytes.as_ptr().cast(), bytes.len()) };
        match n {
            n if n >= 0 => Ok(n as usize == bytes.len()),
            -2 => Ok(false),
            _ => Err(VirtError::libvirt("typing on a serial console", virt::error::Error::last_error())),
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        // Abort, not finish: pxelab reads (and types one key now and then,
        // never waiting for it), and finishing waits for the server's
        // acknowledgement.
        unsafe {
            sys::virStreamAbort(self.stream);
            sys::virStreamFree(self.stream);
        }
    }
}
