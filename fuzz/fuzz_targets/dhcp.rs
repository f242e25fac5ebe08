//! A frame heard on the proxy DHCP socket → the proxy's answer. Whatever
//! arrives, the frame and message readers return an error or a value,
//! never panic; a message read back from what was written is the same
//! message; and no answer ever offers an address, answers a client that
//! is not a PXE client, or names a server other than the proxy's.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use pxelab::arch::Arch;
use pxelab::proxydhcp::message::{opt, Message};
use pxelab::proxydhcp::reply::{answer, BootFiles, Port};

fuzz_target!(|data: &[u8]| {
    let files = BootFiles {
        server: Ipv4Addr::new(10, 0, 0, 1),
        bios: "pxelinux.0".into(),
        uefi: vec![(Arch::X86_64, "iso/EFI/BOOT/BOOTX64.EFI".into()), (Arch::Aarch64, "iso/EFI/BOOT/BOOTAA64.EFI".into())],
        ipxe: Some("http://10.0.0.1/boot.ipxe".into()),
    };
    // As a whole frame (the packet socket's view), then as a bare message (UDP 4011's).
    let payloads = [pxelab::proxydhcp::parse_frame(data).map(|d| d.payload), Some(data)];
    for payload in payloads.into_iter().flatten() {
        let Ok(message) = Message::parse(payload) else { continue };
        assert_eq!(Message::parse(&message.to_bytes()).as_ref(), Ok(&message), "written and read back");
        for port in [Port::Dhcp, Port::BootServer] {
            let Ok(a) = answer(&message, port, &files) else { continue };
            let class = message.options.get(&opt::VENDOR_CLASS).expect("only PXE clients are answered");
            assert!(class.starts_with(b"PXEClient"));
            assert_eq!(a.message.yiaddr, Ipv4Addr::UNSPECIFIED, "never an address");
            assert_eq!(a.message.siaddr, files.server);
            assert_eq!(a.message.options[&opt::SERVER_ID], files.server.octets());
            assert_eq!(Message::parse(&a.message.to_bytes()).as_ref(), Ok(&a.message));
        }
    }
});
