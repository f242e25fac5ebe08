//! A TFTP request path → the boot tree entry it names. Whatever a client
//! sends, what is served is either a file held in memory (syslinux, the
//! menu) or a file of the ISO under `iso/`, named by the normalised path;
//! never anything else, and the normaliser's output has no `..`, `.`, empty
//! component, leading `/`, backslash or control character.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use pxelab::boot::{self, BootFile, BootTree, DefaultEntry, Menu};
use pxelab::iso::{IsoIndex, NodeKind};

fn tree() -> &'static BootTree {
    static TREE: OnceLock<BootTree> = OnceLock::new();
    TREE.get_or_init(|| {
        // The plain ISO 9660 fixture (make fixtures); override with PXELAB_FUZZ_ISO.
        let path = std::env::var("PXELAB_FUZZ_ISO").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/out/rr-deep.iso").into());
        let iso = Arc::new(IsoIndex::open(path.as_ref()).expect("fuzz ISO opens: run `make fixtures`"));
        let syslinux = vec![("pxelinux.0", b"PXE".to_vec()), ("ldlinux.c32", b"LD".to_vec())];
        let menu = Menu::install("fuzz", "iso/a", "iso/b", "", DefaultEntry::Install).unwrap();
        BootTree::new(iso, syslinux, menu)
    })
}

fuzz_target!(|data: &[u8]| {
    // TFTP file names are bytes up to NUL; the server sees them lossily decoded.
    let request = String::from_utf8_lossy(data);
    let normalized = boot::normalize(&request);
    if let Ok(path) = &normalized {
        assert!(!path.starts_with('/'), "{path:?}");
        assert!(path.split('/').all(|c| !c.is_empty() && c != "." && c != ".."), "{path:?}");
        assert!(!path.contains('\\') && !path.chars().any(char::is_control), "{path:?}");
    }
    let tree = tree();
    match tree.open(&request) {
        Ok(BootFile::Memory(_)) => {
            let path = normalized.expect("served means normalised");
            assert!(tree.memory_paths().any(|p| p == path), "{path:?} served from memory but not in it");
        }
        Ok(BootFile::Iso { file, .. }) => {
            let path = normalized.expect("served means normalised");
            let inside = path.strip_prefix("iso/").expect("ISO files live under iso/");
            let id = tree.iso().lookup(inside).expect("served path exists in the ISO");
            match &tree.iso().node(id).kind {
                NodeKind::File(f) => assert_eq!(f.extents, file.extents),
                other => panic!("{path:?} served but is {other:?}"),
            }
        }
        Err(_) => {}
    }
});
