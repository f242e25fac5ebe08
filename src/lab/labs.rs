//! Where each lab lives: one lab per libvirt network, each in a directory
//! of its own under the state directory, `labs/<network>` (with `@<hash>`
//! of the connection URI for a libvirt host other than this one's
//! `qemu:///system`). A lab's directory holds what the whole state
//! directory held when pxelab kept one lab: `lab.json`, the journal, the
//! consoles, the background log. So `up`, `down` and `status` do for one
//! lab what they always did, and labs on different networks never meet.
//!
//! A running lab holds `lock` in its directory (`flock`, exclusive) from
//! before it reads anything until it has restored the host. The lock, not
//! `lab.json`, is what makes a second lab on the same network impossible:
//! two `up` started at the same instant cannot both take it, where a
//! check of `lab.json` followed by a write let both through.
//!
//! A state directory from an older pxelab (one lab, its files at the top)
//! is listed as a lab like the others, so `status` shows it and `down`
//! undoes what it left.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::journal::Journal;
use super::record::{self, LabRecord};

/// The URI whose labs need no suffix: the local system libvirt.
const LOCAL_URI: &str = "qemu:///system";

/// The directory of the lab on `network` of the libvirt host at `uri`.
pub fn dir_of(state: &Path, uri: &str, network: &str) -> PathBuf {
    state.join("labs").join(dir_name(uri, network))
}

fn dir_name(uri: &str, network: &str) -> String {
    let mut name: String = network.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    if name.starts_with('.') || name.is_empty() {
        name.insert(0, '_');
    }
    if uri != LOCAL_URI {
        // FNV-1a: short, stable across versions, no dependency.
        let hash = uri.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        name.push_str(&format!("@{:08x}", hash as u32));
    }
    name
}

/// A lab directory that holds something: a `lab.json` (running or
/// crashed), or journal entries not undone yet.
#[derive(Debug, Clone)]
pub struct LabDir {
    pub path: PathBuf,
    pub record: Option<LabRecord>,
}

impl LabDir {
    /// Its network, from `lab.json` or, for a lab that left only its
    /// journal, from the journal's network entry.
    pub fn network(&self) -> Option<String> {
        if let Some(r) = &self.record {
            return Some(r.network.clone());
        }
        let journal = Journal::open(&self.path).ok()?;
        journal.networks().ok()?.into_iter().next().map(|n| n.network)
    }

    /// Whether a live process holds it.
    pub fn running(&self) -> bool {
        self.record.as_ref().is_some_and(|r| record::alive(r.pid))
    }
}

/// Every lab directory with something in it, the older layout's first,
/// then by name. A `lab.json` that cannot be read is an error naming it.
pub fn list(state: &Path) -> io::Result<Vec<LabDir>> {
    // The older layout (one lab, its files at the top) first.
    let mut dirs = vec![state.to_path_buf()];
    match std::fs::read_dir(state.join("labs")) {
        Ok(entries) => {
            let mut labs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
            labs.sort();
            dirs.extend(labs);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    for path in dirs {
        let record = record::read(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", record::path(&path).display())))?;
        if record.is_some() || pending(&path) {
            out.push(LabDir { path, record });
        }
    }
    Ok(out)
}

/// The labs running on `uri`'s libvirt host (unreadable state: none).
pub fn running(state: &Path, uri: &str) -> Vec<LabDir> {
    list(state).unwrap_or_default().into_iter().filter(|l| l.running() && l.record.as_ref().is_some_and(|r| r.uri == uri)).collect()
}

/// Whether `dir`'s journal has entries. An unreadable entry counts, and so
/// does a journal that is not a directory: `down` must report either.
fn pending(dir: &Path) -> bool {
    let journal = dir.join("journal");
    if !journal.exists() {
        return false;
    }
    !journal.is_dir() || Journal::open(dir).map(|j| j.pending().unwrap_or(1) > 0 || !j.unreadable().unwrap_or_default().is_empty()).unwrap_or(true)
}

/// A lab's lock, held while the value lives (the kernel drops it when the
/// process dies, `kill -9` included).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes `dir`'s lock; `Ok(None)` when another process holds it.
pub fn lock(dir: &Path) -> io::Result<Option<Lock>> {
    flock(&dir.join("lock"), libc::LOCK_EX | libc::LOCK_NB)
}

/// `flock(how)` on `path` (created if missing); `Ok(None)` when a
/// non-blocking lock is held by another process.
pub(crate) fn flock(path: &Path, how: libc::c_int) -> io::Result<Option<Lock>> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), how) } == 0 {
        return Ok(Some(Lock { _file: file }));
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
        e => Err(e),
    }
}

/// The host's VM-naming lock (`names.lock` in the state directory), taken
/// while a VM's name is chosen and its domain defined: two labs naming a
/// VM at the same instant would otherwise both take the first free name.
/// Blocking: call it through `crate::blocking::run`.
pub fn name_lock(state: &Path) -> io::Result<Lock> {
    std::fs::create_dir_all(state)?;
    // Blocking: it waits for the holder, so it is always taken.
    flock(&state.join("names.lock"), libc::LOCK_EX)?.ok_or_else(|| io::Error::other("flock returned without the lock"))
}

/// [`name_lock`] in pxelab's state directory, taken off the runtime.
pub async fn naming_lock() -> crate::error::Result<Lock> {
    let state = super::state_dir_or_err()?;
    crate::blocking::run(move || name_lock(&state))
        .await
        .map_err(|e| crate::error::Error::environment(format!("cannot take the VM-naming lock in pxelab's state directory: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_s_directory_is_its_name_and_its_host() {
        let state = Path::new("/s");
        assert_eq!(dir_of(state, LOCAL_URI, "default"), Path::new("/s/labs/default"));
        assert_eq!(dir_of(state, LOCAL_URI, "../x y"), Path::new("/s/labs/_.._x_y"), "no escape, no space");
        let remote = dir_of(state, "qemu+ssh://root@host/system", "default");
        assert!(remote.to_string_lossy().starts_with("/s/labs/default@"), "{remote:?}");
        assert_ne!(remote, dir_of(state, "qemu+ssh://root@other/system", "default"), "two hosts' `default` are two labs");
    }

    #[test]
    fn the_lock_is_taken_once_and_freed_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap().expect("free");
        assert!(lock(dir.path()).unwrap().is_none(), "held: a second taker is refused");
        drop(first);
        assert!(lock(dir.path()).unwrap().is_some(), "free again");
    }
}
