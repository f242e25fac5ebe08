//! Which distribution an ISO holds, and where its network-bootable kernel
//! and initrd are.
//!
//! `.treeinfo` is trusted first because RHEL-family media describe
//! themselves there (kernel, initrd, stage2). Otherwise the known layouts of
//! the big families are tried in turn. Every path found is checked to exist
//! in the image, and every text value is cleaned of control characters,
//! because the ISO is untrusted input that ends up in a boot menu.

use serde::Serialize;

use super::index::IsoIndex;
use super::treeinfo::TreeInfo;

mod live;

/// Largest metadata file (`.treeinfo`, `.disk/info`) read into memory.
const METADATA_LIMIT: u64 = 256 * 1024;
/// Longest name, version or arch kept from the ISO's own metadata.
const TEXT_LIMIT: usize = 128;
/// The placeholder in [`Distro::kernel_args`] for the PXE server's address.
pub const SERVER_PLACEHOLDER: &str = "{server}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// RHEL, CentOS, Fedora, Rocky, Alma, Oracle: anaconda installers.
    Rhel,
    /// Debian's debian-installer.
    Debian,
    /// Ubuntu live-server (casper + subiquity).
    Ubuntu,
    /// FAI's installation CD (fai-cd): dracut fetches its root, which holds
    /// the config space and a package mirror.
    Fai,
    /// A Debian live ISO (live-build): live-boot fetches its squashfs.
    Live,
    /// Nothing recognised; the user named the kernel and initrd.
    Custom,
}

/// Where the answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Treeinfo,
    Layout,
    Override,
}

/// What the ISO is and how to boot it over the network.
#[derive(Debug, Clone, Serialize)]
pub struct Distro {
    pub family: Family,
    pub name: String,
    pub version: Option<String>,
    pub arch: Option<String>,
    /// Path of the kernel inside the ISO (no leading `/`).
    pub kernel: String,
    /// Path of the initrd inside the ISO (no leading `/`).
    pub initrd: String,
    /// The installer's second stage (RHEL family), when the ISO has one.
    pub stage2: Option<String>,
    /// Suggested kernel command line; `{server}` stands for the PXE server's address.
    pub kernel_args: String,
    /// The kernel options the ISO's own boot menu gives (live ISOs), kept in
    /// [`Distro::kernel_args`] beside what the network boot needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iso_args: Option<String>,
    pub volume_id: String,
    pub size_bytes: u64,
    pub source: Source,
}

impl Distro {
    /// The VM architecture the installer runs on, when the ISO names one pxelab makes VMs for.
    pub fn installer_arch(&self) -> Option<crate::arch::Arch> {
        self.arch.as_deref().and_then(|a| crate::arch::Arch::of_installer(a).ok())
    }

    /// What a layout found, before `detect` fills in the image-wide facts
    /// (volume ID, size) and the kernel arguments: the one place a
    /// `Distro` is built.
    pub(super) fn found(family: Family, name: String, (kernel, initrd): (String, String), source: Source) -> Distro {
        Distro {
            family,
            name,
            version: None,
            arch: None,
            kernel,
            initrd,
            stage2: None,
            kernel_args: String::new(),
            iso_args: None,
            volume_id: String::new(),
            size_bytes: 0,
            source,
        }
    }

    /// Whether the installer looks for its medium on a CD drive: Debian's CD
    /// and DVD images carry the CD flavour of d-i in `install.<arch>/`
    /// (its netboot flavour lives in `debian-installer/<arch>/`).
    pub fn needs_cdrom(&self) -> bool {
        self.family == Family::Debian && self.kernel.starts_with("install.")
    }

    /// The kernel command line with the server's address filled in.
    pub fn kernel_args_for(&self, server: &str) -> String {
        self.kernel_args.replace(SERVER_PLACEHOLDER, server)
    }
}

/// What the user said to use instead of what detection found.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub append: Option<String>,
    /// How the installer reaches the ISO's tree; `None`: HTTP.
    pub repo: Option<Repo>,
    /// The repository is FTP only because no HTTP server runs
    /// (`--http-port none`, no `--repo`): an error that needs HTTP then
    /// names that flag, not a `--repo ftp` nobody passed.
    pub http_off: bool,
}

