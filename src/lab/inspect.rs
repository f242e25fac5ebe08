//! `pxelab iso inspect`: what an ISO holds and how pxelab would boot it.

use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

use super::{detect, open_iso};
use crate::boot::{self, BootOptions, DefaultEntry, Ui};
use crate::error::{Error, Result};
use crate::iso::{Distro, NameSource, Overrides, SERVER_PLACEHOLDER};

/// What `pxelab iso inspect` reports.
#[derive(Debug, Serialize)]
pub struct Inspection {
    #[serde(flatten)]
    pub distro: Distro,
    pub path: String,
    pub files: usize,
    pub names_from: NameSource,
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
             Args       {}\n",
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
        );
        if let Some(menu) = &self.menu {
            out.push_str("\n# pxelinux.cfg/default\n");
            out.push_str(menu);
        }
        out
    }
}

/// `pxelab iso inspect`.
pub fn inspect(
    path: &Path,
    overrides: &Overrides,
    with_menu: bool,
    server: Option<IpAddr>,
    default: DefaultEntry,
) -> Result<Inspection> {
    let iso = open_iso(path)?;
    let distro = detect(&iso, overrides)?;
    let menu = if with_menu {
        let server = server.map(|s| s.to_string()).unwrap_or_else(|| SERVER_PLACEHOLDER.to_string());
        let options = BootOptions { append: distro.kernel_args_for(&server), default, ui: Ui::Vesa };
        Some(boot::menu_for(&distro, &options).map_err(|e| Error::bad_input(e.to_string()))?.render())
    } else {
        None
    };
    Ok(Inspection { files: iso.files().len(), names_from: iso.name_source(), path: path.display().to_string(), distro, menu })
}


