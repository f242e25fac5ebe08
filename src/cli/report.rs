//! `up --junit FILE` and `up --artifacts DIR`: what a CI job keeps of a lab.
//!
//! Both are built from the lab's own events (the same ones `--json`
//! prints), collected as they come, and written when the lab has ended,
//! whether it reached its stage, timed out or failed, so a red job still
//! has its report. The serial consoles are copied into the artifacts by the
//! lab itself before its teardown removes them (`UpRequest::artifacts`).
//!
//! JUnit: one `<testsuite>` for the lab, one `<testcase>` per VM. A VM
//! passes when it reached the stage `up` waited for; its `time` is the
//! seconds to that stage (or to where it stopped), each stage's time is a
//! `<property>`, and a failure carries the reason and the last serial lines.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quick_xml::escape::escape;

use super::text::printable;

use crate::lab::progress::{Stage, VmProgress};
use crate::lab::LabEvent;

/// The events of one lab, kept for the reports.
#[derive(Default)]
pub struct Collected {
    events: Vec<serde_json::Value>,
    summary: Vec<VmProgress>,
    tails: Vec<(String, Vec<String>)>,
}

impl Collected {
    pub fn add(&mut self, event: &LabEvent) {
        // As `--json` prints them: progress is for bars, transfers say the rest.
        if !matches!(event, LabEvent::Progress { .. }) {
            if let Ok(value) = serde_json::to_value(event) {
                self.events.push(value);
            }
        }
        match event {
            LabEvent::Summary { vms } => self.summary = vms.clone(),
            LabEvent::Reached { vms, .. } | LabEvent::TimedOut { vms, .. } | LabEvent::Failed { vms, .. } => {
                self.tails = vms.iter().map(|v| (v.name.clone(), v.serial_tail.clone())).collect();
            }
            _ => {}
        }
    }

    /// `events.jsonl` and `served.tsv` in `dir` (the serial logs are the lab's).
    pub fn write_artifacts(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut events = String::new();
        for e in &self.events {
            events.push_str(&e.to_string());
            events.push('\n');
        }
        std::fs::write(dir.join("events.jsonl"), events)?;
        let mut served = String::from("vm\tprotocol\tpath\tbytes\tcomplete\n");
        for e in self.events.iter().filter(|e| e["event"] == "transfer") {
            let _ = writeln!(
                served,
                "{}\t{}\t{}\t{}\t{}",
                e["vm"].as_str().unwrap_or("-"),
                e["protocol"].as_str().unwrap_or_default(),
                e["path"].as_str().unwrap_or_default(),
                e["bytes"],
                e["complete"]
            );
        }
        std::fs::write(dir.join("served.tsv"), served)
    }

    /// The JUnit XML: `wanted` is the stage `up` waited for (`None`: it ran
    /// until stopped, and every VM passes that got anywhere); `error` is how
    /// the lab ended, if it failed.
    pub fn junit(&self, suite: &str, wanted: Option<Stage>, error: Option<&str>) -> String {
        let e = |s: &str| escape(s).into_owned();
        let mut cases = String::new();
        let mut failures = 0;
        for vm in &self.summary {
            let target = wanted.unwrap_or(Stage::Created);
            let time = vm.reached.get(&target).or_else(|| vm.reached.values().last()).copied().unwrap_or(0.0);
            let _ = writeln!(cases, "    <testcase name=\"{}\" classname=\"pxelab.{}\" time=\"{time:.3}\">", e(&vm.name), e(suite));
            cases.push_str("      <properties>\n");
            for (stage, at) in &vm.reached {
                let _ = writeln!(cases, "        <property name=\"{}\" value=\"{at:.3}\"/>", stage.name());
            }
            let _ = writeln!(cases, "        <property name=\"mac\" value=\"{}\"/>", e(&vm.mac));
            cases.push_str("      </properties>\n");
            let tail = self.tails.iter().find(|(n, _)| n == &vm.name).map(|(_, t)| printable(&t.join("\n"))).unwrap_or_default();
            if vm.stage < target {
                failures += 1;
                let why = match error {
                    Some(error) => format!("reached {}, not {}: {error}", vm.stage.name(), target.name()),
                    None => format!("reached {}, not {}", vm.stage.name(), target.name()),
                };
                let _ = writeln!(cases, "      <failure message=\"{}\" type=\"{}\">{}</failure>", e(&why), target.name(), e(&tail));
            }
            let _ = writeln!(cases, "      <system-out>{}</system-out>", e(&tail));
            cases.push_str("    </testcase>\n");
        }
        let total_time = self.summary.iter().flat_map(|v| v.reached.values()).fold(0.0f64, |a, b| a.max(*b));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total_time:.3}\">\n{cases}  </testsuite>\n</testsuites>\n",
            e(suite),
            self.summary.len()
        )
    }
}

/// Writes a report file, saying where it failed.
pub fn write(path: &PathBuf, text: &str) -> crate::error::Result<()> {
    std::fs::write(path, text).map_err(|e| crate::error::Error::environment(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_short_of_the_stage_is_a_failure_with_its_console() {
        let mut c = Collected::default();
        let mut ok = VmProgress::new("pxelab-oak-1", "52:54:00:00:00:01", "/l", 0.0);
        ok.stage = Stage::Installed;
        ok.reached.insert(Stage::Installer, 15.0);
        ok.reached.insert(Stage::Installed, 21.5);
        let mut short = VmProgress::new("pxelab-oak-2", "52:54:00:00:00:02", "/l", 0.0);
        short.stage = Stage::Kernel;
        short.reached.insert(Stage::Kernel, 6.0);
        c.add(&LabEvent::TimedOut {
            seconds: 30.0,
            vms: vec![crate::lab::VmSummary { name: "pxelab-oak-2".into(), stage: Stage::Kernel, serial_tail: vec!["Kernel panic <&>".into()] }],
        });
        c.add(&LabEvent::Summary { vms: vec![ok, short] });
        let xml = c.junit("centos.iso", Some(Stage::Installed), Some("timed out"));
        assert!(xml.contains("<testsuite name=\"centos.iso\" tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("<testcase name=\"pxelab-oak-1\" classname=\"pxelab.centos.iso\" time=\"21.500\">"), "{xml}");
        assert!(xml.contains("<property name=\"installed\" value=\"21.500\"/>"), "{xml}");
        assert!(xml.contains("<failure message=\"reached kernel, not installed: timed out\" type=\"installed\">Kernel panic &lt;&amp;&gt;</failure>"), "{xml}");
    }
}
