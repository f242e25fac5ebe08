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

mod output;
use output::{status_text, LabDisplay};

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
    #[arg(long, conflicts_with_all = ["wait_for", "timeout"])]
    pub detach: bool,
    /// Leave the VMs alive when the lab stops.
    #[arg(long)]
    pub keep: bool,
    /// Make the menu boot the local disk by default instead of the installer.
    #[arg(long)]
    pub local_boot_default: bool,
    /// Restart the network even though running guests are attached (they are plugged back in).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub shape: VmShapeArgs,
    /// FTP passive data ports, as FIRST-LAST.
    #[arg(long, default_value = "50000-50100", value_name = "RANGE")]
    pub passive_ports: String,
}

/// What each VM gets.
#[derive(Debug, Clone, Args)]
pub struct VmShapeArgs {
    /// Memory of each VM, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u64,
    #[arg(long, default_value_t = 2)]
    pub vcpus: u32,
    /// Disk of each VM, in GiB.
    #[arg(long, default_value_t = 20)]
    pub disk_size: u64,
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
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
    /// Concurrent TFTP transfers; more are refused with a TFTP error.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_transfers: u32,
    /// Concurrent FTP sessions; more are refused with 421.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_sessions: u32,
    /// Microseconds a lone TFTP transfer busy-polls for each ACK before
    /// sleeping (faster on a quick link; stops by itself for slow clients); 0: never.
    #[arg(long, default_value_t = 100, value_name = "US", value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub tftp_spin_us: u32,
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
    /// The network (default: the running lab's, else `default`).
    #[arg(long)]
    pub network: Option<String>,
    #[command(flatten)]
    pub shape: VmShapeArgs,
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
    /// The PXE (TFTP) server (default: the running lab's).
    #[arg(long, value_name = "IP")]
    pub server: Option<String>,
    /// The clients' network (default: the running lab's, else the server's /24).
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The address pool, as FIRST-LAST.
    #[arg(long, value_name = "RANGE")]
    pub range: Option<String>,
    #[arg(long, default_value = "pxelinux.0")]
    pub file: String,
    /// With --format dnsmasq: proxy DHCP beside a DHCP server you do not control.
    #[arg(long)]
    pub proxy: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The libvirt network to check [default: the running lab's, else the VM's, else `default`].
    #[arg(long)]
    pub network: Option<String>,
    /// Also check this VM: its NIC's network, its boot order, the stage it reached.
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
        Command::Up(args) => up(args, &cli.connect, cli.json),
        Command::Down => {
            let json = cli.json;
            let mut display = LabDisplay::lines(json);
            let report = runtime()?.block_on(lab::down(&cli.connect, &mut |event: &lab::LabEvent| display.show(event)))?;
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else if report.nothing_to_do {
                println!("no lab running; nothing to undo");
            } else {
                println!("lab stopped; the host is as it was");
            }
            Ok(())
        }
        Command::Status => {
            let report = lab::status()?;
            if cli.json {
                print_json(&report)?;
            } else {
                print!("{}", status_text(&report));
            }
            Ok(())
        }
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
                max_transfers: args.max_transfers as usize,
                max_sessions: args.max_sessions as usize,
                tftp_ack_spin: std::time::Duration::from_micros(args.tftp_spin_us.into()),
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
                memory_mib: args.shape.memory,
                vcpus: args.shape.vcpus,
                disk_gib: args.shape.disk_size,
                accel: args.shape.accel.forced(),
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
        Command::DhcpConfig(args) => {
            let format = match (args.format, args.proxy) {
                (DhcpFormat::Dnsmasq, true) => lab::DhcpFormat::DnsmasqProxy,
                (_, true) => return Err(Error::bad_input("--proxy goes with --format dnsmasq")),
                (DhcpFormat::Isc, _) => lab::DhcpFormat::Isc,
                (DhcpFormat::Dnsmasq, _) => lab::DhcpFormat::Dnsmasq,
                (DhcpFormat::Windows, _) => lab::DhcpFormat::Windows,
                (DhcpFormat::Libvirt, _) => lab::DhcpFormat::Libvirt,
            };
            let text = lab::dhcp_config(format, args.server.as_deref(), args.subnet.as_deref(), args.range.as_deref(), &args.file)?;
            if cli.json {
                print_json(&serde_json::json!({ "format": format!("{format:?}").to_lowercase(), "config": text }))?;
            } else {
                print!("{text}");
            }
            Ok(())
        }
        Command::Doctor(args) => {
            let request = lab::DoctorRequest { uri: cli.connect.clone(), network: args.network, vm: args.vm };
            let report = runtime()?.block_on(lab::doctor(request))?;
            if cli.json {
                print_json(&report)?;
            } else {
                print!("{}", output::doctor_text(&report));
            }
            if !report.ok {
                // The findings are the message; exit 1 says "something failed"
                // without a second, redundant error line.
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn stage(stage: Stage) -> lab::progress::Stage {
    match stage {
        Stage::Dhcp => lab::progress::Stage::Dhcp,
        Stage::Bootloader => lab::progress::Stage::Bootloader,
        Stage::Kernel => lab::progress::Stage::Kernel,
        Stage::Installer => lab::progress::Stage::Installer,
    }
}

/// `pxelab up`, in the foreground or (`--detach`) as a background process.
fn up(args: UpArgs, uri: &str, json: bool) -> Result<()> {
    if args.detach {
        return detach(json);
    }
    let passive = lab::parse_port_range(&args.passive_ports)?;
    let vms = if args.no_vm && !args.vm { 0 } else { args.vms };
    let request = lab::UpRequest {
        uri: uri.to_string(),
        iso: args.iso,
        overrides: args.iso_overrides.overrides(),
        network: args.network,
        server_ip: args.server_ip,
        vms,
        accel: args.shape.accel.forced(),
        memory_mib: args.shape.memory,
        vcpus: args.shape.vcpus,
        disk_gib: args.shape.disk_size,
        wait_for: args.wait_for.map(stage),
        expect: args.expect,
        timeout: args.timeout.map(std::time::Duration::from_secs),
        keep: args.keep,
        force: args.force,
        default_entry: if args.local_boot_default { DefaultEntry::Local } else { DefaultEntry::Install },
        tftp_port: 69,
        ftp_port: 21,
        passive_ports: passive,
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let cancel = tokio_util::sync::CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            on_signal.cancel();
        });
        let mut display = LabDisplay::new(json);
        lab::up(request, cancel, &mut |event: &lab::LabEvent| display.show(event)).await
    })
}

