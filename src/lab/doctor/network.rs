//! The network's checks: defined, active, DHCP, no `<tftp>`, the bootp
//! dnsmasq uses (or, for a proxy-DHCP lab, the proxy's checks), the lab's
//! iPXE lines and RA.
//!
//! No I/O here: the caller gathers the facts (libvirt's view of the
//! network, whether the bootp server is this host's) and these functions
//! turn them into findings, so every case is a table test.

use std::net::IpAddr;

use super::Findings;
use crate::boot::syslinux;
use crate::dhcp::LabDnsmasq;
use crate::lab::record::LabRecord;
use crate::virt::network::NetworkState;
use crate::virt::netxml;

/// What the network checks are judged on.
pub(super) struct NetworkFacts<'a> {
    pub state: &'a NetworkState,
    /// The running network's XML (what dnsmasq uses), when it runs.
    pub live_xml: Option<&'a str>,
    /// The lab on this network, if one runs.
    pub lab: Option<&'a LabRecord>,
    /// The bootp server in use is an address of this host.
    pub bootp_server_is_local: bool,
}

impl NetworkFacts<'_> {
    /// The bootp dnsmasq actually uses: the live XML's when the network runs.
    pub fn bootp_in_use(state: &NetworkState, live_xml: Option<&str>) -> Option<netxml::Bootp> {
        let live = live_xml.and_then(|xml| netxml::parse(xml).ok());
        live.as_ref().unwrap_or(&state.parsed).bootp().cloned()
    }
}

/// The network's checks; returns its IPv4 DHCP address, which the port and
/// firewall checks then look at, or `None` when it has no IPv4 DHCP.
pub(super) fn network_checks(f: &mut Findings, facts: &NetworkFacts<'_>) -> Option<IpAddr> {
    let NetworkFacts { state, lab, .. } = facts;
    let name = &state.name;
    let has_lab = lab.is_some();
    // A proxy-DHCP lab leaves the network as it is: no bootp to judge, and a transient network will do.
    let proxied = lab.filter(|l| l.proxy_dhcp.is_some());
    if state.persistent {
        f.ok("network.persistent", format!("network {name} is defined (persistent)"));
    } else if proxied.is_some() {
        f.ok("network.persistent", format!("network {name} is transient: fine for proxy DHCP, which never redefines it"));
    } else {
        f.fail(
            "network.persistent",
            format!("network {name} is transient (not defined): `pxelab up` and `pxelab net patch` refuse it"),
            format!("define it: `virsh net-dumpxml {name} > {name}.xml && virsh net-define {name}.xml`"),
        );
    }
    if state.active {
        f.ok("network.active", format!("network {name} is active"));
    } else {
        f.lab_dependent(
            has_lab,
            "network.active",
            format!("network {name} is not active"),
            format!("`pxelab up --network {name}` starts it; or `virsh net-start {name}`"),
        );
    }

    let Some(dhcp4) = state.parsed.dhcp4() else {
        f.fail(
            "network.dhcp",
            format!("network {name} has no IPv4 <dhcp>: guests get no address and no boot file"),
            format!(
                "add <dhcp><range start=… end=…/></dhcp> to its IPv4 <ip> (`virsh net-edit {name}`), or run your own DHCP server with `pxelab dhcp-config`"
            ),
        );
        return None;
    };
    let address = dhcp4.address;
    f.ok("network.dhcp", format!("IPv4 DHCP on {address}/{}", dhcp4.prefix.map(|p| p.to_string()).unwrap_or_else(|| "?".into())));

    match state.parsed.tftp_root() {
        Some(root) => f.fail(
            "network.tftp",
            format!("network {name} has <tftp root='{root}'/>: libvirt's dnsmasq then holds UDP 69 on {address}"),
            format!("remove the <tftp> element (`virsh net-edit {name}`, then restart the network); pxelab serves TFTP itself"),
        ),
        None => f.ok("network.tftp", "no <tftp> element: UDP 69 is left to pxelab"),
    }

    stp_check(f, state);
    if let Some(lab) = proxied {
        super::proxy::proxy_checks(f, lab);
    } else {
        bootp_check(f, facts, address);
        if let (Some(lab), Some(live)) = (lab, facts.live_xml) {
            ipxe_check(f, state, live, lab);
        }
    }
    if let Some(lab) = lab {
        ra_check(f, lab);
    }
    Some(address)
}

/// Spanning tree is measured and said, never changed: the network is the
/// user's. With it on, a new VM's bridge port drops frames for about 3 s
/// (listening, then learning), and a PXE boot waits that out before its
/// first DHCP answer.
fn stp_check(f: &mut Findings, state: &NetworkState) {
    let name = &state.name;
    let bridge = state.parsed.bridge.as_deref().unwrap_or("its bridge");
    if state.parsed.stp {
        f.warn(
            "network.stp",
            format!("STP is on for {bridge}: each new VM's port forwards nothing for about 3 s, which every PXE boot on {name} waits out"),
            format!("if {bridge} joins no loop, set <bridge stp='off'/> (`virsh net-edit {name}`, then restart it); pxelab leaves it as it is"),
        );
    } else {
        f.ok("network.stp", format!("STP is off for {bridge}: a new VM's port forwards at once"));
    }
}

