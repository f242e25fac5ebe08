//! The syslinux files a PXE client loads before the kernel, taken from the
//! host's packages (pxelab ships no binaries of its own).
//!
//! They are read into memory once, when the boot tree is built: they are a
//! few hundred kilobytes, and a package upgrade while a lab runs must not
//! hand a client a half-written file.

use std::path::{Path, PathBuf};

/// The files a PXE client needs, in the order it asks for them.
/// pxelinux 6 needs ldlinux.c32; vesamenu/menu need libcom32 and libutil.
pub const ASSETS: [&str; 6] = ["pxelinux.0", "ldlinux.c32", "menu.c32", "vesamenu.c32", "libcom32.c32", "libutil.c32"];

/// Where distributions put them: Debian/Ubuntu, then Fedora/RHEL/Arch/Gentoo.
const SEARCH_DIRS: [&str; 5] = ["/usr/lib/PXELINUX", "/usr/lib/syslinux/modules/bios", "/usr/share/syslinux", "/usr/lib/syslinux/bios", "/usr/lib/syslinux"];

/// Overrides the search, for hosts with syslinux in an unusual place.
pub const DIR_ENV: &str = "PXELAB_SYSLINUX_DIR";

#[derive(Debug, thiserror::Error)]
#[error(
    "{file} not found (looked in {looked}); install it: `apt-get install pxelinux syslinux-common` on Debian/Ubuntu, `dnf install syslinux-tftpboot` on Fedora/RHEL, or set {DIR_ENV} to the folder that has it"
)]
pub struct MissingAsset {
    pub file: &'static str,
    pub looked: String,
}

/// Reads every file of [`ASSETS`] from the host (`$PXELAB_SYSLINUX_DIR`, else the usual places).
pub fn load() -> Result<Vec<(&'static str, Vec<u8>)>, MissingAsset> {
    let dirs: Vec<PathBuf> = match std::env::var_os(DIR_ENV) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => SEARCH_DIRS.iter().map(PathBuf::from).collect(),
    };
    load_from(&dirs)
}

/// Reads every file of [`ASSETS`], each from the first of `dirs` that has it.
pub fn load_from(dirs: &[PathBuf]) -> Result<Vec<(&'static str, Vec<u8>)>, MissingAsset> {
    ASSETS
        .iter()
        .map(|&file| {
            let bytes = dirs.iter().find_map(|d| read_regular(&d.join(file)));
            bytes.map(|b| (file, b)).ok_or_else(|| MissingAsset { file, looked: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ") })
        })
        .collect()
}

fn read_regular(path: &Path) -> Option<Vec<u8>> {
    std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    std::fs::read(path).ok()
}
