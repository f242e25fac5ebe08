//! `pxelab down` and `pxelab status`: stopping labs (or cleaning up after
//! ones that crashed) and showing them, one lab per network (`labs.rs`).
//!
//! `down` does not undo anything itself while a lab process lives: it
//! sends SIGTERM and the lab tears down through its own journal. Only a lab
//! whose process is gone is undone here, from the same journal (`undo.rs`).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::event::EventSink;
use super::journal::{Journal, Unreadable};
use super::labs::{self, LabDir};
use super::record::{self, LabRecord};
use super::state_dir_or_err;
use super::undo::undo_journal;
use crate::error::{Error, Result};
use crate::virt::Libvirt;

/// How long `down` waits for a running lab to clean up after SIGTERM.
const DOWN_WAIT: Duration = Duration::from_secs(120);

/// Which labs `down` and `status` mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The only lab (several: `down` asks which; `status` lists them).
    Only,
    /// The lab on this network.
    Network(String),
    /// Every lab.
    All,
}

/// What `pxelab down` did, for one lab.
#[derive(Debug, Serialize)]
pub struct DownReport {
    /// The lab's network (`None`: no lab was there).
    pub network: Option<String>,
    /// A running lab was asked to stop (SIGTERM) and did.
    pub stopped_pid: Option<u32>,
    /// Changes undone from the journal (a lab that had crashed).
    pub recovered: bool,
    pub nothing_to_do: bool,
    /// VMs left running because the lab was started with `--keep`.
    pub kept_vms: Vec<String>,
}

/// `pxelab down`: stops the labs `which` names, or undoes what crashed ones left.
pub async fn down(uri: &str, which: &Which, report: EventSink<'_>) -> Result<Vec<DownReport>> {
    let chosen = chosen(uri, which)?;
    if chosen.is_empty() {
        let network = match which {
            Which::Network(n) => Some(n.clone()),
            _ => None,
        };
        return Ok(vec![DownReport { network, stopped_pid: None, recovered: false, nothing_to_do: true, kept_vms: Vec::new() }]);
    }
    if let (Which::Only, [_, _, ..]) = (which, chosen.as_slice()) {
        return Err(Error::usage(format!("{} labs are running ({}); pass --network NAME for one, or --all", chosen.len(), names(&chosen).join(", "))));
    }
    let mut reports = Vec::new();
    for lab in &chosen {
        reports.push(down_one(uri, lab, report).await?);
    }
    Ok(reports)
}

/// The labs `which` names, from every lab directory.
fn chosen(uri: &str, which: &Which) -> Result<Vec<LabDir>> {
    let state = state_dir_or_err()?;
    let all = labs::list(&state)
        .map_err(|e| Error::environment(format!("cannot read {e}; if no pxelab runs (`pgrep -a pxelab`), remove that file and run this again")))?;
    Ok(match which {
        Which::Only | Which::All => all,
        // The network's own directory (whatever is left in it, an unreadable
        // journal included), or an older pxelab's lab on that network.
        Which::Network(n) => all
            .into_iter()
            .filter(|l| {
                l.path == labs::dir_of(&state, uri, n) || (l.network().as_deref() == Some(n.as_str()) && l.record.as_ref().is_none_or(|r| r.uri == uri))
            })
            .collect(),
    })
}

/// Each lab as `network (pid N)`, for messages.
fn names(labs: &[LabDir]) -> Vec<String> {
    labs.iter()
        .map(|l| match (&l.record, l.network()) {
            (Some(r), _) => format!("{} (pid {})", r.network, r.pid),
            (None, Some(n)) => format!("{n} (crashed)"),
            (None, None) => l.path.display().to_string(),
        })
        .collect()
}

/// Stops the lab in `dir`, or undoes what it left.
async fn down_one(uri: &str, dir: &LabDir, report: EventSink<'_>) -> Result<DownReport> {
    let state = dir.path.clone();
    let lab = dir.record.clone();
    let mut out = DownReport { network: dir.network(), stopped_pid: None, recovered: false, nothing_to_do: false, kept_vms: Vec::new() };
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
    let journal = open_journal(&state)?;
    // The journal names the libvirt host of each change: a lab that crashed
    // on `-c qemu+ssh://…` is undone there, whatever `-c` says now.
    let mut uris: Vec<String> = Vec::new();
    let journaled = journal.networks().map_err(|e| journal_error(&journal, e))?.into_iter().map(|n| n.uri);
    let journaled = journaled.chain(journal.vms().map_err(|e| journal_error(&journal, e))?.into_iter().map(|v| v.uri));
    for u in journaled {
        if !uris.contains(&u) {
            uris.push(u);
        }
    }
    if uris.is_empty() && !journal.firewalls().map_err(|e| journal_error(&journal, e))?.is_empty() {
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
    // What cannot be read was not undone: say so, and keep the files.
    let unreadable = journal.unreadable().map_err(|e| journal_error(&journal, e))?;
    record::remove(&state).map_err(|e| Error::environment(format!("cannot remove {}: {e}; remove it by hand", record::path(&state).display())))?;
    if !unreadable.is_empty() {
        return Err(unreadable_error(&unreadable));
    }
    out.nothing_to_do = lab.is_none() && !pending;
    Ok(out)
}

fn open_journal(state: &std::path::Path) -> Result<Journal> {
    Journal::open(state).map_err(|e| {
        Error::environment(format!(
            "cannot open the journal in {}: {e}; check that {} is a directory pxelab can write",
            state.join("journal").display(),
            state.display()
        ))
    })
}

fn journal_error(journal: &Journal, e: std::io::Error) -> Error {
    Error::environment(format!(
        "cannot read the journal in {}: {e}; check its permissions (pxelab needs to read and remove its files)",
        journal.dir().display()
    ))
}

/// The journal entries nobody could read, each with its fix, as one error.
pub fn unreadable_error(unreadable: &[Unreadable]) -> Error {
    Error::environment(unreadable.iter().map(Unreadable::explain).collect::<Vec<_>>().join("; and "))
}

/// What `pxelab status` shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub running: bool,
    /// The lab process is gone but left changes: run `pxelab down`.
    pub crashed: bool,
    #[serde(flatten)]
    pub lab: Option<LabRecord>,
    /// Journal entries that cannot be read: changes nobody can undo until
    /// they are fixed by hand (`status` then exits 4).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_journal: Vec<Unreadable>,
}

/// `pxelab status`: every lab (`Which::Only`, `All`), or the one on a network
/// (none there: one report that says so).
pub fn status(uri: &str, which: &Which) -> Result<Vec<StatusReport>> {
    let mut reports = Vec::new();
    for lab in chosen(uri, which)? {
        let running = lab.running();
        // A lab directory without a journal has nothing to undo.
        let journal = lab.path.join("journal").is_dir().then(|| Journal::open(&lab.path).ok()).flatten();
        let unreadable_journal = journal.map(|j| j.unreadable().map_err(|e| journal_error(&j, e))).transpose()?.unwrap_or_default();
        reports.push(StatusReport { running, crashed: !running, lab: lab.record, unreadable_journal });
    }
    if reports.is_empty() && matches!(which, Which::Network(_)) {
        reports.push(StatusReport { running: false, crashed: false, lab: None, unreadable_journal: Vec::new() });
    }
    Ok(reports)
}
