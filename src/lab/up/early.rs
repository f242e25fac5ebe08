//! The first VM starts while the network restarts.
//!
//! `up`'s two slow steps are the network's restart (its patch: libvirt
//! stops dnsmasq, removes and remakes the bridge, starts dnsmasq; about
//! 0.4 s here) and the VM's start (libvirt launching QEMU: 0.5 to 0.9 s).
//! Each waits on libvirtd, not on the other: QEMU needs the bridge only for
//! the moment libvirt plugs its tap in, before QEMU runs. So on a running
//! network of this host the first VM is launched (paused) first; once its
//! tap is on the bridge the network restarts under it, the tap goes into
//! the new bridge as any guest's does after the restart, and only then does
//! the VM run. It never runs on the unpatched network, and `up` saves the
//! shorter of the two steps. A remote host's bridge cannot be watched from
//! here, and a stopped network has no bridge yet: both go one step after
//! the other, as every VM after the first does.

use std::time::Duration;

use super::plan::Plan;
use super::setup::Launch;
use super::site::Site;
use super::{Lab, UpRequest};
use crate::blocking;
use crate::error::Result;
use crate::virt::network;

/// How often the bridge is looked at for the new VM's tap.
const TAP_POLL: Duration = Duration::from_millis(5);

impl Lab {
    /// Launches the first VM and waits until its tap is on the bridge, when
    /// the network's restart can overlap its start (see the module's note).
    /// The lab's bridge is the one [`Lab::finish_vm`] plugs it back into.
    pub(super) async fn launch_early(&mut self, plan: &Plan, request: &UpRequest) -> Result<Option<Launch>> {
        let Some(net) = plan.segment.network() else { return Ok(None) };
        let bridge = match plan.segment.bridge() {
            Some(bridge) if net.active && plan.proxy.is_none() && self.site == Site::Here && request.vms > 0 => bridge,
            _ => return Ok(None),
        };
        let Some(&firmware) = plan.firmwares.first() else { return Ok(None) };
        let launch = self.launch_vm(request.shape, plan.arch, firmware, &plan.accel).await?;
        let started = std::time::Instant::now();
        // Until the tap is in, or the launch ended (then it failed, or it
        // was faster than a poll: the restart's re-plug covers both).
        loop {
            let (br, mac) = (bridge.clone(), launch.mac);
            if let Some(tap) = blocking::run(move || network::tap_on(&br, mac)).await {
                tracing::debug!("{}'s tap {tap} is on {bridge} after {:?}: restarting the network under it", launch.name, started.elapsed());
                break;
            }
            if launch.ended() {
                break;
            }
            tokio::time::sleep(TAP_POLL).await;
        }
        Ok(Some(launch))
    }
}
