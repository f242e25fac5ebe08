//! The boot tree: the virtual file tree a PXE client sees over TFTP.
//!
//! ```text
//! pxelinux.0  ldlinux.c32  menu.c32  vesamenu.c32  libcom32.c32  libutil.c32   (host's syslinux)
//! pxelinux.cfg/default  boot.msg                                              (generated)
//! boot.ipxe                                                   (generated, with HTTP)
//! pxelinux.cfg/01-<mac>  mac/<mac>.ipxe             (generated, one per lab VM)
//! {grub,boot/grub,debian-installer/amd64/grub,EFI/BOOT}/grub.cfg[-01-<mac>]  (generated, UEFI)
//! efi/bootx64.efi  efi/grubx64.efi             (the host's shim and GRUB, when the ISO has none)
//! iso/…                                                                        (every file of the ISO)
//! ```
//!
//! This replaces the seed's copying into a TFTP root: nothing is written to
//! disk. Generated and syslinux files live in memory; ISO files are served as
//! byte ranges of the image. [`BootTree::open`] is the one place a client's
//! path becomes a file, so confinement is decided here: a path is normalised
//! once ([`normalize`]) and anything that could climb out is refused before
//! any lookup.

pub mod ipxe;
mod menu;
pub mod syslinux;
pub mod uefi;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

pub use menu::{BootAction, BootEntry, DefaultEntry, Menu, MenuError, Ui};
pub use uefi::UefiLoader;

use crate::arch::Arch;
use crate::iso::{Distro, IsoFile, IsoIndex, NodeKind};
use crate::mac::MacAddr;

/// Where the ISO's files appear in the tree.
pub const ISO_DIR: &str = "iso";
pub use ipxe::SCRIPT as IPXE_SCRIPT;
/// Longest request path accepted; real ones are well under 100 bytes.
const MAX_PATH: usize = 1024;

/// Why a requested path was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRejected {
    #[error("empty path")]
    Empty,
    #[error("path longer than {MAX_PATH} bytes")]
    TooLong,
    #[error("NUL or control character in path")]
    Control,
    #[error("backslash in path")]
    Backslash,
    #[error("`..` in path")]
    Parent,
}

/// Why [`BootTree::open`] found nothing to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("refused: {0}")]
    Rejected(PathRejected),
    #[error("no such file")]
    NotFound,
}

/// Longest boot file name accepted; DHCP's `file` field holds 128 bytes.
const MAX_BOOT_FILE: usize = 127;

/// Checks a boot file name that a DHCP server hands out (`<bootp file=…>`,
/// ISC `filename`, option 067): a relative path inside the boot tree, made
/// of names that every DHCP server, config syntax and TFTP client takes as
/// they are. The one check for every verb that takes `--file`.
pub fn check_boot_file(name: &str) -> Result<(), String> {
    let fix = "use a file of the boot tree such as pxelinux.0 (letters, digits, '.', '_', '-', with '/' between names)";
    let names_ok =
        name.split('/').all(|part| !part.is_empty() && part != "." && part != ".." && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
    if name.is_empty() || name.len() > MAX_BOOT_FILE || !names_ok {
        return Err(format!("{name:?} is not a boot file name: {fix}"));
    }
    Ok(())
}

/// A file ready to be served.
#[derive(Debug, Clone)]
pub enum BootFile {
    /// Generated or syslinux bytes held in memory.
    Memory(Arc<[u8]>),
    /// A file of the ISO, read in place.
    Iso { iso: Arc<IsoIndex>, file: IsoFile },
}

impl BootFile {
    pub fn size(&self) -> u64 {
        match self {
            BootFile::Memory(bytes) => bytes.len() as u64,
            BootFile::Iso { file, .. } => file.size,
        }
    }

    /// Positioned read, as [`IsoIndex::read_at`].
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            BootFile::Memory(bytes) => {
                let start = (offset.min(bytes.len() as u64)) as usize;
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                Ok(n)
            }
            BootFile::Iso { iso, file } => iso.read_at(file, offset, buf),
        }
    }
}