/// How the installer is told to reach the ISO's tree (its repository, or for
/// Ubuntu the ISO itself): HTTP by default, FTP as the seed's method did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Repo {
    /// `http://{server}/iso/`: the boot tree's `iso/` over pxelab's HTTP server.
    #[default]
    Http,
    /// `ftp://{server}/`: the ISO's tree at the FTP server's root.
    Ftp,
}

impl Repo {
    pub fn name(self) -> &'static str {
        match self {
            Repo::Http => "http",
            Repo::Ftp => "ftp",
        }
    }
}

/// Where each family keeps a network-bootable kernel and its initrd, in the
/// order tried. The "no kernel found" message lists these same places.
const RHEL_PAIRS: &[(&str, &str)] = &[("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img"), ("isolinux/vmlinuz", "isolinux/initrd.img")];
const DEBIAN_PAIRS: &[(&str, &str)] = &[
    ("install.amd/vmlinuz", "install.amd/initrd.gz"),
    ("install.386/vmlinuz", "install.386/initrd.gz"),
    ("install.a64/vmlinuz", "install.a64/initrd.gz"),
    ("debian-installer/amd64/linux", "debian-installer/amd64/initrd.gz"),
    ("debian-installer/i386/linux", "debian-installer/i386/initrd.gz"),
    ("debian-installer/arm64/linux", "debian-installer/arm64/initrd.gz"),
];
const UBUNTU_PAIRS: &[(&str, &str)] = &[
    ("casper/vmlinuz", "casper/initrd"),
    ("casper/vmlinuz", "casper/initrd.gz"),
    ("casper/vmlinuz", "casper/initrd.lz"),
    ("casper/hwe-vmlinuz", "casper/hwe-initrd"),
];

