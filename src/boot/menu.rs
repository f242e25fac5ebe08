//! The pxelinux menu (`pxelinux.cfg/default`) and its welcome text
//! (`boot.msg`), in the seed's shape: `UI vesamenu.c32`, a timeout, a
//! welcome message, a local-boot entry and an install entry.
//!
//! Rendering is a pure function of [`Menu`], so it is deterministic and
//! tested byte for byte. Every value that may come from an ISO is forced to
//! one line of printable text before it is written, because a newline in a
//! volume id or `.treeinfo` name would otherwise add menu directives.

use std::fmt::Write;

/// Which menu program pxelinux runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ui {
    /// The seed's graphical menu.
    Vesa,
    /// Plain text, for serial-only consoles.
    Text,
}

/// Which entry boots when the timeout runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultEntry {
    /// Boot the installer: what a lab pxelab creates wants.
    #[default]
    Install,
    /// Boot the local disk: safe for machines that PXE-boot on every start.
    Local,
}

/// One `LABEL` of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// The label's identifier (no spaces).
    pub label: String,
    /// What the menu shows.
    pub title: String,
    pub action: BootAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootAction {
    /// `LOCALBOOT 0`: continue with the next boot device.
    LocalBoot,
    /// Load a kernel and initrd from the TFTP tree.
    Linux { kernel: String, initrd: String, append: String },
}

