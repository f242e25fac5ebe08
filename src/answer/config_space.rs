//! A FAI config space handed to `up --fai-config`: a directory, or a tar
//! archive of one (`.tar`, `.tar.gz`, `.tgz`), read once before the lab
//! changes anything, checked to be a config space (it has `class/`), and
//! served to each VM as `config.tar` with the answer-file placeholders
//! filled in its text files.
//!
//! FAI fetches `FAI_CONFIG_SRC=http://…/config.tar` with curl and unpacks it
//! with its own `ftar`, which takes a plain tar: a config space is a few
//! hundred KiB, so it is not compressed for the bridge.

use std::io::Read;
use std::path::{Component, Path};

use super::{fill, Vars};

/// The most a config space may hold, in bytes and in entries: real ones
/// are well under a MiB, and the whole space is kept in memory.
const MAX_BYTES: u64 = 64 << 20;
const MAX_ENTRIES: usize = 20_000;

/// A config space, read.
#[derive(Debug, Clone)]
pub struct ConfigSpace {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Relative, `/`-separated, never `..`.
    path: String,
    mode: u32,
    kind: EntryKind,
}

#[derive(Debug, Clone)]
enum EntryKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

impl ConfigSpace {
    /// Reads a directory or a tar archive; `Err` is the reason, for the caller's message.
    pub fn load(path: &Path) -> Result<ConfigSpace, String> {
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        let mut space = ConfigSpace { entries: Vec::new() };
        let mut budget = MAX_BYTES;
        if meta.is_dir() {
            space.walk(path, "", &mut budget)?;
        } else {
            space.read_tar(path, &mut budget)?;
        }
        space.strip_single_top();
        if !space.has_class() {
            return Err("it has no class/ directory, so it is not a FAI config space".into());
        }
        space.entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(space)
    }

    fn push(&mut self, entry: Entry, budget: &mut u64) -> Result<(), String> {
        let size = match &entry.kind {
            EntryKind::File(bytes) => bytes.len() as u64,
            _ => 0,
        };
        *budget = budget.checked_sub(size).ok_or(format!("it holds more than {} MiB", MAX_BYTES >> 20))?;
        if self.entries.len() >= MAX_ENTRIES {
            return Err(format!("it holds more than {MAX_ENTRIES} files"));
        }
        self.entries.push(entry);
        Ok(())
    }

    fn walk(&mut self, dir: &Path, prefix: &str, budget: &mut u64) -> Result<(), String> {
        let mut names: Vec<_> = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?.collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        names.sort_by_key(|e| e.file_name());
        for item in names {
            let name = item.file_name().to_string_lossy().into_owned();
            let path = format!("{prefix}{name}");
            let meta = item.path().symlink_metadata().map_err(|e| format!("{path}: {e}"))?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
            let kind = if meta.is_dir() {
                EntryKind::Dir
            } else if meta.file_type().is_symlink() {
                EntryKind::Symlink(std::fs::read_link(item.path()).map_err(|e| format!("{path}: {e}"))?.to_string_lossy().into_owned())
            } else if meta.is_file() {
                EntryKind::File(std::fs::read(item.path()).map_err(|e| format!("{path}: {e}"))?)
            } else {
                return Err(format!("{path} is neither a file, a directory nor a symlink"));
            };
            let is_dir = matches!(kind, EntryKind::Dir);
            self.push(Entry { path: path.clone(), mode, kind }, budget)?;
            if is_dir {
                self.walk(&item.path(), &format!("{path}/"), budget)?;
            }
        }
        Ok(())
    }

    fn read_tar(&mut self, path: &Path, budget: &mut u64) -> Result<(), String> {
        let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let mut magic = [0u8; 2];
        let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        std::io::Seek::rewind(&mut file).map_err(|e| e.to_string())?;
        let reader: Box<dyn Read> = if gzip { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
        let not_tar = |e: std::io::Error| format!("not a directory, a tar or a gzip-compressed tar ({e})");
        let mut archive = tar::Archive::new(reader);
        for item in archive.entries().map_err(not_tar)? {
            let mut item = item.map_err(not_tar)?;
            let raw = item.path().map_err(not_tar)?.into_owned();
            let path = relative(&raw).ok_or_else(|| format!("it holds {}, a path outside the config space", raw.display()))?;
            if path.is_empty() {
                continue;
            }
            let mode = item.header().mode().unwrap_or(0o644) & 0o7777;
            let kind = match item.header().entry_type() {
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => EntryKind::Symlink(item.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default()),
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if item.size() > *budget {
                        return Err(format!("it holds more than {} MiB", MAX_BYTES >> 20));
                    }
                    let mut bytes = Vec::with_capacity(item.size() as usize);
                    item.read_to_end(&mut bytes).map_err(not_tar)?;
                    EntryKind::File(bytes)
                }
                other => return Err(format!("{path} is a {other:?} entry; a config space holds files, directories and symlinks")),
            };
            self.push(Entry { path, mode, kind }, budget)?;
        }
        Ok(())
    }

