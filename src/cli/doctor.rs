//! `pxelab doctor`.

use clap::Args;

use super::output::{self, Outcome};
use super::text;
use super::{runtime, Globals};
use crate::error::Result;
use crate::lab;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The libvirt network to check [default: the running lab's, else the VM's, else `default`].
    #[arg(long)]
    pub network: Option<String>,
    /// Also check this VM: its NIC's network, its boot order, the stage it reached.
    #[arg(long)]
    pub vm: Option<String>,
}

/// Exit 1 when a check failed: the findings are the message, with no
/// second, redundant error line.
pub fn run(args: DoctorArgs, globals: &Globals) -> Result<Outcome> {
    let request = lab::DoctorRequest { uri: globals.uri.clone(), network: args.network, vm: args.vm };
    let report = runtime()?.block_on(lab::doctor(request))?;
    if globals.json {
        output::json(&report);
    } else {
        output::text(&text::doctor_text(&report));
    }
    Ok(if report.ok { Outcome::Done } else { Outcome::ChecksFailed })
}