/// Everything `pxelinux.cfg/default` says.
#[derive(Debug, Clone)]
pub struct Menu {
    pub title: String,
    pub ui: Ui,
    /// In tenths of a second, as pxelinux counts.
    pub timeout_ds: u32,
    /// Mirror the menu and kernel messages on this serial port (`SERIAL 0 115200`).
    pub serial: Option<u8>,
    pub entries: Vec<BootEntry>,
    /// Label of the entry that boots after the timeout.
    pub default_label: String,
    /// The text of `boot.msg`.
    pub welcome: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MenuError {
    #[error("{what} path {path:?} has characters pxelinux cannot load (spaces, commas, quotes); name another with --kernel/--initrd")]
    UnloadablePath { what: &'static str, path: String },
}

impl Menu {
    /// The menu for installing from `kernel`/`initrd` (paths in the TFTP
    /// tree) with `append` as the kernel command line.
    pub fn install(name: &str, kernel: &str, initrd: &str, append: &str, default: DefaultEntry) -> Result<Menu, MenuError> {
        for (what, path) in [("kernel", kernel), ("initrd", initrd)] {
            if !loadable(path) {
                return Err(MenuError::UnloadablePath { what, path: one_line(path) });
            }
        }
        let name = one_line(name);
        let entries = vec![
            BootEntry { label: "local".into(), title: "Boot from local drive".into(), action: BootAction::LocalBoot },
            BootEntry {
                label: "install".into(),
                title: format!("Install {name}"),
                action: BootAction::Linux { kernel: kernel.into(), initrd: initrd.into(), append: one_line(append) },
            },
        ];
        let default_label = match default {
            DefaultEntry::Install => "install",
            DefaultEntry::Local => "local",
        };
        Ok(Menu {
            title: format!("pxelab: {name}"),
            ui: Ui::Vesa,
            timeout_ds: 50,
            serial: Some(0),
            entries,
            default_label: default_label.into(),
            welcome: format!("Welcome to pxelab. Booting the {name} installer over the network."),
        })
    }

    /// The text of `pxelinux.cfg/default`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; `let _` keeps the lines short.
        if let Some(port) = self.serial {
            let _ = writeln!(out, "SERIAL {port} 115200");
        }
        let ui = match self.ui {
            Ui::Vesa => "vesamenu.c32",
            Ui::Text => "menu.c32",
        };
        let _ = writeln!(out, "UI {ui}");
        let _ = writeln!(out, "TIMEOUT {}", self.timeout_ds);
        let _ = writeln!(out, "DISPLAY boot.msg");
        let _ = writeln!(out, "MENU TITLE {}", one_line(&self.title));
        for entry in &self.entries {
            out.push('\n');
            let _ = writeln!(out, "LABEL {}", label_id(&entry.label));
            let _ = writeln!(out, "  MENU LABEL {}", one_line(&entry.title));
            if entry.label == self.default_label {
                let _ = writeln!(out, "  MENU DEFAULT");
            }
            match &entry.action {
                BootAction::LocalBoot => {
                    let _ = writeln!(out, "  LOCALBOOT 0");
                }
                BootAction::Linux { kernel, initrd, append } => {
                    let _ = writeln!(out, "  KERNEL {}", one_line(kernel));
                    let append = one_line(append);
                    let sep = if append.is_empty() { "" } else { " " };
                    let _ = writeln!(out, "  APPEND initrd={}{sep}{append}", one_line(initrd));
                }
            }
        }
        out
    }

    /// A config that boots the install entry at once, with no menu, no
    /// prompt and no timeout: what one of the lab's own VMs gets as
    /// `pxelinux.cfg/01-<mac>`, read before `default`.
    pub fn render_at_once(&self) -> String {
        let mut out = String::from("# pxelab: a VM of this lab boots its installer at once; other machines get pxelinux.cfg/default\n");
        if let Some(port) = self.serial {
            let _ = writeln!(out, "SERIAL {port} 115200");
        }
        out.push_str("PROMPT 0\nDEFAULT install\n");
        for entry in &self.entries {
            if let BootAction::Linux { kernel, initrd, append } = &entry.action {
                let append = one_line(append);
                let sep = if append.is_empty() { "" } else { " " };
                let _ = writeln!(out, "\nLABEL install\n  KERNEL {}\n  APPEND initrd={}{sep}{append}", one_line(kernel), one_line(initrd));
                break;
            }
        }
        out
    }

    /// The text of `boot.msg`.
    pub fn render_welcome(&self) -> String {
        format!("{}\n", one_line(&self.welcome))
    }
}

/// Printable text on one line: control characters become spaces.
pub(super) fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// A label identifier: pxelinux ends it at the first space.
fn label_id(label: &str) -> String {
    let id: String = one_line(label).chars().filter(|c| !c.is_whitespace()).collect();
    if id.is_empty() {
        "entry".into()
    } else {
        id
    }
}

/// pxelinux splits KERNEL at spaces and `initrd=` at commas.
fn loadable(path: &str) -> bool {
    !path.is_empty() && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+/~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_seed_shape_with_install_default() {
        let menu =
            Menu::install("CentOS 7", "iso/isolinux/vmlinuz", "iso/isolinux/initrd.img", "inst.repo=ftp://10.0.0.1/ console=ttyS0", DefaultEntry::Install)
                .unwrap();
        assert_eq!(
            menu.render(),
            "SERIAL 0 115200\n\
             UI vesamenu.c32\n\
             TIMEOUT 50\n\
             DISPLAY boot.msg\n\
             MENU TITLE pxelab: CentOS 7\n\
             \n\
             LABEL local\n\
             \x20 MENU LABEL Boot from local drive\n\
             \x20 LOCALBOOT 0\n\
             \n\
             LABEL install\n\
             \x20 MENU LABEL Install CentOS 7\n\
             \x20 MENU DEFAULT\n\
             \x20 KERNEL iso/isolinux/vmlinuz\n\
             \x20 APPEND initrd=iso/isolinux/initrd.img inst.repo=ftp://10.0.0.1/ console=ttyS0\n"
        );
        assert_eq!(menu.render_welcome(), "Welcome to pxelab. Booting the CentOS 7 installer over the network.\n");
    }

    #[test]
    fn the_at_once_config_has_no_menu_and_no_wait() {
        let menu = Menu::install("CentOS 7", "iso/k", "iso/i", "inst.repo=http://10.0.0.1/iso/", DefaultEntry::Local).unwrap();
        assert_eq!(
            menu.render_at_once(),
            "# pxelab: a VM of this lab boots its installer at once; other machines get pxelinux.cfg/default\n\
             SERIAL 0 115200\n\
             PROMPT 0\n\
             DEFAULT install\n\
             \n\
             LABEL install\n\
             \x20 KERNEL iso/k\n\
             \x20 APPEND initrd=iso/i inst.repo=http://10.0.0.1/iso/\n"
        );
    }

    #[test]
    fn local_default_moves_menu_default() {
        let menu = Menu::install("X", "k", "i", "", DefaultEntry::Local).unwrap();
        let text = menu.render();
        let local = text.find("LABEL local").unwrap();
        let default = text.find("MENU DEFAULT").unwrap();
        let install = text.find("LABEL install").unwrap();
        assert!(local < default && default < install, "{text}");
        assert!(text.contains("  APPEND initrd=i\n"), "no trailing space when append is empty: {text}");
    }

    #[test]
    fn hostile_names_cannot_add_directives() {
        let menu = Menu::install("x\nLABEL evil\n  KERNEL /etc/shadow\r", "k", "i", "a\nMENU HIDDEN", DefaultEntry::Install).unwrap();
        let text = menu.render();
        assert!(!text.lines().any(|l| l.trim_start().starts_with("LABEL evil")), "{text}");
        assert!(!text.lines().any(|l| l.trim_start().starts_with("KERNEL /etc")), "{text}");
        assert!(!text.lines().any(|l| l.trim_start().starts_with("MENU HIDDEN")), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("LABEL")).count(), 2);
        assert!(!menu.render_welcome().trim_end().contains('\n'));
    }

    #[test]
    fn paths_pxelinux_cannot_load_are_refused() {
        let err = Menu::install("X", "iso/my kernel", "i", "", DefaultEntry::Install).unwrap_err();
        assert!(matches!(err, MenuError::UnloadablePath { what: "kernel", .. }));
        let err = Menu::install("X", "k", "iso/a,b", "", DefaultEntry::Install).unwrap_err();
        assert!(matches!(err, MenuError::UnloadablePath { what: "initrd", .. }));
    }

    #[test]
    fn rendering_is_deterministic() {
        let a = Menu::install("A", "k", "i", "x=1", DefaultEntry::Install).unwrap();
        let b = Menu::install("A", "k", "i", "x=1", DefaultEntry::Install).unwrap();
        assert_eq!(a.render(), b.render());
    }
}
