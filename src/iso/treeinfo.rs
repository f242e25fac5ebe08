//! A parser for `.treeinfo`, the INI file at the root of RHEL-family trees
//! (productmd format, and the older `[general]` format of RHEL ≤ 7).
//!
//! Values come from an untrusted ISO: the parser keeps them as plain strings
//! and leaves validation (paths exist, no newlines reach a menu) to its users.

use std::collections::BTreeMap;

/// The sections of a `.treeinfo`, each a map of keys to values.
#[derive(Debug, Default)]
pub struct TreeInfo {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl TreeInfo {
    pub fn parse(text: &str) -> TreeInfo {
        let mut info = TreeInfo::default();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim().to_string();
                info.sections.entry(name.clone()).or_default();
                current = Some(name);
            } else if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
                info.sections.get_mut(section).expect("section inserted when its header was read").insert(key.trim().to_string(), value.trim().to_string());
            }
        }
        info
    }

    /// A non-empty value, if the section and key exist.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections.get(section)?.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The first of several (section, key) places that has a value; productmd
    /// and the older format keep the same facts in different places.
    pub fn first(&self, places: &[(&str, &str)]) -> Option<&str> {
        places.iter().find_map(|(s, k)| self.get(s, k))
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    /// The tree's architecture (`[tree] arch` or `[general] arch`).
    pub fn arch(&self) -> Option<&str> {
        self.first(&[("tree", "arch"), ("general", "arch")])
    }

    /// The kernel and initrd for PXE, from `[images-ARCH]`.
    pub fn kernel_initrd(&self) -> (Option<&str>, Option<&str>) {
        let section = self.arch().map(|a| format!("images-{a}"));
        match section {
            Some(s) => (self.get(&s, "kernel"), self.get(&s, "initrd")),
            None => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTMD: &str = "[header]\ntype = productmd.treeinfo\nversion = 1.2\n\n[release]\nname = CentOS Stream\nshort = CentOS-Stream\nversion = 9\n\n[tree]\narch = x86_64\nplatforms = x86_64,xen\n\n[images-x86_64]\ninitrd = images/pxeboot/initrd.img\nkernel = images/pxeboot/vmlinuz\n\n[stage2]\nmainimage = images/install.img\n";

    #[test]
    fn reads_productmd_sections() {
        let t = TreeInfo::parse(PRODUCTMD);
        assert_eq!(t.get("release", "name"), Some("CentOS Stream"));
        assert_eq!(t.arch(), Some("x86_64"));
        assert_eq!(t.kernel_initrd(), (Some("images/pxeboot/vmlinuz"), Some("images/pxeboot/initrd.img")));
        assert_eq!(t.get("stage2", "mainimage"), Some("images/install.img"));
    }

    #[test]
    fn reads_the_old_general_format() {
        let t = TreeInfo::parse(
            "[general]\nfamily = CentOS\nversion = 7\narch = x86_64\n[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n",
        );
        assert_eq!(t.first(&[("release", "name"), ("general", "family")]), Some("CentOS"));
        assert_eq!(t.kernel_initrd().0, Some("images/pxeboot/vmlinuz"));
    }

    #[test]
    fn ignores_garbage_lines_and_empty_values() {
        let t = TreeInfo::parse("key = before any section\n[tree]\narch =\nnot a pair\n");
        assert_eq!(t.arch(), None);
        assert!(t.has_section("tree"));
    }
}
