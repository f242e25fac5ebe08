//! The journal of host changes: the one record of what pxelab changed on
//! the host, written before each change, so that `down`, `net restore`, a
//! Ctrl-C and the recovery after a crash (`kill -9`) all undo from the same
//! facts.
//!
//! Each change is one JSON file under the state directory, written
//! atomically (temporary file, fsync, rename, fsync of the directory): after
//! a crash a change is either fully recorded or not at all. If the record
//! cannot be written (disk full, read-only), the change is not made.
//!
//! It lives in the state directory (see [`super::state_dir`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A network whose bootp pxelab patched: what it was before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchedNetwork {
    pub uri: String,
    pub network: String,
    /// The inactive XML before the patch, byte for byte.
    pub original_xml: String,
    pub was_active: bool,
    pub autostart: bool,
    /// The pxelab process that patched it.
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The inactive XML pxelab left (libvirt's own spelling, read back after
    /// the define): a network that differs from it at restore time was
    /// changed by someone else since. `None` in older entries, or when
    /// pxelab died before it read it back.
    #[serde(default)]
    pub patched_xml: Option<String>,
    /// Whether pxelab left the network running (it restarts a running one,
    /// and `up` starts a stopped one; `net patch` leaves a stopped one stopped).
    #[serde(default)]
    pub left_running: Option<bool>,
}

/// A VM pxelab created for a lab: removed by `down` unless kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedVm {
    pub uri: String,
    pub name: String,
}

/// ACCEPT rules pxelab inserted in the host's firewall for a lab's bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallOpening {
    pub bridge: String,
    pub rules: Vec<crate::firewall::Rule>,
}

/// The journal in one state directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// The journal in the default state directory (see the module docs).
    pub fn open_default() -> io::Result<Journal> {
        Journal::open(&super::state_dir()?)
    }

    pub fn open(state_dir: &Path) -> io::Result<Journal> {
        let dir = state_dir.join("journal");
        fs::create_dir_all(&dir)?;
        Ok(Journal { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that records `network`'s patch (for messages: delete it to forget the patch).
    pub fn network_entry(&self, uri: &str, network: &str) -> PathBuf {
        self.network_path(uri, network)
    }

    fn network_path(&self, uri: &str, network: &str) -> PathBuf {
        self.dir.join(format!("network-{:016x}-{}.json", fnv1a(uri), escape(network)))
    }

    /// Records `patch` unless the network already has a record: the first
    /// record holds the original XML, and a second patch must not replace
    /// it with an already-patched one. Returns whether it wrote a record.
    pub fn record_network(&self, patch: &PatchedNetwork) -> io::Result<bool> {
        let path = self.network_path(&patch.uri, &patch.network);
        if path.exists() {
            return Ok(false);
        }
        write_entry(&path, patch)?;
        Ok(true)
    }

    /// Rewrites a network's record (what pxelab left, once it is known),
    /// keeping the original XML the first record holds.
    pub fn update_network(&self, patch: &PatchedNetwork) -> io::Result<()> {
        write_entry(&self.network_path(&patch.uri, &patch.network), patch)
    }

    pub fn network(&self, uri: &str, network: &str) -> io::Result<Option<PatchedNetwork>> {
        match fs::read(self.network_path(uri, network)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("journal entry for network {network:?} is corrupt: {e}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every patched network in the journal.
    pub fn networks(&self) -> io::Result<Vec<PatchedNetwork>> {
        self.entries("network-")
    }

    fn vm_path(&self, uri: &str, name: &str) -> PathBuf {
        self.dir.join(format!("vm-{:016x}-{}.json", fnv1a(uri), escape(name)))
    }

    /// Records a VM before it is created.
    pub fn record_vm(&self, vm: &CreatedVm) -> io::Result<()> {
        write_entry(&self.vm_path(&vm.uri, &vm.name), vm)
    }

    fn firewall_path(&self, bridge: &str) -> PathBuf {
        self.dir.join(format!("firewall-{}.json", escape(bridge)))
    }

    /// Records firewall rules before they are inserted.
    pub fn record_firewall(&self, opening: &FirewallOpening) -> io::Result<()> {
        write_entry(&self.firewall_path(&opening.bridge), opening)
    }

    pub fn firewalls(&self) -> io::Result<Vec<FirewallOpening>> {
        self.entries("firewall-")
    }

    pub fn forget_firewall(&self, bridge: &str) -> io::Result<()> {
        match fs::remove_file(self.firewall_path(bridge)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.dir),
        }
    }

    /// Every VM in the journal.
    pub fn vms(&self) -> io::Result<Vec<CreatedVm>> {
        self.entries("vm-")
    }

    /// How many changes wait to be undone: every entry, readable or not
    /// (one look at the directory, nothing parsed).
    pub fn pending(&self) -> io::Result<usize> {
        let mut count = 0;
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".json") && ["network-", "vm-", "firewall-"].iter().any(|kind| name.starts_with(kind)) {
                count += 1;
            }
        }
        Ok(count)
    }

    /// The entries that cannot be read back (a torn disk, an edit by hand):
    /// [`Self::networks`] and the others pass over them, so whoever undoes
    /// the journal must say what these leave undone.
    pub fn unreadable(&self) -> io::Result<Vec<Unreadable>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(file) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            let Some(stem) = file.strip_suffix(".json") else { continue };
            let bytes = fs::read(&path)?;
            let (change, parsed) = if stem.starts_with("network-") {
                (Change::Network, serde_json::from_slice::<PatchedNetwork>(&bytes).map(drop))
            } else if stem.starts_with("vm-") {
                (Change::Vm, serde_json::from_slice::<CreatedVm>(&bytes).map(drop))
            } else if stem.starts_with("firewall-") {
                (Change::Firewall, serde_json::from_slice::<FirewallOpening>(&bytes).map(drop))
            } else {
                continue;
            };
            if let Err(e) = parsed {
                out.push(Unreadable { name: name_in(stem, change), path, change, error: e.to_string() });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Every readable entry whose file name starts with `prefix`.
    fn entries<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with(prefix) && name.ends_with(".json") {
                if let Ok(value) = serde_json::from_slice(&fs::read(&path)?) {
                    out.push(value);
                }
            }
        }
        Ok(out)
    }

    pub fn forget_vm(&self, uri: &str, name: &str) -> io::Result<()> {
        match fs::remove_file(self.vm_path(uri, name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.dir),
        }
    }

    pub fn forget_network(&self, uri: &str, network: &str) -> io::Result<()> {
        match fs::remove_file(self.network_path(uri, network)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.dir),
        }
    }
}

