//! An index of every file in an ISO 9660 image, as byte ranges of the image.
//!
//! pxelab never mounts an ISO (the kernel may have no iso9660 driver, and a
//! loop mount needs root) and never copies it. Instead it walks the directory
//! records once with `hadris-iso`, keeping for each file only its extents:
//! where its bytes lie in the image. Serving a file is then a positioned read
//! (`pread`) of the image, which needs no lock and no seek, so any number of
//! transfers can read concurrently from one open file.
//!
//! Names come from Rock Ridge when the image has it (what a Linux mount
//! shows), else from Joliet, else from the plain ISO 9660 names, lower-cased
//! and without `;1`, as Linux's default `map=normal` shows them. Rock Ridge
//! symlinks are kept and resolved inside the image only; deep-directory
//! relocation (`CL`/`RE`) is followed by `hadris-iso`.
//!
//! The walk reads directory records only, never file contents, so indexing
//! a multi-gigabyte DVD takes milliseconds. A hostile image cannot make it
//! loop (each directory extent is visited once) or allocate without bound
//! (entry, depth and name limits below).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hadris_iso::file::EntryType;
use hadris_iso::read::{DirEntry, IsoImage, RootDir};

/// The ISO 9660 logical block size; `hadris-iso` refuses any other.
const SECTOR: u64 = 2048;
/// More entries than the largest distribution DVDs (~10k) by far; a bound so
/// that a crafted image cannot make us index forever.
const MAX_ENTRIES: usize = 1_000_000;
/// Linux's PATH_MAX-derived depth limit is far deeper than any real ISO.
const MAX_DEPTH: usize = 64;
/// Symlink hops followed before a lookup gives up (as Linux's ELOOP).
const MAX_SYMLINK_HOPS: usize = 16;

/// Why an ISO could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an ISO 9660 image ({detail}); pass an installer .iso file")]
    NotIso { path: PathBuf, detail: String },
    #[error("{path} is truncated: its volume descriptor says {expected} bytes but the file has {actual}; download or build it again")]
    Truncated { path: PathBuf, expected: u64, actual: u64 },
    #[error("{path} has a corrupt directory tree ({detail}); build or download the ISO again")]
    Corrupt { path: PathBuf, detail: String },
}

/// A contiguous run of a file's bytes inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset in the image.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Index of a node in [`IsoIndex`]; the root directory is [`IsoIndex::ROOT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(usize);

/// A file, directory or symlink in the image.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub parent: NodeId,
    /// Modification time in seconds since the Unix epoch, when the image has one.
    pub mtime: Option<i64>,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub enum NodeKind {
    Dir { children: BTreeMap<String, NodeId> },
    File(IsoFile),
    Symlink { target: String },
}

/// Where a regular file's bytes are.
#[derive(Debug, Clone)]
pub struct IsoFile {
    pub size: u64,
    pub extents: Vec<Extent>,
}

/// An opened ISO image and the index of its files.
#[derive(Debug)]
pub struct IsoIndex {
    path: PathBuf,
    file: File,
    size_bytes: u64,
    volume_id: String,
    names: NameSource,
    nodes: Vec<Node>,
}

/// Which directory tree the names were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NameSource {
    RockRidge,
    Joliet,
    Iso9660,
}

/// What a path is when it is not a file or a block device, which are the
/// only things an image can be read from.
fn not_an_image(kind: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() || kind.is_block_device() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO (named pipe): pxelab reads an image at random places")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("a character device")
    }
}

/// A file's length, or a block device's size (its metadata says 0).
fn block_or_file_size(file: &File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len > 0 {
        return Ok(len);
    }
    use std::io::Seek;
    (&*file).seek(std::io::SeekFrom::End(0))
}

impl IsoIndex {
    pub const ROOT: NodeId = NodeId(0);

