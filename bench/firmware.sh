#!/usr/bin/env bash
# Time from `pxelab up` to the installer marker, BIOS vs UEFI vs UEFI with
# Secure Boot: the same fixture, the same VM shape (TCG by the host's
# choice, 1 vCPU, 512 MiB), the same marker, the clock of each lab's own
# events (seconds since it started). On an isolated network made for the
# run and removed after it. Usage (root, libvirtd, after `make build
# fixtures`): bash scripts/with-libvirtd.sh bash bench/firmware.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
work=$(mktemp -d)
trap 'virsh net-destroy pxfw1 >/dev/null 2>&1 || true; virsh net-undefine pxfw1 >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cat > "$work/net.xml" <<X
<network><name>pxfw1</name><bridge name='pxfwb1' stp='on' delay='0'/><ip address='10.231.9.1' netmask='255.255.255.0'><dhcp><range start='10.231.9.10' end='10.231.9.50'/></dhcp></ip></network>
X
virsh net-define "$work/net.xml" >/dev/null; virsh net-start pxfw1 >/dev/null
echo "run firmware seconds"
for run in $(seq "$runs"); do
  for fw in "bios" "uefi" "uefi --secure-boot"; do
    # shellcheck disable=SC2086 # "uefi --secure-boot" is two words on purpose
    PXELAB_STATE_DIR=$work/state ${PXELAB:-target/release/pxelab} --json up --iso fixtures/out/centos-busybox.iso --network pxfw1 --memory 512 --vcpus 1 --disk-size 1 --firmware $fw --wait-for installer --expect "PXELAB-STAGE: installer ready" --timeout 300 >"$work/out.json" 2>/dev/null || true
    s=$(python3 -c "import json,sys; print(next((e['seconds'] for e in map(json.loads, open(sys.argv[1])) if e.get('event') == 'reached'), 'timeout'))" "$work/out.json")
    echo "$run ${fw/ /} $s"
  done
done
