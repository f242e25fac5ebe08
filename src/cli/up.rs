//! `pxelab up`: the lab in the foreground (events as lines, bars or JSON),
//! or with `--detach` in the background.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::output::{self, LabDisplay, Outcome};
use super::report::{self, Collected};
use super::text;
use super::{runtime, shutdown_on_signals, FirmwareArg, Globals, IsoOverrideArgs, VmShapeArgs};
use crate::answer::AnswerKind;
use crate::boot::DefaultEntry;
use crate::error::{Error, Result};
use crate::lab::{self, progress};

/// A point in a PXE boot that pxelab can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    Dhcp,
    Bootloader,
    Kernel,
    Installer,
    /// The VM installed and powered off, or rebooted into its disk (see --expect-installed).
    Installed,
}

impl From<Stage> for progress::Stage {
    fn from(stage: Stage) -> progress::Stage {
        match stage {
            Stage::Dhcp => progress::Stage::Dhcp,
            Stage::Bootloader => progress::Stage::Bootloader,
            Stage::Kernel => progress::Stage::Kernel,
            Stage::Installer => progress::Stage::Installer,
            Stage::Installed => progress::Stage::Installed,
        }
    }
}

/// The menu's default entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MenuDefault {
    /// Boot the local disk, as the seed's menu does: safe for any machine that PXE-boots.
    Local,
    /// Boot the installer.
    Install,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The installer ISO to serve.
    #[arg(long, value_name = "ISO")]
    pub iso: PathBuf,
    /// The libvirt network whose DHCP will point at pxelab.
    #[arg(long, default_value = "default")]
    pub network: String,
    /// The address to serve on (default: the network's own IPv4 address).
    #[arg(long, value_name = "IP")]
    pub server_ip: Option<IpAddr>,
    /// Create a VM that boots from the network (the default).
    #[arg(long, overrides_with = "no_vm")]
    pub vm: bool,
    /// Only serve and patch the network; create no VM.
    #[arg(long)]
    pub no_vm: bool,
    /// How many VMs to create.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub vms: u32,
    #[command(flatten)]
    pub iso_overrides: IsoOverrideArgs,
    /// Exit 0 once every VM reached this stage (CI mode).
    #[arg(long, value_enum, value_name = "STAGE")]
    pub wait_for: Option<Stage>,
    /// The `installer` stage is reached when the serial console matches this
    /// (implies --wait-for installer).
    #[arg(long, value_name = "REGEX")]
    pub expect: Option<String>,
    /// `installed` is reached when the installed system's serial console matches this (a
    /// login prompt), not as soon as the VM reboots into its disk (implies --wait-for installed).
    #[arg(long, value_name = "REGEX")]
    pub expect_installed: Option<String>,
    /// End the lab with exit 1 when a VM's serial console matches this: the installer
    /// failed. FAI's task errors (`Exit code task_NAME: N`, `FATAL ERROR`) are caught without it.
    #[arg(long, value_name = "REGEX")]
    pub fail_on: Option<String>,
    /// Write a JUnit XML report here when the lab ends: one testcase per VM, passed when it
    /// reached the --wait-for stage, with each stage's time and, on failure, the last serial lines.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Keep each VM's serial console, the JSON events and the list of files served in this
    /// directory when the lab ends.
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Give up after this many seconds (exit 5).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Run the lab in the background; stop it with `pxelab down`.
    #[arg(long, conflicts_with_all = ["wait_for", "timeout", "expect", "expect_installed", "fail_on"])]
    pub detach: bool,
    /// Leave the VMs alive when the lab stops.
    #[arg(long)]
    pub keep: bool,
    /// What pxelinux's menu boots when its timeout runs out. The lab's own VMs never see the
    /// menu (they boot the installer at once); other machines on the network do.
    #[arg(long, value_enum, default_value = "local", value_name = "ENTRY")]
    pub menu_default: MenuDefault,
    /// Restart the network even though running guests are attached (they are plugged back in).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub shape: VmShapeArgs,
    /// The VMs' firmware: `both` makes each VM twice, once BIOS and once UEFI, on one network
    /// (default: bios for x86_64 VMs; aarch64 VMs are UEFI only).
    #[arg(long, value_enum, value_name = "FIRMWARE")]
    pub firmware: Option<FirmwareArg>,
    /// A kickstart for the lab's VMs (RHEL family): served per VM over HTTP (and FTP), with inst.ks=.
    /// `{server}`, `{http}`, `{vm}` and `{mac}` in it are filled in for each VM.
    #[arg(long, value_name = "FILE", group = "answer")]
    pub kickstart: Option<PathBuf>,
    /// A preseed for the lab's VMs (Debian): served per VM, with auto=true url=.
    #[arg(long, value_name = "FILE", group = "answer")]
    pub preseed: Option<PathBuf>,
    /// An autoinstall user-data for the lab's VMs (Ubuntu): served per VM with an empty
    /// meta-data, with autoinstall ds=nocloud-net;s=.
    #[arg(long, value_name = "FILE", group = "answer")]
    pub autoinstall: Option<PathBuf>,
    /// A FAI config space for the lab's VMs (a FAI CD): a directory or a tar of one, served
    /// per VM as a tar over HTTP, with FAI_CONFIG_SRC=; placeholders filled in its text files.
    #[arg(long, value_name = "PATH", group = "answer")]
    pub fai_config: Option<PathBuf>,
    /// Give the VMs the ISO as a CD-ROM, read by QEMU from pxelab's HTTP server (a Range
    /// request per read). The default for ISOs whose installer looks for its medium on a CD
    /// (Debian's install.<arch>/).
    #[arg(long, overrides_with = "no_iso_cdrom")]
    pub iso_cdrom: bool,
    /// No CD-ROM, even for an ISO whose installer looks for one.
    #[arg(long, overrides_with = "iso_cdrom")]
    pub no_iso_cdrom: bool,
    /// UEFI VMs boot with Secure Boot on (q35, SMM, Microsoft's keys), through the ISO's own
    /// signed shim and GRUB.
    #[arg(long)]
    pub secure_boot: bool,
    /// The FTP port the installer is pointed at (0: any free port). TFTP is
    /// always port 69: PXE clients ask for no other.
    #[arg(long, default_value_t = crate::serve::FTP_PORT, value_name = "PORT")]
    pub ftp_port: u16,
    /// FTP passive data ports, as FIRST-LAST.
    #[arg(long, default_value = "50000-50100", value_name = "RANGE")]
    pub passive_ports: String,
    /// Do not answer IPv6 router solicitations on the lab's bridge (iPXE then waits
    /// about 10 s for IPv6 autoconfiguration after its DHCP lease).
    #[arg(long)]
    pub no_ra: bool,
    /// Keep dnsmasq's ping before each new lease and iPXE's wait for ProxyDHCP offers
    /// (about 3 s more to each VM's first lease).
    #[arg(long)]
    pub no_fast_dhcp: bool,
    /// Leave the network's DHCP as it is: answer PXE clients beside it with proxy DHCP
    /// (boot information only, never an address). The network's XML is not changed.
    #[arg(long)]
    pub proxy_dhcp: bool,
    /// With --proxy-dhcp: run the lab on this bridge of the host instead of a libvirt
    /// network (a bridged lab beside a site's DHCP server): the proxy answers there and
    /// the VMs are plugged into it. `down --network BRIDGE` stops it.
    #[arg(long, value_name = "BRIDGE", requires = "proxy_dhcp", conflicts_with = "network")]
    pub interface: Option<String>,
    /// HTTP (the boot tree, and the ISO itself at /<ISO file name>); 0 picks a free port, `none` serves no HTTP.
    #[arg(long, default_value = "80", value_name = "PORT", value_parser = super::serve::parse_http_port)]
    pub http_port: super::serve::HttpPort,
}

