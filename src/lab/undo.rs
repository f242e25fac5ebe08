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
use crate::virt::{domain, Libvirt, VirtError};

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
            let name = vm.name.clone();
            tracing::debug!("removing VM {name}");
            match libvirt.call(move |c| domain::remove(c, &name)).await {
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
        match restore_network(libvirt, &patch).await {
            Ok(_) => {
                report(&LabEvent::Teardown { message: format!("network {} restored", patch.network) });
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
}

/// Puts one journaled network back as it was: its inactive XML byte for
/// byte, its running state, its autostart flag.
pub(crate) async fn restore_network(libvirt: &Libvirt, entry: &PatchedNetwork) -> Result<RestoredNetwork> {
    let entry = entry.clone();
    tracing::debug!("restoring network {}", entry.network);
    let restored = libvirt
        .call(move |c| {
            let now = match network::read(c, &entry.network) {
                Ok(state) => Some(state),
                Err(VirtError::NoNetwork(_)) => None,
                Err(e) => return Err(e),
            };
            let definition_differs = now.as_ref().is_none_or(|s| s.inactive_xml != entry.original_xml);
            if definition_differs {
                network::define(c, &entry.original_xml)?;
            }
            let active = now.as_ref().is_some_and(|s| s.active);
            // A running network keeps its patched dnsmasq until restarted:
            // everything the patch touches counts, not just the bootp (a
            // network that already had pxelab's bootp still has the lab's
            // dnsmasq lines live).
            let live_differs = active && network::live_xml(c, &entry.network).ok().is_none_or(|live| !same_boot_settings(&live, &entry.original_xml));
            let guests = now.as_ref().map(|s| s.guests.clone()).unwrap_or_default();
            let restart = live_differs || active != entry.was_active;
            if restart {
                network::restart(c, &entry.network, entry.was_active)?;
            }
            network::set_autostart(c, &entry.network, entry.autostart)?;
            let bridge = netxml::parse(&entry.original_xml).ok().and_then(|n| n.bridge).unwrap_or_default();
            let reattached = if restart && entry.was_active { network::reattach(&guests, &bridge)? } else { Vec::new() };
            Ok(RestoredNetwork { restarted: restart, reattached })
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

    #[test]
    fn the_same_bootp_with_the_labs_dnsmasq_lines_still_differs() {
        let own = "<dnsmasq:options><dnsmasq:option value='log-dhcp'/></dnsmasq:options>";
        let original = BASE.replace("OPTS", own);
        let lab = crate::dhcp::LabDnsmasq { ipxe_script: Some("http://10.1.0.1/boot.ipxe".into()), fast: true, uefi: None };
        let live = netxml::add_dnsmasq_options(&original, &lab.lines()).unwrap();
        assert_eq!(netxml::bootp_of(&live), netxml::bootp_of(&original), "the bootp alone cannot tell them apart");
        assert!(!same_boot_settings(&live, &original));
        assert!(same_boot_settings(&original, &original.replace("<name>n</name>", "<name>n</name><uuid>x</uuid>")), "other elements do not count");
    }
}