    /// Opens `path` and indexes every file in it.
    pub fn open(path: &Path) -> Result<IsoIndex, IsoError> {
        let open_err = |source| IsoError::Open { path: path.to_owned(), source };
        // Looked at before it is opened: opening a FIFO waits for a writer.
        let kind = std::fs::metadata(path).map_err(open_err)?.file_type();
        if let Some(what) = not_an_image(kind) {
            return Err(IsoError::NotIso { path: path.to_owned(), detail: format!("it is {what}") });
        }
        let file = File::open(path).map_err(open_err)?;
        let size_bytes = block_or_file_size(&file).map_err(open_err)?;
        let not_iso = |detail: String| IsoError::NotIso { path: path.to_owned(), detail };
        if size_bytes < 17 * SECTOR {
            return Err(not_iso(format!("only {size_bytes} bytes long")));
        }
        let mut magic = [0u8; 6];
        file.read_exact_at(&mut magic, 16 * SECTOR).map_err(open_err)?;
        if &magic[1..6] != b"CD001" {
            return Err(not_iso("no CD001 volume descriptor at sector 16".into()));
        }

        let reader = super::lenient::Lenient::new(file.try_clone().map_err(open_err)?, size_bytes).map_err(open_err)?;
        let image = IsoImage::open(BufReader::with_capacity(64 * 1024, reader)).map_err(|e| not_iso(e.to_string()))?;
        let pvd = image.read_pvd().map_err(|e| not_iso(e.to_string()))?;
        let expected = u64::from(pvd.volume_space_size.read()) * SECTOR;
        if expected > size_bytes {
            return Err(IsoError::Truncated { path: path.to_owned(), expected, actual: size_bytes });
        }
        let volume_id = String::from_utf8_lossy(bytemuck::bytes_of(&pvd.volume_identifier)).trim_end_matches([' ', '\0']).to_string();

        let (root, names) = choose_root(&image);
        let mut walker = Walker {
            image: &image,
            names,
            size_bytes,
            nodes: vec![Node { name: String::new(), parent: Self::ROOT, mtime: None, kind: NodeKind::Dir { children: BTreeMap::new() } }],
            visited: HashSet::new(),
        };
        walker.walk(Self::ROOT, root.dir_ref(), 0).map_err(|detail| IsoError::Corrupt { path: path.to_owned(), detail })?;
        let nodes = walker.nodes;
        Ok(IsoIndex { path: path.to_owned(), file, size_bytes, volume_id, names, nodes })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    /// The primary volume descriptor's volume identifier, trailing spaces removed.
    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }
    pub fn name_source(&self) -> NameSource {
        self.names
    }
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// Resolves a `/`-separated path (relative to the image root; a leading
    /// `/` is allowed) to a node, following symlinks inside the image.
    /// `..` never climbs above the root, so no path can leave the image.
    pub fn lookup(&self, path: &str) -> Option<NodeId> {
        let mut hops = 0;
        self.resolve(Self::ROOT, path, true, &mut hops)
    }

    /// Like [`lookup`](Self::lookup), but returns the file's extents; `None`
    /// for a missing path or a directory.
    pub fn file(&self, path: &str) -> Option<&IsoFile> {
        match &self.node(self.lookup(path)?).kind {
            NodeKind::File(f) => Some(f),
            _ => None,
        }
    }

    fn resolve(&self, start: NodeId, path: &str, follow_last: bool, hops: &mut usize) -> Option<NodeId> {
        let mut cur = if path.starts_with('/') { Self::ROOT } else { start };
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        for (i, part) in parts.iter().enumerate() {
            if *part == ".." {
                cur = self.node(cur).parent;
                continue;
            }
            let NodeKind::Dir { children } = &self.node(cur).kind else { return None };
            let mut next = *children.get(*part)?;
            let last = i + 1 == parts.len();
            if let NodeKind::Symlink { target } = &self.node(next).kind {
                if !last || follow_last {
                    *hops += 1;
                    if *hops > MAX_SYMLINK_HOPS {
                        return None;
                    }
                    next = self.resolve(cur, target, true, hops)?;
                }
            }
            cur = next;
        }
        Some(cur)
    }

