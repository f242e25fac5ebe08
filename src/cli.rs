//! The command line: every verb and flag, defined once with clap.
//!
//! The doc comments here are the `--help` text, so they are the single
//! source of what each flag means. This module only parses; [`run`] hands
//! each verb to [`crate::lab`] and prints what comes back.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::boot::DefaultEntry;
use crate::error::{Error, Result};
use crate::iso::Overrides;
use crate::lab;

/// A libvirt-integrated PXE lab: serve an installer ISO over TFTP and FTP,
/// point the network's DHCP at it, and boot VMs into the installer.
#[derive(Debug, Parser)]
#[command(name = "pxelab", version, about, max_term_width = 100)]
#[command(after_help = "Exit codes: 0 ok, 1 other failure, 2 usage, 3 bad input, 4 environment, 5 timed out.")]
pub struct Cli {
    /// libvirt connection URI.
    #[arg(short = 'c', long = "connect", global = true, env = "LIBVIRT_DEFAULT_URI", default_value = "qemu:///system")]
    pub connect: String,

    /// Print machine-readable JSON instead of text (errors too, on stdout).
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve an ISO, patch the network's DHCP, and boot VMs into its installer.
    Up(UpArgs),
    /// Stop the running lab and undo everything it changed on the host.
    Down,
    /// Show the running lab: ISO, network, servers, VMs and their boot stages.
    Status,
    /// Run only the TFTP and FTP servers for an ISO, in the foreground.
    Serve(ServeArgs),
    /// Manage pxelab's VMs.
    #[command(subcommand)]
    Vm(VmCommand),
    /// Patch or restore a libvirt network's DHCP boot options.
    #[command(subcommand)]
    Net(NetCommand),
    /// Print DHCP server settings that point clients at this PXE server.
    DhcpConfig(DhcpConfigArgs),
    /// Check the host and the lab, and say what to fix.
    Doctor(DoctorArgs),
    /// Look inside installer ISOs.
    #[command(subcommand)]
    Iso(IsoCommand),
}

/// Which accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    /// kvm when it can really run a guest here, else tcg.
    Auto,
    Kvm,
    Tcg,
}

impl Accel {
    /// The accelerator the user forced, or `None` for auto.
    pub fn forced(self) -> Option<crate::virt::accel::Accel> {
        match self {
            Accel::Auto => None,
            Accel::Kvm => Some(crate::virt::accel::Accel::Kvm),
            Accel::Tcg => Some(crate::virt::accel::Accel::Tcg),
        }
    }
}

/// A point in a PXE boot that pxelab can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    Dhcp,
    Bootloader,
    Kernel,
    Installer,
}

/// Where detection of the ISO's kernel is wrong, name it yourself.
#[derive(Debug, Clone, Args)]
pub struct IsoOverrideArgs {
    /// The kernel's path inside the ISO (e.g. isolinux/vmlinuz).
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<String>,
    /// The initrd's path inside the ISO (e.g. isolinux/initrd.img).
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<String>,
    /// The kernel command line, replacing the suggested one; {server} is the PXE server's address.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub append: Option<String>,
}

