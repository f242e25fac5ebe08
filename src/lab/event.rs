//! What a lab reports as it goes: [`LabEvent`]s, one JSON object per line
//! with `--json`, a line of text without.
//!
//! Events live apart from `up` because `down`, the journal's undo and the
//! CLI's displays all speak them: each imports this module and none of them
//! imports `up`, so no import runs in a circle.

use serde::Serialize;

use super::progress::{Stage, StageEvent, VmProgress};
use crate::serve::Protocol;
use crate::virt::accel::Accel;

/// What `up` (and the teardown in `down`) reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LabEvent {
    /// A step of the set-up, for people watching.
    Step {
        message: String,
    },
    Ready {
        network: String,
        server_ip: String,
        tftp: String,
        ftp: String,
        http: Option<String>,
        kernel_args: String,
        vms: Vec<String>,
        accel: Option<Accel>,
        accel_reason: Option<String>,
    },
    Stage(StageEvent),
    Transfer {
        vm: Option<String>,
        protocol: Protocol,
        path: String,
        bytes: u64,
        seconds: f64,
        complete: bool,
    },
    /// A transfer to a VM still going (every 2 MiB): for progress bars.
    Progress {
        vm: String,
        protocol: Protocol,
        path: String,
        bytes: u64,
        size: u64,
    },
    /// Every VM reached `--wait-for`.
    Reached {
        stage: Stage,
        seconds: f64,
        vms: Vec<VmSummary>,
    },
    TimedOut {
        seconds: f64,
        vms: Vec<VmSummary>,
    },
    /// A VM failed in a way that ends the lab (it powered off before its installer).
    Failed {
        seconds: f64,
        reason: String,
        vms: Vec<VmSummary>,
    },
    /// Where each VM got to, when, and what it was sent: once, as the lab ends.
    Summary {
        vms: Vec<VmProgress>,
    },
    Teardown {
        message: String,
    },
}

/// A VM's stage and the last lines of its serial console, when the lab ends.
#[derive(Debug, Clone, Serialize)]
pub struct VmSummary {
    pub name: String,
    pub stage: Stage,
    pub serial_tail: Vec<String>,
}

/// Where a lab's events go: the CLI's display, a JUnit collector, a test.
pub type EventSink<'a> = &'a mut (dyn FnMut(&LabEvent) + Send);
