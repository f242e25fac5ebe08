//! Choosing the accelerator: kvm where it can really run a guest, tcg otherwise.
//!
//! libvirt's capabilities are not enough: they list `kvm` whenever
//! `/dev/kvm` exists. On a PVM host (`kvm_pvm`, Pagetable-based Virtual
//! Machine, as in some cloud sandboxes) `/dev/kvm` exists but runs only
//! guests with a PVM-enabled kernel: firmware such as SeaBIOS hangs, so a
//! PXE boot never starts. So `auto` also asks which KVM backend the kernel
//! loaded, and whether the CPU has hardware virtualisation at all.

use std::fs::OpenOptions;
use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// How people and the JSON name it.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The libvirt domain type.
    pub fn domain_type(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        }
    }
}

/// The accelerator chosen and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

/// What the host offers, read from /dev, /sys and /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKvm {
    /// `/dev/kvm` opens read-write.
    pub dev_kvm_usable: bool,
    /// Loaded modules among kvm_intel, kvm_amd, kvm_pvm.
    pub backends: Vec<String>,
    /// The CPU flags include vmx or svm.
    pub hw_virt: bool,
}

impl HostKvm {
    pub fn probe() -> HostKvm {
        let dev_kvm_usable = OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
        let backends = ["kvm_intel", "kvm_amd", "kvm_pvm"].iter().filter(|m| Path::new("/sys/module").join(m).exists()).map(|m| m.to_string()).collect();
        let hw_virt = std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| c.lines().filter(|l| l.starts_with("flags")).any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm")))
            .unwrap_or(false);
        HostKvm { dev_kvm_usable, backends, hw_virt }
    }
}

/// `--accel auto`: kvm when an ordinary guest can run under it here.
pub fn choose_auto(host: &HostKvm) -> AccelChoice {
    let tcg = |reason: String| AccelChoice { accel: Accel::Tcg, reason };
    if !host.dev_kvm_usable {
        return tcg("/dev/kvm is missing or not accessible: using tcg (software emulation)".into());
    }
    let hardware = host.backends.iter().find(|b| *b == "kvm_intel" || *b == "kvm_amd");
    if let Some(backend) = hardware {
        if host.hw_virt {
            return AccelChoice { accel: Accel::Kvm, reason: format!("/dev/kvm is backed by {backend} with hardware virtualisation") };
        }
    }
    if host.backends.iter().any(|b| b == "kvm_pvm") {
        return tcg("/dev/kvm is backed by kvm_pvm (PVM), which runs only PVM-enabled guest kernels; firmware such as SeaBIOS hangs there: using tcg".into());
    }
    if !host.hw_virt {
        return tcg("the CPU shows no hardware virtualisation (vmx/svm): using tcg".into());
    }
    tcg("no kvm_intel or kvm_amd module is loaded: using tcg".into())
}

/// The user's `--accel`, or the automatic choice.
pub fn choose(requested: Option<Accel>, host: &HostKvm) -> AccelChoice {
    match requested {
        Some(accel) => AccelChoice { accel, reason: format!("--accel {} was given", serde_plain(accel)) },
        None => choose_auto(host),
    }
}

/// `--accel auto` for a libvirt host that is not this one: pxelab cannot
/// look at its `/dev/kvm`, only ask libvirt whether it offers kvm guests.
pub fn choose_for_remote(requested: Option<Accel>, kvm_offered: bool) -> AccelChoice {
    match (requested, kvm_offered) {
        (Some(_), _) => choose(requested, &HostKvm { dev_kvm_usable: false, backends: Vec::new(), hw_virt: false }),
        (None, true) => AccelChoice {
            accel: Accel::Kvm,
            reason: "the remote libvirt host offers kvm guests (if they hang in firmware there, as under PVM, pass --accel tcg)".into(),
        },
        (None, false) => AccelChoice { accel: Accel::Tcg, reason: "the remote libvirt host offers no kvm guests: using tcg (software emulation)".into() },
    }
}

/// Whether libvirt on the other end of `conn` can run kvm guests.
pub fn kvm_offered(conn: &virt::connect::Connect) -> bool {
    conn.get_domain_capabilities(None, Some("x86_64"), None, Some("kvm"), 0).is_ok()
}

fn serde_plain(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(dev: bool, backends: &[&str], hw: bool) -> HostKvm {
        HostKvm { dev_kvm_usable: dev, backends: backends.iter().map(|s| s.to_string()).collect(), hw_virt: hw }
    }

    #[test]
    fn hardware_kvm_is_chosen() {
        assert_eq!(choose_auto(&host(true, &["kvm_intel"], true)).accel, Accel::Kvm);
        assert_eq!(choose_auto(&host(true, &["kvm_amd"], true)).accel, Accel::Kvm);
    }

    #[test]
    fn pvm_and_missing_kvm_fall_back_to_tcg_with_a_reason() {
        let pvm = choose_auto(&host(true, &["kvm_pvm"], false));
        assert_eq!(pvm.accel, Accel::Tcg);
        assert!(pvm.reason.contains("kvm_pvm"), "{}", pvm.reason);
        assert_eq!(choose_auto(&host(false, &["kvm_intel"], true)).accel, Accel::Tcg);
        assert_eq!(choose_auto(&host(true, &["kvm_intel"], false)).accel, Accel::Tcg);
    }

    #[test]
    fn the_user_can_force_either() {
        let h = host(true, &["kvm_pvm"], false);
        assert_eq!(choose(Some(Accel::Kvm), &h).accel, Accel::Kvm);
        assert_eq!(choose(Some(Accel::Tcg), &host(true, &["kvm_intel"], true)).accel, Accel::Tcg);
    }

    #[test]
    fn this_host_is_judged_without_panicking() {
        let choice = choose_auto(&HostKvm::probe());
        assert!(!choice.reason.is_empty());
    }

    #[test]
    fn a_remote_host_is_judged_by_what_its_libvirt_offers() {
        assert_eq!(choose_for_remote(None, true).accel, Accel::Kvm);
        assert!(choose_for_remote(None, true).reason.contains("--accel tcg"));
        assert_eq!(choose_for_remote(None, false).accel, Accel::Tcg);
        assert_eq!(choose_for_remote(Some(Accel::Tcg), true).accel, Accel::Tcg);
        assert_eq!(choose_for_remote(Some(Accel::Kvm), false).accel, Accel::Kvm);
    }
}
