//! The iPXE script: what iPXE clients (QEMU's NIC ROMs, BIOS and UEFI, and
//! most PXE firmware flashed with iPXE) run instead of pxelinux.
//!
//! The network's DHCP hands clients that say they are iPXE
//! (`dhcp-userclass=set:ipxe,iPXE`) `http://SERVER/boot.ipxe` instead of
//! `pxelinux.0`. The installer script loads the kernel and initrd over
//! HTTP, several times faster than TFTP into a guest, and boots at once: no
//! menu and no menu timeout.
//!
//! `serve` gives every iPXE client that script. A lab (`up`) gives it only
//! to its own VMs: `boot.ipxe` is then [`dispatch`], which chains
//! `mac/<MAC>.ipxe` (there only for the lab's VMs) and sends any other iPXE
//! client to pxelinux and the menu, with its timeout and default, over TFTP.

use std::fmt::Write as _;

use super::menu::{one_line, BootAction, Menu};

/// The script's path in the boot tree.
pub const SCRIPT: &str = "boot.ipxe";

/// `boot.ipxe` for a lab: the VM's own script when the lab made one for its
/// MAC; when that script returns (an installed VM's is `exit`), iPXE exits
/// too and the firmware boots the next device, the disk. Any other BIOS client gets pxelinux from `tftp_server` (pxelinux
/// takes its config path from the DHCP file name, which for iPXE clients is
/// this script's URL: `set filename` gives it its own name back). Any other
/// UEFI client, where pxelinux cannot run, gets `menu`'s entries as an iPXE
/// menu, with the same timeout and default, the installer over HTTP.
pub fn dispatch(tftp_server: std::net::IpAddr, http_base: &str, menu: &Menu) -> String {
    let mut out = format!(
        "#!ipxe\n# pxelab: VMs of this lab boot their installer at once; other clients get pxelinux and its menu (UEFI: an iPXE menu)\n\
         chain --autofree mac/${{mac:hexhyp}}.ipxe && exit || goto menu\n\
         :menu\n\
         iseq ${{platform}} efi && goto efi ||\n\
         set filename pxelinux.0\n\
         chain tftp://{tftp_server}/pxelinux.0\n\
         :efi\n\
         menu {}\n",
        one_line(&menu.title)
    );
    for entry in &menu.entries {
        let _ = writeln!(out, "item {} {}", entry.label, one_line(&entry.title));
    }
    let _ = writeln!(out, "choose --timeout {} --default {} target || goto local\ngoto ${{target}}", menu.timeout_ds * 100, menu.default_label);
    for entry in &menu.entries {
        let _ = writeln!(out, ":{}", entry.label);
        match &entry.action {
            BootAction::LocalBoot => out.push_str("exit\n"),
            BootAction::Linux { kernel, initrd, append } => {
                let initrd_name = initrd.rsplit('/').next().unwrap_or(initrd);
                let args = append.split_whitespace().collect::<Vec<_>>().join(" ");
                let _ = writeln!(out, "kernel {http_base}/{kernel} initrd={initrd_name} {args}\ninitrd {http_base}/{initrd}\nboot");
            }
        }
    }
    out
}

/// The script that boots `kernel` and `initrd` (paths in the ISO) from
/// `http_base` (`http://ADDR[:PORT]`) with `args` on the command line.
pub fn script(http_base: &str, kernel: &str, initrd: &str, args: &str) -> String {
    let initrd_name = initrd.rsplit('/').next().unwrap_or(initrd);
    // `initrd=NAME` ties the initrd to the kernel for UEFI's EFI stub too.
    let args = args.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "#!ipxe\n# pxelab: the installer, at once, over HTTP\nkernel {http_base}/{iso}/{kernel} initrd={initrd_name} {args}\ninitrd {http_base}/{iso}/{initrd}\nboot\n",
        iso = super::ISO_DIR,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatcher_asks_for_the_vms_own_script_then_pxelinux_or_a_uefi_menu() {
        let menu =
            Menu::install("CentOS 7", "iso/images/pxeboot/vmlinuz", "iso/images/pxeboot/initrd.img", "a=b  c", crate::boot::DefaultEntry::Local).unwrap();
        let s = dispatch("10.0.0.1".parse().unwrap(), "http://10.0.0.1", &menu);
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains("chain --autofree mac/${mac:hexhyp}.ipxe && exit || goto menu\n"), "{s}");
        assert!(s.contains(":menu\niseq ${platform} efi && goto efi ||\nset filename pxelinux.0\nchain tftp://10.0.0.1/pxelinux.0\n:efi\n"), "{s}");
        assert!(
            s.contains("item local Boot from local drive\nitem install Install CentOS 7\nchoose --timeout 5000 --default local target || goto local\n"),
            "{s}"
        );
        assert!(s.contains(":local\nexit\n"), "{s}");
        assert!(
            s.ends_with(
                ":install\nkernel http://10.0.0.1/iso/images/pxeboot/vmlinuz initrd=initrd.img a=b c\ninitrd http://10.0.0.1/iso/images/pxeboot/initrd.img\nboot\n"
            ),
            "{s}"
        );
        assert_eq!("52:54:00:aa:bb:0c".parse::<crate::mac::MacAddr>().unwrap().ipxe_script(), "mac/52-54-00-aa-bb-0c.ipxe");
    }

    #[test]
    fn the_script_loads_both_over_http_and_boots() {
        let s = script("http://10.0.0.1:8080", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", "inst.repo=http://10.0.0.1:8080/iso/  console=ttyS0");
        assert_eq!(
            s,
            "#!ipxe\n# pxelab: the installer, at once, over HTTP\nkernel http://10.0.0.1:8080/iso/images/pxeboot/vmlinuz initrd=initrd.img inst.repo=http://10.0.0.1:8080/iso/ console=ttyS0\ninitrd http://10.0.0.1:8080/iso/images/pxeboot/initrd.img\nboot\n"
        );
    }
}
