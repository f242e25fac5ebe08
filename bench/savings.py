#!/usr/bin/env python3
"""What each of pxelab's boot-time savings buys, one at a time.

`pxelab up` boots the busybox fixture to its installer marker, from the
command's start to its `reached` event, as shipped and with each saving
turned off alone, then with all of them off:
- as shipped: iPXE fetches boot.ipxe, the VM's own script, the kernel and
  initrd over HTTP (no pxelinux, no menu); the lab answers router
  solicitations (RA); dnsmasq does not ping and iPXE does not wait for
  ProxyDHCP (fast DHCP);
- `--no-fast-dhcp`: the first lease waits for dnsmasq's ping and iPXE's
  ProxyDHCP window;
- `--no-ra`: iPXE waits for IPv6 autoconfiguration after its lease;
- `--http-port none`: pxelinux.0 over TFTP, then the VM's own pxelinux
  config (no menu), the kernel and initrd over TFTP;
- all three off.
The menu's own wait (5 s, plus loading vesamenu) is gone in every row: the
lab's VMs never see it (bench/up_vs_manual.py keeps a 0.1 s one).
Same VM (TCG, 1 vCPU, 512 MiB), an isolated network made for the bench, REPS
runs each, alternating, medians.

Usage: bench/savings.py [REPS]   (root, libvirtd running; after `make build fixtures`)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchnet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PXELAB = os.path.join(ROOT, "target", "release", "pxelab")
ISO = os.path.join(ROOT, "fixtures", "out", "centos-busybox.iso")
NET, BRIDGE, IP = "pxbench-save", "pxbenchs0", "10.252.3.1"
MARKER = "PXELAB-STAGE: installer ready"
CONFIGS = [
    ("as shipped (iPXE over HTTP, RA, fast DHCP)", []),
    ("`--no-fast-dhcp`", ["--no-fast-dhcp"]),
    ("`--no-ra`", ["--no-ra"]),
    ("`--http-port none` (pxelinux, TFTP)", ["--http-port", "none"]),
    ("all three off", ["--no-fast-dhcp", "--no-ra", "--http-port", "none"]),
]


def run(extra):
    """Seconds from the command's start to its `reached` event, and the stage times."""
    state = tempfile.mkdtemp(prefix="pxbench-state-")
    args = [PXELAB, "-c", benchnet.URI, "--json", "up", "--iso", ISO, "--network", NET, "--vcpus", "1", "--memory", "512",
            "--disk-size", "1", "--wait-for", "installer", "--expect", MARKER, "--timeout", "300", *extra]
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PXELAB_STATE_DIR": state})
    reached, stages = None, {}
    for event in benchnet.events(proc.stdout):
        if event.get("event") == "stage":
            stages[event["stage"]] = event["at"]
        if event.get("event") == "reached":
            reached = time.monotonic() - start
    proc.wait()
    if proc.returncode != 0 or reached is None:
        sys.exit(f"bench: up {' '.join(extra)} failed ({proc.returncode})")
    return reached, stages


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    benchnet.remove_network(NET)
    benchnet.make_network(NET, BRIDGE, IP)
    results = {name: [] for name, _ in CONFIGS}
    try:
        for _ in range(reps):
            for name, extra in CONFIGS:
                total, stages = run(extra)
                results[name].append((total, stages))
                print(f"  {name:50} {total:6.1f} s  stages {stages}", flush=True)
    finally:
        benchnet.remove_network(NET)
    print()
    print(f"busybox fixture to its installer marker, TCG, 1 vCPU, 512 MiB, {reps} runs each, medians:")
    table(results)


def table(results):
    """The medians of each configuration's runs, as a Markdown table."""
    print()
    print("| configuration | to installer s | dhcp s | bootloader s | kernel s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, runs in results.items():
        med = lambda key: statistics.median(r[1].get(key, float("nan")) for r in runs)  # noqa: E731
        print(f"| {name} | {statistics.median(r[0] for r in runs):.1f} | {med('dhcp'):.1f} | {med('bootloader'):.1f} | {med('kernel'):.1f} |")


if __name__ == "__main__":
    main()
