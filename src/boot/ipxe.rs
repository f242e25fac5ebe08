//! The iPXE script: what iPXE clients (QEMU's NIC ROMs, BIOS and UEFI, and
//! most PXE firmware flashed with iPXE) run instead of pxelinux.
//!
//! The network's DHCP hands clients that say they are iPXE
//! (`dhcp-userclass=set:ipxe,iPXE`) `http://SERVER/boot.ipxe` instead of
//! `pxelinux.0`. The script loads the kernel and initrd over HTTP, several
//! times faster than TFTP into a guest, and boots the installer at once: no
//! menu and no menu timeout. Other clients keep pxelinux and the menu.

/// The script's path in the boot tree.
pub const SCRIPT: &str = "boot.ipxe";

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
    fn the_script_loads_both_over_http_and_boots() {
        let s = script("http://10.0.0.1:8080", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", "inst.repo=http://10.0.0.1:8080/iso/  console=ttyS0");
        assert_eq!(
            s,
            "#!ipxe\n# pxelab: the installer, at once, over HTTP\nkernel http://10.0.0.1:8080/iso/images/pxeboot/vmlinuz initrd=initrd.img inst.repo=http://10.0.0.1:8080/iso/ console=ttyS0\ninitrd http://10.0.0.1:8080/iso/images/pxeboot/initrd.img\nboot\n"
        );
    }
}
