//! The lab's record of its VMs' serial consoles.
//!
//! A lab reads each VM's console through libvirt ([`crate::virt::console`]),
//! the same way for a local and a remote libvirt host, and appends what it
//! reads to a file on this host (the VM's `serial_log`). libvirt gives a
//! console to one reader at a time and replays nothing, so the record is
//! how everyone else sees it: `vm console` prints and follows it, and the
//! timeout report quotes it.
//!
//! A VM created by the lab hands its console over at creation (it was
//! opened before the guest ran). A VM that joined later, or whose stream
//! ended (libvirtd restarted, someone forced it off with `virsh console
//! --force`), is opened again on the next poll while it runs.
//!
//! The lab also answers iPXE's "Press Ctrl-B" prompt with Enter (see
//! [`IPXE_PROMPT`]): the one key pxelab types, and only on a prompt still
//! waiting.
//!
//! Whoever holds a console stream (the lab, `vm console -f`) also holds a
//! shared `flock` on the VM's record, and removing a VM waits for those
//! holds to go between stopping the domain and undefining it: libvirtd
//! deadlocks when a console stream is closed at the instant its domain is
//! freed (its console-device lock taken against the stream's, in opposite
//! orders), and then answers no one until it is killed. Stopping ends every
//! stream; each reader sees that within a poll and lets go.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::labs::{flock, Lock};
use crate::blocking;
use crate::virt::console::Console;
use crate::virt::Libvirt;

/// iPXE's shell prompt. Debian's QEMU ROMs wait 2 s on it for Ctrl-B
/// (`BANNER_TIMEOUT 20`) before they boot, on every PXE boot; any other
/// key ends the wait at once (iPXE's `prompt()`), and the ROM reads keys
/// from the serial console too. A ROM built without the wait would need
/// iPXE's source, which Debian's archive does not serve here.
pub(crate) const IPXE_PROMPT: &[u8] = b"Press Ctrl-B for the iPXE command line...";

/// The key that answers it: Enter, the default choice wherever it might
/// land if iPXE had already moved on (a boot menu boots its default).
const ANSWER: &[u8] = b"\r";

/// The consoles a lab holds, by VM name.
#[derive(Default)]
pub(crate) struct Consoles {
    open: HashMap<String, Held>,
    /// VMs whose iPXE prompt was answered since the last [`Self::take_answered`].
    answered: Vec<String>,
}

/// An open console stream and the hold on its record. Fields drop in
/// order: the stream is closed before the hold is let go.
pub(crate) struct Held {
    pub console: Console,
    _hold: Option<Lock>,
    /// The end of what was read, where a prompt split between reads starts.
    tail: Vec<u8>,
}

impl Held {
    /// Takes the hold on `record` beside `console` (blocking: a file lock).
    /// None when `record` cannot be locked: a VM being removed holds it
    /// exclusively, and its stream is about to end anyway.
    pub fn new(console: Console, record: &Path) -> Held {
        let hold = flock(record, libc::LOCK_SH | libc::LOCK_NB).unwrap_or_else(|e| {
            tracing::debug!("cannot hold the console record {}: {e}", record.display());
            None
        });
        Held { console, _hold: hold, tail: Vec::new() }
    }
}

/// Whether `new`, read after `tail`, shows iPXE's prompt still waiting:
/// the prompt is there and nothing after it clears it (iPXE rubs it out
/// with backspaces once a key came or the wait ran out). Keeps in `tail`
/// the end that could begin the next prompt.
fn prompt_waiting(tail: &mut Vec<u8>, new: &[u8]) -> bool {
    tail.extend_from_slice(new);
    let found = tail.windows(IPXE_PROMPT.len()).rposition(|w| w == IPXE_PROMPT);
    let waiting = found.is_some_and(|at| !tail[at + IPXE_PROMPT.len()..].contains(&b'\x08'));
    let keep_from = match found {
        Some(at) => at + IPXE_PROMPT.len(),
        None => tail.len().saturating_sub(IPXE_PROMPT.len() - 1),
    };
    tail.drain(..keep_from);
    waiting
}

/// Waits until no reader holds `record`'s console, up to `within`;
/// false when one still does. Blocking.
pub(crate) fn wait_released(record: &Path, within: Duration) -> bool {
    if !record.exists() {
        return true;
    }
    let deadline = Instant::now() + within;
    loop {
        match flock(record, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => return false,
            // Taken, or the record cannot be locked at all: nothing to wait for.
            Ok(Some(_)) | Err(_) => return true,
        }
    }
}

/// A VM whose console the lab follows: its name and where its record goes.
pub(crate) struct Followed {
    pub name: String,
    pub record: PathBuf,
}