    /// The full path of a node, without a leading `/` (the root is "").
    pub fn path_of(&self, mut id: NodeId) -> String {
        let mut parts = Vec::new();
        while id != Self::ROOT {
            let node = self.node(id);
            parts.push(node.name.as_str());
            id = node.parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// Every regular file with its path, in path order (symlinks are not followed).
    pub fn files(&self) -> Vec<(String, &IsoFile)> {
        let mut out = Vec::new();
        self.collect_files(Self::ROOT, &mut out);
        out
    }

    fn collect_files<'a>(&'a self, dir: NodeId, out: &mut Vec<(String, &'a IsoFile)>) {
        let NodeKind::Dir { children } = &self.node(dir).kind else { return };
        for &child in children.values() {
            match &self.node(child).kind {
                NodeKind::File(f) => out.push((self.path_of(child), f)),
                NodeKind::Dir { .. } => self.collect_files(child, out),
                NodeKind::Symlink { .. } => {}
            }
        }
    }

    /// The whole image as one file (served as `/<ISO name>` over HTTP).
    pub fn whole_image(&self) -> IsoFile {
        IsoFile { size: self.size_bytes, extents: vec![Extent { offset: 0, len: self.size_bytes }] }
    }

    /// Reads up to `buf.len()` bytes of `file` starting at `offset`; returns
    /// how many were read (0 at end of file). Safe to call from many threads.
    pub fn read_at(&self, file: &IsoFile, mut offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut done = 0;
        let mut ext_start = 0u64;
        for ext in &file.extents {
            if done == buf.len() {
                break;
            }
            let ext_end = ext_start + ext.len;
            if offset < ext_end {
                let within = offset - ext_start;
                let want = ((ext.len - within) as usize).min(buf.len() - done);
                self.file.read_exact_at(&mut buf[done..done + want], ext.offset + within)?;
                done += want;
                offset += want as u64;
            }
            ext_start = ext_end;
        }
        Ok(done)
    }

    /// Reads a whole file into memory, refusing files larger than `limit`
    /// (for small metadata files such as `.treeinfo`).
    pub fn read_small(&self, path: &str, limit: u64) -> Option<Vec<u8>> {
        let file = self.file(path)?;
        if file.size > limit {
            return None;
        }
        let mut buf = vec![0; file.size as usize];
        let n = self.read_at(file, 0, &mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

/// Picks the tree whose names a Linux mount would show.
fn choose_root<R: std::io::Read + std::io::Seek>(image: &IsoImage<R>) -> (RootDir, NameSource) {
    let roots = image.root_dirs();
    let primary = roots.iter().find(|r| matches!(r.entry_type(), EntryType::Level1 { .. }));
    if let Some(primary) = primary {
        if image.supports_rrip() {
            return (*primary, NameSource::RockRidge);
        }
    }
    if let Some(joliet) = roots.iter().find(|r| matches!(r.entry_type(), EntryType::Joliet { .. })) {
        return (*joliet, NameSource::Joliet);
    }
    (primary.copied().unwrap_or_else(|| roots.best_choice()), NameSource::Iso9660)
}

struct Walker<'a, R: std::io::Read + std::io::Seek> {
    image: &'a IsoImage<R>,
    names: NameSource,
    size_bytes: u64,
    nodes: Vec<Node>,
    visited: HashSet<usize>,
}

impl<R: std::io::Read + std::io::Seek> Walker<'_, R> {
    fn walk(&mut self, dir: NodeId, dir_ref: hadris_iso::directory::DirectoryRef, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("directories nested deeper than {MAX_DEPTH}"));
        }
        if !self.visited.insert(dir_ref.extent.0) {
            // A directory reached twice is a cycle or a hard link; either way
            // indexing it again would add nothing but risk.
            return Ok(());
        }
        let entries = self.image.open_dir(dir_ref).read_entries().map_err(|e| format!("reading a directory at sector {}: {e:?}", dir_ref.extent.0))?;
        for entry in entries {
            if entry.is_special() {
                continue;
            }
            let Some(name) = self.name_of(&entry) else { continue };
            if self.nodes.len() >= MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} entries"));
            }
            let kind = if let Some(target) = entry.rrip.as_ref().and_then(|r| r.symlink_target.clone()) {
                NodeKind::Symlink { target }
            } else if entry.is_directory() {
                NodeKind::Dir { children: BTreeMap::new() }
            } else {
                NodeKind::File(self.file_of(&entry, &name)?)
            };
            let id = NodeId(self.nodes.len());
            let is_dir = matches!(kind, NodeKind::Dir { .. });
            self.nodes.push(Node { name: name.clone(), parent: dir, mtime: mtime_of(&entry), kind });
            if let NodeKind::Dir { children } = &mut self.nodes[dir.0].kind {
                // First entry wins on a duplicate name, as a mount shows it.
                children.entry(name).or_insert(id);
            }
            if is_dir {
                let child_ref = entry.as_dir_ref(self.image).map_err(|e| format!("following directory {:?}: {e:?}", self.nodes[id.0].name))?;
                self.walk(id, child_ref, depth + 1)?;
            }
        }
        Ok(())
    }

    /// The entry's name as a mount would show it, or `None` for a name that
    /// cannot be a single path component (it is skipped, never served).
    fn name_of(&self, entry: &DirEntry) -> Option<String> {
        let name = match self.names {
            NameSource::RockRidge => match entry.rrip.as_ref().and_then(|r| r.alternate_name.clone()) {
                Some(n) => n,
                None => plain_name(entry.name()),
            },
            NameSource::Joliet => hadris_iso::joliet::decode_joliet_name(entry.name()),
            NameSource::Iso9660 => plain_name(entry.name()),
        };
        let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) || name.len() > 1024;
        (!bad).then_some(name)
    }

    fn file_of(&self, entry: &DirEntry, name: &str) -> Result<IsoFile, String> {
        let mut extents = Vec::new();
        let mut size = 0u64;
        for ext in entry.extents() {
            let offset = ext.sector.0 as u64 * SECTOR;
            let len = u64::from(ext.length);
            if len > 0 && offset.checked_add(len).is_none_or(|end| end > self.size_bytes) {
                return Err(format!("file {name:?} claims bytes past the end of the image"));
            }
            size += len;
            if len > 0 {
                extents.push(Extent { offset, len });
            }
        }
        Ok(IsoFile { size, extents })
    }
}

