//! Everything pxelab prints on stdout, and how.
//!
//! Every line goes through [`line`] (or [`json_line`]), which writes it
//! whole and flushes it: a CI job reading `--json` from a pipe sees each
//! event when it happens. A stdout that closes (`pxelab … | head -1`) is
//! not a crash: it is remembered ([`closed`]), later output is dropped, and
//! the verb decides what that means (`serve` stops, `up` keeps its lab
//! running and still tears down normally, the rest finish). As ripgrep
//! does, a closed pipe ends in exit 0; any other write failure is reported
//! by `main`.
//!
//! On a terminal, `up` keeps one progress bar per VM (its stage, the file
//! being sent, bytes and rate) under the lines it prints; anywhere else
//! (a pipe, a CI log) it prints plain lines, and with `--json` one JSON
//! object per event.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::lab::{self, LabEvent};

/// How a verb ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Done,
    /// Exit 1 with no error line: the output already says what failed
    /// (`doctor`'s failed checks).
    ChecksFailed,
}

/// Stdout was closed by its reader.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// A write to stdout failed for another reason (a full disk): `main` reports it.
static WRITE_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// `-q`: nothing on stdout; `main` still reports an error.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences (or, for an error's report, unsilences) everything this module prints.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether stdout is gone (its reader closed the pipe, or writing failed).
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Whether stdout's reader went away, found without writing: a pipe whose
/// read end closed polls as an error. For a verb that may print nothing for
/// a long time (`status --watch` prints only changes), which would
/// otherwise never learn that nobody reads it.
pub fn reader_gone() -> bool {
    if closed() {
        return true;
    }
    let mut stdout = libc::pollfd { fd: libc::STDOUT_FILENO, events: 0, revents: 0 };
    // SAFETY: one valid pollfd, no wait.
    let ready = unsafe { libc::poll(&mut stdout, 1, 0) };
    let gone = ready == 1 && stdout.revents & (libc::POLLERR | libc::POLLHUP) != 0;
    if gone {
        CLOSED.store(true, Ordering::Relaxed);
    }
    gone
}

/// Why writing to stdout failed, when it was not a closed pipe.
pub fn write_error() -> Option<String> {
    WRITE_ERROR.lock().ok().and_then(|e| e.clone())
}

/// Writes `text` to stdout as it is and flushes; false once stdout is gone.
pub fn text(text: &str) -> bool {
    bytes(text.as_bytes())
}

/// Writes raw bytes (a guest's console) to stdout and flushes; false once
/// stdout is gone. A failure that is not a closed pipe is kept for `main`.
pub fn bytes(bytes: &[u8]) -> bool {
    if closed() {
        return false;
    }
    if quiet() {
        return true;
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            CLOSED.store(true, Ordering::Relaxed);
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                if let Ok(mut slot) = WRITE_ERROR.lock() {
                    slot.get_or_insert_with(|| e.to_string());
                }
            }
            false
        }
    }
}

/// One line on stdout, flushed.
pub fn line(line: impl std::fmt::Display) -> bool {
    text(&format!("{line}\n"))
}

/// One JSON value on one line (events).
pub fn json_line(value: &impl serde::Serialize) -> bool {
    line(serde_json::to_string(value).unwrap_or_default())
}

/// A verb's whole report: one JSON object on one line, like every event,
/// so that a script reads `--json` output a line at a time (`jq` pretty-prints).
pub fn json(value: &impl serde::Serialize) -> bool {
    json_line(value)
}

/// Renders `up`'s and `down`'s events.
pub struct LabDisplay {
    json: bool,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    per_vm: HashMap<String, ProgressBar>,
}

impl LabDisplay {
    /// Bars when stdout is a terminal and not `--json`.
    pub fn new(json: bool) -> LabDisplay {
        let bars = (!json && !quiet() && std::io::stdout().is_terminal()).then(|| Bars { multi: MultiProgress::new(), per_vm: HashMap::new() });
        LabDisplay { json, bars }
    }

