//! `--proxy-dhcp`: PXE boots on networks whose DHCP pxelab does not touch.
//! The address comes from the network's own DHCP server (libvirt's
//! dnsmasq, or a site's), the boot file from pxelab's proxy; the network's
//! XML never changes, and clients that are not PXE clients hear nothing
//! from pxelab.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::net::TestNet;
use common::{events, fixture};

/// A lab on an isolated libvirt network that is not patched: a BIOS and a
/// UEFI VM get their addresses from libvirt's dnsmasq and their boot files
/// from pxelab, and reach the installer; the network's live and inactive
/// XML are byte-identical before, throughout and after.
#[test]
fn vms_on_an_unpatched_libvirt_network_boot_through_the_proxy() {
    let net = TestNet::with_dhcp();
    let (inactive, live) = (net.inactive_xml(), without_connections(&net.live_xml()));
    let iso = fixture("centos-busybox.iso");
    let child = net
        .pxelab_command(&[
            "--json",
            "up",
            "--proxy-dhcp",
            "--iso",
            iso.to_str().unwrap(),
            "--network",
            &net.name,
            "--firmware",
            "both",
            "--memory",
            "512",
            "--vcpus",
            "1",
            "--disk-size",
            "1",
            "--expect",
            "PXELAB-STAGE: installer ready",
            "--timeout",
            "400",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its output is read by a thread (a full pipe would stop the lab); the
    // XML, read throughout the lab: never a byte changed.
    let lab = std::thread::spawn(move || child.wait_with_output().unwrap());
    let mut samples = 0;
    let started = Instant::now();
    while !lab.is_finished() && started.elapsed() < Duration::from_secs(420) {
        assert_eq!(net.inactive_xml(), inactive, "the inactive XML changed while the lab ran");
        assert_eq!(without_connections(&net.live_xml()), live, "the live XML changed while the lab ran");
        samples += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = lab.join().unwrap();
    let events = events(&out);
    assert!(out.status.success(), "up failed ({:?}): {}\n{:?}", out.status.code(), String::from_utf8_lossy(&out.stderr), events.last());
    assert!(samples > 5, "the XML was read {samples} times");

    let vms: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "summary").flat_map(|e| e["vms"].as_array().unwrap()).collect();
    assert_eq!(vms.len(), 2, "a BIOS and a UEFI VM: {events:?}");
    for vm in &vms {
        let name = vm["name"].as_str().unwrap();
        assert_eq!(vm["stage"], "installer", "{vm}");
        // Its address is libvirt's dnsmasq's (the network's range), its boot file pxelab's.
        let ip = vm["ip"].as_str().unwrap_or_default();
        let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!(ip.starts_with(net.ip.trim_end_matches(".1")) && (10..=99).contains(&last), "{name}'s address {ip} is not from the network's range");
        let answered = format!("proxy DHCP: {name} (Ipxe PXE client) boots http://{}/boot.ipxe", net.ip);
        assert!(events.iter().any(|e| e["event"] == "step" && e["message"] == answered.as_str()), "no proxy answer to {name}: {events:?}");
    }
    let step =
        events.iter().find(|e| e["event"] == "step" && e["message"].as_str().is_some_and(|m| m.starts_with("proxy DHCP on "))).expect("the proxy's step");
    assert!(step["message"].as_str().unwrap().contains(&net.bridge), "{step}");
    assert!(!events.iter().any(|e| e["event"] == "step" && e["message"].as_str().is_some_and(|m| m.starts_with("network "))), "the network was patched");
    assert!(events.iter().any(|e| e["event"] == "teardown" && e["message"] == "proxy DHCP stopped"), "{events:?}");
    assert_eq!(net.inactive_xml(), inactive);
    assert_eq!(without_connections(&net.live_xml()), live);
    net.assert_restored(&inactive, "after the proxy lab");
}

/// The live XML without libvirt's count of attached guests
/// (`<network connections='2'>`): the VMs change it, not pxelab.
fn without_connections(xml: &str) -> String {
    regex::Regex::new(r" connections='\d+'").unwrap().replace(xml, "").into_owned()
}