fn ra_check(f: &mut Findings, lab: &LabRecord) {
    let bridge = lab.bridge.as_deref().unwrap_or("its bridge");
    if lab.ra {
        f.ok("network.ra", format!("the lab answers IPv6 router solicitations on {bridge} (a bare RA: no prefix, router lifetime 0)"));
    } else {
        f.warn(
            "network.ra",
            format!("the lab does not answer router solicitations on {bridge}: iPXE guests wait about 10 s for IPv6 after their lease"),
            "drop --no-ra the next time (`pxelab down`, then `pxelab up`)",
        );
    }
}

/// A lab that serves HTTP sends iPXE clients to boot.ipxe through dnsmasq
/// options on the running network.
fn ipxe_check(f: &mut Findings, state: &NetworkState, live_xml: &str, lab: &LabRecord) {
    let Some(http) = &lab.http else { return };
    let lab_lines = LabDnsmasq::of(&netxml::dnsmasq_options_of(live_xml));
    match lab_lines.ipxe_script {
        Some(url) => {
            let waits = if lab_lines.fast {
                ", with no ping and no ProxyDHCP wait before their first lease"
            } else {
                " (--no-fast-dhcp: dnsmasq pings, iPXE waits for ProxyDHCP)"
            };
            f.ok("network.ipxe", format!("iPXE clients are sent to {url}{waits}"))
        }
        _ => f.fail(
            "network.ipxe",
            format!("the lab serves HTTP on {http}, but network {} has no iPXE lines: iPXE guests fall back to pxelinux over TFTP", state.name),
            "`pxelab down`, then `pxelab up` again: it adds them when it patches the network",
        ),
    }
}

