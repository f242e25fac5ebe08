//! `up`'s first phase: read and check everything, change nothing.
//!
//! [`plan`] is a list of named steps, each a function: the flags against
//! each other, the network and where it is, the ISO and its boot tree, the
//! answer file, the firmware, then the values the lab runs on (milestones,
//! the lab's record, the servers' configuration, the dnsmasq lines). A bad
//! input stops `up` at its step with exit 3 or 4 and the host untouched.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::proxy::{check_proxyable, proxy_plan, ProxyPlan};
use super::segment::{host_bridge, Segment};
use super::site::{site, Site, SiteFacts};
use super::{UpRequest, TFTP_PORT, UP_FLAGS};
use crate::answer::{AnswerFile, AnswerKind};
use crate::arch::Arch;
use crate::blocking;
use crate::boot::{self, BootTree};
use crate::dhcp::{LabDnsmasq, UefiBoot};
use crate::error::{Error, Result};
use crate::iso::{Distro, Family};
use crate::lab::net::{check_patchable, refuse_running_guests};
use crate::lab::progress::{FailureSigns, Milestones};
use crate::lab::record::{Counters, LabRecord};
use crate::lab::serve::{endpoints, Endpoints};
use crate::lab::{ipv4_server, prepare, BootPlan, Prepared};
use crate::serve::ports::is_local_address;
use crate::serve::{AllowList, FtpRoot, Limits, ServeConfig};
use crate::virt::accel::AccelChoice;
use crate::virt::domxml::Firmware;
use crate::virt::network;
use crate::virt::netxml::Bootp;
use crate::virt::Libvirt;

/// `--expect`, `--expect-installed` and `--fail-on`, compiled.
pub(super) struct Expect {
    pub installer: Option<regex::Regex>,
    pub installed: Option<regex::Regex>,
    pub fail_on: Option<regex::Regex>,
}

/// The lab's answer file and what its templates are filled with.
pub(super) struct Answer {
    pub file: AnswerFile,
    pub server: String,
    pub http_base: String,
}

/// What `up` read and decided before its first change.
pub(super) struct Plan {
    pub site: Site,
    pub answer: Option<Answer>,
    pub segment: Segment,
    pub bootp: Bootp,
    /// `--proxy-dhcp`: answer PXE clients beside the network's DHCP instead
    /// of patching it (`bootp` and `dnsmasq` then go unused).
    pub proxy: Option<ProxyPlan>,
    /// What the lab adds to libvirt's dnsmasq: the iPXE fast path, fast DHCP.
    pub dnsmasq: LabDnsmasq,
    pub tree: Arc<BootTree>,
    pub config: ServeConfig,
    pub accel: AccelChoice,
    pub milestones: Milestones,
    pub record: LabRecord,
    /// The ISO's file name (URL-encoded) when the VMs get it as a CD-ROM.
    pub cdrom: Option<String>,
    /// The VMs' architecture and, for each VM asked for, its firmwares.
    pub arch: Arch,
    pub firmwares: Vec<Firmware>,
}

/// The flags that contradict each other, before anything else is read.
pub(super) fn check_flags(request: &UpRequest) -> Result<Expect> {
    let regex = |flag: &str, re: &Option<String>| -> Result<Option<regex::Regex>> {
        re.as_ref().map(|re| regex::Regex::new(re).map_err(|e| Error::bad_input(format!("{flag} {re:?} is not a regular expression: {e}")))).transpose()
    };
    let expect = Expect {
        installer: regex("--expect", &request.expect)?,
        installed: regex("--expect-installed", &request.expect_installed)?,
        fail_on: regex("--fail-on", &request.fail_on)?,
    };
    if request.wait_for.is_some() && request.vms == 0 {
        return Err(Error::usage("--wait-for needs a VM to wait for; drop --no-vm or --vms 0"));
    }
    if request.timeout.is_some() && request.vms == 0 {
        return Err(Error::usage("--timeout needs a VM to wait for; drop --no-vm or --vms 0, or drop --timeout"));
    }
    if request.vms > 0 {
        request.shape.check()?;
    }
    Ok(expect)
}

