//! `pxelab dhcp-config`: every format is checked by the real server that
//! would read it (ISC dhcpd -t, dnsmasq --test), and broken input is refused.

mod common;

use std::process::Command;

use common::{fixture, pxelab};

fn config(args: &[&str]) -> String {
    let out = pxelab().arg("dhcp-config").args(args).env("PXELAB_STATE_DIR", tempfile::tempdir().unwrap().path()).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn dhcpd_accepts(text: &str) -> bool {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let leases = tempfile::NamedTempFile::new().unwrap();
    Command::new(fixture("peers/usr/sbin/dhcpd")).args(["-t", "-cf"]).arg(file.path()).arg("-lf").arg(leases.path()).output().unwrap().status.success()
}

fn dnsmasq_accepts(text: &str) -> bool {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    Command::new("dnsmasq").arg("--test").arg("-C").arg(file.path()).output().unwrap().status.success()
}

const CASES: [&[&str]; 3] = [
    &["--server", "192.168.122.1"],
    &["--server", "10.20.0.5", "--subnet", "10.20.0.0/16", "--range", "10.20.8.1-10.20.9.254"],
    &["--server", "172.16.4.1", "--subnet", "172.16.4.0/28", "--file", "lpxelinux.0"],
];

#[test]
fn isc_configs_pass_dhcpd() {
    for case in CASES {
        let text = config(&[&["--format", "isc"][..], case].concat());
        assert!(dhcpd_accepts(&text), "dhcpd -t refused:\n{text}");
        assert!(text.contains("next-server") && text.contains("filename"));
    }
    // The check can fail: a misspelt statement is refused.
    let broken = config(&["--format", "isc", "--server", "192.168.122.1"]).replace("next-server", "next-servr");
    assert!(!dhcpd_accepts(&broken));
}

#[test]
fn dnsmasq_configs_pass_dnsmasq() {
    for case in CASES {
        for proxy in [&[][..], &["--proxy"]] {
            let text = config(&[&["--format", "dnsmasq"][..], case, proxy].concat());
            assert!(dnsmasq_accepts(&text), "dnsmasq --test refused:\n{text}");
        }
    }
    assert!(!dnsmasq_accepts("dhcp-range=not-an-address\n"));
    let proxy = config(&["--format", "dnsmasq", "--proxy", "--server", "10.9.0.1"]);
    assert!(proxy.contains("dhcp-range=10.9.0.0,proxy,255.255.255.0") && proxy.contains("pxe-service=x86PC"), "{proxy}");
}

#[test]
fn windows_and_libvirt_say_what_to_type() {
    let text = config(&["--format", "windows", "--server", "10.0.0.5", "--subnet", "10.0.0.0/24"]);
    assert!(text.contains("netsh dhcp server scope 10.0.0.0 set optionvalue 067 STRING \"pxelinux.0\""), "{text}");
    assert!(text.contains("Set-DhcpServerv4OptionValue -ScopeId 10.0.0.0 -OptionId 66 -Value \"10.0.0.5\""), "{text}");
    let text = config(&["--format", "libvirt", "--server", "10.0.0.5"]);
    assert!(text.contains("<bootp file='pxelinux.0' server='10.0.0.5'/>"));
}

#[test]
fn bad_values_exit_3_with_one_line() {
    for args in [
        &["--format", "isc", "--server", "not-an-ip"][..],
        &["--format", "isc", "--server", "10.0.0.1", "--subnet", "10.0.0.0/99"],
        &["--format", "isc", "--server", "10.0.0.1", "--range", "10.0.0.9-10.0.0.2"],
        &["--format", "dnsmasq", "--server", "10.0.0.1", "--range", "10.1.0.2-10.1.0.9"],
        &["--format", "isc"],
        // The subnet's network and broadcast addresses are no host's.
        &["--format", "isc", "--server", "10.0.0.0"],
        &["--format", "isc", "--server", "10.0.0.255"],
        &["--format", "isc", "--server", "10.0.0.1", "--range", "10.0.0.200-10.0.0.255"],
        &["--format", "dnsmasq", "--server", "10.0.0.1", "--range", "10.0.0.0-10.0.0.50"],
        // Boot files stay in the boot tree, as for `net patch`.
        &["--format", "libvirt", "--server", "10.0.0.1", "--file", "../etc/passwd"],
    ] {
        let out = pxelab().arg("dhcp-config").args(args).env("PXELAB_STATE_DIR", tempfile::tempdir().unwrap().path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // Options that do not go together are a usage error (2), as everywhere.
    let out = pxelab().args(["dhcp-config", "--format", "windows", "--proxy", "--server", "10.0.0.1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// iPXE clients are sent to the iPXE script, and the real servers take it.
#[test]
fn ipxe_clients_get_the_script_and_the_servers_take_it() {
    let isc = config(&["--format", "isc", "--server", "10.0.0.1", "--http-port", "8080"]);
    assert!(isc.contains("option user-class = \"iPXE\"") && isc.contains("\"http://10.0.0.1:8080/boot.ipxe\""), "{isc}");
    assert!(isc.contains("option ipxe.no-pxedhcp 1;"), "{isc}");
    assert!(dhcpd_accepts(&isc), "{isc}");
    let dnsmasq = config(&["--format", "dnsmasq", "--server", "10.0.0.1"]);
    assert!(dnsmasq.contains("dhcp-boot=tag:ipxe,http://10.0.0.1/boot.ipxe"), "{dnsmasq}");
    assert!(dnsmasq.contains("dhcp-option=tag:ipxe,encap:175,176,1\n"), "{dnsmasq}");
    assert!(dnsmasq_accepts(&dnsmasq), "{dnsmasq}");
    let plain = config(&["--format", "isc", "--server", "10.0.0.1", "--http-port", "none"]);
    assert!(!plain.contains("iPXE") && dhcpd_accepts(&plain), "{plain}");
}

/// A server in the upper half of its subnet gets the lower half as the pool,
/// and dhcpd takes the result.
#[test]
fn the_default_range_leaves_the_server_out() {
    let text = config(&["--format", "isc", "--server", "10.0.0.200"]);
    assert!(text.contains("range 10.0.0.1 10.0.0.127;"), "{text}");
    assert!(dhcpd_accepts(&text), "{text}");
    let text = config(&["--format", "isc", "--server", "10.0.0.1"]);
    assert!(text.contains("range 10.0.0.128 10.0.0.254;"), "{text}");
}

/// ARM64 UEFI clients (client-arch 11) get the arm64 shim in every format,
/// and the servers take it: dhcpd's `elsif`, dnsmasq's own tag and its
/// proxy's ARM64_EFI service, Windows' vendor class for `…:Arch:00011`.
#[test]
fn arm64_clients_get_the_arm64_shim_in_every_format() {
    let arm = ["--server", "10.20.0.5", "--uefi-arm64-file", "iso/EFI/BOOT/BOOTAA64.EFI"];
    let isc = config(&[&["--format", "isc"][..], &arm].concat());
    assert!(isc.contains("} elsif option arch = 00:0b {\n        filename \"iso/EFI/BOOT/BOOTAA64.EFI\";"), "{isc}");
    assert!(dhcpd_accepts(&isc), "dhcpd -t refused:\n{isc}");
    let plain = config(&[&["--format", "isc", "--http-port", "none"][..], &arm].concat());
    assert!(plain.contains("option arch = 00:0b") && dhcpd_accepts(&plain), "{plain}");
    let dnsmasq = config(&[&["--format", "dnsmasq"][..], &arm].concat());
    for line in ["dhcp-match=set:efiarm64,option:client-arch,11", "dhcp-boot=tag:efiarm64,tag:!ipxe,iso/EFI/BOOT/BOOTAA64.EFI,,10.20.0.5", "tag:!efiarm64,"] {
        assert!(dnsmasq.contains(line), "{line} in:\n{dnsmasq}");
    }
    assert!(dnsmasq_accepts(&dnsmasq), "dnsmasq --test refused:\n{dnsmasq}");
    let proxy = config(&[&["--format", "dnsmasq", "--proxy"][..], &arm].concat());
    assert!(proxy.contains("pxe-service=ARM64_EFI,") && dnsmasq_accepts(&proxy), "{proxy}");
    let windows = config(&[&["--format", "windows"][..], &arm].concat());
    assert!(windows.contains("-Data \"PXEClient:Arch:00011\"") && windows.contains("-OptionId 67 -Value \"iso/EFI/BOOT/BOOTAA64.EFI\""), "{windows}");
    let none = config(&["--format", "dnsmasq", "--server", "10.20.0.5", "--uefi-arm64-file", "none"]);
    assert!(!none.contains("efiarm64"), "{none}");
    // By default, the host's arm64 pair in the tree (make deps installs it).
    let default = config(&["--format", "dnsmasq", "--server", "10.20.0.5"]);
    assert!(default.contains("dhcp-boot=tag:efiarm64,tag:!ipxe,efi/bootaa64.efi,,10.20.0.5"), "{default}");
}