/// The bootp dnsmasq actually uses (live XML when running): present, at
/// an address of this host on the network, naming a file pxelab serves.
fn bootp_check(f: &mut Findings, facts: &NetworkFacts<'_>, address: IpAddr) {
    let (state, has_lab) = (facts.state, facts.lab.is_some());
    let name = &state.name;
    let fix_patch = format!("`pxelab up --network {name}` sets it while the lab runs; or `pxelab net patch --network {name}`");
    let Some(bootp) = NetworkFacts::bootp_in_use(state, facts.live_xml) else {
        if state.parsed.bootp().is_some() {
            f.fail(
                "network.bootp",
                format!("network {name}'s definition has a bootp but the running network does not (defined, not restarted)"),
                format!("restart it: `virsh net-destroy {name} && virsh net-start {name}` (or `pxelab net patch --network {name} --force`)"),
            );
        } else {
            f.lab_dependent(has_lab, "network.bootp", format!("network {name} has no <bootp>: DHCP offers no boot file"), fix_patch);
        }
        return;
    };
    let server: IpAddr = bootp.server.as_deref().and_then(|s| s.parse().ok()).unwrap_or(address);
    let file = bootp.file.trim_start_matches('/');
    let fix_repoint = format!("`pxelab net patch --network {name}` points it at {address}, the host's address on this network");
    if server != address && !facts.bootp_server_is_local {
        f.fail("network.bootp", format!("bootp server {server} is not an address of this host: guests ask another machine for {file}"), fix_repoint);
    } else if server != address {
        f.warn(
            "network.bootp",
            format!("bootp server {server} is this host's, but not its address on {name} ({address}): guests of an isolated network cannot reach it"),
            fix_repoint,
        );
    } else if !syslinux::ASSETS.contains(&file) {
        f.fail(
            "network.bootp",
            format!("bootp file {file:?} is not one pxelab serves: guests get file-not-found"),
            format!("`pxelab net patch --network {name} --file pxelinux.0`"),
        );
    } else {
        f.ok("network.bootp", format!("bootp: {file} from {server}"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    const NET: &str = "<network><name>lab</name><bridge name='virbr9'/><ip address='10.9.0.1' prefix='24'>TFTP<dhcp><range start='10.9.0.10' end='10.9.0.99'/>BOOTP</dhcp></ip></network>";

    fn state(bootp: &str, tftp: &str, active: bool) -> NetworkState {
        let xml = NET.replace("BOOTP", bootp).replace("TFTP", tftp);
        NetworkState {
            name: "lab".into(),
            parsed: netxml::parse(&xml).unwrap(),
            inactive_xml: xml,
            active,
            persistent: true,
            autostart: false,
            guests: Vec::new(),
        }
    }

    fn lab() -> LabRecord {
        serde_json::from_str(
            r#"{"pid":1,"uri":"qemu:///system","iso":"x.iso","distro":"x","network":"lab","bridge":"virbr9","server_ip":"10.9.0.1",
               "tftp":"10.9.0.1:69","ftp":"10.9.0.1:21","http":"10.9.0.1:80","kernel_args":"","started_at":0,"keep":false,"ra":true,
               "ready":true,"vms":[],"transfers":{"tftp_files":0,"tftp_bytes":0,"ftp_files":0,"ftp_bytes":0}}"#,
        )
        .unwrap()
    }

    /// The status and detail of check `id`.
    fn judged(state: &NetworkState, live: Option<&str>, lab: Option<&LabRecord>, local: bool, id: &str) -> (Status, String) {
        let mut f = Findings::default();
        network_checks(&mut f, &NetworkFacts { state, live_xml: live, lab, bootp_server_is_local: local });
        let check = f.0.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no {id} in {:?}", f.0));
        (check.status, check.detail.clone())
    }

    #[test]
    fn bootp_is_judged_by_where_it_points_and_what_it_names() {
        let here = "<bootp file='pxelinux.0' server='10.9.0.1'/>";
        let other_local = "<bootp file='pxelinux.0' server='192.168.5.1'/>";
        let elsewhere = "<bootp file='pxelinux.0' server='203.0.113.7'/>";
        let unknown_file = "<bootp file='boot/foo.efi' server='10.9.0.1'/>";
        let table: [(&str, bool, bool, Status, &str); 7] = [
            (here, true, false, Status::Ok, "bootp: pxelinux.0 from 10.9.0.1"),
            (other_local, true, false, Status::Warn, "not its address on lab"),
            (elsewhere, false, false, Status::Fail, "not an address of this host"),
            (unknown_file, true, false, Status::Fail, "not one pxelab serves"),
            ("", true, false, Status::Warn, "has no <bootp>"),
            ("", true, true, Status::Fail, "has no <bootp>"),
            ("<bootp file='pxelinux.0'/>", true, false, Status::Ok, "from 10.9.0.1"),
        ];
        let lab = lab();
        for (bootp, local, with_lab, status, detail) in table {
            let s = state(bootp, "", true);
            let got = judged(&s, None, with_lab.then_some(&lab), local, "network.bootp");
            assert_eq!(got.0, status, "{bootp} (lab {with_lab}): {}", got.1);
            assert!(got.1.contains(detail), "{bootp}: {:?} lacks {detail:?}", got.1);
        }
    }

    #[test]
    fn the_running_networks_bootp_is_the_one_that_counts() {
        // Defined with a bootp, running without: restarted since? No.
        let s = state("<bootp file='pxelinux.0' server='10.9.0.1'/>", "", true);
        let live = NET.replace("BOOTP", "").replace("TFTP", "");
        let (status, detail) = judged(&s, Some(&live), None, true, "network.bootp");
        assert_eq!(status, Status::Fail);
        assert!(detail.contains("running network does not"), "{detail}");
    }

    #[test]
    fn a_tftp_element_an_inactive_network_and_no_dhcp_are_named() {
        let s = state("", "<tftp root='/srv/tftp'/>", false);
        assert_eq!(judged(&s, None, None, true, "network.tftp").0, Status::Fail);
        assert_eq!(judged(&s, None, None, true, "network.active").0, Status::Warn, "before up, inactive is what up fixes");
        assert_eq!(judged(&s, None, Some(&lab()), true, "network.active").0, Status::Fail, "with a lab running it is a failure");
        let xml = "<network><name>lab</name><ip address='10.9.0.1' prefix='24'/></network>";
        let no_dhcp = NetworkState { parsed: netxml::parse(xml).unwrap(), inactive_xml: xml.into(), ..state("", "", true) };
        let mut f = Findings::default();
        assert_eq!(network_checks(&mut f, &NetworkFacts { state: &no_dhcp, live_xml: None, lab: None, bootp_server_is_local: true }), None);
        assert!(f.0.iter().any(|c| c.id == "network.dhcp" && c.status == Status::Fail));
    }

    #[test]
    fn a_lab_without_its_ipxe_lines_fails_and_with_them_passes() {
        let s = state("<bootp file='pxelinux.0' server='10.9.0.1'/>", "", true);
        let bare = NET.replace("BOOTP", "<bootp file='pxelinux.0' server='10.9.0.1'/>").replace("TFTP", "");
        assert_eq!(judged(&s, Some(&bare), Some(&lab()), true, "network.ipxe").0, Status::Fail);
        let lines = LabDnsmasq { ipxe_script: Some("http://10.9.0.1/boot.ipxe".into()), fast: true, uefi: vec![] }.lines();
        let patched = netxml::add_dnsmasq_options(&bare, &lines).unwrap();
        let (status, detail) = judged(&s, Some(&patched), Some(&lab()), true, "network.ipxe");
        assert_eq!(status, Status::Ok, "{detail}");
        assert!(detail.contains("http://10.9.0.1/boot.ipxe") && detail.contains("no ping"), "{detail}");
    }
}