    /// `class/`, as an entry or implied by a file in it (an archive need
    /// not list its directories).
    fn has_class(&self) -> bool {
        self.entries.iter().any(|e| e.path == "class" || e.path.starts_with("class/"))
    }

    /// An archive of `config/…` (or any one directory) is taken as that
    /// directory's contents: FAI unpacks the tar as the config space itself.
    fn strip_single_top(&mut self) {
        if self.has_class() {
            return;
        }
        let top = |p: &str| p.split('/').next().unwrap_or_default().to_string();
        let Some(first) = self.entries.first().map(|e| top(&e.path)) else { return };
        if self.entries.iter().all(|e| top(&e.path) == first) {
            self.entries.retain(|e| e.path != first);
            for e in &mut self.entries {
                e.path = e.path[first.len() + 1..].to_string();
            }
        }
    }

    /// The tar one VM is served: text files with `vars` filled in.
    pub fn render(&self, vars: &Vars<'_>) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for e in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(e.mode);
            header.set_mtime(0);
            let result = match &e.kind {
                EntryKind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    tar.append_data(&mut header, &e.path, std::io::empty())
                }
                EntryKind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    tar.append_link(&mut header, &e.path, target)
                }
                EntryKind::File(bytes) => {
                    let filled = std::str::from_utf8(bytes).ok().filter(|t| t.contains('{')).map(|t| fill(t, vars).into_bytes());
                    let bytes = filled.as_deref().unwrap_or(bytes);
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    tar.append_data(&mut header, &e.path, bytes)
                }
            };
            // Writing to memory fails only on a path tar cannot hold, which
            // loading has already refused (relative, no `..`).
            if let Err(err) = result {
                tracing::warn!("config space: {}: {err}", e.path);
            }
        }
        tar.into_inner().unwrap_or_default()
    }
}

/// `path` as a relative `/`-separated path inside the space, or `None` when
/// it is absolute or climbs out with `..`.
fn relative(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::MacAddr;

    fn vars(mac: &MacAddr) -> Vars<'_> {
        Vars { server: "10.0.0.1", http: "http://10.0.0.1", vm: "vm1", mac: *mac }
    }

    fn unpack(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for e in tar::Archive::new(tar).entries().unwrap() {
            let mut e = e.unwrap();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            out.push((e.path().unwrap().display().to_string(), bytes));
        }
        out
    }

    #[test]
    fn a_directory_is_served_as_a_tar_with_placeholders_filled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("class")).unwrap();
        std::fs::write(dir.path().join("class/FAIBASE.var"), "HOSTNAME={vm}\nSRV={http}/x\n").unwrap();
        std::fs::write(dir.path().join("class/blob"), [0xff, b'{', b'v', b'm', b'}']).unwrap();
        std::os::unix::fs::symlink("FAIBASE.var", dir.path().join("class/link")).unwrap();
        let space = ConfigSpace::load(dir.path()).unwrap();
        let mac: MacAddr = "52:54:00:0a:0b:0c".parse().unwrap();
        let files = unpack(&space.render(&vars(&mac)));
        let get = |p: &str| files.iter().find(|(n, _)| n == p).map(|(_, b)| b.clone());
        assert_eq!(get("class/FAIBASE.var").unwrap(), b"HOSTNAME=vm1\nSRV=http://10.0.0.1/x\n");
        assert_eq!(get("class/blob").unwrap(), [0xff, b'{', b'v', b'm', b'}'], "binary files are served as they are");
        assert!(get("class/link").is_some());
    }

    #[test]
    fn a_tarball_with_one_top_directory_is_that_directory() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        tar.append_data(&mut h, "config/class/X.var", &b"A=1"[..]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), gz.finish().unwrap()).unwrap();
        // No directory entries: class/ is implied by the file in it.
        let space = ConfigSpace::load(file.path()).unwrap();
        let mac: MacAddr = "52:54:00:0a:0b:0c".parse().unwrap();
        let files = unpack(&space.render(&vars(&mac)));
        assert_eq!(files, [("class/X.var".to_string(), b"A=1".to_vec())]);
    }

    #[test]
    fn escapes_and_non_spaces_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scripts")).unwrap();
        assert!(ConfigSpace::load(dir.path()).unwrap_err().contains("no class/ directory"));
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`; write the name into the header directly, as a hostile archive would.
        h.as_old_mut().name[..10].copy_from_slice(b"../escaped");
        h.set_cksum();
        tar.append(&h, &b"x"[..]).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), tar.into_inner().unwrap()).unwrap();
        let err = ConfigSpace::load(file.path()).unwrap_err();
        assert!(err.contains("a path outside the config space"), "{err}");
        std::fs::write(file.path(), b"plain text, not a tar").unwrap();
        assert!(ConfigSpace::load(file.path()).unwrap_err().contains("not a directory, a tar"));
    }
}
