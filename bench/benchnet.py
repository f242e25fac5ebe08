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
    xml = f"""<network>
  <name>{name}</name>
  <bridge name='{bridge}' stp='{stp}' delay='0'/>
  <ip address='{ip}' netmask='255.255.255.0'>
    <dhcp>
      <range start='{subnet}.10' end='{subnet}.99'/>
    </dhcp>
  </ip>
</network>
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
