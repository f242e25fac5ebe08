//! Answer files for unattended installs: a kickstart (RHEL family), a
//! preseed (Debian's debian-installer), an autoinstall user-data (Ubuntu's
//! Subiquity) or a FAI config space (a directory or tarball: see
//! `config_space`), checked before the lab changes anything, and rendered
//! per VM.
//!
//! A file is a template: `{server}` (the lab's address), `{http}` (its HTTP
//! base, `http://ADDR[:PORT]`), `{vm}` and `{mac}` (the VM it is served to)
//! are replaced, and nothing else, so one file serves many VMs. Each lab VM
//! gets its own copy at `auto/<mac>/<name>` in the boot tree (over HTTP)
//! and the kernel arguments that point its installer there.
//!
//! The checks are about shape, not meaning: the file is text, of the kind
//! its flag says (a preseed handed to `--kickstart` is named as one), and
//! of the kind the ISO's installer reads. Whether the installer accepts
//! every line is the installer's to say.

use std::path::{Path, PathBuf};

use crate::iso::Family;
use crate::mac::MacAddr;

mod config_space;

pub use config_space::ConfigSpace;

/// The most an answer file may hold; real ones are a few KiB.
const MAX_SIZE: u64 = 1 << 20;

/// Which installer reads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    Kickstart,
    Preseed,
    Autoinstall,
    /// A FAI config space, served as FAI_CONFIG_SRC.
    FaiConfig,
}

impl AnswerKind {
    pub fn flag(self) -> &'static str {
        match self {
            AnswerKind::Kickstart => "--kickstart",
            AnswerKind::Preseed => "--preseed",
            AnswerKind::Autoinstall => "--autoinstall",
            AnswerKind::FaiConfig => "--fai-config",
        }
    }

    fn what(self) -> &'static str {
        match self {
            AnswerKind::Kickstart => "a kickstart",
            AnswerKind::Preseed => "a preseed",
            AnswerKind::Autoinstall => "an autoinstall user-data",
            AnswerKind::FaiConfig => "a FAI config space",
        }
    }

    /// The installer family that reads this kind.
    pub fn family(self) -> Family {
        match self {
            AnswerKind::Kickstart => Family::Rhel,
            AnswerKind::Preseed => Family::Debian,
            AnswerKind::Autoinstall => Family::Ubuntu,
            AnswerKind::FaiConfig => Family::Fai,
        }
    }

    /// The file's name in the VM's directory of the tree.
    pub fn file_name(self) -> &'static str {
        match self {
            AnswerKind::Kickstart => "ks.cfg",
            AnswerKind::Preseed => "preseed.cfg",
            AnswerKind::Autoinstall => "user-data",
            // FAI's ftar takes a plain tar named after the space.
            AnswerKind::FaiConfig => "config.tar",
        }
    }
}

/// Why an answer file cannot be used (exit 3, before any change).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("{flag} {path}: cannot read it: {reason}")]
    Unreadable { flag: &'static str, path: String, reason: String },
    #[error("{flag} {path}: {reason}; {fix}")]
    Malformed { flag: &'static str, path: String, reason: String, fix: String },
    #[error("{flag} {path} looks like {found}, not {expected}; pass it with {right}")]
    OtherKind { flag: &'static str, path: String, found: &'static str, expected: &'static str, right: &'static str },
    #[error("{flag} {path}: {what} is for {family_installer}, but the ISO's installer is {iso_installer}; {fix}")]
    WrongInstaller { flag: &'static str, path: String, what: &'static str, family_installer: &'static str, iso_installer: &'static str, fix: String },
}

/// An answer file, read and checked.
#[derive(Debug, Clone)]
pub struct AnswerFile {
    pub kind: AnswerKind,
    pub path: PathBuf,
    content: Content,
}

/// A single text template, or a whole config space.
#[derive(Debug, Clone)]
enum Content {
    Text(String),
    Space(ConfigSpace),
}

/// What a template's placeholders become for one VM.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    pub server: &'a str,
    pub http: &'a str,
    pub vm: &'a str,
    pub mac: MacAddr,
}