/// `pxelab up`, in the foreground or (`--detach`) as a background process.
pub fn run(args: UpArgs, globals: &Globals) -> Result<Outcome> {
    if args.detach {
        let child_args = std::env::args_os().skip(1).filter(|a| a != "--detach").collect();
        let detached = lab::detach(child_args, &globals.uri, args.interface.as_deref().unwrap_or(&args.network))?;
        if globals.json {
            output::json_line(&serde_json::json!({ "event": "detached", "pid": detached.pid, "log": detached.log, "lab": detached.lab }));
        } else {
            output::text(&text::detached_text(&detached));
        }
        return Ok(Outcome::Done);
    }
    let wait_for = wait_for(&args)?;
    let request = request(&args, globals, wait_for)?;
    let json = globals.json;
    let suite = request.iso.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "pxelab".into());
    let (junit, artifacts) = (args.junit, args.artifacts);
    let mut collected = Collected::default();
    let result = runtime()?.block_on(async {
        let shutdown = shutdown_on_signals()?;
        // A closed stdout only silences the display: the lab runs on and
        // tears down as it would have (see output.rs).
        let mut display = LabDisplay::new(json);
        lab::up(request, shutdown, &mut |event: &lab::LabEvent| {
            collected.add(event);
            display.show(event)
        })
        .await
    });
    // The reports are written however the lab ended: a red CI job needs them most.
    if let Some(dir) = &artifacts {
        collected.write_artifacts(dir).map_err(|e| Error::environment(format!("cannot write the artifacts in {}: {e}", dir.display())))?;
    }
    if let Some(file) = &junit {
        report::write(file, &collected.junit(&suite, wait_for, result.as_ref().err().map(|e| e.to_string()).as_deref()))?;
    }
    result?;
    Ok(Outcome::Done)
}