    /// Plain lines (or JSON) only.
    pub fn lines(json: bool) -> LabDisplay {
        LabDisplay { json, bars: None }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(text);
            }
            None => {
                line(text);
            }
        }
    }

    fn bar(&mut self, vm: &str) -> Option<&ProgressBar> {
        let bars = self.bars.as_mut()?;
        let bar = bars.per_vm.entry(vm.to_string()).or_insert_with(|| {
            let bar = bars.multi.add(ProgressBar::new(1));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>28.bold} {wide_msg} {bytes:>9}/{total_bytes:<9} {bytes_per_sec:>11} [{bar:24}]")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{vm}: created"));
            bar
        });
        Some(bar)
    }

    pub fn show(&mut self, event: &LabEvent) {
        if self.json {
            // Progress is for bars; JSON consumers get each finished transfer.
            if !matches!(event, LabEvent::Progress { .. }) {
                json_line(event);
            }
            return;
        }
        match event {
            LabEvent::Step { message } => self.line(format!("pxelab: {message}")),
            LabEvent::Teardown { message } => {
                // The lab is ending: bars redrawn under the teardown lines would be stale.
                self.end_bars();
                self.line(format!("pxelab: {message}"));
            }
            LabEvent::Ready { network, server_ip, vms, .. } => {
                self.line(format!(
                    "pxelab: lab ready on network {network} (server {server_ip}); VMs: {}",
                    if vms.is_empty() { "none".into() } else { vms.join(", ") }
                ));
                self.line("pxelab: Ctrl-C to stop and restore the host".into());
            }
            LabEvent::Stage(e) => {
                if let Some(bar) = self.bar(&e.vm) {
                    bar.set_prefix(format!("{}: {}", e.vm, e.stage.name()));
                }
                self.line(format!("[{:>7.1}s] {}: {}{}", e.at, e.vm, e.stage.name(), e.ip.map(|ip| format!(" ({ip})")).unwrap_or_default()));
            }
            LabEvent::Progress { vm, protocol, path, bytes, size } => {
                if let Some(bar) = self.bar(vm) {
                    let label = format!("{} {path}", protocol.name().to_uppercase());
                    if bar.message() != label {
                        bar.reset();
                        bar.set_message(label);
                    }
                    bar.set_length(*size);
                    bar.set_position(*bytes);
                }
            }
            LabEvent::Transfer { vm, protocol, path, bytes, seconds, complete } => {
                if let Some(bar) = vm.as_deref().and_then(|v| self.bar(v)) {
                    bar.set_message(format!("{} {path}", protocol.name().to_uppercase()));
                    bar.set_length((*bytes).max(1));
                    bar.set_position(*bytes);
                }
                if *complete && *bytes > 0 {
                    self.line(format!(
                        "            {}: {} {path} {:.1} MB in {seconds:.2} s ({:.1} MB/s)",
                        vm.as_deref().unwrap_or("?"),
                        protocol.name().to_uppercase(),
                        *bytes as f64 / 1e6,
                        *bytes as f64 / 1e6 / seconds.max(1e-6)
                    ));
                }
            }
            LabEvent::Reached { stage, seconds, .. } => {
                self.finish_bars();
                self.line(format!("pxelab: every VM reached {} after {seconds:.1} s", stage.name()));
            }
            LabEvent::Summary { vms } => self.summary(vms),
            LabEvent::TimedOut { seconds, vms } | LabEvent::Failed { seconds, vms, .. } => {
                self.finish_bars();
                match event {
                    LabEvent::Failed { reason, .. } => self.line(format!("pxelab: failed after {seconds:.1} s: {reason}")),
                    _ => self.line(format!("pxelab: timed out after {seconds:.1} s")),
                }
                for vm in vms {
                    self.line(format!("pxelab: {} reached {}; last serial console lines:", vm.name, vm.stage.name()));
                    for l in &vm.serial_tail {
                        self.line(format!("    | {}", super::text::printable(l)));
                    }
                }
            }
        }
    }

    fn summary(&mut self, vms: &[lab::progress::VmProgress]) {
        self.end_bars();
        for row in summary_table(vms) {
            self.line(row);
        }
    }

    fn finish_bars(&mut self) {
        if let Some(bars) = &self.bars {
            for bar in bars.per_vm.values() {
                bar.finish();
            }
        }
    }

    /// Finishes the bars, takes them off the screen and prints plain lines from now on.
    fn end_bars(&mut self) {
        self.finish_bars();
        if let Some(bars) = self.bars.take() {
            let _ = bars.multi.clear();
        }
    }
}

/// The table `up` ends with: each VM, its last stage, when it reached
/// each stage (seconds since the lab started) and the bytes it was sent.
pub fn summary_table(vms: &[lab::progress::VmProgress]) -> Vec<String> {
    use lab::progress::Stage;
    let mut stages = vec![Stage::Dhcp, Stage::Bootloader, Stage::Kernel, Stage::Installer];
    if vms.iter().any(|v| v.reached.contains_key(&Stage::Installed)) {
        stages.push(Stage::Installed);
    }
    let width = vms.iter().map(|v| v.name.len()).max().unwrap_or(2).max(2);
    let mut header = format!("{:width$}  {:10}", "VM", "stage");
    for &stage in &stages {
        header.push_str(&format!("  {:>10}", stage.name()));
    }
    header.push_str(&format!("  {:>10}", "sent"));
    let mut rows = vec![header];
    for vm in vms {
        let mut row = format!("{:width$}  {:10}", vm.name, vm.stage.name());
        for &stage in &stages {
            let at = vm.reached.get(&stage).map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".into());
            row.push_str(&format!("  {at:>10}"));
        }
        row.push_str(&format!("  {:>10}", format!("{:.1} MB", vm.bytes as f64 / 1e6)));
        rows.push(row);
    }
    rows
}

impl Drop for LabDisplay {
    fn drop(&mut self) {
        self.end_bars();
    }
}

/// Stdout as `vm console` writes to it: through [`bytes`], so a full disk
/// is reported by `main`, and a closed reader is found without writing.
pub struct ConsoleStdout;

impl std::io::Write for ConsoleStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if bytes(buf) {
            Ok(buf.len())
        } else {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl lab::ConsoleOut for ConsoleStdout {
    fn gone(&mut self) -> bool {
        reader_gone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::progress::{Stage, StageEvent};

    #[test]
    fn bars_end_before_the_teardown_lines() {
        let multi = MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
        let mut display = LabDisplay { json: false, bars: Some(Bars { multi, per_vm: HashMap::new() }) };
        display.show(&LabEvent::Stage(StageEvent { vm: "pxelab-oak-1".into(), stage: Stage::Dhcp, at: 1.0, ip: None }));
        let bar = display.bars.as_ref().unwrap().per_vm["pxelab-oak-1"].clone();
        assert!(!bar.is_finished());
        display.show(&LabEvent::Teardown { message: "servers stopped".into() });
        assert!(bar.is_finished(), "a bar still live under the teardown lines");
        assert!(display.bars.is_none(), "lines after the teardown must not redraw bars");
    }
}