/// A plain ISO 9660 identifier as Linux shows it: lower case, no `;1`
/// version, no trailing dot of an extension-less name.
fn plain_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s = match s.rsplit_once(';') {
        Some((base, ver)) if ver.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => &s,
    };
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// Seconds since the epoch from Rock Ridge's modify time, else the record's own date.
fn mtime_of(entry: &DirEntry) -> Option<i64> {
    if let Some(t) = entry.rrip.as_ref().and_then(|r| r.timestamps.as_ref()).and_then(|t| t.modify) {
        return civil_to_unix(i64::from(t.year), t.month, t.day, t.hour, t.minute, t.second, i64::from(t.gmt_offset));
    }
    // ECMA-119 9.1.5: years since 1900, month, day, hour, minute, second, GMT offset (15 min).
    let raw = bytemuck::bytes_of(&entry.header().date_time);
    civil_to_unix(1900 + i64::from(raw[0]), raw[1], raw[2], raw[3], raw[4], raw[5], i64::from(raw[6] as i8))
}

fn civil_to_unix(year: i64, month: u8, day: u8, hour: u8, min: u8, sec: u8, gmt_quarters: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 { (year - 1, i64::from(month) + 9) } else { (year, i64::from(month) - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec) - gmt_quarters * 900)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_look_like_a_linux_mount() {
        assert_eq!(plain_name(b"VMLINUZ.;1"), "vmlinuz");
        assert_eq!(plain_name(b"INITRD.IMG;1"), "initrd.img");
        assert_eq!(plain_name(b"ISOLINUX"), "isolinux");
    }

    #[test]
    fn civil_time_matches_known_epochs() {
        assert_eq!(civil_to_unix(1970, 1, 1, 0, 0, 0, 0), Some(0));
        assert_eq!(civil_to_unix(2024, 2, 29, 12, 0, 0, 0), Some(1_709_208_000));
        // +01:00 is four quarters east: the same instant is an hour earlier in UTC.
        assert_eq!(civil_to_unix(1970, 1, 1, 1, 0, 0, 4), Some(0));
        assert_eq!(civil_to_unix(2024, 13, 1, 0, 0, 0, 0), None);
    }
}