/// The kind of change a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Network,
    Vm,
    Firewall,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Network => "network",
            Change::Vm => "VM",
            Change::Firewall => "the firewall opening for bridge",
        }
    }
}

/// A journal entry that cannot be read: the change it records was not undone.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub path: PathBuf,
    pub change: Change,
    /// The network, VM or bridge, as the file's name spells it.
    pub name: String,
    pub error: String,
}

impl Unreadable {
    /// What was left undone and how to undo it by hand, in one sentence.
    pub fn explain(&self) -> String {
        let (path, name) = (self.path.display(), &self.name);
        let fix = match self.change {
            Change::Network => format!(
                "network {name} keeps pxelab's patch: repair the file and run `pxelab net restore --network {name}`, or remove its <bootp> and pxelab's dnsmasq lines with `virsh net-edit {name}` and restart it"
            ),
            Change::Vm => format!("VM {name} was not removed: `pxelab vm rm {name}` (or `virsh undefine --nvram --remove-all-storage {name}`)"),
            Change::Firewall => format!("pxelab's ACCEPT rules for bridge {name} stay: find them with `iptables -S INPUT | grep {name}` and delete each with `iptables -D`"),
        };
        format!("journal entry {path} cannot be read ({}): {fix}; then delete {path}", self.error)
    }
}

/// The network, VM or bridge name inside a journal file's name.
fn name_in(stem: &str, change: Change) -> String {
    let escaped = match change {
        // `network-<uri hash>-<name>`, `vm-<uri hash>-<name>`.
        Change::Network | Change::Vm => stem.split_once('-').and_then(|(_, rest)| rest.split_once('-')).map(|(_, name)| name).unwrap_or(stem),
        Change::Firewall => stem.strip_prefix("firewall-").unwrap_or(stem),
    };
    unescape(escaped)
}

/// The inverse of [`escape`].
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%').then(|| text.get(i + 1..i + 3)).flatten().and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One entry as JSON, written atomically.
fn write_entry(path: &Path, value: &impl Serialize) -> io::Result<()> {
    write_atomically(path, &serde_json::to_vec_pretty(value).map_err(io::Error::other)?)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("journal files live in the journal directory");
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A stable 64-bit hash (FNV-1a): the journal's file names must not change
/// between pxelab builds, which std's hasher does not promise.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A network name as a file-name part: safe bytes kept, others %XX.
fn escape(name: &str) -> String {
    name.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(xml: &str) -> PatchedNetwork {
        PatchedNetwork {
            uri: "qemu:///system".into(),
            network: "lab/1".into(),
            original_xml: xml.into(),
            was_active: true,
            autostart: false,
            pid: 1,
            at: 2,
            patched_xml: None,
            left_running: None,
        }
    }

    #[test]
    fn the_first_record_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        assert!(journal.record_network(&patch("<original/>")).unwrap());
        assert!(!journal.record_network(&patch("<patched/>")).unwrap());
        let got = journal.network("qemu:///system", "lab/1").unwrap().unwrap();
        assert_eq!(got.original_xml, "<original/>");
        assert_eq!(journal.networks().unwrap().len(), 1);
        assert_eq!(journal.network("test:///default", "lab/1").unwrap(), None, "keyed by URI too");
        journal.forget_network("qemu:///system", "lab/1").unwrap();
        journal.forget_network("qemu:///system", "lab/1").unwrap();
        assert_eq!(journal.network("qemu:///system", "lab/1").unwrap(), None);
        assert!(fs::read_dir(journal.dir()).unwrap().next().is_none(), "no temporary files left");
    }

    #[test]
    fn an_unreadable_entry_is_named_with_what_it_leaves_undone() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.record_network(&patch("<original/>")).unwrap();
        journal.record_vm(&CreatedVm { uri: "qemu:///system".into(), name: "pxelab-oak-1".into() }).unwrap();
        assert_eq!(journal.pending().unwrap(), 2);
        assert!(journal.unreadable().unwrap().is_empty());
        // A torn write of the network's entry: half its bytes.
        let path = journal.network_path("qemu:///system", "lab/1");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(journal.networks().unwrap().is_empty(), "an unreadable entry is not a network to restore");
        assert_eq!(journal.pending().unwrap(), 2, "but it is still pending");
        let bad = journal.unreadable().unwrap();
        assert_eq!(bad.len(), 1);
        assert_eq!((bad[0].change, bad[0].name.as_str(), &bad[0].path), (Change::Network, "lab/1", &path));
        let text = bad[0].explain();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("pxelab net restore --network lab/1") && text.contains("virsh net-edit lab/1"),
            "{text}"
        );
        assert!(path.exists(), "reading never removes the file");
    }
}
