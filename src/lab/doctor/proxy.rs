//! A proxy-DHCP lab's checks (`up --proxy-dhcp`): in place of the bootp
//! patch's, whether pxelab's answers are seen, and whether another proxy
//! answers PXE clients on the same segment.
//!
//! Judged on the counters the lab keeps in `lab.json` (`ProxyRecord`):
//! doctor runs in another process and must not open a socket on port 67
//! itself. Another proxy is seen by its offers without an address: PXE
//! clients (iPXE, edk2) set the broadcast flag, so those offers reach the
//! bridge's own port.

use super::Findings;
use crate::lab::record::LabRecord;

pub(super) fn proxy_checks(f: &mut Findings, lab: &LabRecord) {
    let Some(proxy) = &lab.proxy_dhcp else { return };
    let iface = &proxy.interface;
    if proxy.answered > 0 {
        f.ok("proxy.answers", format!("the lab's proxy DHCP on {iface} answered {} PXE request(s); the network's DHCP is untouched", proxy.answered));
    } else if lab.vms.is_empty() {
        f.ok("proxy.answers", format!("the lab's proxy DHCP waits for PXE clients on {iface} (none asked yet)"));
    } else {
        f.warn(
            "proxy.answers",
            format!("the lab's proxy DHCP on {iface} has answered no PXE client, though the lab has VMs"),
            format!("check that the VMs boot from the network and are plugged into {iface}, and that the segment's DHCP server answers them (the proxy hands out no addresses)"),
        );
    }
    if proxy.other_proxies > 0 {
        f.warn(
            "proxy.others",
            format!("another proxy DHCP answers PXE clients on {iface} ({} offer(s) without an address from another server): clients may boot its file instead of pxelab's", proxy.other_proxies),
            "stop the other proxy (e.g. dnsmasq with `dhcp-range=…,proxy`, or another PXE server), or run the lab on a segment of its own",
        );
    } else {
        f.ok("proxy.others", format!("no other proxy DHCP heard on {iface}"));
    }
    if proxy.rate_limited > 0 {
        f.warn(
            "proxy.rate",
            format!("{} PXE request(s) on {iface} went unanswered: more than the proxy answers a second (4 per client, 64 in all)", proxy.rate_limited),
            "look for a client stuck in a DHCP loop on the segment",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::doctor::Status;
    use crate::lab::record::ProxyRecord;

    fn lab(proxy: ProxyRecord, vms: usize) -> LabRecord {
        let mut lab: LabRecord = serde_json::from_value(serde_json::json!({
            "pid": 1, "uri": "qemu:///system", "iso": "a.iso", "distro": "x", "network": "lab", "bridge": "br0",
            "server_ip": "10.0.0.1", "tftp": "", "ftp": "", "kernel_args": "", "started_at": 0, "keep": false,
            "ready": true, "vms": [], "transfers": {"tftp_files": 0, "tftp_bytes": 0, "ftp_files": 0, "ftp_bytes": 0}
        }))
        .unwrap();
        lab.proxy_dhcp = Some(proxy);
        lab.vms = (0..vms).map(|i| crate::lab::progress::VmProgress::new(&format!("vm{i}"), "52:54:00:00:00:01", "/dev/null", 0.0)).collect();
        lab
    }

    fn judged(lab: &LabRecord) -> Vec<(String, Status, String)> {
        let mut f = Findings::default();
        proxy_checks(&mut f, lab);
        f.0.into_iter().map(|c| (c.id.to_string(), c.status, c.detail)).collect()
    }

    #[test]
    fn answers_and_other_proxies_are_judged_from_the_labs_counters() {
        let base = ProxyRecord { interface: "br0".into(), ..ProxyRecord::default() };
        let cases = [
            (ProxyRecord { answered: 2, ..base.clone() }, 1, "proxy.answers", Status::Ok, "answered 2"),
            (base.clone(), 0, "proxy.answers", Status::Ok, "none asked yet"),
            (base.clone(), 1, "proxy.answers", Status::Warn, "answered no PXE client"),
            (base.clone(), 1, "proxy.others", Status::Ok, "no other proxy"),
            (ProxyRecord { other_proxies: 3, ..base.clone() }, 1, "proxy.others", Status::Warn, "3 offer(s)"),
            (ProxyRecord { rate_limited: 9, ..base.clone() }, 1, "proxy.rate", Status::Warn, "9 PXE request(s)"),
        ];
        for (proxy, vms, id, status, words) in cases {
            let found = judged(&lab(proxy.clone(), vms));
            let (_, got, detail) = found.iter().find(|(i, _, _)| i == id).unwrap_or_else(|| panic!("{id} missing: {found:?}"));
            assert_eq!(*got, status, "{proxy:?}: {detail}");
            assert!(detail.contains(words), "{detail}");
        }
        let mut plain = lab(base, 1);
        plain.proxy_dhcp = None;
        assert!(judged(&plain).is_empty(), "a patched lab has no proxy checks");
    }
}
