//! `pxelab net patch|restore`.

use std::net::IpAddr;

use clap::Subcommand;

use super::output::{self, Outcome};
use super::text;
use super::{runtime, Globals};
use crate::error::Result;
use crate::lab;

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Point the network's DHCP at a PXE server (`<bootp file=... server=.../>`).
    Patch {
        /// The libvirt network to patch (one of `virsh net-list --all`).
        #[arg(long)]
        network: String,
        /// The TFTP server (default: the network's own IPv4 address).
        #[arg(long, value_name = "IP")]
        server: Option<IpAddr>,
        /// The boot file, a path in the boot tree.
        #[arg(long, default_value = "pxelinux.0")]
        file: String,
        /// Restart the network even though running guests are attached.
        #[arg(long)]
        force: bool,
    },
    /// Put back the network exactly as it was before `net patch`.
    Restore {
        /// The libvirt network to put back.
        #[arg(long)]
        network: String,
        /// Restore even though a running lab serves on the network (its guests then get no boot file),
        /// and define the network again if it was undefined after the patch.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(command: NetCommand, globals: &Globals) -> Result<Outcome> {
    match command {
        NetCommand::Patch { network, server, file, force } => {
            let request = lab::NetPatchRequest { uri: globals.uri.clone(), network, server, file, force };
            let report = runtime()?.block_on(lab::net_patch(request))?;
            if globals.json {
                output::json(&report);
            } else {
                output::text(&text::net_patch_text(&report));
            }
        }
        NetCommand::Restore { network, force } => {
            let request = lab::NetRestoreRequest { uri: globals.uri.clone(), network, force };
            let report = runtime()?.block_on(lab::net_restore(request))?;
            if globals.json {
                output::json(&report);
            } else {
                output::text(&text::net_restore_text(&report));
            }
        }
    }
    Ok(Outcome::Done)
}
