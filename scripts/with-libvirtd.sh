#!/usr/bin/env bash
# Runs a command with virtlogd and libvirtd running: starts the ones that are
# not (these machines have no systemd), and stops exactly those afterwards.
# Usage: scripts/with-libvirtd.sh COMMAND [ARGS...]
set -euo pipefail
started=()
stop_started() {
    for daemon in "${started[@]}"; do
        pkill -x "$daemon" 2>/dev/null || true
    done
}
trap stop_started EXIT
if ! command -v libvirtd >/dev/null; then
    echo "with-libvirtd: libvirtd is not installed; run \`make deps\` first" >&2
    exit 4
fi
# Live processes only: a zombie left by an earlier run is not a daemon.
running() { pgrep -x -r R,S,D "$1" >/dev/null; }
answers() { virsh -c qemu:///system version >/dev/null 2>&1; }
if ! running virtlogd; then virtlogd -d; started+=(virtlogd); fi
if ! answers && ! running libvirtd; then libvirtd -d; started+=(libvirtd); fi
for _ in $(seq 1 30); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 1
done
if ! virsh -c qemu:///system version >/dev/null 2>&1; then
    echo "with-libvirtd: libvirtd does not answer at qemu:///system" >&2
    exit 4
fi
"$@"
