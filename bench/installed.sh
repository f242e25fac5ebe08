#!/usr/bin/env bash
# Time from `pxelab up` to `installed` with a kickstart: the busybox
# installer writes its disk, then reboots into it (installed when the
# installed system prints its login prompt, --expect-installed) or powers
# off. The same VM shape (TCG by the host's choice, 1 vCPU, 512 MiB), each
# lab's own clock. On an isolated network made for the run and removed
# after it. Usage (root, libvirtd, after `make build fixtures`):
#   bash scripts/with-libvirtd.sh bash bench/installed.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
work=$(mktemp -d)
trap 'virsh net-destroy pxin1 >/dev/null 2>&1 || true; virsh net-undefine pxin1 >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cat >"$work/net.xml" <<X
<network><name>pxin1</name><bridge name='pxinb1' stp='on' delay='0'/><ip address='10.231.11.1' netmask='255.255.255.0'><dhcp><range start='10.231.11.10' end='10.231.11.50'/></dhcp></ip></network>
X
virsh net-define "$work/net.xml" >/dev/null; virsh net-start pxin1 >/dev/null
printf 'url --url={http}/iso/\nrootpw --plaintext pxelab\nreboot\n' >"$work/reboot.ks"
printf 'url --url={http}/iso/\nrootpw --plaintext pxelab\npoweroff\n' >"$work/poweroff.ks"
echo "run ending installer installed"
for run in $(seq "$runs"); do
    for ending in reboot poweroff; do
        extra=(--wait-for installed)
        [ "$ending" = reboot ] && extra=(--expect-installed 'pxelab-installed login:')
        PXELAB_STATE_DIR=$work/state ${PXELAB:-target/release/pxelab} --json up --iso fixtures/out/centos-busybox.iso --network pxin1 \
            --memory 512 --vcpus 1 --disk-size 1 --kickstart "$work/$ending.ks" "${extra[@]}" --timeout 300 >"$work/out.json" 2>/dev/null || true
        python3 - "$work/out.json" "$run" "$ending" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
stages = {e["stage"]: e["at"] for e in events if e.get("event") == "stage"}
print(sys.argv[2], sys.argv[3], f"{stages.get('installer', float('nan')):.1f}", f"{stages.get('installed', float('nan')):.1f}")
PY
    done
done
