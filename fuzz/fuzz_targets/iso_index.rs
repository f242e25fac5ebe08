//! Arbitrary bytes as an ISO: indexing never panics, never allocates
//! without bound (libFuzzer's -malloc_limit_mb catches that), and fails
//! with an error; when it succeeds, every file's bytes lie inside the image
//! and read back without error.
//!
//! Two ways in, chosen by the first byte: the rest of the input as a whole
//! image (padded, with the CD001 magic put where the reader looks, so the
//! fuzzer gets past the first check), or as byte patches over a real ISO
//! fixture, which reaches deep into directory records, Rock Ridge and Joliet.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pxelab::iso::{IsoIndex, NodeKind};

const SECTOR: usize = 2048;

fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let path = std::env::var("PXELAB_FUZZ_ISO").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/out/rr-deep.iso").into());
        std::fs::read(path).expect("fuzz ISO readable: run `make fixtures`")
    })
}

fn scratch() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        std::path::PathBuf::from(format!("{dir}/pxelab-fuzz-iso-{}.iso", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let image = if mode % 2 == 0 {
        let mut image = rest.to_vec();
        image.resize(image.len().max(18 * SECTOR), 0);
        image[16 * SECTOR..16 * SECTOR + 6].copy_from_slice(b"\x01CD001");
        image
    } else {
        // Patches: (offset: u24 little-endian, byte), applied in order.
        let mut image = base().to_vec();
        for patch in rest.chunks_exact(4) {
            let offset = u32::from_le_bytes([patch[0], patch[1], patch[2], 0]) as usize % image.len();
            image[offset] = patch[3];
        }
        image
    };
    std::fs::write(scratch(), &image).expect("scratch file writable");
    let Ok(index) = IsoIndex::open(scratch()) else { return };
    let size = index.size_bytes();
    for (path, file) in index.files() {
        let mut total = 0u64;
        for extent in &file.extents {
            assert!(extent.offset.checked_add(extent.len).is_some_and(|end| end <= size), "{path}: extent {extent:?} beyond {size}");
            total += extent.len;
        }
        assert_eq!(total, file.size, "{path}: extents and size disagree");
        let mut buf = [0u8; 64];
        let _ = index.read_at(file, 0, &mut buf).expect("a file inside the image reads");
        let id = index.lookup(&path).expect("listed files can be looked up");
        assert!(matches!(index.node(id).kind, NodeKind::File(_)));
    }
});
