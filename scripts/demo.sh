#!/usr/bin/env bash
# The main job on the demo ISO: `pxelab up` takes fixtures/out/centos-busybox.iso
# to a VM running its (busybox) installer over the network, then restores the
# host. It runs on an isolated libvirt network of its own (pxelab-demo, no
# <forward>), created here and removed afterwards, so the host's `default`
# network is never touched. Needs root (ports 69 and 21, libvirt) and
# libvirtd running (`make demo` runs it under scripts/with-libvirtd.sh).
set -euo pipefail
pxelab=$1 iso=$2
net=pxelab-demo
cleanup() {
    virsh -q -c qemu:///system net-destroy "$net" >/dev/null 2>&1 || true
    virsh -q -c qemu:///system net-undefine "$net" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== the demo ISO"
"$pxelab" iso inspect "$iso"
echo
if virsh -q -c qemu:///system net-info "$net" >/dev/null 2>&1; then
    echo "demo: a network named $net exists already; remove it (virsh net-undefine $net) and try again" >&2
    exit 4
fi
xml=$(mktemp)
# No STP: on a bridge with STP on, a new VM's port drops every frame for
# about 3 s (listening, then learning), which a PXE boot waits out before
# its first DHCP answer. One bridge with no loop needs no spanning tree.
cat >"$xml" <<XML
<network>
  <name>$net</name>
  <bridge name='pxdemo0' stp='off' delay='0'/>
  <ip address='10.251.77.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.251.77.10' end='10.251.77.99'/>
    </dhcp>
  </ip>
</network>
XML
virsh -q -c qemu:///system net-define "$xml" >/dev/null
virsh -q -c qemu:///system net-start "$net" >/dev/null
rm -f "$xml"
echo "== pxelab up --iso $iso --network $net (an isolated network made for the demo)"
"$pxelab" up --iso "$iso" --network "$net" --memory 512 --vcpus 1 --disk-size 1 \
    --wait-for installer --expect 'PXELAB-STAGE: installer ready' --timeout 400
echo
echo "demo: the VM booted over the network into the installer, which fetched its stage2 over HTTP (FTP with --repo ftp);"
echo "demo: pxelab removed the VM and restored the network. Without --wait-for, \`pxelab up\` keeps the lab until Ctrl-C."
