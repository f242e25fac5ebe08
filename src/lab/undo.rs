//! Undoing the journal: the one way pxelab puts the host back.
//!
//! `down`, the end of `up` (Ctrl-C, SIGTERM, a timeout, a normal exit), the
//! recovery after a crash and `net restore` all come here, so every change
//! recorded in `journal.rs` has its undo beside it: a VM is removed (or
//! kept, with `--keep`), a firewall opening closed, a network redefined from
//! its original XML. The order is the reverse of `up`'s: VMs leave the
//! network before it changes.

use serde::Serialize;

use super::event::{EventSink, LabEvent};
use super::journal::{Journal, PatchedNetwork};
use crate::blocking;
use crate::error::{Error, Result};
use crate::virt::network;
use crate::virt::netxml;
use crate::virt::{Libvirt, VirtError};

/// What undoing the journal did, beyond its events.
#[derive(Debug, Default, Serialize)]
pub struct Undone {
    /// VMs left running because the lab was started with `--keep`.
    pub kept_vms: Vec<String>,
}

/// Removes the journal's VMs (or forgets them, with `keep`), closes its
/// firewall openings and restores its networks. Runs every step even when
/// one fails, and returns the first failure.
pub(crate) async fn undo_journal(libvirt: &Libvirt, journal: &Journal, keep: bool, report: EventSink<'_>) -> Result<Undone> {
    let uri = libvirt.uri().to_string();
    let mut first_error: Option<Error> = None;
    let mut undone = Undone::default();
    let journal_err = |e: std::io::Error| Error::environment(format!("cannot read the journal in {}: {e}", journal.dir().display()));
    for vm in journal.vms().map_err(journal_err)?.into_iter().filter(|v| v.uri == uri) {
        if keep {
            report(&LabEvent::Teardown { message: format!("kept VM {} (remove it with `pxelab vm rm {}`)", vm.name, vm.name) });
            undone.kept_vms.push(vm.name.clone());
        } else {
            tracing::debug!("removing VM {}", vm.name);
            match super::vm::remove(libvirt, &vm.name).await {
                Ok(meta) => {
                    if let Err(e) = super::vm::remove_record(&meta).await {
                        first_error.get_or_insert(e);
                    }
                    report(&LabEvent::Teardown { message: format!("removed VM {}", vm.name) })
                }
                Err(VirtError::NoDomain(_)) => report(&LabEvent::Teardown { message: format!("removed VM {}", vm.name) }),
                Err(e) => {
                    first_error.get_or_insert(e.into());
                    continue;
                }
            }
        }
        if let Err(e) = journal.forget_vm(&uri, &vm.name) {
            first_error.get_or_insert(journal_err(e));
        }
    }
    for opening in journal.firewalls().map_err(journal_err)? {
        let (bridge, rules) = (opening.bridge.clone(), opening.rules.clone());
        tracing::debug!("closing the firewall opening on {bridge}");
        match blocking::run(move || crate::firewall::close(&bridge, &rules)).await {
            Ok(()) => {
                report(&LabEvent::Teardown { message: format!("firewall rules for {} removed", opening.bridge) });
                if let Err(e) = journal.forget_firewall(&opening.bridge) {
                    first_error.get_or_insert(journal_err(e));
                }
            }
            Err(e) => {
                first_error.get_or_insert(Error::environment(e));
            }
        }
    }
    for patch in journal.networks().map_err(journal_err)?.into_iter().filter(|n| n.uri == uri) {
        match restore_network(libvirt, journal, &patch, false).await {
            Ok(restored) => {
                let kept = if restored.kept_changes { " (changes made since pxelab patched it were kept)" } else { "" };
                report(&LabEvent::Teardown { message: format!("network {} restored{kept}", patch.network) });
                if let Err(e) = journal.forget_network(&uri, &patch.network) {
                    first_error.get_or_insert(journal_err(e));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(undone),
    }
}

/// What restoring one network took.
#[derive(Debug, Clone)]
pub(crate) struct RestoredNetwork {
    /// The running network was restarted so that dnsmasq dropped the patch.
    pub restarted: bool,
    /// Guest taps plugged back into the bridge after the restart.
    pub reattached: Vec<String>,
    /// Someone changed the network since pxelab patched it: those changes
    /// were kept and only pxelab's were taken out.
    pub kept_changes: bool,
}

/// What restoring a network will do, decided before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RestorePlan {
    /// The definition to put in place, when it differs from the network's now.
    define: Option<String>,
    /// Whether the network runs afterwards.
    run: bool,
    kept_changes: bool,
}

/// Why a network is not restored without `--force`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// Someone undefined it after pxelab patched it.
    Undefined,
}

/// The restore of `entry`, given the network as it is now (`None`: it no
/// longer exists). Pure. A network nobody else touched gets its original
/// definition back byte for byte; one changed since keeps those changes and
/// loses only pxelab's (its bootp, its dnsmasq lines); one undefined since
/// is defined again only with `force`. The running state is the one before
/// the patch, unless pxelab left it stopped and someone started it since.
fn plan_restore(entry: &PatchedNetwork, now: Option<(&str, bool)>, force: bool) -> std::result::Result<RestorePlan, Refusal> {
    let Some((xml, active)) = now else {
        return if force {
            Ok(RestorePlan { define: Some(entry.original_xml.clone()), run: entry.was_active, kept_changes: false })
        } else {
            Err(Refusal::Undefined)
        };
    };
    let changed = entry.patched_xml.as_deref().is_some_and(|patched| patched != xml) && xml != entry.original_xml;
    // A definition pxelab cannot edit (it never is, coming from libvirt) gets
    // the original back, as before, and is not reported as kept.
    let kept = match (&entry.patched_xml, changed) {
        (Some(patched), true) => unpatch(xml, &entry.original_xml, patched).ok(),
        _ => None,
    };
    let kept_changes = kept.is_some();
    let target = kept.unwrap_or_else(|| entry.original_xml.clone());
    let run = match entry.left_running {
        Some(false) => active,
        _ => entry.was_active,
    };
    Ok(RestorePlan { define: (target != xml).then_some(target), run, kept_changes })
}

/// `current` without pxelab's part of `patched`: the bootp goes back to the
/// original's (when it is still pxelab's), and the dnsmasq lines pxelab
/// added go; everything else in `current` stays.
fn unpatch(current: &str, original: &str, patched: &str) -> std::result::Result<String, netxml::XmlError> {
    let mut xml = current.to_string();
    if netxml::bootp_of(current) == netxml::bootp_of(patched) {
        xml = match netxml::bootp_of(original) {
            Some(bootp) => netxml::set_bootp(&xml, &bootp)?,
            None => netxml::remove_bootp(&xml)?,
        };
    }
    let theirs = netxml::dnsmasq_options_of(original);
    let ours: Vec<String> = netxml::dnsmasq_options_of(patched).into_iter().filter(|o| !theirs.contains(o)).collect();
    netxml::remove_dnsmasq_options(&xml, &ours)
}

/// Puts one journaled network back as [`plan_restore`] decides: its
/// definition, its running state (dnsmasq restarted when its live boot
/// settings differ), its autostart flag.
pub(crate) async fn restore_network(libvirt: &Libvirt, journal: &Journal, entry: &PatchedNetwork, force: bool) -> Result<RestoredNetwork> {
    tracing::debug!("restoring network {}", entry.network);
    let name = entry.network.clone();
    let now = libvirt
        .call(move |c| match network::read(c, &name) {
            Ok(state) => Ok(Some(state)),
            Err(VirtError::NoNetwork(_)) => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
    let plan = plan_restore(entry, now.as_ref().map(|s| (s.inactive_xml.as_str(), s.active)), force).map_err(|Refusal::Undefined| {
        Error::environment(format!(
            "network {n} was undefined after pxelab patched it, so pxelab left it gone: `pxelab net restore --network {n} --force` defines it again as it was before the patch, or delete {} to forget it",
            journal.network_entry(&entry.uri, &entry.network).display(),
            n = entry.network
        ))
    })?;
    let entry = entry.clone();
    let restored = libvirt
        .call(move |c| {
            if let Some(xml) = &plan.define {
                network::define(c, xml)?;
            }
            let target = plan.define.clone().or_else(|| now.as_ref().map(|s| s.inactive_xml.clone())).unwrap_or_default();
            let active = now.as_ref().is_some_and(|s| s.active);
            // A running network keeps its patched dnsmasq until restarted:
            // everything the patch touches counts, not just the bootp.
            let live_differs = active && network::live_xml(c, &entry.network).ok().is_none_or(|live| !same_boot_settings(&live, &target));
            let restart = live_differs || active != plan.run;
            if restart {
                network::restart(c, &entry.network, plan.run)?;
            }
            network::set_autostart(c, &entry.network, entry.autostart)?;
            let guests = now.as_ref().map(|s| s.guests.clone()).unwrap_or_default();
            let bridge = netxml::parse(&target).ok().and_then(|n| n.bridge).unwrap_or_default();
            let reattached = if restart && plan.run { network::reattach(&guests, &bridge)? } else { Vec::new() };
            Ok(RestoredNetwork { restarted: restart, reattached, kept_changes: plan.kept_changes })
        })
        .await?;
    Ok(restored)
}

/// Whether two network definitions give DHCP clients the same boot
/// settings: the `<bootp>` and the `<dnsmasq:options>` lines, which are
/// all a patch changes.
fn same_boot_settings(a: &str, b: &str) -> bool {
    netxml::bootp_of(a) == netxml::bootp_of(b) && netxml::dnsmasq_options_of(a) == netxml::dnsmasq_options_of(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'><name>n</name><ip address='10.1.0.1' prefix='24'><dhcp><range start='10.1.0.2' end='10.1.0.9'/><bootp file='pxelinux.0' server='10.1.0.1'/></dhcp></ip>OPTS</network>";

    fn entry(patched: Option<&str>, was_active: bool, left_running: Option<bool>) -> PatchedNetwork {
        PatchedNetwork {
            uri: "qemu:///system".into(),
            network: "n".into(),
            original_xml: BASE.replace("OPTS", ""),
            was_active,
            autostart: false,
            pid: 1,
            at: 0,
            patched_xml: patched.map(str::to_string),
            left_running,
        }
    }

    #[test]
    fn a_restore_keeps_what_someone_else_changed_and_takes_out_only_pxelabs_part() {
        let original = BASE.replace("OPTS", "").replace("<bootp file='pxelinux.0' server='10.1.0.1'/>", "");
        let lab = crate::dhcp::LabDnsmasq { ipxe_script: Some("http://10.1.0.1/boot.ipxe".into()), fast: true, uefi: vec![] };
        let bootp = netxml::Bootp { file: "pxelinux.0".into(), server: Some("10.1.0.1".into()) };
        let patched = netxml::add_dnsmasq_options(&netxml::set_bootp(&original, &bootp).unwrap(), &lab.lines()).unwrap();
        let e = PatchedNetwork { original_xml: original.clone(), ..entry(Some(&patched), true, Some(true)) };
        // Untouched since: the original, byte for byte.
        let plan = plan_restore(&e, Some((&patched, true)), false).unwrap();
        assert_eq!((plan.define.as_deref(), plan.run, plan.kept_changes), (Some(original.as_str()), true, false));
        // A DHCP host added since (virsh net-update --config): kept.
        let host = "<host mac='52:54:00:00:00:01' ip='10.1.0.5'/>";
        let changed = patched.replace("<range start='10.1.0.2' end='10.1.0.9'/>", &format!("<range start='10.1.0.2' end='10.1.0.9'/>{host}"));
        let plan = plan_restore(&e, Some((&changed, true)), false).unwrap();
        let restored = plan.define.unwrap();
        assert!(plan.kept_changes && restored.contains(host), "{restored}");
        assert_eq!(netxml::bootp_of(&restored), None);
        assert!(netxml::dnsmasq_options_of(&restored).is_empty(), "{restored}");
        // Undefined since: only with force, and then as it was.
        assert_eq!(plan_restore(&e, None, false), Err(Refusal::Undefined));
        assert_eq!(plan_restore(&e, None, true).unwrap().define.as_deref(), Some(original.as_str()));
    }

    #[test]
    fn a_network_pxelab_left_stopped_and_someone_started_stays_running() {
        let xml = BASE.replace("OPTS", "");
        // `net patch` on a stopped network, started since: it keeps running.
        assert!(plan_restore(&entry(Some(&xml), false, Some(false)), Some((&xml, true)), false).unwrap().run);
        // `up` started a stopped network: stopped again.
        assert!(!plan_restore(&entry(Some(&xml), false, Some(true)), Some((&xml, true)), false).unwrap().run);
        // An old entry (no record of what pxelab left): as before the patch.
        assert!(!plan_restore(&entry(None, false, None), Some((&xml, true)), false).unwrap().run);
    }

    #[test]
    fn the_same_bootp_with_the_labs_dnsmasq_lines_still_differs() {
        let own = "<dnsmasq:options><dnsmasq:option value='log-dhcp'/></dnsmasq:options>";
        let original = BASE.replace("OPTS", own);
        let lab = crate::dhcp::LabDnsmasq { ipxe_script: Some("http://10.1.0.1/boot.ipxe".into()), fast: true, uefi: vec![] };
        let live = netxml::add_dnsmasq_options(&original, &lab.lines()).unwrap();
        assert_eq!(netxml::bootp_of(&live), netxml::bootp_of(&original), "the bootp alone cannot tell them apart");
        assert!(!same_boot_settings(&live, &original));
        assert!(same_boot_settings(&original, &original.replace("<name>n</name>", "<name>n</name><uuid>x</uuid>")), "other elements do not count");
    }
}