/// Reads and checks everything `up` needs; changes nothing.
pub(super) async fn plan(request: &UpRequest, expect: Expect, libvirt: &Libvirt) -> Result<Plan> {
    let iso_path = std::path::absolute(&request.iso).map_err(|e| Error::bad_input(format!("cannot use --iso {}: {e}", request.iso.display())))?;
    let located = locate(request, libvirt).await?;
    let server_ip = located.server_ip;
    // Only the patch restarts the network, which unplugs its guests.
    if let (false, Some(net)) = (request.proxy_dhcp, located.segment.network()) {
        refuse_running_guests(net, request.force)?;
    }
    let Endpoints { ftp_port, http_port, overrides, authority, http_base } =
        endpoints(server_ip, request.ftp_port, request.http_port, &request.overrides, UP_FLAGS.address)?;
    // The iPXE fast path: iPXE clients (every libvirt guest's NIC ROM) get
    // boot.ipxe over HTTP; the lab's own VMs then boot the installer at
    // once, other clients get pxelinux and the menu (see boot/ipxe.rs).
    // Indexing the ISO reads its directory records: off the runtime.
    let prepared = blocking::run({
        let iso_path = iso_path.clone();
        let (authority, default, http_base, arch) = (authority.clone(), request.default_entry, http_base.clone(), request.shape.arch);
        move || {
            let plan = BootPlan { overrides: &overrides, authority: &authority, default, serial_console: true, arch, http_base, lab_tftp: Some(server_ip) };
            prepare(&iso_path, &plan)
        }
    })
    .await?;
    tracing::debug!("{} detected: kernel {}, initrd {}", prepared.distro.name, prepared.distro.kernel, prepared.distro.initrd);
    let answer = load_answer(request, &prepared.distro, server_ip, http_base.as_deref()).await?;
    check_arch(request, &prepared, &iso_path)?;
    // No VM, no firmware to refuse (`--no-vm` serves the ISO to machines of any kind).
    let firmwares = if request.vms == 0 { Vec::new() } else { crate::lab::machine::firmwares_for(prepared.arch, &request.firmwares)? };
    check_firmware(request, &firmwares, &prepared, located.site, &iso_path)?;
    let cdrom = cdrom(request, &prepared.distro, http_port, &iso_path)?;
    let accel = crate::lab::choose_accel(libvirt, located.libvirt_here, request.shape.accel).await;
    let proxy = match request.proxy_dhcp {
        true => Some(proxy_plan(&located.segment, server_ip, &prepared.tree, http_base.as_deref(), located.site)?),
        false => None,
    };
    let dnsmasq = LabDnsmasq {
        ipxe_script: http_base.as_ref().map(|base| format!("{base}/{}", boot::IPXE_SCRIPT)),
        fast: request.fast_dhcp,
        uefi: prepared.tree.uefi_loaders().iter().map(|l| UefiBoot { arch: l.arch(), file: l.boot_file(), server: server_ip }).collect(),
    };
    Ok(Plan {
        site: located.site,
        answer,
        milestones: milestones(&prepared, &iso_path, expect),
        record: lab_record(request, &iso_path, &prepared, &located.segment, server_ip),
        config: serve_config(server_ip, ftp_port, http_port, &prepared, request),
        segment: located.segment,
        bootp: Bootp { file: "pxelinux.0".into(), server: Some(server_ip.to_string()) },
        proxy,
        cdrom,
        arch: prepared.arch,
        firmwares,
        dnsmasq,
        tree: Arc::new(prepared.tree),
        accel,
    })
}

/// The lab's network (or bridge), where pxelab serves it from, and where it is.
struct Located {
    segment: Segment,
    server_ip: IpAddr,
    site: Site,
    libvirt_here: bool,
}

