//! Who gets an answer, and what it says: the proxy's whole policy, pure.
//!
//! A proxy answers only PXE clients (option 60 starting `PXEClient`), only
//! with boot information, and never with an address: `yiaddr` stays 0 so
//! the network's own DHCP server stays the only one that leases. The boot
//! file is chosen as the bootp patch's dnsmasq lines choose it (see
//! `dhcp::LabDnsmasq`): iPXE clients the lab's HTTP script, x86-64 UEFI
//! clients the shim, BIOS clients `pxelinux.0`. A client of any other
//! architecture (32-bit UEFI, ARM, HTTP boot) gets nothing rather than a
//! file it cannot run.
//!
//! Two ports, as the PXE specification (2.1, 2.2) has them: a DHCPDISCOVER
//! heard on 67 gets a ProxyDHCP offer; a DHCPREQUEST sent to the proxy on
//! 4011 (edk2 sends one when an offer names a file but no boot servers)
//! gets the same information as an ACK. The offer carries option 43 with
//! `PXE_DISCOVERY_CONTROL` = 8: boot the file named here, no menu and no
//! boot-server discovery; with `siaddr` and a file set, iPXE uses the offer
//! as it is and sends no request to 4011 at all.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::message::{opt, Message, MessageType, BOOTREPLY, BOOTREQUEST};
use crate::arch::Arch;
use crate::mac::MacAddr;

/// What each kind of PXE client boots, all from `server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// The TFTP (and HTTP) server: `siaddr` and the server identifier.
    pub server: Ipv4Addr,
    /// BIOS clients that are not iPXE: `pxelinux.0`.
    pub bios: String,
    /// UEFI clients that are not iPXE: their architecture's shim, for each
    /// architecture that has one (none listed: none is served).
    pub uefi: Vec<(Arch, String)>,
    /// iPXE clients: `http://SERVER[:PORT]/boot.ipxe`. `None`: as their architecture.
    pub ipxe: Option<String>,
}

/// Where a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Port {
    /// UDP 67, broadcast: DHCPDISCOVER.
    Dhcp,
    /// UDP 4011, unicast to the proxy: DHCPREQUEST for the boot file.
    BootServer,
}

/// The kind of client, as it described itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    Bios,
    /// x86-64 UEFI.
    Uefi,
    /// ARM64 UEFI (client architecture 11).
    #[serde(rename = "uefi_arm64")]
    UefiArm64,
    Ipxe,
}

/// An answer to send back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub mac: MacAddr,
    pub kind: ClientKind,
    pub file: String,
    pub message: Message,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    NotARequest,
    NotEthernet,
    /// Sent through a relay agent: the proxy answers its own segment only.
    Relayed,
    /// No option 60 `PXEClient`: an ordinary DHCP client.
    NotPxe,
    /// A message the proxy does not answer on that port (a REQUEST on 67
    /// is for the DHCP server that offered the address).
    NotAsked(Option<MessageType>),
    /// An architecture with no boot file here (option 93).
    Architecture(u16),
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ignored::NotARequest => write!(f, "not a client's request"),
            Ignored::NotEthernet => write!(f, "not an Ethernet client"),
            Ignored::Relayed => write!(f, "relayed from another segment"),
            Ignored::NotPxe => write!(f, "not a PXE client"),
            Ignored::NotAsked(t) => write!(f, "{t:?} is not for the proxy"),
            Ignored::Architecture(a) => write!(f, "client architecture {a} has no boot file here"),
        }
    }
}

/// Option 60 of a proxy's answers, and the start of a PXE client's.
const PXE_CLIENT: &[u8] = b"PXEClient";
/// Option 43: `PXE_DISCOVERY_CONTROL` (6) = 8, "boot the file in this
/// offer; no prompt, menu or discovery"; then the end of the sub-options.
const DISCOVERY_CONTROL: [u8; 4] = [6, 1, 8, 255];

/// The answer to `request`, heard on `port`, or why there is none.
pub fn answer(request: &Message, port: Port, files: &BootFiles) -> Result<Answer, Ignored> {
    if request.op != BOOTREQUEST {
        return Err(Ignored::NotARequest);
    }
    let mac = MacAddr(request.mac().ok_or(Ignored::NotEthernet)?);
    if !request.giaddr.is_unspecified() {
        return Err(Ignored::Relayed);
    }
    if !request.options.get(&opt::VENDOR_CLASS).is_some_and(|v| v.starts_with(PXE_CLIENT)) {
        return Err(Ignored::NotPxe);
    }
    let asked = request.message_type();
    let reply_type = match (port, asked) {
        (Port::Dhcp, Some(MessageType::Discover)) => MessageType::Offer,
        (Port::BootServer, Some(MessageType::Request | MessageType::Inform)) => MessageType::Ack,
        _ => return Err(Ignored::NotAsked(asked)),
    };
    let (kind, file) = choose(request, files)?;

    let mut options = std::collections::BTreeMap::new();
    options.insert(opt::SERVER_ID, files.server.octets().to_vec());
    options.insert(opt::VENDOR_CLASS, PXE_CLIENT.to_vec());
    options.insert(opt::VENDOR_SPECIFIC, DISCOVERY_CONTROL.to_vec());
    if file.len() > 127 {
        options.insert(opt::BOOTFILE, file.as_bytes().to_vec());
    }
    // The client's UUID back, as the PXE specification asks (2.4.5).
    if let Some(uuid) = request.options.get(&opt::CLIENT_UUID).filter(|u| u.len() == 17) {
        options.insert(opt::CLIENT_UUID, uuid.clone());
    }
    let mut message = Message {
        op: BOOTREPLY,
        secs: 0,
        ciaddr: if port == Port::BootServer { request.ciaddr } else { Ipv4Addr::UNSPECIFIED },
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: files.server,
        file: if file.len() > 127 { Vec::new() } else { file.as_bytes().to_vec() },
        options,
        ..request.clone()
    };
    message.set_message_type(reply_type);
    Ok(Answer { mac, kind, file, message })
}

