//! Domain XML, built and read without libvirt: the XML of a PXE-booting VM,
//! pxelab's metadata in it, its interfaces, its boot order and its
//! accelerator. Pure functions over strings, so each is tested on real-world
//! XML without a daemon; the calls that send XML to libvirt are in
//! [`super::domain`] (the same split as `netxml.rs` / `network.rs`).
//!
//! Every domain pxelab creates carries a `<metadata>` element in pxelab's
//! own namespace ([`NAMESPACE`]), naming its disk volume and where pxelab
//! records its serial console. The domain has no `<log file>`: that would
//! be a path on the libvirt host, which may be another machine; pxelab
//! reads the console through libvirt instead (`console.rs`).
//! `vm list`, `vm rm` and `down` act only on domains that carry it, so
//! pxelab never touches a VM it did not make.

use std::path::PathBuf;

use quick_xml::escape::escape;
use serde::Serialize;

use super::accel::Accel;
use crate::arch::Arch;
use crate::mac::MacAddr;

mod read;

pub use read::{accel_of, arch_of, firmware_of, interfaces, meta_of, network_boot};

/// pxelab's metadata namespace (`.invalid` never resolves: it names, it is not fetched).
pub const NAMESPACE: &str = "http://pxelab.invalid/xmlns/vm/1";

/// The firmware a VM boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Firmware {
    /// SeaBIOS on the `pc` machine: the NIC's iPXE ROM, then pxelinux or HTTP.
    #[default]
    Bios,
    /// OVMF (edk2) on q35 with Secure Boot off: QEMU's iPXE EFI ROM runs.
    Uefi,
    /// OVMF with Microsoft's keys enrolled and Secure Boot on (q35, SMM).
    /// QEMU's iPXE ROM is not signed, so the NIC's ROM is off and edk2's own
    /// PXE runs, then a signed shim and GRUB.
    #[serde(rename = "uefi-secure-boot")]
    SecureBoot,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
            Firmware::SecureBoot => "uefi-secure-boot",
        }
    }

    pub fn is_uefi(self) -> bool {
        self != Firmware::Bios
    }
}

/// The UEFI builds libvirt picks for `arch`'s guests (plain and Secure
/// Boot) that this host lacks, if any, with the package that has them:
/// OVMF (`ovmf`) for x86-64, AAVMF (`qemu-efi-aarch64`) for ARM64.
pub fn missing_uefi(arch: Arch) -> Option<(&'static str, &'static str)> {
    let (files, package): (&[&'static str], _) = match arch {
        Arch::X86_64 => (&["/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"], "ovmf"),
        Arch::Aarch64 => (&["/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.ms.fd"], "qemu-efi-aarch64"),
    };
    files.iter().find(|p| !std::path::Path::new(p).exists()).map(|p| (*p, package))
}

/// What a new VM looks like.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    pub arch: Arch,
    /// What its one NIC is plugged into.
    pub attach: Attach,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disk_gib: u64,
    pub accel: Accel,
    /// Where pxelab records the serial console, on the host pxelab runs on
    /// (kept in the metadata; the console itself is read through libvirt).
    pub serial_log: PathBuf,
    /// QEMU's own copy of the serial console (`<log file>`, written by
    /// virtlogd on the libvirt host): only for a libvirt host that is this
    /// one. The console stream loses what a guest printed in its last
    /// instant before it powered off; this file does not.
    pub qemu_log: Option<PathBuf>,
    /// Boot from the network. Under BIOS the network comes first, then the
    /// disk (a lab's local-boot config sends SeaBIOS on to it). Under UEFI
    /// the disk comes first and the network when the disk has no system:
    /// a boot option that returns success (GRUB's and iPXE's `exit`) makes
    /// edk2 stop at its boot menu instead of going on to the disk, so an
    /// installed VM could not reach its disk through the network.
    pub pxe: bool,
    /// The NIC's address; `None` lets libvirt pick one.
    pub mac: Option<MacAddr>,
    pub firmware: Firmware,
    /// The ISO as a CD-ROM read over HTTP (see [`HttpCdrom`]).
    pub cdrom: Option<HttpCdrom>,
}

