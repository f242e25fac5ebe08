//! Each verb's report as text for people: one function per report, pure
//! (a string in, nothing written), so `cli/` prints it with `output::text`
//! and the tests read it back. `--json` prints the report itself instead.

use crate::lab;

/// `pxelab status` as text.
pub fn status_text(report: &lab::StatusReport) -> String {
    let mut out = String::new();
    for entry in &report.unreadable_journal {
        out.push_str(&format!("journal    {} cannot be read: {} {} was not undone\n", entry.path.display(), entry.change.name(), entry.name));
    }
    let Some(lab) = &report.lab else {
        out.push_str(if report.crashed { "a lab left changes not undone: run `pxelab down`\n" } else { "no lab running\n" });
        return out;
    };
    if report.crashed {
        out.push_str(&format!("the lab (pid {}) is gone without cleaning up: run `pxelab down --network {}`\n", lab.pid, lab.network));
    }
    out.push_str(&format!("lab        pid {} ({})\n", lab.pid, lab_state(report)));
    out.push_str(&format!("iso        {} ({})\n", lab.iso, lab.distro));
    out.push_str(&format!("network    {} (bridge {}, server {})\n", lab.network, lab.bridge.as_deref().unwrap_or("?"), lab.server_ip));
    out.push_str(&format!("tftp       {}   ftp {}   http {}\n", lab.tftp, lab.ftp, lab.http.as_deref().unwrap_or("-")));
    if let Some(proxy) = &lab.proxy_dhcp {
        out.push_str(&format!(
            "dhcp       proxy DHCP on {} ({} answered, {} not PXE clients left to the DHCP server); the network is not patched\n",
            proxy.interface, proxy.answered, proxy.not_pxe
        ));
    }
    out.push_str(&format!("kernel     {}\n", lab.kernel_args));
    out.push_str(&format!(
        "transfers  TFTP {} files {:.1} MB, FTP {} files {:.1} MB, HTTP {} files {:.1} MB\n",
        lab.transfers.tftp_files,
        lab.transfers.tftp_bytes as f64 / 1e6,
        lab.transfers.ftp_files,
        lab.transfers.ftp_bytes as f64 / 1e6,
        lab.transfers.http_files,
        lab.transfers.http_bytes as f64 / 1e6
    ));
    for vm in &lab.vms {
        out.push_str(&format!("vm         {} {} stage {}\n", vm.name, vm.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()), vm.stage.name()));
    }
    out
}

/// A lab as `status` names its state: crashed, ready, or starting.
fn lab_state(report: &lab::StatusReport) -> &'static str {
    match (report.crashed, report.lab.as_ref().is_some_and(|l| l.ready)) {
        (true, _) => "crashed",
        (false, true) => "ready",
        (false, false) => "starting",
    }
}

