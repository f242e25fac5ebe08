"""An isolated libvirt network for a benchmark: no <forward>, its own name,
bridge and subnet, removed afterwards. Shared by the bench scripts."""
import json
import os
import subprocess
import tempfile

URI = "qemu:///system"


def virsh(*args, check=True):
    return subprocess.run(["virsh", "-q", "-c", URI, *args], check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def make_network(name, bridge, ip, stp=None):
    """Defines and starts NAME on BRIDGE at IP/24, DHCP .10-.99; returns its inactive XML.

    STP is libvirt's default (on), as on the host's `default` network,
    unless `stp` or BENCH_STP=off says otherwise: with it on, a new VM's
    port drops frames for about 3 s, which PXE waits out and a direct
    kernel boot does not (see the README's timeline)."""
    subnet = ip.rsplit(".", 1)[0]
    stp = stp or os.environ.get("BENCH_STP", "on")
    # BENCH_NOPING=1: dnsmasq leases a new address without pinging it first
    # (the line `pxelab up` adds for its lab), so a method that does not
    # patch the network does not wait 3 s for its guest's first lease either.
    noping = os.environ.get("BENCH_NOPING") == "1"
    ns = " xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'" if noping else ""
    extra = "  <dnsmasq:options>\n    <dnsmasq:option value='no-ping'/>\n  </dnsmasq:options>\n" if noping else ""
    xml = f"""<network{ns}>
  <name>{name}</name>
  <bridge name='{bridge}' stp='{stp}' delay='0'/>
  <ip address='{ip}' netmask='255.255.255.0'>
    <dhcp>
      <range start='{subnet}.10' end='{subnet}.99'/>
    </dhcp>
  </ip>
{extra}</network>
"""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
    try:
        virsh("net-define", f.name)
        virsh("net-start", name)
    finally:
        os.unlink(f.name)
    return virsh("net-dumpxml", name, "--inactive").stdout


def remove_network(name):
    virsh("net-destroy", name, check=False)
    virsh("net-undefine", name, check=False)


def events(lines):
    """The JSON events of `pxelab --json up` among `lines` (a pipe, read as
    they come), skipping anything that is not one."""
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            continue