/// Where a VM's NIC is plugged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// A libvirt network (`<interface type='network'>`).
    Network(String),
    /// A bridge of the host's own, which libvirt does not manage
    /// (`<interface type='bridge'>`): a lab beside a site's DHCP server.
    Bridge(String),
}

impl Attach {
    /// The interface type and the `<source>` attribute: both `network` or both `bridge`.
    fn kind(&self) -> &'static str {
        match self {
            Attach::Network(_) => "network",
            Attach::Bridge(_) => "bridge",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Attach::Network(n) | Attach::Bridge(n) => n,
        }
    }
}

impl std::fmt::Display for Attach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// An ISO the VM sees as a CD-ROM, read by QEMU's curl driver from pxelab's
/// HTTP server with a Range request per read: nothing is copied to the
/// libvirt host, which may be another machine. For installers that look
/// for their medium on a CD drive (Debian's CD flavour of d-i).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCdrom {
    pub host: String,
    pub port: u16,
    /// The URL path, percent-encoded, with its leading `/`.
    pub path: String,
}

/// pxelab's record inside a domain's `<metadata>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmMeta {
    pub pool: String,
    pub volume: String,
    pub serial_log: String,
}

/// A domain's network interface, as its live XML shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    /// `<source network=…>` for `type='network'` interfaces.
    pub network: Option<String>,
    /// `<source bridge=…>`.
    pub bridge: Option<String>,
    /// `<target dev=…>`: the host's tap device while the domain runs.
    pub tap: Option<String>,
    pub mac: Option<String>,
}

/// Where the network sits in a domain's boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkBoot {
    /// The network is tried before anything else.
    First,
    /// After another device (a disk that boots skips PXE).
    Later,
    /// Not at all.
    Never,
}

/// A name libvirt, file names and shells all take as it is.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) && !name.starts_with(['.', '-'])
}

/// The parts of a domain's XML that its architecture and firmware decide.
struct MachineXml {
    /// The `<os>` element.
    os: String,
    /// Inside `<features>`: the x86 APIC, and SMM, which Secure Boot's OVMF needs.
    features: &'static str,
    /// Inside the `<interface>`: QEMU's iPXE ROM is unsigned, so Secure
    /// Boot turns it off and edk2's own PXE runs; on ARM64 it is x86 code
    /// AAVMF cannot run, so it is off too.
    rom: &'static str,
    /// `<graphics>` and `<video>`: a VGA console on x86; none on ARM64,
    /// whose `virt` machine has no VGA (the serial console is the one).
    display: &'static str,
}

const VGA: &str = "    <graphics type='vnc' autoport='yes'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <video>
      <model type='vga'/>
    </video>
";

/// UEFI: libvirt picks OVMF or AAVMF from QEMU's firmware descriptors by
/// feature. Both features are stated: on q35 a bare firmware='efi' matches
/// the Secure Boot descriptor first. NVRAM is libvirt's, one file per
/// domain, removed with it (VIR_DOMAIN_UNDEFINE_NVRAM). AAVMF needs no SMM
/// for Secure Boot (nor has `<loader secure>`): its variables are not
/// guarded by an SMM handler on the `virt` machine.
fn machine_xml(arch: Arch, firmware: Firmware) -> MachineXml {
    let features = |on: bool| {
        let v = if on { "yes" } else { "no" };
        format!("    <firmware>\n      <feature enabled='{v}' name='secure-boot'/>\n      <feature enabled='{v}' name='enrolled-keys'/>\n    </firmware>\n")
    };
    let (machine, x86) = match arch {
        Arch::X86_64 if firmware == Firmware::Bios => ("pc", true),
        Arch::X86_64 => ("q35", true),
        Arch::Aarch64 => ("virt", false),
    };
    let os_type = format!("    <type arch='{arch}' machine='{machine}'>hvm</type>\n");
    let secure = firmware == Firmware::SecureBoot;
    let os = match firmware {
        Firmware::Bios => format!("  <os>\n{os_type}    <bios useserial='yes'/>\n  </os>"),
        _ if x86 && secure => format!("  <os firmware='efi'>\n{os_type}{}    <loader secure='yes'/>\n  </os>", features(true)),
        _ => format!("  <os firmware='efi'>\n{os_type}{}  </os>", features(secure)),
    };
    MachineXml {
        os,
        features: match (x86, secure) {
            (true, true) => "\n    <apic/>\n    <smm state='on'/>",
            (true, false) => "\n    <apic/>",
            (false, _) => "",
        },
        rom: if secure || !x86 { "\n      <rom enabled='no'/>" } else { "" },
        display: if x86 { VGA } else { "" },
    }
}