/// The client's kind and its boot file.
fn choose(request: &Message, files: &BootFiles) -> Result<(ClientKind, String), Ignored> {
    let ipxe = request.options.get(&opt::USER_CLASS).is_some_and(|c| is_ipxe(c));
    if let (true, Some(script)) = (ipxe, &files.ipxe) {
        return Ok((ClientKind::Ipxe, script.clone()));
    }
    // Option 93 may list several; the first is the one booting. None: a BIOS ROM.
    let arch = request.options.get(&opt::CLIENT_ARCH).map_or(0, |a| u16::from_be_bytes([a[0], a[1]]));
    if arch == 0 {
        return Ok((ClientKind::Bios, files.bios.clone()));
    }
    // 7 and 9 are x86-64 UEFI, 11 ARM64 UEFI (RFC 4578 and its errata).
    let uefi = Arch::of_uefi_client(arch).ok_or(Ignored::Architecture(arch))?;
    let shim = files.uefi.iter().find(|(a, _)| *a == uefi).ok_or(Ignored::Architecture(arch))?;
    let kind = match uefi {
        Arch::X86_64 => ClientKind::Uefi,
        Arch::Aarch64 => ClientKind::UefiArm64,
    };
    Ok((kind, shim.1.clone()))
}

/// iPXE's user class: `iPXE` as raw bytes (what iPXE sends), or as one
/// RFC 3004 class.
fn is_ipxe(class: &[u8]) -> bool {
    class == b"iPXE" || class == b"\x04iPXE"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxydhcp::message::tests::{discover, o};

    fn files() -> BootFiles {
        BootFiles {
            server: Ipv4Addr::new(10, 0, 0, 1),
            bios: "pxelinux.0".into(),
            uefi: vec![(Arch::X86_64, "iso/EFI/BOOT/BOOTX64.EFI".into())],
            ipxe: Some("http://10.0.0.1:8080/boot.ipxe".into()),
        }
    }

    fn ask(options: &[(u8, Vec<u8>)], port: Port) -> Result<Answer, Ignored> {
        answer(&Message::parse(&discover(options)).unwrap(), port, &files())
    }

    #[test]
    fn each_kind_of_pxe_client_gets_its_own_file_and_no_address() {
        let bios = ask(&[o(53, [1]), o(60, b"PXEClient:Arch:00000:UNDI:002001"), o(93, [0, 0])], Port::Dhcp).unwrap();
        assert_eq!((bios.kind, bios.file.as_str()), (ClientKind::Bios, "pxelinux.0"));
        let uefi = ask(&[o(53, [1]), o(60, b"PXEClient:Arch:00007:UNDI:003016"), o(93, [0, 7])], Port::Dhcp).unwrap();
        assert_eq!((uefi.kind, uefi.file.as_str()), (ClientKind::Uefi, "iso/EFI/BOOT/BOOTX64.EFI"));
        let ipxe = ask(&[o(53, [1]), o(60, b"PXEClient:Arch:00007:UNDI:003010"), o(77, b"iPXE"), o(93, [0, 7])], Port::Dhcp).unwrap();
        assert_eq!((ipxe.kind, ipxe.file.as_str()), (ClientKind::Ipxe, "http://10.0.0.1:8080/boot.ipxe"));

        let m = &bios.message;
        assert_eq!(m.op, BOOTREPLY);
        assert_eq!(m.message_type(), Some(MessageType::Offer));
        assert_eq!(m.yiaddr, Ipv4Addr::UNSPECIFIED, "a proxy never offers an address");
        assert_eq!(m.siaddr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!((m.xid, m.chaddr), (0x1234_5678, Message::parse(&discover(&[])).unwrap().chaddr));
        assert_eq!(m.file, b"pxelinux.0");
        assert_eq!(m.options[&54], [10, 0, 0, 1]);
        assert_eq!(m.options[&60], b"PXEClient");
        assert_eq!(m.options[&43], [6, 1, 8, 255], "PXE_DISCOVERY_CONTROL: boot this file");
    }

    #[test]
    fn an_arm64_uefi_client_gets_the_arm64_shim_and_an_x86_one_the_x86_shim() {
        let both = BootFiles { uefi: vec![(Arch::X86_64, "efi/bootx64.efi".into()), (Arch::Aarch64, "iso/EFI/BOOT/BOOTAA64.EFI".into())], ..files() };
        let ask = |arch: u8| answer(&Message::parse(&discover(&[o(53, [1]), o(60, b"PXEClient"), o(93, [0, arch])])).unwrap(), Port::Dhcp, &both);
        let arm = ask(11).unwrap();
        assert_eq!((arm.kind, arm.file.as_str()), (ClientKind::UefiArm64, "iso/EFI/BOOT/BOOTAA64.EFI"));
        assert_eq!(arm.message.file, b"iso/EFI/BOOT/BOOTAA64.EFI");
        assert_eq!(serde_json::to_value(arm.kind).unwrap(), "uefi_arm64");
        let x86 = ask(7).unwrap();
        assert_eq!((x86.kind, x86.file.as_str()), (ClientKind::Uefi, "efi/bootx64.efi"));
    }

    #[test]
    fn a_boot_server_request_on_4011_gets_an_ack_with_the_uuid_back() {
        let uuid = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        let ack = ask(&[o(53, [3]), o(60, b"PXEClient:Arch:00007"), o(93, [0, 7]), o(97, uuid)], Port::BootServer).unwrap();
        assert_eq!(ack.message.message_type(), Some(MessageType::Ack));
        assert_eq!(ack.message.options[&97], uuid);
        assert_eq!(ack.message.yiaddr, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn ordinary_clients_and_what_is_not_the_proxys_get_nothing() {
        // udhcpc and dhclient send no option 60, or another vendor class.
        assert_eq!(ask(&[o(53, [1])], Port::Dhcp).unwrap_err(), Ignored::NotPxe);
        assert_eq!(ask(&[o(53, [1]), o(60, b"udhcp 1.36.1")], Port::Dhcp).unwrap_err(), Ignored::NotPxe);
        // The REQUEST on 67 is for the server that offered the address.
        assert_eq!(ask(&[o(53, [3]), o(60, b"PXEClient")], Port::Dhcp).unwrap_err(), Ignored::NotAsked(Some(MessageType::Request)));
        assert_eq!(ask(&[o(53, [1]), o(60, b"PXEClient")], Port::BootServer).unwrap_err(), Ignored::NotAsked(Some(MessageType::Discover)));
        assert_eq!(ask(&[o(60, b"PXEClient")], Port::Dhcp).unwrap_err(), Ignored::NotAsked(None), "BOOTP");
        // ARM64 UEFI (11) with no arm64 shim served, and x86-64 HTTP boot (16): no file for them here.
        assert_eq!(ask(&[o(53, [1]), o(60, b"PXEClient:Arch:00011"), o(93, [0, 11])], Port::Dhcp).unwrap_err(), Ignored::Architecture(11));
        assert_eq!(ask(&[o(53, [1]), o(60, b"HTTPClient:Arch:00016"), o(93, [0, 16])], Port::Dhcp).unwrap_err(), Ignored::NotPxe);
        assert_eq!(ask(&[o(53, [1]), o(60, b"PXEClient:Arch:00016"), o(93, [0, 16])], Port::Dhcp).unwrap_err(), Ignored::Architecture(16));
        let mut relayed = Message::parse(&discover(&[o(53, [1]), o(60, b"PXEClient")])).unwrap();
        relayed.giaddr = Ipv4Addr::new(10, 9, 9, 1);
        assert_eq!(answer(&relayed, Port::Dhcp, &files()).unwrap_err(), Ignored::Relayed);
        let mut reply = Message::parse(&discover(&[o(53, [2]), o(60, b"PXEClient")])).unwrap();
        reply.op = BOOTREPLY;
        assert_eq!(answer(&reply, Port::Dhcp, &files()).unwrap_err(), Ignored::NotARequest);
    }

    #[test]
    fn without_a_script_or_a_shim_the_architecture_decides() {
        let bare = BootFiles { uefi: vec![], ipxe: None, ..files() };
        let request = Message::parse(&discover(&[o(53, [1]), o(60, b"PXEClient"), o(77, b"iPXE")])).unwrap();
        assert_eq!(answer(&request, Port::Dhcp, &bare).unwrap().file, "pxelinux.0");
        let uefi = Message::parse(&discover(&[o(53, [1]), o(60, b"PXEClient"), o(93, [0, 9])])).unwrap();
        assert_eq!(answer(&uefi, Port::Dhcp, &bare).unwrap_err(), Ignored::Architecture(9));
    }

    #[test]
    fn a_long_file_name_goes_in_option_67() {
        let long = format!("http://10.0.0.1:8080/{}", "a".repeat(200));
        let many = BootFiles { ipxe: Some(long.clone()), ..files() };
        let request = Message::parse(&discover(&[o(53, [1]), o(60, b"PXEClient"), o(77, b"iPXE")])).unwrap();
        let m = answer(&request, Port::Dhcp, &many).unwrap().message;
        assert!(m.file.is_empty());
        assert_eq!(m.options[&67], long.as_bytes());
        assert_eq!(Message::parse(&m.to_bytes()).unwrap().options[&67], long.as_bytes());
    }
}
