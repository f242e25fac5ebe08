//! The command line: every verb and flag, defined once with clap.
//!
//! The doc comments here and in each verb's file are the `--help` text, so
//! they are the single source of what each flag means. One file per verb
//! family: each defines its arguments and a `run` that turns them into a
//! request for [`crate::lab`] and prints what comes back through
//! [`output`]. [`run`] only dispatches; `main` alone decides the exit code.
//!
//! The verbs that serve or wait (`up`, `serve`, `vm console -f`) stop on
//! one shutdown signal: [`shutdown_on_signals`] catches SIGINT and SIGTERM
//! here, once, and hands the lab a cancellation token.

mod dhcp;
mod doctor;
mod generate;
mod iso;
mod lab;
mod net;
pub mod output;
mod report;
mod serve;
mod text;
mod up;
mod vm;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::iso::Overrides;
use crate::virt::domxml::Firmware;

pub use output::Outcome;

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

    /// More log output on stderr (-v: each step, -vv: every libvirt call too).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print nothing but an error: the exit code says how it went.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve an ISO, patch the network's DHCP, and boot VMs into its installer.
    Up(Box<up::UpArgs>),
    /// Stop a running lab (or every one) and undo everything it changed on the host.
    Down(lab::DownArgs),
    /// Show the running lab: ISO, network, servers, VMs and their boot stages.
    Status(lab::StatusArgs),
    /// Run only the TFTP, FTP and HTTP servers for an ISO, in the foreground.
    Serve(serve::ServeArgs),
    /// Manage pxelab's VMs.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// Patch or restore a libvirt network's DHCP boot options.
    #[command(subcommand)]
    Net(net::NetCommand),
    /// Print DHCP server settings that point clients at this PXE server.
    DhcpConfig(dhcp::DhcpConfigArgs),
    /// Check the host and the lab, and say what to fix.
    Doctor(doctor::DoctorArgs),
    /// Look inside installer ISOs.
    #[command(subcommand)]
    Iso(iso::IsoCommand),
    /// Print shell completions (bash, zsh, fish) on stdout.
    Completions(generate::CompletionsArgs),
}

impl Command {
    /// Verbs that report their own progress: the servers' log lines would
    /// say everything twice, so they log warnings only unless `-v`.
    pub fn reports_itself(&self) -> bool {
        matches!(self, Command::Up(_) | Command::Down(_))
    }
}

/// What the verb needs of the global options.
pub struct Globals {
    pub uri: String,
    pub json: bool,
}

/// Runs the parsed command. Returns how it ended; `main` turns that into
/// the exit code.
pub fn run(cli: Cli) -> Result<Outcome> {
    let globals = Globals { uri: cli.connect, json: cli.json };
    match cli.command {
        Command::Up(args) => up::run(*args, &globals),
        Command::Down(args) => lab::down(args, &globals),
        Command::Status(args) => lab::status(args, &globals),
        Command::Serve(args) => serve::run(args, &globals),
        Command::Vm(command) => vm::run(command, &globals),
        Command::Net(command) => net::run(command, &globals),
        Command::DhcpConfig(args) => dhcp::run(args, &globals),
        Command::Doctor(args) => doctor::run(args, &globals),
        Command::Iso(command) => iso::run(command, &globals),
        Command::Completions(_) if globals.json => {
            Err(crate::error::Error::usage("--json does not apply to `completions`: it prints a shell script; drop --json"))
        }
        Command::Completions(args) => generate::completions(args),
    }
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
    /// How the installer reaches the ISO's tree: over pxelab's HTTP server, or its FTP server
    /// (the seed's way) [default: http; ftp where HTTP is not served].
    #[arg(long, value_enum)]
    pub repo: Option<RepoArg>,
}

/// `--repo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RepoArg {
    Http,
    Ftp,
}

impl IsoOverrideArgs {
    pub fn overrides(&self) -> Overrides {
        let repo = self.repo.map(|repo| match repo {
            RepoArg::Http => crate::iso::Repo::Http,
            RepoArg::Ftp => crate::iso::Repo::Ftp,
        });
        Overrides { kernel: self.kernel.clone(), initrd: self.initrd.clone(), append: self.append.clone(), repo, http_off: false }
    }
}