/// The CPU: the host's under KVM; under TCG QEMU's default on x86, and on
/// ARM64 a Cortex-A57, which TCG runs faster than `max` (measured: AAVMF
/// reached its PXE in 10.3 s against 15.9 s; `max` emulates pointer
/// authentication in software).
fn cpu_xml(arch: Arch, accel: Accel) -> &'static str {
    match (accel, arch) {
        (Accel::Kvm, _) => "  <cpu mode='host-passthrough'/>\n",
        (Accel::Tcg, Arch::X86_64) => "",
        (Accel::Tcg, Arch::Aarch64) => "  <cpu mode='custom' match='exact' check='none'>\n    <model fallback='forbid'>cortex-a57</model>\n  </cpu>\n",
    }
}

/// The domain XML for `spec`, with its disk in `pool`/`volume`.
pub fn domain_xml(spec: &VmSpec, pool: &str, volume: &str) -> String {
    let e = |s: &str| escape(s).into_owned();
    let log = spec.serial_log.to_string_lossy();
    let (net_boot, disk_boot) = if spec.pxe && spec.firmware == Firmware::Bios { (1, 2) } else { (2, 1) };
    let mac = spec.mac.map(|m| format!("\n      <mac address='{m}'/>")).unwrap_or_default();
    let MachineXml { os, features, rom, display } = machine_xml(spec.arch, spec.firmware);
    format!(
        "<domain type='{domain_type}'>
  <name>{name}</name>
  <metadata>
    <pxelab:vm xmlns:pxelab='{NAMESPACE}'>
      <pxelab:disk pool='{pool}' volume='{volume}'/>
      <pxelab:serial-log path='{log}'/>
    </pxelab:vm>
  </metadata>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>{vcpus}</vcpu>
{os}
  <features>
    <acpi/>{features}
  </features>
{cpu}  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='{pool}' volume='{volume}'/>
      <target dev='vda' bus='virtio'/>
      <boot order='{disk_boot}'/>
    </disk>
{cdrom}    <interface type='{attach}'>{mac}
      <source {attach}='{network}'/>
      <model type='virtio'/>
      <boot order='{net_boot}'/>{rom}
    </interface>
    <serial type='pty'>{qemu_log}
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
{display}    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
  </devices>
</domain>
",
        domain_type = spec.accel.domain_type(),
        name = e(&spec.name),
        pool = e(pool),
        volume = e(volume),
        log = e(&log),
        cpu = cpu_xml(spec.arch, spec.accel),
        qemu_log = spec.qemu_log.as_ref().map(|p| format!("\n      <log file='{}' append='off'/>", e(&p.to_string_lossy()))).unwrap_or_default(),
        memory = spec.memory_mib,
        vcpus = spec.vcpus,
        attach = spec.attach.kind(),
        network = e(spec.attach.name()),
        cdrom = spec.cdrom.as_ref().map(|c| cdrom_xml(c, spec.arch, spec.firmware)).unwrap_or_default(),
    )
}