/// Reads the network, checks pxelab may patch it, and decides the server
/// address and the [`Site`].
async fn locate(request: &UpRequest, libvirt: &Libvirt) -> Result<Located> {
    let libvirt_here = crate::lab::libvirt_is_here(libvirt).await;
    if let Some(interface) = &request.interface {
        let segment = host_bridge(interface, request.server_ip, &request.uri)?;
        let Segment::Bridge { address, .. } = &segment else { unreachable!("host_bridge makes a bridge") };
        return Ok(Located { server_ip: IpAddr::V4(*address), segment, site: Site::Here, libvirt_here });
    }
    let name = request.network.clone();
    tracing::debug!("reading network {name}");
    let net = libvirt.call(move |c| network::read(c, &name)).await?;
    let address = if request.proxy_dhcp { check_proxyable(&net)? } else { check_patchable(&net)? };
    let server_ip = ipv4_server("--server-ip", request.server_ip.unwrap_or(address))?;
    let site = blocking::run({
        let (uri, parsed, given) = (request.uri.clone(), net.parsed.clone(), request.server_ip.is_some());
        move || {
            let facts = SiteFacts {
                uri: &uri,
                net: &parsed,
                address,
                server_ip,
                server_ip_given: given,
                server_ip_is_local: is_local_address(server_ip),
                libvirt_here,
            };
            site(&facts)
        }
    })
    .await?;
    Ok(Located { segment: Segment::Network(net), server_ip, site, libvirt_here })
}

/// `--kickstart`, `--preseed` or `--autoinstall`: read, checked against the
/// ISO's installer, and served over HTTP.
async fn load_answer(request: &UpRequest, distro: &Distro, server_ip: IpAddr, http_base: Option<&str>) -> Result<Option<Answer>> {
    let Some((kind, path)) = &request.answer else { return Ok(None) };
    let file = blocking::run({
        let (kind, path): (AnswerKind, _) = (*kind, path.clone());
        move || AnswerFile::load(kind, &path)
    })
    .await
    .map_err(|e| Error::bad_input(e.to_string()))?;
    file.check_family(distro.family).map_err(|e| Error::bad_input(e.to_string()))?;
    let http_base = http_base.ok_or_else(|| Error::usage(format!("{} is served to the installer over HTTP; drop --http-port none", kind.flag())))?;
    Ok(Some(Answer { file, server: server_ip.to_string(), http_base: http_base.to_string() }))
}

/// Whether the VMs get the ISO as a CD-ROM read over HTTP: asked for, or by
/// default when its installer looks for its medium on a CD drive.
fn cdrom(request: &UpRequest, distro: &Distro, http_port: Option<u16>, iso_path: &Path) -> Result<Option<String>> {
    if request.vms == 0 || !request.iso_cdrom.unwrap_or_else(|| distro.needs_cdrom()) {
        return Ok(None);
    }
    if http_port.is_none() {
        if request.iso_cdrom == Some(true) {
            return Err(Error::usage("--iso-cdrom: the CD-ROM reads the ISO from pxelab's HTTP server; drop --http-port none"));
        }
        tracing::warn!("{} looks for its medium on a CD drive, which is read over HTTP: with --http-port none the VMs get none", distro.name);
        return Ok(None);
    }
    Ok(iso_path.file_name().map(|n| crate::iso::url_segment(&n.to_string_lossy())))
}

/// The lab's VMs run the installer's architecture: one pxelab makes no VMs
/// for (ppc64el, s390x, …) is refused before anything changes, not handed
/// to a firmware that cannot run it; serving it (`--no-vm`) is still
/// allowed. `--arch` wins over the ISO (its name may be wrong), with a
/// warning when they differ.
fn check_arch(request: &UpRequest, prepared: &Prepared, iso_path: &Path) -> Result<()> {
    let Some(named) = prepared.distro.arch.as_deref() else { return Ok(()) };
    match (Arch::of_installer(named), request.shape.arch) {
        (Ok(iso), Some(asked)) if iso != asked => {
            tracing::warn!("{} holds an installer for {named}; making {asked} VMs as --arch asks", iso_path.display());
            Ok(())
        }
        (Err(other), None) if request.vms > 0 => Err(Error::bad_input(format!(
            "{} holds an installer for {other}, and pxelab makes x86_64 and aarch64 VMs only; use an ISO for one of those, or --no-vm to serve it to machines of that architecture",
            iso_path.display()
        ))),
        _ => Ok(()),
    }
}