/// What each VM gets.
#[derive(Debug, Clone, Args)]
pub struct VmShapeArgs {
    /// Memory of each VM, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u64,
    /// Virtual CPUs of each VM.
    #[arg(long, default_value_t = 2)]
    pub vcpus: u32,
    /// Disk of each VM, in GiB.
    #[arg(long, default_value_t = 20)]
    pub disk_size: u64,
    /// The accelerator: auto picks kvm where it can really run a guest here (not under
    /// PVM, not without vmx/svm), else tcg (software emulation).
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// The VMs' architecture (default: the ISO's installer's for `up`, the running lab's
    /// for `vm new`, else x86_64). aarch64 VMs are the `virt` machine with AAVMF (UEFI).
    #[arg(long, value_enum, value_name = "ARCH")]
    pub arch: Option<ArchArg>,
}

/// `--arch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchArg {
    #[value(name = "x86_64")]
    X86_64,
    Aarch64,
}

impl From<ArchArg> for crate::arch::Arch {
    fn from(arg: ArchArg) -> Self {
        match arg {
            ArchArg::X86_64 => crate::arch::Arch::X86_64,
            ArchArg::Aarch64 => crate::arch::Arch::Aarch64,
        }
    }
}

/// `up --firmware`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FirmwareArg {
    /// SeaBIOS (the `pc` machine).
    Bios,
    /// OVMF on q35 (Secure Boot with --secure-boot).
    Uefi,
    /// One VM of each, on one network.
    Both,
}

/// `vm new --firmware`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VmFirmwareArg {
    Bios,
    Uefi,
}

/// The firmwares asked for, each VM's `Firmware`; none when `--firmware`
/// was not given: the architecture's own (BIOS on x86-64, UEFI on ARM64).
pub fn firmwares(arg: Option<FirmwareArg>, secure_boot: bool) -> Result<Vec<Firmware>> {
    let uefi = if secure_boot { Firmware::SecureBoot } else { Firmware::Uefi };
    match (arg, secure_boot) {
        (None | Some(FirmwareArg::Bios), true) => Err(Error::usage("--secure-boot is a UEFI feature: add --firmware uefi (or both)")),
        (None, false) => Ok(vec![]),
        (Some(FirmwareArg::Bios), false) => Ok(vec![Firmware::Bios]),
        (Some(FirmwareArg::Uefi), _) => Ok(vec![uefi]),
        (Some(FirmwareArg::Both), _) => Ok(vec![Firmware::Bios, uefi]),
    }
}

impl VmShapeArgs {
    pub fn shape(&self) -> crate::lab::VmShape {
        crate::lab::VmShape {
            memory_mib: self.memory,
            vcpus: self.vcpus,
            disk_gib: self.disk_size,
            accel: self.accel.forced(),
            arch: self.arch.map(Into::into),
        }
    }
}

/// The async runtime for the verbs that serve or wait.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Error::environment(format!("cannot start the async runtime: {e}")))
}

/// A token cancelled by the first SIGINT (Ctrl-C) or SIGTERM: the one place
/// pxelab catches signals. Call it inside the runtime. Verbs that do not
/// take the token keep the signals' default (the process ends at once).
fn shutdown_on_signals() -> Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let watch = |kind| signal(kind).map_err(|e| Error::other(format!("cannot watch signals: {e}")));
    let (mut int, mut term) = (watch(SignalKind::interrupt())?, watch(SignalKind::terminate())?);
    let on_signal = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => tracing::debug!("SIGINT: stopping"),
            _ = term.recv() => tracing::debug!("SIGTERM: stopping"),
        }
        on_signal.cancel();
    });
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every option and argument of every verb says what it is for in `--help`.
    #[test]
    fn every_option_of_every_verb_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{path} {}", arg.get_long().map(|l| format!("--{l}")).unwrap_or_else(|| format!("<{id}>"))));
                }
            }
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "pxelab", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