impl IsoOverrideArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides { kernel: self.kernel.clone(), initrd: self.initrd.clone(), append: self.append.clone() }
    }
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
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    #[command(flatten)]
    pub iso_overrides: IsoOverrideArgs,
    /// Exit 0 once every VM reached this stage (CI mode).
    #[arg(long, value_enum, value_name = "STAGE")]
    pub wait_for: Option<Stage>,
    /// With --wait-for, the `installer` stage is reached when the serial console matches this.
    #[arg(long, value_name = "REGEX")]
    pub expect: Option<String>,
    /// Give up after this many seconds (exit 5).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Run the lab in the background; stop it with `pxelab down`.
    #[arg(long)]
    pub detach: bool,
    /// Leave the VMs alive when the lab stops.
    #[arg(long)]
    pub keep: bool,
    /// Make the menu boot the local disk by default instead of the installer.
    #[arg(long)]
    pub local_boot_default: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The installer ISO to serve.
    #[arg(long, value_name = "ISO")]
    pub iso: PathBuf,
    /// The address both servers listen on.
    #[arg(long, value_name = "ADDR")]
    pub bind: IpAddr,
    #[arg(long, default_value_t = 69, value_name = "PORT")]
    pub tftp_port: u16,
    #[arg(long, default_value_t = 21, value_name = "PORT")]
    pub ftp_port: u16,
    /// FTP passive data ports, as FIRST-LAST.
    #[arg(long, default_value = "50000-50100", value_name = "RANGE")]
    pub passive_ports: String,
    /// Serve this directory over FTP instead of the ISO's tree.
    #[arg(long, value_name = "DIR")]
    pub tree: Option<PathBuf>,
    /// Answer only clients in this range (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,
    #[command(flatten)]
    pub iso_overrides: IsoOverrideArgs,
    /// Make the menu boot the local disk by default instead of the installer.
    #[arg(long)]
    pub local_boot_default: bool,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Create and start a VM.
    New(VmNewArgs),
    /// List pxelab's VMs.
    List,
    /// Destroy a pxelab VM and delete its disk and log.
    Rm {
        name: String,
    },
    /// Print a VM's serial console log.
    Console {
        name: String,
        /// Keep printing what the guest writes until it stops (or Ctrl-C).
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Debug, Args)]
pub struct VmNewArgs {
    /// Boot from the network first (then from the disk).
    #[arg(long)]
    pub pxe: bool,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Memory in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u64,
    #[arg(long, default_value_t = 2)]
    pub vcpus: u32,
    /// Disk size in GiB.
    #[arg(long, default_value_t = 20)]
    pub disk_size: u64,
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Where the serial console is logged.
    #[arg(long, value_name = "PATH")]
    pub serial_log: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Point the network's DHCP at a PXE server (`<bootp file=… server=…/>`).
    Patch {
        #[arg(long)]
        network: String,
        /// The TFTP server (default: the network's own IPv4 address).
        #[arg(long, value_name = "IP")]
        server: Option<IpAddr>,
        #[arg(long, default_value = "pxelinux.0")]
        file: String,
        /// Restart the network even though running guests are attached.
        #[arg(long)]
        force: bool,
    },
    /// Put back the network exactly as it was before `net patch`.
    Restore {
        #[arg(long)]
        network: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DhcpFormat {
    Isc,
    Dnsmasq,
    Windows,
    Libvirt,
}

#[derive(Debug, Args)]
pub struct DhcpConfigArgs {
    #[arg(long, value_enum)]
    pub format: DhcpFormat,
    #[arg(long, value_name = "IP")]
    pub server: Option<String>,
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The address pool, as FIRST-LAST.
    #[arg(long, value_name = "RANGE")]
    pub range: Option<String>,
    #[arg(long, default_value = "pxelinux.0")]
    pub file: String,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long)]
    pub network: Option<String>,
    #[arg(long)]
    pub vm: Option<String>,
}

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
    /// Also print the pxelinux menu pxelab would serve.
    #[arg(long)]
    pub menu: bool,
    /// The server address to show in the menu and kernel arguments.
    #[arg(long, value_name = "IP", requires = "menu")]
    pub server: Option<IpAddr>,
    /// Make the menu boot the local disk by default.
    #[arg(long, requires = "menu")]
    pub local_boot_default: bool,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Iso(IsoCommand::Inspect(args)) => {
            let default = if args.local_boot_default { DefaultEntry::Local } else { DefaultEntry::Install };
            let report = lab::inspect(&args.iso, &args.iso_overrides.overrides(), args.menu, args.server, default)?;
            if cli.json {
                print_json(&report)?;
            } else {
                print!("{}", report.to_text());
            }
            Ok(())
        }
        Command::Up(_) => Err(Error::not_implemented("up")),
        Command::Down => Err(Error::not_implemented("down")),
        Command::Status => Err(Error::not_implemented("status")),
        Command::Serve(args) => {
            let request = lab::ServeRequest {
                iso: args.iso,
                overrides: args.iso_overrides.overrides(),
                bind: args.bind,
                tftp_port: args.tftp_port,
                ftp_port: args.ftp_port,
                passive_ports: args.passive_ports,
                tree: args.tree,
                allow: args.allow,
                default: if args.local_boot_default { DefaultEntry::Local } else { DefaultEntry::Install },
            };
            let json = cli.json;
            runtime()?.block_on(lab::serve(
                request,
                |ready| {
                    if json {
                        println!("{}", serde_json::to_string(ready).unwrap_or_default());
                    } else {
                        println!(
                            "pxelab: serving {} (TFTP {}, FTP {}); kernel args: {}; Ctrl-C to stop",
                            ready.iso, ready.tftp, ready.ftp, ready.kernel_args
                        );
                    }
                },
                |event| {
                    if json {
                        println!("{}", serde_json::to_string(event).unwrap_or_default());
                    }
                },
            ))
        }
        Command::Vm(VmCommand::New(args)) => {
            let request = lab::VmNewRequest {
                uri: cli.connect.clone(),
                name: args.name,
                network: args.network,
                memory_mib: args.memory,
                vcpus: args.vcpus,
                disk_gib: args.disk_size,
                accel: args.accel.forced(),
                serial_log: args.serial_log,
                pxe: args.pxe,
            };
            let report = runtime()?.block_on(lab::vm_new(request))?;
            if cli.json {
                print_json(&report)?;
            } else {
                println!(
                    "created {} on network {} ({}: {}); serial log {}",
                    report.vm.name,
                    report.vm.networks.join(", "),
                    report.vm.accel,
                    report.accel_reason,
                    report.vm.meta.serial_log
                );
                println!("follow its console with: pxelab vm console -f {}", report.vm.name);
            }
            Ok(())
        }
        Command::Vm(VmCommand::List) => {
            let vms = runtime()?.block_on(lab::vm_list(&cli.connect))?;
            if cli.json {
                print_json(&vms)?;
            } else if vms.is_empty() {
                println!("no pxelab VMs");
            } else {
                println!("{:<24} {:<10} {:<5} {:<16} serial log", "NAME", "STATE", "ACCEL", "NETWORK");
                for vm in vms {
                    println!("{:<24} {:<10} {:<5} {:<16} {}", vm.name, vm.state, vm.accel, vm.networks.join(","), vm.meta.serial_log);
                }
            }
            Ok(())
        }
        Command::Vm(VmCommand::Rm { name }) => {
            let meta = runtime()?.block_on(lab::vm_rm(&cli.connect, &name))?;
            if cli.json {
                print_json(&serde_json::json!({ "removed": name, "volume": meta.volume, "serial_log": meta.serial_log }))?;
            } else {
                println!("removed {name}, its disk {} and its serial log", meta.volume);
            }
            Ok(())
        }
        Command::Vm(VmCommand::Console { name, follow }) => runtime()?.block_on(lab::vm_console(&cli.connect, &name, follow)),
        Command::Net(NetCommand::Patch { network, server, file, force }) => {
            let request = lab::NetPatchRequest { uri: cli.connect.clone(), network, server, file, force };
            let report = runtime()?.block_on(lab::net_patch(request))?;
            if cli.json {
                print_json(&report)?;
            } else if report.unchanged {
                println!("network {} already boots {} from {}; nothing changed", report.network, report.file, report.server);
            } else {
                println!(
                    "network {} now boots {} from {}{}{}",
                    report.network,
                    report.file,
                    report.server,
                    if report.restarted { " (network restarted)" } else { " (takes effect when the network starts)" },
                    if report.reattached.is_empty() { String::new() } else { format!("; re-attached {}", report.reattached.join(", ")) },
                );
                println!("undo with: pxelab net restore --network {}", report.network);
            }
            Ok(())
        }
        Command::Net(NetCommand::Restore { network }) => {
            let report = runtime()?.block_on(lab::net_restore(&cli.connect, &network))?;
            if cli.json {
                print_json(&report)?;
            } else if report.restored {
                println!("network {} is back as it was before pxelab patched it", report.network);
            } else {
                println!("network {} has no pxelab patch to undo; nothing changed", report.network);
            }
            Ok(())
        }
        Command::DhcpConfig(_) => Err(Error::not_implemented("dhcp-config")),
        Command::Doctor(_) => Err(Error::not_implemented("doctor")),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value).map_err(|e| Error::other(e.to_string()))?);
    Ok(())
}

/// The async runtime for the verbs that serve or wait.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::environment(format!("cannot start the async runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
