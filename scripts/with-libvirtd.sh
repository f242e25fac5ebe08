#!/usr/bin/env bash
# Runs a command with virtlogd and libvirtd running: starts the ones that are
# not (these machines have no systemd), and afterwards stops exactly the
# processes it started, by pid: a daemon another run started (two overlapping
# `make test`s) is left alone.
# Usage: scripts/with-libvirtd.sh COMMAND [ARGS...]
set -euo pipefail
pids=$(mktemp -d)
stop_started() {
    for pidfile in "$pids"/*.pid; do
        [ -e "$pidfile" ] || continue
        daemon=$(basename "$pidfile" .pid)
        pid=$(cat "$pidfile" 2>/dev/null || true)
        # Only if that pid is still the daemon we started (pids get reused).
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$daemon" ]; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
    done
    rm -rf "$pids"
}
trap stop_started EXIT
if ! command -v libvirtd >/dev/null; then
    echo "with-libvirtd: libvirtd is not installed; run \`make deps\` first" >&2
    exit 4
fi
# Live processes only: a zombie left by an earlier run is not a daemon.
running() { pgrep -x -r R,S,D "$1" >/dev/null; }
answers() { virsh -c qemu:///system version >/dev/null 2>&1; }
if ! running virtlogd; then virtlogd -d -p "$pids/virtlogd.pid"; fi
if ! answers && ! running libvirtd; then libvirtd -d -p "$pids/libvirtd.pid"; fi
for _ in $(seq 1 30); do
    answers && break
    sleep 1
done
if ! answers; then
    echo "with-libvirtd: libvirtd does not answer at qemu:///system" >&2
    exit 4
fi
"$@"