/// The directories [`detect`] looks in, for the "no kernel found" message.
fn looked_in() -> String {
    let mut dirs: Vec<&str> = vec![".treeinfo"];
    let others = [live::FAI_PAIR, (live::LIVE_DIR, "")];
    for (kernel, _) in RHEL_PAIRS.iter().chain(DEBIAN_PAIRS).chain(UBUNTU_PAIRS).chain(&others) {
        let dir = &kernel[..kernel.rfind('/').map(|i| i + 1).unwrap_or(0)];
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("{iso}: no network-bootable kernel found (looked in {looked_in}); name them with --kernel PATH --initrd PATH")]
    NoKernel { iso: String, looked_in: String },
    #[error("{iso}: --{what} {path} is not a file in the ISO; list its files with `xorriso -indev {iso} -find / -type f`")]
    MissingOverride { iso: String, what: &'static str, path: String },
    #[error("{iso}: found a kernel at {kernel} but no initrd beside it; name one with --initrd PATH")]
    NoInitrd { iso: String, kernel: String },
    #[error("--append contains a control character; pass kernel arguments on one line")]
    BadAppend,
    #[error("{iso}: Ubuntu's installer (casper) downloads the whole ISO from url=, which pxelab serves over HTTP only; {fix}")]
    UbuntuNeedsHttp { iso: String, fix: &'static str },
}

/// Detects the distribution in `iso`, applying `overrides` on top.
pub fn detect(iso: &IsoIndex, overrides: &Overrides) -> Result<Distro, DetectError> {
    let iso_name = iso.path().display().to_string();
    let found = from_treeinfo(iso)
        .or_else(|| rhel_layout(iso))
        .or_else(|| debian_layout(iso))
        .or_else(|| ubuntu_layout(iso))
        .or_else(|| live::fai_layout(iso))
        .or_else(|| live::live_layout(iso));

    let mut distro = match (found, &overrides.kernel) {
        (Some(d), _) => d,
        (None, Some(kernel)) => Distro::found(
            Family::Custom,
            clean(iso.volume_id()).unwrap_or_else(|| "custom".into()),
            (kernel.clone(), overrides.initrd.clone().unwrap_or_default()),
            Source::Override,
        ),
        (None, None) => return Err(DetectError::NoKernel { iso: iso_name, looked_in: looked_in() }),
    };

    for (what, given, slot) in [("kernel", &overrides.kernel, &mut distro.kernel), ("initrd", &overrides.initrd, &mut distro.initrd)] {
        if let Some(path) = given {
            let path = path.trim_start_matches('/').to_string();
            if iso.file(&path).is_none() {
                return Err(DetectError::MissingOverride { iso: iso_name, what, path });
            }
            *slot = path;
            distro.source = Source::Override;
        }
    }
    if distro.initrd.is_empty() {
        return Err(DetectError::NoInitrd { iso: iso_name, kernel: distro.kernel });
    }
    let repo = overrides.repo.unwrap_or_default();
    if distro.family == Family::Ubuntu && repo == Repo::Ftp && overrides.append.is_none() {
        let fix = if overrides.http_off { "serve HTTP (drop --http-port none)" } else { "drop --repo ftp" };
        return Err(DetectError::UbuntuNeedsHttp { iso: iso_name, fix });
    }
    distro.kernel_args = installer_args_for(distro.family, repo, &iso_file_name(iso), distro.iso_args.as_deref());
    if let Some(append) = &overrides.append {
        if append.chars().any(char::is_control) {
            return Err(DetectError::BadAppend);
        }
        distro.kernel_args = append.trim().to_string();
    }

    // Image-wide facts, filled once here rather than by each layout.
    distro.volume_id = clean(iso.volume_id()).unwrap_or_default();
    distro.size_bytes = iso.size_bytes();
    Ok(distro)
}

/// The ISO's file name as a URL path segment: the HTTP server serves the
/// image at `/<file name>`, and a kernel command line has no room for spaces.
fn iso_file_name(iso: &IsoIndex) -> String {
    url_segment(&iso.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

/// `name` as one URL path segment: what is not unreserved, percent-encoded.
pub fn url_segment(name: &str) -> String {
    name.bytes().map(|b| if b.is_ascii_alphanumeric() || b"._~-".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The kernel arguments that point a family's installer at pxelab, with
/// `{server}` for the server's address (and port) of `repo`'s protocol, and
/// the ISO's own options (`iso_args`) after them.
pub(super) fn installer_args_for(family: Family, repo: Repo, iso_file: &str, iso_args: Option<&str>) -> String {
    let args = installer_args(family, repo, iso_file);
    match iso_args {
        Some(own) if !own.is_empty() => format!("{args} {own}"),
        _ => args,
    }
}

fn installer_args(family: Family, repo: Repo, iso_file: &str) -> String {
    let s = SERVER_PLACEHOLDER;
    // Where the FAI CD's and live ISO's roots are, on each server.
    let root = |path: &str| match repo {
        Repo::Http => format!("http://{s}/iso/{path}"),
        Repo::Ftp => format!("ftp://{s}/{path}"),
    };
    match (family, repo) {
        (Family::Rhel, Repo::Http) => format!("inst.repo=http://{s}/iso/"),
        (Family::Rhel, Repo::Ftp) => format!("inst.repo=ftp://{s}/"),
        // debian-installer's preseed keys for a mirror: the ISO's tree has
        // the pool/ and dists/ a mirror has.
        (Family::Debian, Repo::Http) => format!("mirror/country=manual mirror/protocol=http mirror/http/hostname={s} mirror/http/directory=/iso"),
        (Family::Debian, Repo::Ftp) => format!("mirror/country=manual mirror/protocol=ftp mirror/ftp/hostname={s} mirror/ftp/directory=/"),
        // casper fetches the whole ISO into RAM from `url=`.
        (Family::Ubuntu, _) => format!("ip=dhcp url=http://{s}/{iso_file}"),
        // dracut's livenet downloads the root; FAI then installs from the
        // config space and mirror inside it, and reboots when done.
        (Family::Fai, _) => format!(
            "root=live:{} rd.live.image rd.neednet=1 ip=dhcp FAI_ACTION=install FAI_FLAGS=verbose,reboot FAI_CONFIG_SRC=file:///var/lib/fai/config",
            root(live::FAI_ROOT)
        ),
        (Family::Live, _) => format!("boot=live fetch={}", root(live::LIVE_ROOT)),
        (Family::Custom, _) => String::new(),
    }
}

fn from_treeinfo(iso: &IsoIndex) -> Option<Distro> {
    let text = iso.read_small(".treeinfo", METADATA_LIMIT)?;
    let info = TreeInfo::parse(&String::from_utf8_lossy(&text));
    let (kernel, initrd) = info.kernel_initrd();
    let exists = |p: Option<&str>| p.map(|p| p.trim_start_matches('/').to_string()).filter(|p| iso.file(p).is_some());
    // A .treeinfo whose images are missing is not trusted for them; the
    // layout search below may still find a kernel.
    let (kernel, initrd) = match (exists(kernel), exists(initrd)) {
        (Some(k), Some(i)) => (k, i),
        _ => {
            let layout = rhel_layout(iso)?;
            (layout.kernel, layout.initrd)
        }
    };
    let name =
        info.first(&[("release", "name"), ("general", "family"), ("general", "name"), ("product", "name")]).and_then(clean).unwrap_or_else(|| "unknown".into());
    let version = info.first(&[("release", "version"), ("general", "version"), ("product", "version")]).and_then(clean);
    let stage2 =
        info.first(&[("stage2", "mainimage"), ("stage2", "instimage")]).map(|p| p.trim_start_matches('/').to_string()).filter(|p| iso.file(p).is_some());
    Some(Distro { version, arch: info.arch().and_then(clean), stage2, ..Distro::found(Family::Rhel, name, (kernel, initrd), Source::Treeinfo) })
}

/// The first (kernel, initrd) pair of `candidates` that both exist.
fn first_pair(iso: &IsoIndex, candidates: &[(&str, &str)]) -> Option<(String, String)> {
    candidates.iter().find(|(k, i)| iso.file(k).is_some() && iso.file(i).is_some()).map(|(k, i)| (k.to_string(), i.to_string()))
}

fn rhel_layout(iso: &IsoIndex) -> Option<Distro> {
    // images/pxeboot is the pair anaconda ships for PXE; isolinux's is the
    // same kernel for CD boot, the seed's choice.
    let pair = first_pair(iso, RHEL_PAIRS)?;
    let stage2 = ["images/install.img", "LiveOS/squashfs.img"].into_iter().find(|p| iso.file(p).is_some());
    let label = clean(iso.volume_id()).unwrap_or_default();
    let (name, version) = split_label(&label);
    Some(Distro {
        version,
        arch: ["x86_64", "aarch64", "ppc64le", "s390x"].iter().find(|a| label.contains(*a)).map(|a| a.to_string()),
        stage2: stage2.map(str::to_string),
        ..Distro::found(Family::Rhel, name.unwrap_or_else(|| "RHEL-family installer".into()), pair, Source::Layout)
    })
}

fn debian_layout(iso: &IsoIndex) -> Option<Distro> {
    let pair = first_pair(iso, DEBIAN_PAIRS)?;
    let info = disk_info(iso);
    let arch = arch_of_path(&pair.0).or_else(|| info.as_ref().and_then(|i| i.arch.clone()));
    let name = info.as_ref().and_then(|i| i.name.clone()).unwrap_or_else(|| "Debian GNU/Linux".into());
    Some(Distro { version: info.and_then(|i| i.version), arch, ..Distro::found(Family::Debian, name, pair, Source::Layout) })
}

fn ubuntu_layout(iso: &IsoIndex) -> Option<Distro> {
    let pair = first_pair(iso, UBUNTU_PAIRS)?;
    let info = disk_info(iso);
    let name = info.as_ref().and_then(|i| i.name.clone()).unwrap_or_else(|| "Ubuntu".into());
    Some(Distro {
        version: info.as_ref().and_then(|i| i.version.clone()),
        arch: info.and_then(|i| i.arch),
        ..Distro::found(Family::Ubuntu, name, pair, Source::Layout)
    })
}

/// Facts from `.disk/info`, e.g. `Debian GNU/Linux 12.5.0 "Bookworm" - Official amd64 NETINST`.
pub(super) struct DiskInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    pub arch: Option<String>,
}

pub(super) fn disk_info(iso: &IsoIndex) -> Option<DiskInfo> {
    let raw = iso.read_small(".disk/info", METADATA_LIMIT)?;
    let text = String::from_utf8_lossy(&raw);
    let line = text.lines().next()?.trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    let version_at = words.iter().position(|w| w.starts_with(|c: char| c.is_ascii_digit()));
    let name = version_at.map(|i| words[..i].join(" ")).filter(|n| !n.is_empty()).and_then(|n| clean(&n));
    let version = version_at.and_then(|i| clean(words[i]));
    let arch = words.iter().find(|w| ["amd64", "i386", "arm64", "ppc64el", "s390x", "riscv64"].contains(w)).map(|w| w.to_string());
    Some(DiskInfo { name, version, arch })
}

fn arch_of_path(kernel: &str) -> Option<String> {
    let arch = match kernel {
        k if k.starts_with("install.amd") || k.contains("/amd64/") => "amd64",
        k if k.starts_with("install.386") || k.contains("/i386/") => "i386",
        k if k.starts_with("install.a64") || k.contains("/arm64/") => "arm64",
        _ => return None,
    };
    Some(arch.into())
}

/// Splits a volume label such as `CentOS-7-x86_64-DVD` or `Rocky-9-4-x86_64-dvd`
/// into a name and a version.
fn split_label(label: &str) -> (Option<String>, Option<String>) {
    let parts: Vec<&str> = label.split(['-', '_', ' ']).filter(|p| !p.is_empty()).collect();
    let Some(at) = parts.iter().position(|p| p.starts_with(|c: char| c.is_ascii_digit())) else {
        return (clean(label), None);
    };
    let name = (at > 0).then(|| parts[..at].join(" "));
    let mut version = parts[at].to_string();
    // Rocky and Alma write 9.4 as "9-4".
    if let Some(minor) = parts.get(at + 1).filter(|p| p.chars().all(|c| c.is_ascii_digit())) {
        version = format!("{version}.{minor}");
    }
    (name, Some(version))
}

/// Text from the ISO, made safe to show and to put in a menu: control
/// characters dropped, whitespace collapsed, length bounded.
pub(super) fn clean(text: &str) -> Option<String> {
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text.chars().take(TEXT_LIMIT).collect();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_no_kernel_message_names_every_place_looked_in() {
        let message = DetectError::NoKernel { iso: "x.iso".into(), looked_in: looked_in() }.to_string();
        for dir in [".treeinfo", "images/pxeboot/", "isolinux/", "install.amd/", "debian-installer/amd64/", "debian-installer/arm64/", "casper/"] {
            assert!(message.contains(dir), "{dir} missing from: {message}");
        }
    }

    #[test]
    fn labels_split_into_name_and_version() {
        assert_eq!(split_label("CentOS-7-x86_64-DVD"), (Some("CentOS".into()), Some("7".into())));
        assert_eq!(split_label("Rocky-9-4-x86_64-dvd"), (Some("Rocky".into()), Some("9.4".into())));
        assert_eq!(split_label("PXELAB"), (Some("PXELAB".into()), None));
    }

    #[test]
    fn cleaning_removes_menu_injection() {
        assert_eq!(clean("Evil\nMENU DEFAULT\r\n"), Some("Evil MENU DEFAULT".into()));
        assert_eq!(clean(" \t\n"), None);
        assert_eq!(clean(&"x".repeat(500)).unwrap().len(), TEXT_LIMIT);
    }

    #[test]
    fn server_placeholder_is_filled() {
        let d = Distro {
            kernel_args: installer_args(Family::Rhel, Repo::Ftp, "x.iso"),
            ..Distro::found(Family::Rhel, "CentOS".into(), ("k".into(), "i".into()), Source::Layout)
        };
        assert_eq!(d.kernel_args_for("192.168.122.1"), "inst.repo=ftp://192.168.122.1/");
        let http = Distro { kernel_args: installer_args(Family::Rhel, Repo::Http, "x.iso"), ..d };
        assert_eq!(http.kernel_args_for("192.168.122.1:8080"), "inst.repo=http://192.168.122.1:8080/iso/");
        assert_eq!(installer_args(Family::Ubuntu, Repo::Http, "a%20b.iso"), "ip=dhcp url=http://{server}/a%20b.iso");
        assert!(installer_args(Family::Debian, Repo::Http, "d.iso").contains("mirror/http/directory=/iso"));
    }
}
