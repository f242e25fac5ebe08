#!/usr/bin/env python3
"""Proxy DHCP against the bootp patch: the time to the installer.

`pxelab up` boots the busybox fixture to its installer marker, from the
command's start to its `reached` event, once with the network patched (as
shipped) and once with `--proxy-dhcp` (the network left as it is), under
BIOS and UEFI, alternating, REPS runs each, medians, same VM (TCG, 1 vCPU,
512 MiB) on an isolated network made for the bench.

What differs: with the patch, the lab also adds `no-ping` to the network's
dnsmasq; a proxy may not touch the network, so dnsmasq pings each new
address for 3 s before it offers it. BENCH_NOPING=1 gives the bench network
`no-ping` of its own, which leaves the two boot paths alone to compare.

Usage: bench/proxy.py [REPS]   (root, libvirtd running; after `make build fixtures`)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchnet  # noqa: E402
import savings  # noqa: E402

savings.NET, BRIDGE, IP = "pxbench-proxy", "pxbenchp0", "10.252.4.1"
CONFIGS = [
    ("BIOS, bootp patch", []),
    ("BIOS, `--proxy-dhcp`", ["--proxy-dhcp"]),
    ("UEFI, bootp patch", ["--firmware", "uefi"]),
    ("UEFI, `--proxy-dhcp`", ["--firmware", "uefi", "--proxy-dhcp"]),
]


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    benchnet.remove_network(savings.NET)
    benchnet.make_network(savings.NET, BRIDGE, IP)
    results = {name: [] for name, _ in CONFIGS}
    try:
        for _ in range(reps):
            for name, extra in CONFIGS:
                total, stages = savings.run(extra)
                results[name].append((total, stages))
                print(f"  {name:30} {total:6.1f} s  stages {stages}", flush=True)
    finally:
        benchnet.remove_network(savings.NET)
    noping = os.environ.get("BENCH_NOPING") == "1"
    stp = os.environ.get("BENCH_STP", "on")
    print()
    print(f"busybox fixture to its installer marker, TCG, 1 vCPU, 512 MiB, {reps} runs each, medians; "
          f"network STP {stp}, dnsmasq {'with no-ping of its own' if noping else 'as libvirt makes it (pings)'}:")
    savings.table(results)


if __name__ == "__main__":
    main()
