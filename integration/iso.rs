//! The ISO reader against images xorriso built: every file pxelab reads must
//! be byte-identical to the file that went in (or that xorriso extracts),
//! under every naming scheme, and distribution detection must name the
//! right kernel and initrd.

mod common;

use std::os::unix::fs::FileExt;
use std::time::Instant;

use common::{fixture, reference_files};
use pxelab::iso::{detect, Family, IsoError, IsoIndex, NameSource, NodeKind, Overrides, Source};

/// Reads a whole file through the index, in odd-sized chunks so that reads
/// straddling extent and buffer boundaries are exercised.
fn read_all(iso: &IsoIndex, path: &str) -> Vec<u8> {
    let file = iso.file(path).unwrap_or_else(|| panic!("{path} not in index"));
    let mut out = Vec::with_capacity(file.size as usize);
    let mut buf = vec![0u8; 70_001];
    loop {
        let n = iso.read_at(file, out.len() as u64, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out.len() as u64, file.size, "{path}: read length differs from indexed size");
    out
}

/// The index holds exactly the reference's files, each with the same bytes.
fn assert_matches_reference(name: &str, expected_names: NameSource, map_name: fn(&str) -> String) {
    let iso = IsoIndex::open(&fixture(&format!("{name}.iso"))).unwrap();
    assert_eq!(iso.name_source(), expected_names, "{name}");
    let reference = reference_files(&fixture(&format!("{name}.files")));
    assert!(!reference.is_empty());
    let mut indexed: Vec<String> = iso.files().into_iter().map(|(p, _)| p).collect();
    indexed.sort();
    let mut wanted: Vec<String> = reference.iter().map(|(p, _)| map_name(p)).collect();
    wanted.sort();
    assert_eq!(indexed, wanted, "{name}: file lists differ");
    for (rel, abs) in &reference {
        let ours = read_all(&iso, &map_name(rel));
        let theirs = std::fs::read(abs).unwrap();
        assert!(ours == theirs, "{name}: {rel} differs from the reference ({} vs {} bytes)", ours.len(), theirs.len());
    }
}

fn same(p: &str) -> String {
    p.to_string()
}

#[test]
fn rock_ridge_images_read_byte_identical() {
    for name in ["centos-busybox", "centos-di", "debian", "ubuntu", "no-kernel"] {
        assert_matches_reference(name, NameSource::RockRidge, same);
    }
}

#[test]
fn joliet_only_image_keeps_long_mixed_case_names() {
    assert_matches_reference("joliet-only", NameSource::Joliet, same);
    let iso = IsoIndex::open(&fixture("joliet-only.iso")).unwrap();
    assert!(iso.file("Mixed Case Dir/Sub/A Long File Name With Spaces.txt").is_some());
}

#[test]
fn plain_iso9660_names_are_shown_as_a_linux_mount_does() {
    assert_matches_reference("plain", NameSource::Iso9660, |p| p.to_ascii_lowercase());
}

#[test]
fn deep_directories_relocated_by_rock_ridge_are_back_in_place() {
    assert_matches_reference("rr-deep", NameSource::RockRidge, same);
    let iso = IsoIndex::open(&fixture("rr-deep.iso")).unwrap();
    assert!(iso.file("l1/l2/l3/l4/l5/l6/l7/l8/l9/l10/l11/l12/deep-file.bin").is_some());
    // The relocation directory is an artefact of the format, not a file of the tree.
    assert!(iso.lookup("RR_MOVED").is_none() && iso.lookup("rr_moved").is_none());
}

#[test]
fn symlinks_resolve_inside_the_image_only() {
    let iso = IsoIndex::open(&fixture("debian.iso")).unwrap();
    let link = iso.lookup("debian").expect("debian symlink indexed");
    assert!(matches!(iso.node(link).kind, NodeKind::Dir { .. }), "debian -> . resolves to the root");
    assert_eq!(read_all(&iso, "debian/debian/install.amd/vmlinuz"), read_all(&iso, "install.amd/vmlinuz"));
    // `..` stops at the image root: there is nothing above it to reach.
    assert_eq!(iso.lookup("../../../install.amd/vmlinuz"), iso.lookup("install.amd/vmlinuz"));
    assert!(iso.lookup("../etc/passwd").is_none());
}

#[test]
fn a_file_over_4_gib_is_read_across_its_extents() {
    let path = fixture("big.iso");
    let started = Instant::now();
    let iso = IsoIndex::open(&path).unwrap();
    let indexing = started.elapsed();
    assert!(indexing.as_millis() < 1000, "indexing a 4.8 GB ISO took {indexing:?}");

    let huge = iso.file("huge.img").expect("huge.img indexed");
    let source = std::fs::File::open(fixture("big.files/huge.img")).unwrap();
    let size = source.metadata().unwrap().len();
    assert!(size > 4 << 30);
    assert_eq!(huge.size, size);
    assert!(huge.extents.len() >= 2, "a file over 4 GiB needs several extents: {:?}", huge.extents);

    // Compare the whole file in 8 MiB chunks: most of it is zeros, but the
    // marks at 0, 4 GiB - 4 KiB and the end catch a read from the wrong extent.
    let chunk = 8 << 20;
    let (mut ours, mut theirs) = (vec![0u8; chunk], vec![0u8; chunk]);
    let mut offset = 0u64;
    while offset < size {
        let want = chunk.min((size - offset) as usize);
        assert_eq!(iso.read_at(huge, offset, &mut ours[..want]).unwrap(), want);
        source.read_exact_at(&mut theirs[..want], offset).unwrap();
        assert!(ours[..want] == theirs[..want], "huge.img differs in the chunk at {offset}");
        offset += want as u64;
    }
    for small in ["before.bin", "zafter.bin"] {
        assert_eq!(read_all(&iso, small), std::fs::read(fixture(&format!("big.files/{small}"))).unwrap());
    }
}

#[test]
fn reads_past_the_end_return_nothing() {
    let iso = IsoIndex::open(&fixture("debian.iso")).unwrap();
    let file = iso.file("install.amd/vmlinuz").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(iso.read_at(file, file.size, &mut buf).unwrap(), 0);
    assert_eq!(iso.read_at(file, file.size - 3, &mut buf).unwrap(), 3);
}

#[test]
fn bad_images_are_refused_with_a_reason() {
    match IsoIndex::open(&fixture("not-an-iso.iso")) {
        Err(IsoError::NotIso { .. }) => {}
        other => panic!("not-an-iso: {other:?}"),
    }
    match IsoIndex::open(&fixture("truncated.iso")) {
        Err(IsoError::Truncated { expected, actual, .. }) => assert!(expected > actual),
        other => panic!("truncated: {other:?}"),
    }
    match IsoIndex::open(std::path::Path::new("/nonexistent/pxelab.iso")) {
        Err(IsoError::Open { .. }) => {}
        other => panic!("missing file: {other:?}"),
    }
}

#[test]
fn treeinfo_names_the_rhel_kernel_and_stage2() {
    let iso = IsoIndex::open(&fixture("centos-busybox.iso")).unwrap();
    let d = detect(&iso, &Overrides::default()).unwrap();
    assert_eq!(d.family, Family::Rhel);
    assert_eq!(d.source, Source::Treeinfo);
    assert_eq!(d.name, "PXELab Busybox Installer");
    assert_eq!(d.version.as_deref(), Some("1.0"));
    assert_eq!(d.arch.as_deref(), Some("x86_64"));
    assert_eq!(d.kernel, "images/pxeboot/vmlinuz");
    assert_eq!(d.initrd, "images/pxeboot/initrd.img");
    assert_eq!(d.stage2.as_deref(), Some("images/install.img"));
    assert_eq!(d.kernel_args_for("192.0.2.1"), "inst.repo=http://192.0.2.1/iso/");
    assert_eq!(d.volume_id, "PXELAB-BUSYBOX-1-x86_64");
    // The seed's FTP, on request.
    let ftp = detect(&iso, &Overrides { repo: Some(pxelab::iso::Repo::Ftp), ..Overrides::default() }).unwrap();
    assert_eq!(ftp.kernel_args_for("192.0.2.1"), "inst.repo=ftp://192.0.2.1/");
}

#[test]
fn rhel_layout_without_treeinfo_is_found_from_its_directories() {
    let iso = IsoIndex::open(&fixture("centos-di.iso")).unwrap();
    let d = detect(&iso, &Overrides::default()).unwrap();
    assert_eq!((d.family, d.source), (Family::Rhel, Source::Layout));
    assert_eq!(d.kernel, "images/pxeboot/vmlinuz");
    assert_eq!((d.name.as_str(), d.version.as_deref()), ("CentOS", Some("7")));
}

#[test]
fn debian_and_ubuntu_layouts_are_recognised() {
    let iso = IsoIndex::open(&fixture("debian.iso")).unwrap();
    let d = detect(&iso, &Overrides::default()).unwrap();
    assert_eq!(d.family, Family::Debian);
    assert_eq!((d.kernel.as_str(), d.initrd.as_str()), ("install.amd/vmlinuz", "install.amd/initrd.gz"));
    assert_eq!(d.version.as_deref(), Some("12.8.0"));
    assert_eq!(d.arch.as_deref(), Some("amd64"));

    let iso = IsoIndex::open(&fixture("ubuntu.iso")).unwrap();
    let d = detect(&iso, &Overrides::default()).unwrap();
    assert_eq!(d.family, Family::Ubuntu);
    assert_eq!((d.kernel.as_str(), d.initrd.as_str()), ("casper/vmlinuz", "casper/initrd"));
    assert_eq!(d.version.as_deref(), Some("24.04.1"));
    assert!(d.kernel_args.contains("url=http://{server}/ubuntu.iso"), "{}", d.kernel_args);
    // casper downloads the ISO itself, which only HTTP serves.
    assert!(detect(&iso, &Overrides { repo: Some(pxelab::iso::Repo::Ftp), ..Overrides::default() }).is_err());
}

#[test]
fn overrides_replace_detection_and_must_exist() {
    let iso = IsoIndex::open(&fixture("rr-deep.iso")).unwrap();
    assert!(detect(&iso, &Overrides::default()).is_err(), "nothing bootable in rr-deep");
    let o = Overrides {
        kernel: Some("/l1/shallow.bin".into()),
        initrd: Some("l1/l2/l3/l4/l5/l6/l7/l8/l9/l10/l11/l12/deep-file.bin".into()),
        append: Some("console=ttyS0 quiet".into()),
        ..Overrides::default()
    };
    let d = detect(&iso, &o).unwrap();
    assert_eq!((d.family, d.source), (Family::Custom, Source::Override));
    assert_eq!(d.kernel, "l1/shallow.bin");
    assert_eq!(d.kernel_args, "console=ttyS0 quiet");

    let missing = Overrides { kernel: Some("nope/vmlinuz".into()), ..o.clone() };
    let err = detect(&iso, &missing).unwrap_err().to_string();
    assert!(err.contains("--kernel nope/vmlinuz is not a file in the ISO"), "{err}");
    let bad_append = Overrides { append: Some("a\nb".into()), ..o };
    assert!(detect(&iso, &bad_append).is_err());
}
