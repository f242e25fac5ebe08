//! `pxelab up --detach`: the same `up`, run in the background.
//!
//! The lab is this binary again, without `--detach`, in a session of its
//! own (it outlives the shell and its Ctrl-C), with stdout and stderr
//! appended to `lab.log` in the state directory. This process waits until
//! the lab says it is ready in `lab.json`, or until it exits.
//!
//! Nothing is touched before the checks a second `up` would fail on: a
//! refused `--detach` leaves a running lab's log as it was. The log is only
//! ever appended to, and each start writes a header line, so the lines of
//! this start are the ones after that header.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::journal::Journal;
use super::record::{self, LabRecord};
use super::up::{refuse_if_lab_exists, take_network};
use crate::error::{Error, Kind, Result};

/// How often the starting lab is looked at.
const POLL: Duration = Duration::from_millis(200);

/// A lab running in the background.
#[derive(Debug, Serialize)]
pub struct Detached {
    pub pid: u32,
    pub log: PathBuf,
    pub lab: LabRecord,
}

/// Starts `args` (this process's `up` arguments, less `--detach`) in the
/// background and returns once the lab is ready, or its error if it stopped.
pub fn detach(args: Vec<std::ffi::OsString>, uri: &str, network: &str) -> Result<Detached> {
    // The lab's own directory; its lock is only tried here (the lab takes
    // it): two detached labs started on one network at once both get this
    // far, and the second one's own `up` is refused, which this reports.
    let (state, lock) = take_network(uri, network)?;
    drop(lock);
    let journal = Journal::open(&state).map_err(|e| Error::environment(format!("cannot open the journal in {}: {e}", state.display())))?;
    refuse_if_lab_exists(&state, &journal)?;

    let log_path = state.join("lab.log");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::environment(format!("cannot write {}: {e}", log_path.display())))?;
    let start = log.seek(SeekFrom::End(0)).map_err(|e| Error::environment(format!("cannot write {}: {e}", log_path.display())))?;
    writeln!(log, "--- pxelab up (background), started at {} s since the epoch", now_secs())
        .map_err(|e| Error::environment(format!("cannot write {}: {e}", log_path.display())))?;

    let exe = std::env::current_exe().map_err(|e| Error::environment(format!("cannot find the pxelab binary: {e}")))?;
    let mut command = std::process::Command::new(exe);
    let log_out = log.try_clone().map_err(|e| {
        Error::environment(format!("cannot open {} twice for the lab's output: {e}; raise the open-file limit (`ulimit -n`)", log_path.display()))
    })?;
    command.args(args).stdin(std::process::Stdio::null()).stdout(log_out).stderr(log);
    // A session of its own: the lab outlives this shell and its Ctrl-C.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    tracing::debug!("starting the lab in the background, logging to {}", log_path.display());
    let mut child = command.spawn().map_err(|e| Error::environment(format!("cannot start the lab: {e}")))?;
    let pid = child.id();
    loop {
        let exited = child.try_wait().map_err(|e| {
            Error::other(format!(
                "cannot tell whether the lab (pid {pid}) still runs: {e}; see {} and `pxelab status`, and `pxelab down` if it stopped",
                log_path.display()
            ))
        })?;
        if let Some(status) = exited {
            let kind = Kind::from_exit_code(status.code().unwrap_or(1));
            return Err(Error::new(kind, format!("{} (log: {})", failure_of(&log_path, start), log_path.display())));
        }
        if let Ok(Some(lab)) = record::read(&state) {
            if lab.pid == pid && lab.ready {
                return Ok(Detached { pid, log: log_path, lab });
            }
        }
        std::thread::sleep(POLL);
    }
}

/// The lab's own error line, from its part of the log: its message, without
/// the `pxelab: error: ` prefix the caller prints again.
fn failure_of(log_path: &std::path::Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log_path) {
        let _ = file.seek(SeekFrom::Start(start));
        let _ = file.read_to_string(&mut text);
    }
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("pxelab: error: "))
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| "the lab stopped while starting".to_string())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
