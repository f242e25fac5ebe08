//! How a lab's events and status look on a terminal, in a log, and as JSON.
//!
//! On a terminal, `up` keeps one progress bar per VM (its stage, the file
//! being sent, bytes and rate) under the lines it prints; anywhere else
//! (a pipe, a CI log) it prints plain lines, and with `--json` one JSON
//! object per event.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::lab::{self, LabEvent};

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
        let bars = (!json && std::io::stdout().is_terminal()).then(|| Bars { multi: MultiProgress::new(), per_vm: HashMap::new() });
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
            None => println!("{text}"),
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
                println!("{}", serde_json::to_string(event).unwrap_or_default());
            }
            return;
        }
        match event {
            LabEvent::Step { message } | LabEvent::Teardown { message } => self.line(format!("pxelab: {message}")),
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
                    if bar.message() != format!("{} {path}", protocol.to_uppercase()) {
                        bar.reset();
                        bar.set_message(format!("{} {path}", protocol.to_uppercase()));
                    }
                    bar.set_length(*size);
                    bar.set_position(*bytes);
                }
            }
            LabEvent::Transfer { vm, protocol, path, bytes, seconds, complete } => {
                if let Some(bar) = vm.as_deref().and_then(|v| self.bar(v)) {
                    bar.set_message(format!("{} {path}", protocol.to_uppercase()));
                    bar.set_length((*bytes).max(1));
                    bar.set_position(*bytes);
                }
                if *complete && *bytes > 0 {
                    self.line(format!(
                        "            {}: {} {path} {:.1} MB in {seconds:.2} s ({:.1} MB/s)",
                        vm.as_deref().unwrap_or("?"),
                        protocol.to_uppercase(),
                        *bytes as f64 / 1e6,
                        *bytes as f64 / 1e6 / seconds.max(1e-6)
                    ));
                }
            }
            LabEvent::Reached { stage, seconds, .. } => {
                self.finish_bars();
                self.line(format!("pxelab: every VM reached {} after {seconds:.1} s", stage.name()));
            }
            LabEvent::TimedOut { seconds, vms } => {
                self.finish_bars();
                self.line(format!("pxelab: timed out after {seconds:.1} s"));
                for vm in vms {
                    self.line(format!("pxelab: {} reached {}; last serial console lines:", vm.name, vm.stage.name()));
                    for l in &vm.serial_tail {
                        self.line(format!("    | {l}"));
                    }
                }
            }
        }
    }

    fn finish_bars(&mut self) {
        if let Some(bars) = &self.bars {
            for bar in bars.per_vm.values() {
                bar.finish();
            }
        }
    }
}

impl Drop for LabDisplay {
    fn drop(&mut self) {
        self.finish_bars();
    }
}

/// `pxelab status` as text.
pub fn status_text(report: &lab::StatusReport) -> String {
    let Some(lab) = &report.lab else { return "no lab running\n".into() };
    let mut out = String::new();
    if report.crashed {
        out.push_str(&format!("the lab (pid {}) is gone without cleaning up: run `pxelab down`\n", lab.pid));
    }
    out.push_str(&format!("lab        pid {} ({})\n", lab.pid, if lab.ready { "ready" } else { "starting" }));
    out.push_str(&format!("iso        {} ({})\n", lab.iso, lab.distro));
    out.push_str(&format!("network    {} (bridge {}, server {})\n", lab.network, lab.bridge.as_deref().unwrap_or("?"), lab.server_ip));
    out.push_str(&format!("tftp       {}   ftp {}\n", lab.tftp, lab.ftp));
    out.push_str(&format!("kernel     {}\n", lab.kernel_args));
    out.push_str(&format!(
        "transfers  TFTP {} files {:.1} MB, FTP {} files {:.1} MB\n",
        lab.transfers.tftp_files,
        lab.transfers.tftp_bytes as f64 / 1e6,
        lab.transfers.ftp_files,
        lab.transfers.ftp_bytes as f64 / 1e6
    ));
    for vm in &lab.vms {
        out.push_str(&format!(
            "vm         {} {} stage {}\n",
            vm.name,
            vm.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            vm.stage.name()
        ));
    }
    out
}


/// `pxelab doctor` as text: one line per check, and the fix under each that is not ok.
pub fn doctor_text(report: &lab::DoctorReport) -> String {
    let mut out = String::new();
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    for check in &report.checks {
        let status = match check.status {
            lab::CheckStatus::Ok => "ok",
            lab::CheckStatus::Warn => "warn",
            lab::CheckStatus::Fail => "FAIL",
        };
        out.push_str(&format!("{status:<5} {:<width$}  {}\n", check.id, check.detail));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("      {:<width$}  fix: {fix}\n", ""));
        }
    }
    let failed = report.checks.iter().filter(|c| c.status == lab::CheckStatus::Fail).count();
    let warned = report.checks.iter().filter(|c| c.status == lab::CheckStatus::Warn).count();
    out.push_str(&format!("{failed} failed, {warned} warnings, {} checks\n", report.checks.len()));
    out
}
