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

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use crate::blocking;
use crate::virt::console::Console;
use crate::virt::Libvirt;

/// The consoles a lab holds, by VM name.
#[derive(Default)]
pub(crate) struct Consoles {
    open: HashMap<String, Console>,
}

/// A VM whose console the lab follows: its name and where its record goes.
pub(crate) struct Followed {
    pub name: String,
    pub record: PathBuf,
}

impl Consoles {
    /// Hands over a console opened when the VM was created.
    pub fn insert(&mut self, name: &str, console: Console) {
        self.open.insert(name.to_string(), console);
    }

    /// Reads every followed VM's console once, without waiting: opens the
    /// ones not open, drains each, appends to the records. Returns the new
    /// text per VM. A failure costs this poll's text, never the lab.
    pub async fn poll(&mut self, libvirt: &Libvirt, vms: Vec<Followed>) -> Vec<(String, Vec<u8>)> {
        let mut open = std::mem::take(&mut self.open);
        let names: Vec<String> = vms.iter().map(|v| v.name.clone()).collect();
        let read = libvirt
            .call(move |conn| {
                let mut out = Vec::new();
                for name in names {
                    if !open.contains_key(&name) {
                        // Not running (yet, or any more), or held by another reader.
                        match Console::open(conn, &name, false) {
                            Ok(console) => {
                                tracing::debug!("following {name}'s serial console");
                                open.insert(name.clone(), console);
                            }
                            Err(e) => {
                                tracing::trace!("{name}'s console: {e}");
                                continue;
                            }
                        }
                    }
                    let console = open.get_mut(&name).expect("opened above");
                    match console.drain() {
                        Ok(drained) => {
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
                Ok((open, out))
            })
            .await;
        let Ok((open, out)) = read else {
            // libvirtd went away: every stream died with it; reopen next poll.
            return Vec::new();
        };
        self.open = open;
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
