//! The boot tree a PXE client sees: the host's syslinux files, the
//! generated menu, and the ISO under `iso/`, with nothing reachable outside.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::fixture;
use pxelab::boot::{syslinux, BootFile, BootOptions, BootTree, DefaultEntry, OpenError, Ui};
use pxelab::iso::{detect, IsoIndex, Overrides};

fn read(file: &BootFile) -> Vec<u8> {
    let mut buf = vec![0u8; file.size() as usize];
    assert_eq!(file.read_at(0, &mut buf).unwrap(), buf.len());
    buf
}

fn centos_tree() -> BootTree {
    let iso = Arc::new(IsoIndex::open(&fixture("centos-busybox.iso")).unwrap());
    let distro = detect(&iso, &Overrides::default()).unwrap();
    let options = BootOptions { append: format!("{} console=ttyS0", distro.kernel_args_for("192.0.2.1")), default: DefaultEntry::Install, ui: Ui::Vesa };
    BootTree::for_distro(iso, &distro, &options).unwrap()
}

#[test]
fn serves_the_hosts_syslinux_files_unchanged() {
    let tree = centos_tree();
    for (name, host) in [
        ("pxelinux.0", "/usr/lib/PXELINUX/pxelinux.0"),
        ("ldlinux.c32", "/usr/lib/syslinux/modules/bios/ldlinux.c32"),
        ("vesamenu.c32", "/usr/lib/syslinux/modules/bios/vesamenu.c32"),
        ("menu.c32", "/usr/lib/syslinux/modules/bios/menu.c32"),
        ("libcom32.c32", "/usr/lib/syslinux/modules/bios/libcom32.c32"),
        ("libutil.c32", "/usr/lib/syslinux/modules/bios/libutil.c32"),
    ] {
        assert_eq!(read(&tree.open(name).unwrap()), std::fs::read(host).unwrap(), "{name}");
        assert_eq!(read(&tree.open(&format!("/{name}")).unwrap()), std::fs::read(host).unwrap(), "/{name}");
    }
}

#[test]
fn menu_points_into_the_iso_at_files_that_exist() {
    let tree = centos_tree();
    let menu = String::from_utf8(read(&tree.open("pxelinux.cfg/default").unwrap())).unwrap();
    assert!(menu.contains("UI vesamenu.c32\n") && menu.contains("DISPLAY boot.msg\n"), "{menu}");
    assert!(menu.contains("MENU TITLE pxelab: PXELab Busybox Installer 1.0\n"), "{menu}");
    assert!(menu.contains("  KERNEL iso/images/pxeboot/vmlinuz\n"), "{menu}");
    assert!(menu.contains("  APPEND initrd=iso/images/pxeboot/initrd.img inst.repo=http://192.0.2.1/iso/ console=ttyS0\n"), "{menu}");
    // Every path the menu names must be servable, or the client stops there.
    for line in menu.lines() {
        let line = line.trim();
        if let Some(kernel) = line.strip_prefix("KERNEL ") {
            assert!(tree.open(kernel).is_ok(), "menu names missing kernel {kernel}");
        }
        if let Some(rest) = line.strip_prefix("APPEND initrd=") {
            let initrd = rest.split_whitespace().next().unwrap();
            assert!(tree.open(initrd).is_ok(), "menu names missing initrd {initrd}");
        }
    }
    let msg = read(&tree.open("boot.msg").unwrap());
    assert!(String::from_utf8(msg).unwrap().starts_with("Welcome to pxelab."));
}

#[test]
fn iso_files_are_served_byte_identical_under_iso() {
    let tree = centos_tree();
    let reference = common::reference_files(&fixture("centos-busybox.files"));
    for (rel, abs) in reference {
        let file = tree.open(&format!("iso/{rel}")).unwrap_or_else(|e| panic!("iso/{rel}: {e}"));
        assert!(read(&file) == std::fs::read(&abs).unwrap(), "iso/{rel} differs");
    }
}

#[test]
fn nothing_outside_the_tree_is_reachable() {
    let tree = centos_tree();
    for path in [
        "../etc/passwd",
        "/../etc/passwd",
        "iso/../../etc/passwd",
        "iso/../iso/../../etc/passwd",
        "..\\..\\etc\\passwd",
        "iso\\images\\pxeboot\\vmlinuz",
        "pxelinux.0\0../../etc/passwd",
    ] {
        assert!(matches!(tree.open(path), Err(OpenError::Rejected(_))), "{path:?} was not refused");
    }
    for path in ["/etc/passwd", "etc/passwd", "iso", "iso/", "iso/images", "pxelinux.cfg", "iso/nonexistent"] {
        assert_eq!(tree.open(path).unwrap_err(), OpenError::NotFound, "{path:?}");
    }
}

#[test]
fn missing_syslinux_names_the_package_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let err = syslinux::load_from(&[PathBuf::from(empty.path())]).unwrap_err().to_string();
    assert!(err.starts_with("pxelinux.0 not found"), "{err}");
    assert!(err.contains("apt-get install pxelinux syslinux-common"), "{err}");
    assert!(!err.contains('\n'));
}
