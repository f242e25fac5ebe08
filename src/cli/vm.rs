//! `pxelab vm new|list|rm|console`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::output::{self, Outcome};
use super::text;
use super::{runtime, shutdown_on_signals, Globals, VmShapeArgs};
use crate::error::{Error, Result};
use crate::lab;

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Create and start a VM.
    New(VmNewArgs),
    /// List pxelab's VMs.
    List,
    /// Destroy a pxelab VM and delete its disk and the record of its console.
    Rm {
        /// The VM (one of `pxelab vm list`).
        name: String,
    },
    /// Print pxelab's record of a VM's serial console (raw text: --json does not apply).
    Console {
        /// The VM (one of `pxelab vm list`).
        name: String,
        /// Keep printing what the guest writes until it stops (or Ctrl-C), read
        /// through libvirt (local or remote) and added to the record.
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Debug, Args)]
pub struct VmNewArgs {
    /// Boot from the network: first, then the disk (BIOS); after the disk
    /// while it holds no system (UEFI, whose firmware would stop at its menu
    /// after an install otherwise).
    #[arg(long)]
    pub pxe: bool,
    /// The VM's name (default: pxelab-<word>-<n>, the first one free).
    #[arg(long)]
    pub name: Option<String>,
    /// The network (default: the running lab's, else `default`).
    #[arg(long)]
    pub network: Option<String>,
    #[command(flatten)]
    pub shape: VmShapeArgs,
    /// The VM's firmware: SeaBIOS, or OVMF (UEFI) on q35 (default: bios for x86_64 VMs;
    /// aarch64 VMs are UEFI only).
    #[arg(long, value_enum, value_name = "FIRMWARE")]
    pub firmware: Option<super::VmFirmwareArg>,
    /// With --firmware uefi: Secure Boot on (SMM, Microsoft's keys enrolled).
    #[arg(long)]
    pub secure_boot: bool,
    /// Where pxelab records the serial console, on this host (default: the state directory's logs/).
    #[arg(long, value_name = "PATH")]
    pub serial_log: Option<PathBuf>,
}

pub fn run(command: VmCommand, globals: &Globals) -> Result<Outcome> {
    match command {
        VmCommand::New(args) => {
            let request = lab::VmNewRequest {
                uri: globals.uri.clone(),
                name: args.name,
                network: args.network,
                shape: args.shape.shape(),
                serial_log: args.serial_log,
                pxe: args.pxe,
                firmware: super::firmwares(
                    args.firmware.map(|f| match f {
                        super::VmFirmwareArg::Bios => super::FirmwareArg::Bios,
                        super::VmFirmwareArg::Uefi => super::FirmwareArg::Uefi,
                    }),
                    args.secure_boot,
                )?
                .first()
                .copied(),
            };
            let report = runtime()?.block_on(lab::vm_new(request))?;
            if globals.json {
                output::json(&report);
            } else {
                output::text(&text::vm_new_text(&report));
            }
        }
        VmCommand::List => {
            let vms = runtime()?.block_on(lab::vm_list(&globals.uri))?;
            if globals.json {
                output::json(&vms);
            } else {
                output::text(&text::vm_list_text(&vms));
            }
        }
        VmCommand::Rm { name } => {
            let meta = runtime()?.block_on(lab::vm_rm(&globals.uri, &name))?;
            if globals.json {
                output::json(&serde_json::json!({ "removed": name, "volume": meta.volume, "serial_log": meta.serial_log }));
            } else {
                output::line(format!("removed {name}, its disk {} and the record of its console", meta.volume));
            }
        }
        VmCommand::Console { name, follow } => {
            if globals.json {
                return Err(Error::usage("--json does not apply to `vm console`: the console is the guest's raw text; drop --json"));
            }
            runtime()?.block_on(async {
                let shutdown = shutdown_on_signals()?;
                lab::vm_console(&globals.uri, &name, follow, shutdown, &mut output::ConsoleStdout).await
            })?;
        }
    }
    Ok(Outcome::Done)
}