/// The stage `up` waits for, from --wait-for and the --expect flags.
fn wait_for(args: &UpArgs) -> Result<Option<progress::Stage>> {
    Ok(match (args.wait_for, &args.expect, &args.expect_installed) {
        (None | Some(Stage::Installed), _, Some(_)) => Some(progress::Stage::Installed),
        (Some(_), _, Some(_)) => {
            return Err(Error::usage("--expect-installed matches the installed system: use it with --wait-for installed (or without --wait-for)"))
        }
        (None, Some(_), None) => Some(progress::Stage::Installer),
        (Some(stage), Some(_), None) if stage != Stage::Installer && stage != Stage::Installed => {
            return Err(Error::usage("--expect matches the installer's console: use it with --wait-for installer or installed (or without --wait-for)"));
        }
        (stage, _, _) => stage.map(Into::into),
    })
}

/// The flags as the lab takes them.
fn request(args: &UpArgs, globals: &Globals, wait_for: Option<progress::Stage>) -> Result<lab::UpRequest> {
    Ok(lab::UpRequest {
        uri: globals.uri.clone(),
        iso: args.iso.clone(),
        overrides: args.iso_overrides.overrides(),
        network: args.network.clone(),
        server_ip: args.server_ip,
        vms: if args.no_vm && !args.vm { 0 } else { args.vms },
        shape: args.shape.shape(),
        firmwares: super::firmwares(args.firmware, args.secure_boot)?,
        answer: [
            (AnswerKind::Kickstart, &args.kickstart),
            (AnswerKind::Preseed, &args.preseed),
            (AnswerKind::Autoinstall, &args.autoinstall),
            (AnswerKind::FaiConfig, &args.fai_config),
        ]
        .into_iter()
        .find_map(|(kind, path)| path.clone().map(|p| (kind, p))),
        wait_for,
        expect: args.expect.clone(),
        expect_installed: args.expect_installed.clone(),
        fail_on: args.fail_on.clone(),
        artifacts: args.artifacts.clone(),
        timeout: args.timeout.map(Duration::from_secs),
        keep: args.keep,
        force: args.force,
        default_entry: match args.menu_default {
            MenuDefault::Local => DefaultEntry::Local,
            MenuDefault::Install => DefaultEntry::Install,
        },
        ftp_port: args.ftp_port,
        http_port: args.http_port.0,
        ra: !args.no_ra,
        fast_dhcp: !args.no_fast_dhcp,
        proxy_dhcp: args.proxy_dhcp,
        interface: args.interface.clone(),
        passive_ports: lab::parse_port_range(&args.passive_ports)?,
        iso_cdrom: match (args.iso_cdrom, args.no_iso_cdrom) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    })
}