/// The CD-ROM's `<disk>`: IDE on the `pc` machine, SATA on q35, the buses
/// every installer's CD driver knows; virtio-scsi on ARM64's `virt`
/// machine, which has neither. No `<boot>`: the VM never boots it.
fn cdrom_xml(cdrom: &HttpCdrom, arch: Arch, firmware: Firmware) -> String {
    let e = |s: &str| escape(s).into_owned();
    let (dev, bus, controller) = match arch {
        Arch::Aarch64 => ("sdc", "scsi", "    <controller type='scsi' model='virtio-scsi'/>\n"),
        Arch::X86_64 if firmware.is_uefi() => ("sdc", "sata", ""),
        Arch::X86_64 => ("hdc", "ide", ""),
    };
    format!(
        "{controller}    <disk type='network' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source protocol='http' name='{path}'>
        <host name='{host}' port='{port}'/>
      </source>
      <target dev='{dev}' bus='{bus}'/>
      <readonly/>
    </disk>
",
        path = e(&cdrom.path),
        host = e(&cdrom.host),
        port = cdrom.port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pxe: bool) -> VmSpec {
        VmSpec {
            name: "pxelab-oak-1".into(),
            arch: Arch::X86_64,
            attach: Attach::Network("lab".into()),
            memory_mib: 1024,
            vcpus: 1,
            disk_gib: 4,
            accel: Accel::Tcg,
            serial_log: "/var/lib/pxelab/logs/pxelab-oak-1.serial.log".into(),
            qemu_log: None,
            pxe,
            mac: None,
            firmware: Firmware::Bios,
            cdrom: None,
        }
    }

    #[test]
    fn a_vm_on_a_host_bridge_gets_a_bridge_interface() {
        let xml = domain_xml(&VmSpec { attach: Attach::Bridge("br-site".into()), ..spec(true) }, "p", "v");
        assert!(xml.contains("<interface type='bridge'>\n      <source bridge='br-site'/>"), "{xml}");
        let found = interfaces(&xml);
        assert_eq!((found[0].bridge.as_deref(), found[0].network.as_deref()), (Some("br-site"), None));
    }

    #[test]
    fn each_firmware_reads_back_as_itself() {
        for firmware in [Firmware::Bios, Firmware::Uefi, Firmware::SecureBoot] {
            let xml = domain_xml(&VmSpec { firmware, ..spec(true) }, "p", "v");
            assert_eq!(firmware_of(&xml), firmware, "{xml}");
            assert_eq!(serde_json::to_value(firmware).unwrap(), firmware.name(), "JSON and text name it alike");
        }
        let bios = domain_xml(&spec(true), "p", "v");
        assert!(bios.contains("machine='pc'") && bios.contains("<bios useserial='yes'/>") && !bios.contains("efi"), "{bios}");
        let uefi = domain_xml(&VmSpec { firmware: Firmware::Uefi, ..spec(true) }, "p", "v");
        assert!(uefi.contains("<os firmware='efi'>") && uefi.contains("machine='q35'"), "{uefi}");
        assert!(uefi.contains("<feature enabled='no' name='secure-boot'/>") && !uefi.contains("<rom enabled='no'/>"), "{uefi}");
        let sb = domain_xml(&VmSpec { firmware: Firmware::SecureBoot, ..spec(true) }, "p", "v");
        assert!(sb.contains("<smm state='on'/>") && sb.contains("<loader secure='yes'/>") && sb.contains("<rom enabled='no'/>"), "{sb}");
        // libvirt's expansion of a secure domain: an explicit pflash loader.
        let live = "<domain type='qemu'><os><type arch='x86_64' machine='pc-q35-10.0'>hvm</type>\
                    <loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader></os></domain>";
        assert_eq!(firmware_of(live), Firmware::SecureBoot);
        let plain = "<domain type='qemu'><os><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader></os></domain>";
        assert_eq!(firmware_of(plain), Firmware::Uefi);
    }

    #[test]
    fn an_arm64_vm_is_a_virt_machine_with_aavmf_and_no_x86_parts() {
        for firmware in [Firmware::Uefi, Firmware::SecureBoot] {
            let xml = domain_xml(&VmSpec { arch: Arch::Aarch64, firmware, ..spec(true) }, "p", "v");
            assert!(xml.contains("<os firmware='efi'>\n    <type arch='aarch64' machine='virt'>hvm</type>"), "{xml}");
            assert_eq!((arch_of(&xml), firmware_of(&xml)), (Arch::Aarch64, firmware), "{xml}");
            for x86 in ["<apic/>", "<smm", "<loader secure", "<video>", "<graphics"] {
                assert!(!xml.contains(x86), "{x86} in {xml}");
            }
            assert!(xml.contains("<model fallback='forbid'>cortex-a57</model>"), "{xml}");
            let nic = &xml[xml.find("<interface").unwrap()..xml.find("</interface>").unwrap()];
            assert!(nic.contains("<rom enabled='no'/>"), "QEMU's x86 iPXE ROM is off: {nic}");
        }
        let kvm = domain_xml(&VmSpec { arch: Arch::Aarch64, firmware: Firmware::Uefi, accel: Accel::Kvm, ..spec(true) }, "p", "v");
        assert!(kvm.contains("host-passthrough") && !kvm.contains("cortex-a57"), "{kvm}");
        assert_eq!(arch_of(&domain_xml(&spec(true), "p", "v")), Arch::X86_64);
        assert_eq!(arch_of("<domain><os><type arch='ppc64le'>hvm</type></os></domain>"), Arch::X86_64);
    }

    #[test]
    fn the_domain_boots_from_the_network_first_and_carries_our_metadata() {
        let xml = domain_xml(&spec(true), "default", "pxelab-oak-1.qcow2");
        assert!(xml.starts_with("<domain type='qemu'>"), "tcg is libvirt's type 'qemu'");
        let net = xml.find("<interface type='network'>").unwrap();
        assert!(xml[net..].find("<boot order='1'/>").unwrap() < xml[net..].find("</interface>").unwrap());
        let disk = xml.find("<disk type='volume'").unwrap();
        assert!(xml[disk..].find("<boot order='2'/>").unwrap() < xml[disk..].find("</disk>").unwrap());
        assert!(xml.contains("<listen type='address' address='127.0.0.1'/>"));
        assert!(!xml.contains("host-passthrough"));
        assert_eq!(
            meta_of(&xml),
            Some(VmMeta { pool: "default".into(), volume: "pxelab-oak-1.qcow2".into(), serial_log: "/var/lib/pxelab/logs/pxelab-oak-1.serial.log".into() })
        );
        let kvm = domain_xml(&VmSpec { accel: Accel::Kvm, ..spec(true) }, "p", "v");
        assert!(kvm.starts_with("<domain type='kvm'>") && kvm.contains("host-passthrough"));
        assert!(!xml.contains("<mac "), "libvirt picks the MAC unless pxelab did");
    }

    #[test]
    fn a_uefi_vm_tries_its_disk_before_the_network() {
        for (arch, firmware) in [(Arch::X86_64, Firmware::Uefi), (Arch::X86_64, Firmware::SecureBoot), (Arch::Aarch64, Firmware::Uefi)] {
            let xml = domain_xml(&VmSpec { arch, firmware, ..spec(true) }, "p", "v");
            let disk = xml.find("<disk type='volume'").unwrap();
            assert!(xml[disk..].find("<boot order='1'/>").unwrap() < xml[disk..].find("</disk>").unwrap(), "{xml}");
            assert_eq!(read::network_boot(&xml), NetworkBoot::Later, "{xml}");
        }
        assert_eq!(read::network_boot(&domain_xml(&spec(true), "p", "v")), NetworkBoot::First);
    }

    #[test]
    fn a_chosen_mac_is_the_interfaces() {
        let mac: MacAddr = "52:54:00:0a:0b:0c".parse().unwrap();
        let xml = domain_xml(&VmSpec { mac: Some(mac), ..spec(true) }, "p", "v");
        assert_eq!(interfaces(&xml)[0].mac.as_deref(), Some("52:54:00:0a:0b:0c"), "{xml}");
    }

    #[test]
    fn the_accelerator_is_read_from_the_domain_type() {
        assert_eq!(accel_of(&domain_xml(&spec(true), "p", "v")), Some(Accel::Tcg));
        assert_eq!(accel_of(&domain_xml(&VmSpec { accel: Accel::Kvm, ..spec(true) }, "p", "v")), Some(Accel::Kvm));
        // libvirt's own output: double quotes, an id, another attribute order.
        assert_eq!(accel_of("<domain id=\"3\" type=\"kvm\"><name>x</name></domain>"), Some(Accel::Kvm));
        assert_eq!(accel_of("<?xml version='1.0'?>\n<domain type=\"qemu\" id=\"1\"/>"), Some(Accel::Tcg));
        assert_eq!(accel_of("<network/>"), None);
        assert_eq!(accel_of("not xml"), None);
    }

    #[test]
    fn foreign_domains_have_no_metadata() {
        assert_eq!(meta_of("<domain type='kvm'><name>x</name><metadata><other:vm xmlns:other='http://example.com/vm'><other:disk pool='a' volume='b'/></other:vm></metadata></domain>"), None);
        assert_eq!(meta_of("<domain><name>x</name></domain>"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("pxelab-oak-1") && valid_name("a.b_c"));
        for bad in ["", "-x", ".x", "a b", "a/b", "a'b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn finds_network_interfaces_and_their_taps() {
        let xml = "<domain type='qemu'><name>g</name><devices>\n<disk type='file'><target dev='vda'/></disk>\n<interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='lab' portid='x' bridge='virbr7'/><target dev='vnet4'/><model type='virtio'/></interface>\n<interface type='bridge'><source bridge='br0'/><target dev='vnet5'/></interface>\n</devices></domain>";
        let found = interfaces(xml);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].network.as_deref(), Some("lab"));
        assert_eq!(found[0].bridge.as_deref(), Some("virbr7"));
        assert_eq!(found[0].tap.as_deref(), Some("vnet4"), "the disk's <target dev='vda'/> must not be taken");
        assert_eq!(found[0].mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        assert_eq!(found[1].network, None);
        assert_eq!(found[1].tap.as_deref(), Some("vnet5"));
        assert!(interfaces("not xml <<<").is_empty());
    }

    #[test]
    fn network_boot_order() {
        assert_eq!(network_boot(&domain_xml(&spec(true), "p", "v")), NetworkBoot::First);
        assert_eq!(network_boot(&domain_xml(&spec(false), "p", "v")), NetworkBoot::Later);
        let os = |devs: &str| format!("<domain><os><type>hvm</type>{devs}</os><devices><interface type='network'/></devices></domain>");
        assert_eq!(network_boot(&os("<boot dev='network'/><boot dev='hd'/>")), NetworkBoot::First);
        assert_eq!(network_boot(&os("<boot dev='hd'/><boot dev='network'/>")), NetworkBoot::Later);
        assert_eq!(network_boot(&os("<boot dev='hd'/>")), NetworkBoot::Never);
        assert_eq!(network_boot(&os("")), NetworkBoot::Never);
        // A disk with an order and an interface without one: libvirt boots the disk only.
        let disk_only = "<domain><os/><devices><disk><boot order='1'/></disk><interface/></devices></domain>";
        assert_eq!(network_boot(disk_only), NetworkBoot::Never);
    }

    #[test]
    fn an_http_cdrom_is_a_network_disk_on_the_machine_s_own_bus() {
        let cdrom = HttpCdrom { host: "10.0.0.1".into(), port: 8080, path: "/cdrom/52-54-00-0a-0b-0c/a%20b.iso".into() };
        let bios = domain_xml(&VmSpec { cdrom: Some(cdrom.clone()), ..spec(true) }, "p", "v");
        assert!(bios.contains("<disk type='network' device='cdrom'>"), "{bios}");
        assert!(bios.contains("<source protocol='http' name='/cdrom/52-54-00-0a-0b-0c/a%20b.iso'>\n        <host name='10.0.0.1' port='8080'/>"), "{bios}");
        assert!(bios.contains("<target dev='hdc' bus='ide'/>\n      <readonly/>"), "{bios}");
        let uefi = domain_xml(&VmSpec { cdrom: Some(cdrom.clone()), firmware: Firmware::Uefi, ..spec(true) }, "p", "v");
        assert!(uefi.contains("<target dev='sdc' bus='sata'/>"), "{uefi}");
        let arm = domain_xml(&VmSpec { cdrom: Some(cdrom.clone()), arch: Arch::Aarch64, firmware: Firmware::Uefi, ..spec(true) }, "p", "v");
        assert!(arm.contains("<controller type='scsi' model='virtio-scsi'/>") && arm.contains("<target dev='sdc' bus='scsi'/>"), "{arm}");
        let cd = &uefi[uefi.find("device='cdrom'").unwrap()..];
        assert!(!cd[..cd.find("</disk>").unwrap()].contains("<boot"), "the VM never boots its CD-ROM");
        assert!(!domain_xml(&spec(true), "p", "v").contains("cdrom"));
    }
}
