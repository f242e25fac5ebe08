//! `pxelab down` and `pxelab status`: stopping the lab (or cleaning up after
//! one that crashed) and showing it.
//!
//! `down` does not undo anything itself while the lab process lives: it
//! sends SIGTERM and the lab tears down through its own journal. Only a lab
//! whose process is gone is undone here, from the same journal (`undo.rs`).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::journal::Journal;
use super::record::{self, LabRecord};
use super::state_dir_or_err;
use super::undo::undo_journal;
use super::up::Report;
use crate::error::{Error, Result};
use crate::virt::Libvirt;

/// How long `down` waits for a running lab to clean up after SIGTERM.
const DOWN_WAIT: Duration = Duration::from_secs(120);

/// What `pxelab down` did.
#[derive(Debug, Serialize)]
pub struct DownReport {
    /// A running lab was asked to stop (SIGTERM) and did.
    pub stopped_pid: Option<u32>,
    /// Changes undone from the journal (a lab that had crashed).
    pub recovered: bool,
    pub nothing_to_do: bool,
    /// VMs left running because the lab was started with `--keep`.
    pub kept_vms: Vec<String>,
}

/// `pxelab down`: stops the running lab, or undoes what a crashed one left.
pub async fn down(uri: &str, report: Report<'_>) -> Result<DownReport> {
    let state = state_dir_or_err()?;
    let lab = record::read(&state).map_err(|e| Error::environment(e.to_string()))?;
    let mut out = DownReport { stopped_pid: None, recovered: false, nothing_to_do: false, kept_vms: Vec::new() };
    if let Some(lab) = &lab {
        if record::alive(lab.pid) {
            tracing::debug!("asking the lab (pid {}) to stop", lab.pid);
            unsafe { libc::kill(lab.pid as i32, libc::SIGTERM) };
            let until = Instant::now() + DOWN_WAIT;
            while record::alive(lab.pid) {
                if Instant::now() >= until {
                    return Err(Error::environment(format!(
                        "the lab (pid {}) did not stop within {} s of SIGTERM; see its log, or kill it and run `pxelab down` again",
                        lab.pid,
                        DOWN_WAIT.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            out.stopped_pid = Some(lab.pid);
            // The lab's own teardown kept them; say so here too.
            if lab.keep {
                out.kept_vms = lab.vms.iter().map(|v| v.name.clone()).collect();
            }
        }
    }
    let journal = Journal::open(&state).map_err(|e| Error::environment(e.to_string()))?;
    // The journal names the libvirt host of each change: a lab that crashed
    // on `-c qemu+ssh://…` is undone there, whatever `-c` says now.
    let mut uris: Vec<String> = Vec::new();
    let journaled = journal.networks().unwrap_or_default().into_iter().map(|n| n.uri).chain(journal.vms().unwrap_or_default().into_iter().map(|v| v.uri));
    for u in journaled {
        if !uris.contains(&u) {
            uris.push(u);
        }
    }
    if uris.is_empty() && !journal.firewalls().unwrap_or_default().is_empty() {
        // Firewall openings are this host's: any connection undoes them.
        uris.push(lab.as_ref().map(|l| l.uri.clone()).unwrap_or_else(|| uri.to_string()));
    }
    let pending = !uris.is_empty();
    let keep = lab.as_ref().is_some_and(|l| l.keep);
    for uri in &uris {
        tracing::debug!("undoing the journal in {} for {uri}", journal.dir().display());
        let libvirt = Libvirt::connect(uri).await?;
        let undone = undo_journal(&libvirt, &journal, keep, report).await?;
        out.kept_vms.extend(undone.kept_vms);
        out.recovered = true;
    }
    record::remove(&state).map_err(|e| Error::environment(e.to_string()))?;
    out.nothing_to_do = lab.is_none() && !pending;
    Ok(out)
}

/// What `pxelab status` shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub running: bool,
    /// The lab process is gone but left changes: run `pxelab down`.
    pub crashed: bool,
    #[serde(flatten)]
    pub lab: Option<LabRecord>,
}

/// `pxelab status`.
pub fn status() -> Result<StatusReport> {
    let state = state_dir_or_err()?;
    let lab = record::read(&state).map_err(|e| Error::environment(e.to_string()))?;
    let running = lab.as_ref().is_some_and(|l| record::alive(l.pid));
    Ok(StatusReport { running, crashed: lab.is_some() && !running, lab })
}
