//! Layouts whose system is a squashfs root fetched whole by the initrd:
//! FAI's installation CD (dracut, `LiveOS/squashfs.img`) and Debian's live
//! ISOs (live-boot, `live/filesystem.squashfs`).
//!
//! Over the network neither needs the ISO's tree beyond that one file: the
//! initrd downloads it into RAM (dracut's `root=live:URL`, live-boot's
//! `fetch=URL`) and runs from there. FAI's config space and package mirror
//! are inside the squashfs (fai-cd puts them there), so they reach the VM
//! through the same download.

use super::{clean, disk_info, Distro, Family, Source};
use crate::iso::index::{IsoIndex, NodeKind};

/// Largest boot menu read for the ISO's own kernel options.
const MENU_LIMIT: u64 = 64 * 1024;

/// fai-cd's marker file, its kernel and initrd, and the root it boots.
pub(in crate::iso) const FAI_MARKER: &str = "FAI-CD";
pub(in crate::iso) const FAI_PAIR: (&str, &str) = ("boot/vmlinuz", "boot/initrd.img");
pub(in crate::iso) const FAI_ROOT: &str = "LiveOS/squashfs.img";

/// live-build's directory and the root its live-boot fetches.
pub(in crate::iso) const LIVE_DIR: &str = "live/";
pub(in crate::iso) const LIVE_ROOT: &str = "live/filesystem.squashfs";

/// A FAI installation CD (made by `fai-cd`).
pub(in crate::iso) fn fai_layout(iso: &IsoIndex) -> Option<Distro> {
    let (kernel, initrd) = FAI_PAIR;
    [FAI_MARKER, kernel, initrd, FAI_ROOT].iter().all(|p| iso.file(p).is_some()).then_some(())?;
    Some(Distro {
        arch: kernel_config_arch(iso),
        stage2: Some(FAI_ROOT.to_string()),
        ..Distro::found(Family::Fai, "FAI (Fully Automatic Installation)".into(), (kernel.into(), initrd.into()), Source::Layout)
    })
}

/// fai-cd copies the kernel's `config-6.1.0-18-amd64` beside it; Debian's
/// kernel flavour names the architecture.
fn kernel_config_arch(iso: &IsoIndex) -> Option<String> {
    let NodeKind::Dir { children } = &iso.node(iso.lookup("boot")?).kind else { return None };
    children.keys().filter(|n| n.starts_with("config-")).find_map(|n| {
        ["amd64", "arm64", "686-pae", "686"].iter().find(|f| n.ends_with(&format!("-{f}"))).map(|f| if f.starts_with("686") { "i386" } else { f }.to_string())
    })
}

/// A Debian live ISO (made by live-build): `live/vmlinuz` and
/// `live/initrd.img`, or the versioned names older live-build wrote.
pub(in crate::iso) fn live_layout(iso: &IsoIndex) -> Option<Distro> {
    iso.file(LIVE_ROOT)?;
    let pair = live_pair(iso)?;
    let info = disk_info(iso);
    let name = info.as_ref().and_then(|i| i.name.clone()).unwrap_or_else(|| "Debian live".into());
    Some(Distro {
        version: info.as_ref().and_then(|i| i.version.clone()),
        arch: info.and_then(|i| i.arch),
        stage2: Some(LIVE_ROOT.to_string()),
        iso_args: live_options(iso),
        ..Distro::found(Family::Live, name, pair, Source::Layout)
    })
}

fn live_pair(iso: &IsoIndex) -> Option<(String, String)> {
    if iso.file("live/vmlinuz").is_some() && iso.file("live/initrd.img").is_some() {
        return Some(("live/vmlinuz".into(), "live/initrd.img".into()));
    }
    // `vmlinuz-6.1.0-18-amd64` beside `initrd.img-6.1.0-18-amd64`.
    let NodeKind::Dir { children } = &iso.node(iso.lookup(LIVE_DIR)?).kind else { return None };
    children.keys().filter_map(|name| name.strip_prefix("vmlinuz-")).find_map(|version| {
        let (kernel, initrd) = (format!("live/vmlinuz-{version}"), format!("live/initrd.img-{version}"));
        iso.file(&initrd).is_some().then_some((kernel, initrd))
    })
}

/// The kernel options the ISO's own menu gives its live entry (live-build's
/// `--bootappend-live`: `components`, a host name, a console…), without the
/// ones that only make sense on the CD: the initrd (the network menu names
/// its own) and where to find the medium.
fn live_options(iso: &IsoIndex) -> Option<String> {
    let append = ["isolinux/live.cfg", "syslinux/live.cfg", "boot/grub/grub.cfg"].iter().find_map(|menu| {
        let text = iso.read_small(menu, MENU_LIMIT)?;
        let text = String::from_utf8_lossy(&text);
        text.lines().map(str::trim).find_map(|line| {
            let rest = line.strip_prefix("append ").or_else(|| line.strip_prefix("linux ")).or_else(|| line.strip_prefix("linux\t"))?;
            rest.split_whitespace().any(|w| w == "boot=live").then(|| rest.to_string())
        })
    })?;
    let kept: Vec<&str> = append
        .split_whitespace()
        .filter(|w| !w.starts_with('/') && !w.starts_with("initrd=") && !w.starts_with("findiso=") && !w.starts_with("live-media") && *w != "boot=live")
        .collect();
    clean(&kept.join(" "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fai_args_point_dracut_at_the_squashfs() {
        use super::super::{installer_args_for, Repo};
        let args = installer_args_for(super::Family::Fai, Repo::Http, "fai.iso", None);
        assert!(args.starts_with("root=live:http://{server}/iso/LiveOS/squashfs.img rd.live.image"), "{args}");
        assert!(args.contains("FAI_ACTION=install"), "{args}");
        let ftp = installer_args_for(super::Family::Fai, Repo::Ftp, "fai.iso", None);
        assert!(ftp.starts_with("root=live:ftp://{server}/LiveOS/squashfs.img"), "{ftp}");
        let live = installer_args_for(super::Family::Live, Repo::Http, "l.iso", Some("components quiet"));
        assert_eq!(live, "boot=live fetch=http://{server}/iso/live/filesystem.squashfs components quiet");
    }
}