impl AnswerFile {
    /// Reads `path` and checks that it is text of `kind`'s shape.
    pub fn load(kind: AnswerKind, path: &Path) -> Result<AnswerFile, AnswerError> {
        let shown = path.display().to_string();
        let unreadable = |reason: String| AnswerError::Unreadable { flag: kind.flag(), path: shown.clone(), reason };
        if kind == AnswerKind::FaiConfig {
            let space = ConfigSpace::load(path).map_err(|reason| AnswerError::Malformed {
                flag: kind.flag(),
                path: shown.clone(),
                reason,
                fix: "point it at the config space FAI reads (the directory holding class/, package_config/ and scripts/), or a tar of it".into(),
            })?;
            return Ok(AnswerFile { kind, path: path.to_path_buf(), content: Content::Space(space) });
        }
        let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
        if !meta.is_file() {
            return Err(unreadable("not a regular file".into()));
        }
        if meta.len() > MAX_SIZE {
            return Err(unreadable(format!("{} bytes; an answer file is at most {MAX_SIZE}", meta.len())));
        }
        let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        let template = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".into()))?;
        let file = AnswerFile { kind, path: path.to_path_buf(), content: Content::Text(template) };
        file.check_shape()?;
        Ok(file)
    }

    fn malformed(&self, reason: impl Into<String>, fix: impl Into<String>) -> AnswerError {
        AnswerError::Malformed { flag: self.kind.flag(), path: self.path.display().to_string(), reason: reason.into(), fix: fix.into() }
    }