impl Consoles {
    /// Hands over a console opened when the VM was created.
    pub async fn insert(&mut self, name: &str, record: &Path, console: Console) {
        let record = record.to_path_buf();
        let held = blocking::run(move || Held::new(console, &record)).await;
        self.open.insert(name.to_string(), held);
    }

    /// Whether the lab holds `name`'s console (its stream has not ended).
    pub fn is_open(&self, name: &str) -> bool {
        self.open.contains_key(name)
    }

    /// Reads every followed VM's console once, without waiting: opens the
    /// ones not open, drains each, appends to the records. Returns the new
    /// text per VM. A failure costs this poll's text, never the lab.
    pub async fn poll(&mut self, libvirt: &Libvirt, vms: Vec<Followed>) -> Vec<(String, Vec<u8>)> {
        self.read(libvirt, vms, true).await
    }

    /// As [`Self::poll`], but only the consoles already open: for VMs that
    /// stopped, whose streams still hold their last bytes.
    pub async fn poll_open(&mut self, libvirt: &Libvirt, vms: Vec<Followed>) -> Vec<(String, Vec<u8>)> {
        self.read(libvirt, vms, false).await
    }

    async fn read(&mut self, libvirt: &Libvirt, vms: Vec<Followed>, reopen: bool) -> Vec<(String, Vec<u8>)> {
        let mut open = std::mem::take(&mut self.open);
        let names: Vec<(String, PathBuf)> = vms.iter().map(|v| (v.name.clone(), v.record.clone())).collect();
        let read = libvirt
            .call(move |conn| {
                let (mut out, mut answered) = (Vec::new(), Vec::new());
                for (name, record) in names {
                    if !open.contains_key(&name) {
                        if !reopen {
                            continue;
                        }
                        // Not running (yet, or any more), or held by another reader.
                        match Console::open(conn, &name, false) {
                            Ok(console) => {
                                tracing::debug!("following {name}'s serial console");
                                open.insert(name.clone(), Held::new(console, &record));
                            }
                            Err(e) => {
                                tracing::trace!("{name}'s console: {e}");
                                continue;
                            }
                        }
                    }
                    let console = open.get_mut(&name).expect("opened above");
                    match console.console.drain() {
                        Ok(drained) => {
                            if prompt_waiting(&mut console.tail, &drained.bytes) {
                                match console.console.send(ANSWER) {
                                    Ok(true) => answered.push(name.clone()),
                                    Ok(false) => tracing::debug!("{name}'s console took no key now; iPXE waits out its prompt"),
                                    Err(e) => tracing::debug!("{name}'s console: {e}"),
                                }
                            }
                            if drained.ended {
                                open.remove(&name);
                            }
                            if !drained.bytes.is_empty() {
                                out.push((name, drained.bytes));
                            }
                        }
                        Err(e) => {
                            tracing::debug!("{name}'s console: {e}");
                            open.remove(&name);
                        }
                    }
                }
                Ok((open, out, answered))
            })
            .await;
        let Ok((open, out, answered)) = read else {
            // libvirtd went away: every stream died with it; reopen next poll.
            return Vec::new();
        };
        self.open = open;
        self.answered.extend(answered);
        let records: Vec<(PathBuf, Vec<u8>)> =
            out.iter().filter_map(|(name, bytes)| vms.iter().find(|v| &v.name == name).map(|v| (v.record.clone(), bytes.clone()))).collect();
        if !records.is_empty() {
            blocking::run(move || {
                for (path, bytes) in records {
                    if let Err(e) = append(&path, &bytes) {
                        tracing::warn!("cannot record the serial console in {}: {e}", path.display());
                    }
                }
            })
            .await;
        }
        out
    }

    /// The VMs whose iPXE prompt the lab answered since the last call.
    pub fn take_answered(&mut self) -> Vec<String> {
        std::mem::take(&mut self.answered)
    }

    /// Closes every console (the lab is ending). Closing is a call to
    /// libvirtd: off the runtime.
    pub async fn close(&mut self) {
        let open = std::mem::take(&mut self.open);
        blocking::run(move || drop(open)).await;
    }
}

/// Adds `bytes` to the console record at `path` (blocking).
pub(crate) fn append(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(bytes)
}

/// QEMU's own copy of the console (see `VmSpec::qemu_log`), beside the record.
pub(crate) fn qemu_log_of(record: &Path) -> PathBuf {
    let name = record.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".serial.log").unwrap_or(&name);
    record.with_file_name(format!("{stem}.qemu.log"))
}