/// What goes into a boot tree besides the ISO.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// The kernel command line, server address already filled in.
    pub append: String,
    pub default: DefaultEntry,
    pub ui: Ui,
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Syslinux(#[from] syslinux::MissingAsset),
    #[error(transparent)]
    Menu(#[from] MenuError),
}

/// The install menu for `distro`, its kernel and initrd under [`ISO_DIR`].
pub fn menu_for(distro: &Distro, options: &BootOptions) -> Result<Menu, MenuError> {
    let title = match &distro.version {
        Some(v) => format!("{} {v}", distro.name),
        None => distro.name.clone(),
    };
    let mut menu = Menu::install(&title, &format!("{ISO_DIR}/{}", distro.kernel), &format!("{ISO_DIR}/{}", distro.initrd), &options.append, options.default)?;
    menu.ui = options.ui;
    Ok(menu)
}

/// The tree a PXE client sees.
#[derive(Debug)]
pub struct BootTree {
    iso: Arc<IsoIndex>,
    memory: BTreeMap<String, Arc<[u8]>>,
    menu: Menu,
    /// What a lab VM gets instead of the menu: the pxelinux config and the
    /// iPXE script that boot the installer at once.
    at_once: AtOnce,
    /// Per-VM files (`pxelinux.cfg/01-<mac>`, `mac/<mac>.ipxe`,
    /// `…/grub.cfg-01-<mac>`), added while the servers run as the lab makes VMs.
    per_vm: RwLock<BTreeMap<String, Arc<[u8]>>>,
    /// What UEFI clients that are not iPXE get (see `uefi.rs`), at most one
    /// loader per architecture.
    uefi: Vec<UefiLoader>,
}

#[derive(Debug)]
struct AtOnce {
    pxelinux: Arc<[u8]>,
    grub: Arc<[u8]>,
    ipxe: Option<Arc<[u8]>>,
    /// What the iPXE script is made of, to render it again for a VM with
    /// arguments of its own: base URL, kernel and initrd (ISO paths), args.
    ipxe_parts: Option<(String, String, String, String)>,
}

/// What one lab VM gets beyond the installer at once: kernel arguments of
/// its own (an answer file's URL) and files of its own (that answer file).
#[derive(Debug, Clone, Default)]
pub struct PerVm {
    pub args: String,
    pub files: Vec<(String, Vec<u8>)>,
}

impl BootTree {
    /// Builds the tree for installing `distro` from `iso`, with the host's syslinux files.
    pub fn for_distro(iso: Arc<IsoIndex>, distro: &Distro, options: &BootOptions) -> Result<BootTree, BootError> {
        let menu = menu_for(distro, options)?;
        Ok(BootTree::new(iso, syslinux::load()?, menu))
    }

    /// Builds a tree from parts (the syslinux files given, not searched for).
    pub fn new(iso: Arc<IsoIndex>, syslinux: Vec<(&str, Vec<u8>)>, menu: Menu) -> BootTree {
        let mut memory: BTreeMap<String, Arc<[u8]>> = syslinux.into_iter().map(|(name, bytes)| (name.to_string(), Arc::from(bytes))).collect();
        memory.insert("pxelinux.cfg/default".into(), Arc::from(menu.render().into_bytes()));
        memory.insert("boot.msg".into(), Arc::from(menu.render_welcome().into_bytes()));
        let grub: Arc<[u8]> = Arc::from(uefi::render(&menu).into_bytes());
        for prefix in uefi::GRUB_PREFIXES {
            memory.insert(format!("{prefix}/grub.cfg"), grub.clone());
        }
        let at_once = AtOnce {
            pxelinux: Arc::from(menu.render_at_once().into_bytes()),
            grub: Arc::from(uefi::render_at_once(&menu).into_bytes()),
            ipxe: None,
            ipxe_parts: None,
        };
        BootTree { iso, memory, menu, at_once, per_vm: RwLock::new(BTreeMap::new()), uefi: Vec::new() }
    }

    /// Serves `loader` to UEFI clients of its architecture that are not
    /// iPXE, in place of any loader given before for it (the host's pair
    /// from memory; the ISO's in place).
    pub fn with_uefi(mut self, loader: UefiLoader) -> BootTree {
        for (path, bytes) in loader.host_files().into_iter().flatten() {
            self.memory.insert(path.into(), Arc::from(bytes));
        }
        self.uefi.retain(|l| l.arch() != loader.arch());
        self.uefi.push(loader);
        self
    }

    /// The shim and GRUB for `arch`'s UEFI clients, if the tree has them.
    pub fn uefi(&self, arch: Arch) -> Option<&UefiLoader> {
        self.uefi.iter().find(|l| l.arch() == arch)
    }

    /// Every architecture's shim and GRUB the tree has.
    pub fn uefi_loaders(&self) -> &[UefiLoader] {
        &self.uefi
    }

    pub fn menu(&self) -> &Menu {
        &self.menu
    }

    /// Adds the iPXE script (`boot.ipxe`) that boots `distro` over HTTP from
    /// `http_base` with `args` (the menu's kernel arguments), for every iPXE
    /// client: what `serve` offers.
    pub fn with_ipxe(mut self, http_base: &str, distro: &Distro, args: &str) -> BootTree {
        let script = ipxe::script(http_base, &distro.kernel, &distro.initrd, args);
        self.memory.insert(ipxe::SCRIPT.into(), Arc::from(script.into_bytes()));
        self
    }

    /// As [`with_ipxe`](Self::with_ipxe), but the installer script goes only
    /// to VMs added with [`boot_at_once`](Self::boot_at_once); other iPXE
    /// clients are sent to pxelinux on `tftp_server`. What a lab offers.
    pub fn with_ipxe_per_vm(mut self, http_base: &str, distro: &Distro, args: &str, tftp_server: IpAddr) -> BootTree {
        let script = ipxe::script(http_base, &distro.kernel, &distro.initrd, args);
        self.at_once.ipxe = Some(Arc::from(script.into_bytes()));
        self.at_once.ipxe_parts = Some((http_base.into(), distro.kernel.clone(), distro.initrd.clone(), args.into()));
        self.memory.insert(ipxe::SCRIPT.into(), Arc::from(ipxe::dispatch(tftp_server, http_base, &self.menu).into_bytes()));
        self
    }

    /// From now on, the VM with `mac` boots the installer at once: its own
    /// pxelinux config, GRUB config and (with iPXE) script.
    pub fn boot_at_once(&self, mac: MacAddr) {
        self.boot_at_once_with(mac, &PerVm::default());
    }

    /// As [`boot_at_once`](Self::boot_at_once), with `extra`'s kernel
    /// arguments added to the VM's configs and its files in the tree.
    pub fn boot_at_once_with(&self, mac: MacAddr, extra: &PerVm) {
        let (pxelinux, grub, script) = if extra.args.is_empty() {
            (self.at_once.pxelinux.clone(), self.at_once.grub.clone(), self.at_once.ipxe.clone())
        } else {
            let mut menu = self.menu.clone();
            for entry in &mut menu.entries {
                if let BootAction::Linux { append, .. } = &mut entry.action {
                    *append = format!("{append} {}", extra.args).trim().to_string();
                }
            }
            let script = self
                .at_once
                .ipxe_parts
                .as_ref()
                .map(|(base, kernel, initrd, args)| Arc::from(ipxe::script(base, kernel, initrd, &format!("{args} {}", extra.args)).into_bytes()));
            (Arc::from(menu.render_at_once().into_bytes()), Arc::from(uefi::render_at_once(&menu).into_bytes()), script)
        };
        let mut per_vm = self.per_vm.write().unwrap_or_else(|e| e.into_inner());
        per_vm.insert(mac.pxelinux_config(), pxelinux);
        for prefix in uefi::GRUB_PREFIXES {
            per_vm.insert(format!("{prefix}/{}", mac.grub_config()), grub.clone());
        }
        if let Some(script) = script {
            per_vm.insert(mac.ipxe_script(), script);
        }
        for (path, bytes) in &extra.files {
            per_vm.insert(path.clone(), Arc::from(bytes.as_slice()));
        }
    }

    /// From now on, the VM with `mac` boots its local disk: its installer
    /// ran, and the reboot it ends with must not start it again. Each of its
    /// configs hands the firmware back to its next boot device.
    pub fn boot_local(&self, mac: MacAddr) {
        const PXELINUX: &str = "# pxelab: this VM installed; it boots its disk\nPROMPT 0\nDEFAULT local\nLABEL local\n  LOCALBOOT 0\n";
        const GRUB: &str = "# pxelab: this VM installed; it boots its disk\nexit\n";
        const IPXE: &str = "#!ipxe\n# pxelab: this VM installed; it boots its disk\nexit\n";
        let mut per_vm = self.per_vm.write().unwrap_or_else(|e| e.into_inner());
        per_vm.insert(mac.pxelinux_config(), Arc::from(PXELINUX.as_bytes()));
        for prefix in uefi::GRUB_PREFIXES {
            per_vm.insert(format!("{prefix}/{}", mac.grub_config()), Arc::from(GRUB.as_bytes()));
        }
        per_vm.insert(mac.ipxe_script(), Arc::from(IPXE.as_bytes()));
    }

    pub fn iso(&self) -> &Arc<IsoIndex> {
        &self.iso
    }

    /// Paths of the files held in memory (syslinux and generated).
    pub fn memory_paths(&self) -> impl Iterator<Item = &str> {
        self.memory.keys().map(String::as_str)
    }

    /// The file a client asked for as `request`, or why there is none.
    pub fn open(&self, request: &str) -> Result<BootFile, OpenError> {
        let path = normalize(request).map_err(OpenError::Rejected)?;
        if let Some(bytes) = self.memory.get(&path) {
            return Ok(BootFile::Memory(bytes.clone()));
        }
        if let Some(bytes) = self.per_vm.read().unwrap_or_else(|e| e.into_inner()).get(&path) {
            return Ok(BootFile::Memory(bytes.clone()));
        }
        let in_iso = path.strip_prefix(ISO_DIR).and_then(|rest| rest.strip_prefix('/')).ok_or(OpenError::NotFound)?;
        let id = self.iso.lookup(in_iso).ok_or(OpenError::NotFound)?;
        match &self.iso.node(id).kind {
            NodeKind::File(file) => Ok(BootFile::Iso { iso: self.iso.clone(), file: file.clone() }),
            _ => Err(OpenError::NotFound),
        }
    }
}

/// A client's path as a tree path: one leading `/` and `.` components
/// dropped (pxelinux and iPXE send both `pxelinux.0` and `/pxelinux.0`),
/// anything that could name a file outside the tree refused.
pub fn normalize(request: &str) -> Result<String, PathRejected> {
    if request.len() > MAX_PATH {
        return Err(PathRejected::TooLong);
    }
    if request.chars().any(char::is_control) {
        return Err(PathRejected::Control);
    }
    if request.contains('\\') {
        return Err(PathRejected::Backslash);
    }
    let mut parts = Vec::new();
    for part in request.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(PathRejected::Parent),
            _ => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(PathRejected::Empty);
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_file_names_stay_in_the_tree() {
        for good in ["pxelinux.0", "boot/grub/x86_64-efi/core.efi", "ipxe.efi", "a_b-c.0"] {
            assert_eq!(check_boot_file(good), Ok(()), "{good}");
        }
        let long = "x".repeat(128);
        for bad in ["", "../etc/passwd", "/pxelinux.0", "a//b", "a/./b", "a/..", "pxe linux.0", "a'b", "x\\y", long.as_str()] {
            let err = check_boot_file(bad).unwrap_err();
            assert!(err.contains("pxelinux.0") && !err.contains('\n'), "{bad:?}: {err}");
        }
    }

    #[test]
    fn normalize_accepts_what_clients_send() {
        assert_eq!(normalize("pxelinux.0").unwrap(), "pxelinux.0");
        assert_eq!(normalize("/pxelinux.0").unwrap(), "pxelinux.0");
        assert_eq!(normalize("./iso//isolinux/vmlinuz").unwrap(), "iso/isolinux/vmlinuz");
    }

    #[test]
    fn normalize_refuses_escapes() {
        for (path, why) in [
            ("../etc/passwd", PathRejected::Parent),
            ("iso/../../etc/passwd", PathRejected::Parent),
            ("/..", PathRejected::Parent),
            ("..\\..\\windows", PathRejected::Backslash),
            ("iso\\vmlinuz", PathRejected::Backslash),
            ("pxelinux.0\0.txt", PathRejected::Control),
            ("a\nb", PathRejected::Control),
            ("", PathRejected::Empty),
            ("/", PathRejected::Empty),
            ("./.", PathRejected::Empty),
        ] {
            assert_eq!(normalize(path), Err(why), "{path:?}");
        }
        assert_eq!(normalize(&"a/".repeat(600)), Err(PathRejected::TooLong));
    }
}