    fn check_shape(&self) -> Result<(), AnswerError> {
        let Content::Text(text) = &self.content else { return Ok(()) };
        if text.trim().is_empty() {
            return Err(self.malformed("the file is empty", "write the installer's answers in it"));
        }
        let found = sniff(text);
        if let Some(found) = found.filter(|k| *k != self.kind) {
            return Err(AnswerError::OtherKind {
                flag: self.kind.flag(),
                path: self.path.display().to_string(),
                found: found.what(),
                expected: self.kind.what(),
                right: found.flag(),
            });
        }
        match self.kind {
            AnswerKind::Kickstart | AnswerKind::FaiConfig => Ok(()),
            AnswerKind::Preseed => {
                // owner question type [value], after joining `\` continuations.
                let joined = text.replace("\\\n", " ");
                for (n, line) in joined.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    // The question is a debconf name: `owner/name` (debian-installer/locale).
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    if fields.len() < 3 || !fields[1].contains('/') {
                        return Err(self.malformed(
                            format!("line {} ({:?}) is not `owner question type value`", n + 1, truncate(line)),
                            "write each answer as, for example, `d-i debian-installer/locale string en_US`",
                        ));
                    }
                }
                Ok(())
            }
            AnswerKind::Autoinstall => {
                if text.lines().next().map(str::trim_end) != Some("#cloud-config") {
                    return Err(self.malformed("its first line is not `#cloud-config`", "start the user-data with `#cloud-config`, then `autoinstall:`"));
                }
                if !text.lines().any(|l| l.trim_end() == "autoinstall:" || l.starts_with("autoinstall:")) {
                    return Err(self.malformed("it has no top-level `autoinstall:` key", "put the Subiquity settings under `autoinstall:`"));
                }
                Ok(())
            }
        }
    }

    /// Refuses a file the ISO's installer does not read.
    pub fn check_family(&self, family: Family) -> Result<(), AnswerError> {
        if family == self.kind.family() {
            return Ok(());
        }
        let right = [AnswerKind::Kickstart, AnswerKind::Preseed, AnswerKind::Autoinstall, AnswerKind::FaiConfig].into_iter().find(|k| k.family() == family);
        Err(AnswerError::WrongInstaller {
            flag: self.kind.flag(),
            path: self.path.display().to_string(),
            what: self.kind.what(),
            family_installer: installer(self.kind.family()),
            iso_installer: installer(family),
            fix: match right {
                Some(k) => format!("give it {} with {}", k.what(), k.flag()),
                None => "name the kernel arguments yourself with --append".to_string(),
            },
        })
    }

    /// The file for one VM: the placeholders replaced (a config space: its tar).
    pub fn render(&self, vars: &Vars<'_>) -> Vec<u8> {
        match &self.content {
            Content::Text(template) => fill(template, vars).into_bytes(),
            Content::Space(space) => space.render(vars),
        }
    }

    /// Where a VM's copy is in the tree (its directory, then its files).
    pub fn dir(mac: &MacAddr) -> String {
        format!("auto/{}", mac.hyphenated())
    }

    /// The VM's files: the answer file, and for autoinstall the empty
    /// `meta-data` cloud-init's NoCloud source also asks for.
    pub fn files(&self, vars: &Vars<'_>) -> Vec<(String, Vec<u8>)> {
        let dir = Self::dir(&vars.mac);
        let mut files = vec![(format!("{dir}/{}", self.kind.file_name()), self.render(vars))];
        if self.kind == AnswerKind::Autoinstall {
            files.push((format!("{dir}/meta-data"), Vec::new()));
        }
        files
    }

    /// The kernel arguments that send the VM's installer to its copy.
    pub fn kernel_args(&self, http_base: &str, mac: &MacAddr) -> String {
        let dir = format!("{http_base}/{}", Self::dir(mac));
        match self.kind {
            AnswerKind::Kickstart => format!("inst.ks={dir}/ks.cfg"),
            AnswerKind::Preseed => format!("auto=true priority=critical url={dir}/preseed.cfg"),
            // The `;` is cloud-init's; pxelinux, iPXE and (quoted) GRUB keep it.
            AnswerKind::Autoinstall => format!("autoinstall ds=nocloud-net;s={dir}/"),
            // After the ISO's own FAI_CONFIG_SRC: FAI reads the command line
            // in order, so the later one is the one it uses.
            AnswerKind::FaiConfig => format!("FAI_CONFIG_SRC={dir}/config.tar"),
        }
    }
}

/// A template with the placeholders replaced, and nothing else.
fn fill(template: &str, vars: &Vars<'_>) -> String {
    template.replace("{server}", vars.server).replace("{http}", vars.http).replace("{vm}", vars.vm).replace("{mac}", &vars.mac.to_string())
}

/// Which kind a file's text plainly is, if any: used to name a file handed
/// to the wrong flag.
fn sniff(text: &str) -> Option<AnswerKind> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.first() == Some(&"#cloud-config") {
        return Some(AnswerKind::Autoinstall);
    }
    let content: Vec<&&str> = lines.iter().filter(|l| !l.starts_with('#')).collect();
    if !content.is_empty() && content.iter().all(|l| l.starts_with("d-i ") || l.starts_with("tasksel ") || l.starts_with("popularity-contest ")) {
        return Some(AnswerKind::Preseed);
    }
    if content.iter().any(|l| l.starts_with("%packages") || l.starts_with("%post") || l.starts_with("rootpw ") || l.starts_with("url --url")) {
        return Some(AnswerKind::Kickstart);
    }
    None
}

fn installer(family: Family) -> &'static str {
    match family {
        Family::Rhel => "anaconda (RHEL family)",
        Family::Debian => "debian-installer",
        Family::Ubuntu => "Subiquity (Ubuntu)",
        Family::Fai => "FAI",
        Family::Live => "a live system (live-boot)",
        Family::Custom => "not recognised",
    }
}

