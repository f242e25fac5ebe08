//! `pxelab iso inspect`: what an ISO holds and how pxelab would boot it.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::arch::Arch;
use crate::boot::{self, BootOptions, DefaultEntry, UefiLoader, Ui};
use crate::error::Result;
use crate::iso::{self, Distro, IsoIndex, NameSource, Overrides};

/// What `pxelab iso inspect` reports.
#[derive(Debug, Serialize)]
pub struct Inspection {
    #[serde(flatten)]
    pub distro: Distro,
    pub path: String,
    pub files: usize,
    pub names_from: NameSource,
    /// The ISO's signed UEFI shim (`EFI/BOOT/BOOTX64.EFI`, with `grubx64.efi`
    /// beside it): what UEFI and Secure Boot clients are served. `None`: the
    /// host's shim and GRUB are served instead, and Secure Boot is refused.
    pub efi_loader: Option<String>,
    /// The rendered `pxelinux.cfg/default`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu: Option<String>,
}

impl Inspection {
    pub fn to_text(&self) -> String {
        let d = &self.distro;
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let mut out = format!(
            "ISO        {} ({} bytes, volume {:?}, {} files, names from {})\n\
             Family     {} (from {})\n\
             Name       {}\n\
             Version    {}\n\
             Arch       {}\n\
             Kernel     {}\n\
             Initrd     {}\n\
             Stage2     {}\n\
             Args       {}\n\
             EFI        {}\n",
            self.path,
            d.size_bytes,
            d.volume_id,
            self.files,
            serde_json::to_value(self.names_from).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            serde_json::to_value(d.family).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            serde_json::to_value(d.source).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            d.name,
            or_dash(&d.version),
            or_dash(&d.arch),
            d.kernel,
            d.initrd,
            or_dash(&d.stage2),
            if d.kernel_args.is_empty() { "-" } else { &d.kernel_args },
            match &self.efi_loader {
                Some(shim) => format!("{shim} and the GRUB beside it (UEFI and Secure Boot clients boot through them)"),
                None => "- (UEFI clients get the host's shim and GRUB; no Secure Boot)".to_string(),
            },
        );
        if let Some(menu) = &self.menu {
            out.push_str("\n# pxelinux.cfg/default\n");
            out.push_str(menu);
        }
        out
    }
}

/// What `pxelab iso inspect` was asked.
#[derive(Debug, Clone)]
pub struct InspectRequest {
    pub iso: PathBuf,
    pub overrides: Overrides,
    /// Also render the pxelinux menu.
    pub menu: bool,
    /// The server address to put in the kernel arguments (and the menu).
    pub server: Option<IpAddr>,
    pub default: DefaultEntry,
}

/// `pxelab iso inspect`.
pub fn inspect(request: &InspectRequest) -> Result<Inspection> {
    let iso = IsoIndex::open(&request.iso)?;
    let mut distro = iso::detect(&iso, &request.overrides)?;
    if let Some(server) = request.server {
        // The Args line (and JSON) shows what the menu says.
        distro.kernel_args = distro.kernel_args_for(&super::serve::url_host(server));
    }
    let menu = if request.menu {
        let options = BootOptions { append: distro.kernel_args.clone(), default: request.default, ui: Ui::Vesa };
        Some(boot::menu_for(&distro, &options)?.render())
    } else {
        None
    };
    // The shim for the installer's own architecture, else any the ISO has.
    let own = distro.installer_arch().unwrap_or_default();
    let efi_loader = std::iter::once(own).chain(Arch::ALL).find_map(|arch| match UefiLoader::in_iso(&iso, arch) {
        Some(UefiLoader::Iso { shim, .. }) => Some(shim),
        _ => None,
    });
    Ok(Inspection { efi_loader, files: iso.files().len(), names_from: iso.name_source(), path: request.iso.display().to_string(), distro, menu })
}