/// Re-runs this `up` without `--detach` in a new session, logging to the
/// state directory, and returns once the lab is ready (or failed).
fn detach(json: bool) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let state = lab::ensure_dir(lab::state_dir_or_err()?)?;
    let log_path = state.join("lab.log");
    let log = std::fs::File::create(&log_path).map_err(|e| Error::environment(format!("cannot write {}: {e}", log_path.display())))?;
    let exe = std::env::current_exe().map_err(|e| Error::environment(format!("cannot find the pxelab binary: {e}")))?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).filter(|a| a != "--detach").collect();
    let mut command = std::process::Command::new(exe);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| Error::environment(e.to_string()))?)
        .stderr(log);
    // A session of its own: the lab outlives this shell and its Ctrl-C.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| Error::environment(format!("cannot start the lab: {e}")))?;
    let pid = child.id();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::other(e.to_string()))? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = log.lines().rev().find(|l| l.contains("error")).unwrap_or("see the log").trim().to_string();
            let kind = crate::error::Kind::from_exit_code(status.code().unwrap_or(1));
            return Err(Error::new(kind, format!("the lab stopped while starting: {last} (log: {})", log_path.display())));
        }
        if let Ok(Some(record)) = lab::record::read(&state) {
            if record.pid == pid && record.ready {
                if json {
                    println!("{}", serde_json::json!({ "event": "detached", "pid": pid, "log": log_path, "lab": record }));
                } else {
                    println!("lab running in the background (pid {pid}, log {}); `pxelab status` to follow, `pxelab down` to stop", log_path.display());
                }
                return Ok(());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
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
