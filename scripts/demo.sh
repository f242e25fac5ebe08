#!/usr/bin/env bash
# The main job on the demo ISO. `pxelab up` (serve, patch the network, boot a
# VM) is not built yet, so today the demo shows the part that is: what pxelab
# reads from the ISO, without mounting it, and the boot menu it will serve.
set -euo pipefail
pxelab=$1 iso=$2
echo "== pxelab iso inspect $iso"
"$pxelab" iso inspect "$iso"
echo
echo "== the pxelinux menu pxelab will serve for it (server 192.168.122.1, libvirt's default network)"
"$pxelab" iso inspect "$iso" --menu --server 192.168.122.1 | sed -n '/^# pxelinux.cfg/,$p'
echo
echo "pxelab up (serve this ISO over TFTP/FTP, patch the network, boot a VM) is not implemented yet."
