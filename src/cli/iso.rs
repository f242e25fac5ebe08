//! `pxelab iso inspect`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::output::{self, Outcome};
use super::{Globals, IsoOverrideArgs};
use crate::boot::DefaultEntry;
use crate::error::Result;
use crate::lab;

#[derive(Debug, Subcommand)]
pub enum IsoCommand {
    /// Say which distribution an ISO holds and how pxelab would boot it.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ISO file.
    pub iso: PathBuf,
    #[command(flatten)]
    pub iso_overrides: IsoOverrideArgs,
    /// Also print the pxelinux menu pxelab would serve (`menu` in the JSON).
    #[arg(long)]
    pub menu: bool,
    /// The server address to show in the kernel arguments and the menu.
    #[arg(long, value_name = "IP")]
    pub server: Option<IpAddr>,
    /// Make the menu boot the local disk by default.
    #[arg(long, requires = "menu")]
    pub local_boot_default: bool,
}

pub fn run(command: IsoCommand, globals: &Globals) -> Result<Outcome> {
    let IsoCommand::Inspect(args) = command;
    let request = lab::InspectRequest {
        iso: args.iso,
        overrides: args.iso_overrides.overrides(),
        menu: args.menu,
        server: args.server,
        default: if args.local_boot_default { DefaultEntry::Local } else { DefaultEntry::Install },
    };
    let report = lab::inspect(&request)?;
    if globals.json {
        output::json(&report);
    } else {
        output::text(&report.to_text());
    }
    Ok(Outcome::Done)
}
