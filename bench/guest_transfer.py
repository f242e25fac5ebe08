#!/usr/bin/env python3
"""Kernel and initrd into a TCG guest: TFTP (pxelinux) against HTTP (iPXE).

`pxelab up` boots the same ISO twice per run on an isolated network made for
the bench: once with `--http-port none` (the seed's path: iPXE's PXE ROM runs
pxelinux.0, which fetches the kernel and initrd over TFTP) and once as
shipped (iPXE fetches boot.ipxe, the kernel and the initrd over HTTP). The
times are pxelab's own transfer events for each file: from the request to
the last byte sent, as seen by the server, so guest boot time is not in them.
Same VM shape for both (1 vCPU, 1 GiB, TCG). REPS runs each, alternating;
medians; HTTP's speed over TFTP's.

Usage: bench/guest_transfer.py [REPS]   (root, libvirtd running; after `make build fixtures`)
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchnet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PXELAB = os.path.join(ROOT, "target", "release", "pxelab")
FIXTURES = os.path.join(ROOT, "fixtures", "out")
URI = "qemu:///system"
NET, BRIDGE, IP = "pxbench-xfer", "pxbenchx0", "10.252.2.1"
ISOS = [
    # name, ISO, kernel, initrd (paths in the ISO)
    ("big initrd (100 MiB)", "centos-bigrd.iso", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img"),
    ("busybox", "centos-busybox.iso", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img"),
]


def run(iso, kernel, initrd, http):
    """One `up` to the kernel stage; (protocol, seconds per file) from its transfer events."""
    state = tempfile.mkdtemp(prefix="pxbench-state-")
    args = [PXELAB, "-c", URI, "--json", "up", "--iso", os.path.join(FIXTURES, iso), "--network", NET,
            "--wait-for", "kernel", "--timeout", "300", "--vcpus", "1", "--memory", "1024", "--disk-size", "1"]
    if not http:
        args += ["--http-port", "none", "--repo", "ftp"]
    out = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PXELAB_STATE_DIR": state})
    events = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0:
        sys.exit(f"bench: up failed ({out.returncode}): {out.stderr.strip()}")
    times = {}
    for e in events:
        if e.get("event") == "transfer" and e.get("complete"):
            path = e["path"].lstrip("/")
            for what, want in (("kernel", f"iso/{kernel}"), ("initrd", f"iso/{initrd}")):
                if path == want:
                    times[what] = (e["protocol"], e["seconds"], e["bytes"])
    if set(times) != {"kernel", "initrd"}:
        sys.exit(f"bench: no complete kernel and initrd transfers in {iso}: {times}")
    expected = "http" if http else "tftp"
    if any(p != expected for p, _, _ in times.values()):
        sys.exit(f"bench: expected {expected} transfers, got {times}")
    return times


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if not os.access(PXELAB, os.X_OK):
        sys.exit("bench: build pxelab first (make build)")
    benchnet.remove_network(NET)
    benchnet.make_network(NET, BRIDGE, IP)
    rows = []
    try:
        for name, iso, kernel, initrd in ISOS:
            got = {"tftp": [], "http": []}
            for _ in range(reps):
                for proto in ("tftp", "http"):
                    got[proto].append(run(iso, kernel, initrd, proto == "http"))
            for what in ("kernel", "initrd"):
                size = got["http"][0][what][2]
                t = statistics.median(r[what][1] for r in got["tftp"])
                h = statistics.median(r[what][1] for r in got["http"])
                rows.append((name, what, size, t, h))
                print(f"  {name:22} {what:7} {size / 1e6:7.1f} MB  TFTP {t:6.2f} s  HTTP {h:6.2f} s", flush=True)
    finally:
        benchnet.remove_network(NET)
    print()
    print(f"Kernel and initrd into a TCG guest (1 vCPU, 1 GiB), {reps} runs each, medians of pxelab's transfer events:")
    print()
    print("| ISO | file | MB | TFTP s | TFTP MB/s | HTTP s | HTTP MB/s | HTTP speed ÷ TFTP |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, what, size, t, h in rows:
        print(f"| {name} | {what} | {size / 1e6:.1f} | {t:.2f} | {size / 1e6 / t:.1f} | {h:.2f} | {size / 1e6 / h:.1f} | {t / h:.1f}× |")


if __name__ == "__main__":
    main()