fn truncate(line: &str) -> String {
    line.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn mac() -> MacAddr {
        "52:54:00:0a:0b:0c".parse().unwrap()
    }

    #[test]
    fn a_template_is_rendered_per_vm() {
        let f = write("url --url={http}/iso/\n%post\necho {vm} {mac} {server} ${HOME}\n%end\n");
        let ks = AnswerFile::load(AnswerKind::Kickstart, f.path()).unwrap();
        let vars = Vars { server: "10.0.0.1", http: "http://10.0.0.1:8080", vm: "pxelab-oak-1", mac: mac() };
        assert_eq!(ks.render(&vars), b"url --url=http://10.0.0.1:8080/iso/\n%post\necho pxelab-oak-1 52:54:00:0a:0b:0c 10.0.0.1 ${HOME}\n%end\n");
        assert_eq!(ks.files(&vars)[0].0, "auto/52-54-00-0a-0b-0c/ks.cfg");
        assert_eq!(ks.kernel_args("http://10.0.0.1", &mac()), "inst.ks=http://10.0.0.1/auto/52-54-00-0a-0b-0c/ks.cfg");
    }

    #[test]
    fn each_kind_points_its_installer_at_its_copy() {
        let pre = AnswerFile::load(AnswerKind::Preseed, write("d-i debian-installer/locale string en_US\n").path()).unwrap();
        assert_eq!(pre.kernel_args("http://h", &mac()), "auto=true priority=critical url=http://h/auto/52-54-00-0a-0b-0c/preseed.cfg");
        let ai = AnswerFile::load(AnswerKind::Autoinstall, write("#cloud-config\nautoinstall:\n  version: 1\n").path()).unwrap();
        assert_eq!(ai.kernel_args("http://h", &mac()), "autoinstall ds=nocloud-net;s=http://h/auto/52-54-00-0a-0b-0c/");
        let vars = Vars { server: "h", http: "http://h", vm: "v", mac: mac() };
        let names: Vec<String> = ai.files(&vars).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["auto/52-54-00-0a-0b-0c/user-data", "auto/52-54-00-0a-0b-0c/meta-data"]);
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let empty = AnswerFile::load(AnswerKind::Kickstart, write(" \n").path()).unwrap_err();
        assert!(empty.to_string().contains("the file is empty"), "{empty}");
        let bad = AnswerFile::load(AnswerKind::Preseed, write("d-i debian-installer/locale string en_US\nnonsense\n").path()).unwrap_err();
        assert!(bad.to_string().contains("line 2 (\"nonsense\") is not `owner question type value`"), "{bad}");
        let no_key = AnswerFile::load(AnswerKind::Autoinstall, write("#cloud-config\nusers: []\n").path()).unwrap_err();
        assert!(no_key.to_string().contains("no top-level `autoinstall:`"), "{no_key}");
        let binary = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(binary.path(), [0xff, 0xfe, 0]).unwrap();
        assert!(AnswerFile::load(AnswerKind::Kickstart, binary.path()).unwrap_err().to_string().contains("not UTF-8"));
        let missing = AnswerFile::load(AnswerKind::Kickstart, Path::new("/nonexistent/ks.cfg")).unwrap_err();
        assert!(missing.to_string().starts_with("--kickstart /nonexistent/ks.cfg: cannot read it"), "{missing}");
    }

    #[test]
    fn the_wrong_kind_is_named() {
        let e = AnswerFile::load(AnswerKind::Kickstart, write("d-i passwd/root-password password r00t\n").path()).unwrap_err();
        assert!(e.to_string().contains("looks like a preseed, not a kickstart; pass it with --preseed"), "{e}");
        let ks = AnswerFile::load(AnswerKind::Kickstart, write("rootpw --plaintext x\n").path()).unwrap();
        let e = ks.check_family(Family::Debian).unwrap_err();
        assert!(e.to_string().contains("the ISO's installer is debian-installer; give it a preseed with --preseed"), "{e}");
        assert!(ks.check_family(Family::Rhel).is_ok());
    }
}