/// `pxelab status` with every lab: one as [`status_text`] shows it, several
/// as a table, a line each.
pub fn labs_text(reports: &[lab::StatusReport]) -> String {
    match reports {
        [] => "no lab running\n".into(),
        [one] => status_text(one),
        several => {
            let mut out = format!("{:<20} {:>8}  {:<9} {:<16} {:>4}  {}\n", "NETWORK", "PID", "STATE", "SERVER", "VMS", "ISO");
            for r in several {
                let state = lab_state(r);
                let (network, pid, server, vms, iso) = match &r.lab {
                    Some(l) => (l.network.clone(), l.pid.to_string(), l.server_ip.clone(), l.vms.len().to_string(), l.iso.clone()),
                    None => ("?".into(), "-".into(), "-".into(), "-".into(), "(its journal only)".into()),
                };
                out.push_str(&format!("{network:<20} {pid:>8}  {state:<9} {server:<16} {vms:>4}  {iso}\n"));
            }
            out.push_str("one lab: pxelab status --network NAME; stop one: pxelab down --network NAME, or all: pxelab down --all\n");
            out
        }
    }
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

/// `pxelab down` as text: what was stopped, and what was kept.
pub fn down_text(report: &lab::DownReport) -> String {
    let on = report.network.as_deref().map(|n| format!(" on network {n}")).unwrap_or_default();
    if report.nothing_to_do {
        return format!("no lab running{on}; nothing to undo\n");
    }
    if report.kept_vms.is_empty() {
        return format!("lab{on} stopped; the host is as it was\n");
    }
    format!("lab{on} stopped; the host is as it was, but for the VMs kept with --keep: {} (remove each with `pxelab vm rm NAME`)\n", report.kept_vms.join(", "))
}

/// `pxelab serve` once it listens.
pub fn serve_ready_text(ready: &lab::Ready) -> String {
    let http = ready.http.as_deref().map(|h| format!(", HTTP {h}")).unwrap_or_default();
    let proxy = ready.proxy_dhcp.as_deref().map(|i| format!(", proxy DHCP on {i}")).unwrap_or_default();
    format!("pxelab: serving {} (TFTP {}, FTP {}{http}{proxy}); kernel args: {}; Ctrl-C to stop\n", ready.iso, ready.tftp, ready.ftp, ready.kernel_args)
}

/// `pxelab vm new` as text.
pub fn vm_new_text(report: &lab::VmNewReport) -> String {
    format!(
        "created {} on network {} ({}, {}, {}: {}); console record {}\nfollow its console with: pxelab vm console -f {}\n",
        report.vm.name,
        report.vm.networks.join(", "),
        report.vm.arch,
        report.vm.firmware.name(),
        report.vm.accel.name(),
        report.accel_reason,
        report.vm.meta.serial_log,
        report.vm.name
    )
}

/// `pxelab vm list` as a table.
pub fn vm_list_text(vms: &[crate::virt::domain::VmInfo]) -> String {
    if vms.is_empty() {
        return "no pxelab VMs\n".into();
    }
    let mut out = format!("{:<24} {:<10} {:<5} {:<8} {:<16} serial log\n", "NAME", "STATE", "ACCEL", "ARCH", "NETWORK");
    for vm in vms {
        out.push_str(&format!(
            "{:<24} {:<10} {:<5} {:<8} {:<16} {}\n",
            vm.name,
            vm.state.name(),
            vm.accel.name(),
            vm.arch.name(),
            vm.networks.join(","),
            vm.meta.serial_log
        ));
    }
    out
}

/// `pxelab net patch` as text.
pub fn net_patch_text(report: &lab::NetPatchReport) -> String {
    if report.unchanged {
        return format!("network {} already boots {} from {}; nothing changed\n", report.network, report.file, report.server);
    }
    format!(
        "network {} now boots {} from {}{}{}\nundo with: pxelab net restore --network {}\n",
        report.network,
        report.file,
        report.server,
        if report.restarted { " (network restarted)" } else { " (takes effect when the network starts)" },
        if report.reattached.is_empty() { String::new() } else { format!("; re-attached {}", report.reattached.join(", ")) },
        report.network
    )
}

/// `pxelab net restore` as text.
pub fn net_restore_text(report: &lab::NetRestoreReport) -> String {
    if report.restored && report.kept_changes {
        format!(
            "network {} was changed since pxelab patched it: those changes were kept, and only pxelab's bootp and dnsmasq lines were taken out\n",
            report.network
        )
    } else if report.restored {
        format!("network {} is back as it was before pxelab patched it\n", report.network)
    } else {
        format!("network {} has no pxelab patch to undo; nothing changed\n", report.network)
    }
}

/// `pxelab up --detach` once the lab runs.
pub fn detached_text(detached: &lab::Detached) -> String {
    format!("lab running in the background (pid {}, log {}); `pxelab status` to follow, `pxelab down` to stop\n", detached.pid, detached.log.display())
}

/// A guest console's text as a report can hold it: a firmware's or
/// installer's terminal sequences (ESC `[` … a letter, which AAVMF and d-i
/// draw with) dropped, so they neither clear the user's terminal nor break
/// JUnit's XML, and any other control character but tab and newline, which
/// no XML parser accepts even escaped.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next_if_eq(&'[').is_some() {
                    // Parameters and intermediates, up to the final byte.
                    while chars.next_if(|c| ('\x20'..='\x3f').contains(c)).is_some() {}
                }
                chars.next_if(|c| ('\x40'..='\x7e').contains(c));
            }
            '\t' | '\n' => out.push(c),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_and_control_characters_are_dropped() {
        let console = "\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: starting\x1b[0m\x1b[30m\x1b[47m\tGRUB\x07\x00\rok\x1bc\nlogin: \u{fffe}é";
        assert_eq!(printable(console), "BdsDxe: starting\tGRUBok\nlogin: é");
    }

    #[test]
    fn serve_says_where_it_answers_proxy_dhcp() {
        let mut ready = lab::Ready {
            event: "ready",
            tftp: "10.0.0.1:69".into(),
            ftp: "10.0.0.1:21".into(),
            http: Some("10.0.0.1:80".into()),
            iso: "a.iso".into(),
            kernel: "k".into(),
            initrd: "i".into(),
            kernel_args: "inst.repo=http://10.0.0.1/iso/".into(),
            proxy_dhcp: None,
        };
        assert_eq!(
            serve_ready_text(&ready),
            "pxelab: serving a.iso (TFTP 10.0.0.1:69, FTP 10.0.0.1:21, HTTP 10.0.0.1:80); kernel args: inst.repo=http://10.0.0.1/iso/; Ctrl-C to stop\n"
        );
        ready.proxy_dhcp = Some("br0".into());
        assert!(serve_ready_text(&ready).contains("HTTP 10.0.0.1:80, proxy DHCP on br0); kernel args"), "{}", serve_ready_text(&ready));
    }
}