/// Secure Boot needs the ISO's own signed chain; UEFI on this host needs
/// OVMF (or AAVMF), and ARM64 its emulator.
fn check_firmware(request: &UpRequest, firmwares: &[Firmware], prepared: &Prepared, site: Site, iso_path: &Path) -> Result<()> {
    if request.vms == 0 {
        return Ok(());
    }
    let arch = prepared.arch;
    if firmwares.contains(&Firmware::SecureBoot) && !prepared.tree.uefi(arch).is_some_and(|l| l.is_the_isos()) {
        let (shim, _) = arch.efi_names();
        return Err(Error::bad_input(format!(
            "--secure-boot: {} has no signed shim and GRUB in EFI/BOOT ({shim}), and only the vendor's own chain verifies its kernel under Secure Boot; drop --secure-boot",
            iso_path.display()
        )));
    }
    if site == Site::Here {
        crate::lab::machine::check_host(arch, firmwares)?;
    }
    Ok(())
}

/// The files whose transfer marks each boot stage.
fn milestones(prepared: &Prepared, iso_path: &Path, expect: Expect) -> Milestones {
    let distro = &prepared.distro;
    let mut installer_files = vec!["/.treeinfo".to_string()];
    installer_files.extend(distro.stage2.iter().map(|s| format!("/{s}")));
    if distro.family == Family::Ubuntu {
        // casper's download of the whole ISO is Ubuntu's installer starting.
        let name = iso_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        installer_files.push(format!("/{name}"));
    }
    let mut bootloaders = vec!["pxelinux.0".to_string(), boot::IPXE_SCRIPT.to_string()];
    bootloaders.extend(prepared.tree.uefi_loaders().iter().map(|l| l.boot_file()));
    Milestones {
        bootloaders,
        kernel: format!("{}/{}", boot::ISO_DIR, distro.kernel),
        initrd: format!("{}/{}", boot::ISO_DIR, distro.initrd),
        installer_files,
        expect: expect.installer,
        expect_installed: expect.installed,
        // The user's pattern, else what the ISO's installer is known to print.
        fail_on: match (expect.fail_on, distro.family) {
            (Some(re), _) => Some(FailureSigns::user(re)),
            (None, Family::Fai) => Some(FailureSigns::fai()),
            (None, _) => None,
        },
    }
}

/// `lab.json` as it starts: the servers' addresses come once they listen.
fn lab_record(request: &UpRequest, iso_path: &Path, prepared: &Prepared, segment: &Segment, server_ip: IpAddr) -> LabRecord {
    let distro = &prepared.distro;
    LabRecord {
        pid: std::process::id(),
        uri: request.uri.clone(),
        iso: iso_path.display().to_string(),
        distro: match &distro.version {
            Some(v) => format!("{} {v}", distro.name),
            None => distro.name.clone(),
        },
        network: segment.name().to_string(),
        bridge: segment.bridge(),
        host_bridge: matches!(segment, Segment::Bridge { .. }),
        server_ip: server_ip.to_string(),
        subnet: segment.subnet().map(|s| s.to_string()),
        tftp: String::new(),
        ftp: String::new(),
        http: None,
        uefi_file: prepared.tree.uefi(prepared.arch).map(|l| l.boot_file()),
        arch: prepared.arch,
        passive_ports: Some(format!("{}-{}", request.passive_ports.start(), request.passive_ports.end())),
        kernel_args: prepared.kernel_args.clone(),
        started_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        keep: request.keep,
        proxy_dhcp: None,
        ra: false,
        ready: false,
        vms: Vec::new(),
        transfers: Counters::default(),
    }
}

/// The servers: TFTP on 69 (the only port a PXE client asks), FTP and HTTP
/// where the flags say, all on the server address, the ISO read in place.
fn serve_config(server_ip: IpAddr, ftp_port: u16, http_port: Option<u16>, prepared: &Prepared, request: &UpRequest) -> ServeConfig {
    ServeConfig {
        bind: server_ip,
        tftp_port: TFTP_PORT,
        ftp_port,
        http_port,
        ftp_root: FtpRoot::Iso(prepared.iso.clone()),
        allow: AllowList::default(),
        limits: Limits { passive_ports: request.passive_ports.clone(), ..Limits::default() },
    }
}