/// What QEMU's copy has past the end of the record: the last instant of a
/// guest that powered off, which the console stream lost. Appended to the
/// record and returned; nothing when there is no copy (a remote host).
pub(crate) fn recover_tail(record: &Path) -> std::io::Result<Vec<u8>> {
    let qemu = match std::fs::read(qemu_log_of(record)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let seen = std::fs::read(record).unwrap_or_default();
    let missing = missing_tail(&seen, &qemu).to_vec();
    if !missing.is_empty() {
        append(record, &missing)?;
    }
    Ok(missing)
}

/// The part of `full` after the last place where `seen`'s end (up to 256
/// bytes of it) stands: the two copies start at different moments, so the
/// end of what was seen is what lines them up. All of `full` when `seen` is
/// empty; nothing when `seen`'s end is not in `full` (a copy that cannot be
/// lined up adds nothing rather than repeating lines).
fn missing_tail<'a>(seen: &[u8], full: &'a [u8]) -> &'a [u8] {
    if seen.is_empty() {
        return full;
    }
    let end = &seen[seen.len().saturating_sub(256)..];
    match full.windows(end.len()).rposition(|w| w == end) {
        Some(at) => &full[at + end.len()..],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_the_stream_lost_is_found_after_the_records_end() {
        let full = b"SeaBIOS\nPXELAB-STAGE: stage2 md5 a0\nPXELAB-STAGE: installer ready\n[ 5.1] reboot: Power down\n";
        let cut = b"SeaBIOS\nPXELAB-STAGE: stage2 md5 a0\nPXELAB-";
        assert_eq!(missing_tail(cut, full), b"STAGE: installer ready\n[ 5.1] reboot: Power down\n");
        assert_eq!(missing_tail(full, full), b"");
        assert_eq!(missing_tail(b"", full), full);
        assert_eq!(missing_tail(b"something else entirely", full), b"", "no line-up, nothing added");
        assert_eq!(qemu_log_of(Path::new("/s/logs/pxelab-oak-1.serial.log")), PathBuf::from("/s/logs/pxelab-oak-1.qemu.log"));
    }

    #[test]
    fn only_a_prompt_still_waiting_is_answered_even_split_between_reads() {
        let mut tail = Vec::new();
        assert!(!prompt_waiting(&mut tail, b"iPXE initialising devices...ok\r\n\r\nPress Ctrl-B for the iPXE"));
        assert!(prompt_waiting(&mut tail, b" command line..."), "the prompt's end came in the next read");
        assert!(!prompt_waiting(&mut tail, b"\x08 \x08\x08 \x08net0: 52:54:00:12:34:56"), "the same prompt is not answered twice");
        let over = [IPXE_PROMPT, b"\x08 \x08".as_slice(), b"net0: ...".as_slice()].concat();
        assert!(!prompt_waiting(&mut Vec::new(), &over), "rubbed out already: iPXE moved on");
        let again = [b"reboot\r\n".as_slice(), IPXE_PROMPT].concat();
        assert!(prompt_waiting(&mut tail, &again), "a later boot's prompt is answered too");
        assert!(tail.len() < IPXE_PROMPT.len(), "the tail stays small: {}", tail.len());
        let mut quiet = Vec::new();
        for _ in 0..1000 {
            assert!(!prompt_waiting(&mut quiet, b"Linux version 6.1 ... lots of console output\r\n"));
        }
        assert!(quiet.len() < IPXE_PROMPT.len());
    }

    #[test]
    fn removal_waits_for_every_reader_to_let_go_of_the_console() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("vm.serial.log");
        assert!(wait_released(&record, Duration::ZERO), "no record, no reader");
        // Two readers' holds, as `Held::new` takes them.
        let first = flock(&record, libc::LOCK_SH | libc::LOCK_NB).unwrap().expect("shared");
        let second = flock(&record, libc::LOCK_SH | libc::LOCK_NB).unwrap().expect("shared beside another");
        let started = Instant::now();
        assert!(!wait_released(&record, Duration::from_millis(200)), "a reader holds it");
        assert!(started.elapsed() >= Duration::from_millis(200), "it waited the time given");
        drop(first);
        assert!(!wait_released(&record, Duration::ZERO), "the other reader still holds it");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(second);
        });
        assert!(wait_released(&record, Duration::from_secs(5)), "released while waiting");
        release.join().unwrap();
    }

    #[test]
    fn recovering_appends_to_the_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("vm.serial.log");
        std::fs::write(&record, b"a\nPXELAB-").unwrap();
        assert_eq!(recover_tail(&record).unwrap(), b"", "no QEMU copy: nothing to recover");
        std::fs::write(qemu_log_of(&record), b"a\nPXELAB-STAGE: installer ready\n").unwrap();
        assert_eq!(recover_tail(&record).unwrap(), b"STAGE: installer ready\n");
        assert_eq!(std::fs::read(&record).unwrap(), b"a\nPXELAB-STAGE: installer ready\n");
        assert_eq!(recover_tail(&record).unwrap(), b"", "a second time adds nothing");
    }
}
