#!/usr/bin/env python3
"""N labs at once on one host (N = 1, 2, 4): the time until every lab's VM
reached its installer, and pxelab's own CPU time and peak RSS per lab.

Each lab: its own isolated network (made for the run, removed after it), one
state directory shared by all (as a CI runner's parallel jobs share one),
`pxelab up --iso fixtures/out/centos-busybox.iso --wait-for installer --expect
'PXELAB-STAGE: installer ready'`, the same VM shape (TCG by the host's choice,
1 vCPU, 512 MiB). All N start at the same instant; the clock starts then and
stops when the last one exits. pxelab's CPU and RSS are the `up` process's
own (`wait4`'s rusage: user + system time, peak resident set), not the
guests'.

Usage (root, libvirtd, after `make build fixtures`):
    bash scripts/with-libvirtd.sh python3 bench/labs.py [RUNS]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

PXELAB = os.environ.get("PXELAB", "target/release/pxelab")


def sh(*args):
    subprocess.run(args, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def networks(n, work):
    names = []
    for i in range(1, n + 1):
        name = f"pxlab{i}"
        xml = os.path.join(work, f"{name}.xml")
        with open(xml, "w") as f:
            f.write(f"<network><name>{name}</name><bridge name='pxlabb{i}' stp='on' delay='0'/>"
                    f"<ip address='10.231.{40 + i}.1' netmask='255.255.255.0'><dhcp><range start='10.231.{40 + i}.10' end='10.231.{40 + i}.50'/></dhcp></ip></network>")
        sh("virsh", "net-define", xml)
        sh("virsh", "net-start", name)
        names.append(name)
    return names


def run(nets, state):
    start = time.monotonic()
    procs = [subprocess.Popen(
        [PXELAB, "up", "--iso", "fixtures/out/centos-busybox.iso", "--network", net, "--memory", "512", "--vcpus", "1", "--disk-size", "1",
         "--wait-for", "installer", "--expect", "PXELAB-STAGE: installer ready", "--timeout", "600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PXELAB_STATE_DIR": state}) for net in nets]
    per_lab = []
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        per_lab.append((p.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024))
    return time.monotonic() - start, per_lab


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    rows = []
    with tempfile.TemporaryDirectory() as work:
        nets = networks(4, work)
        try:
            for n in (1, 2, 4):
                walls, cpus, rsss, failed = [], [], [], 0
                for run_no in range(runs):
                    wall, per_lab = run(nets[:n], os.path.join(work, f"state-{n}-{run_no}"))
                    failed += sum(1 for code, _, _ in per_lab if code != 0)
                    walls.append(wall)
                    cpus.extend(c for _, c, _ in per_lab)
                    rsss.extend(r for _, _, r in per_lab)
                rows.append((n, statistics.median(walls), statistics.median(cpus), statistics.median(rsss), failed))
                print(f"N={n}: done", flush=True)
        finally:
            for net in nets:
                sh("virsh", "net-destroy", net)
                sh("virsh", "net-undefine", net)
    base = rows[0][1]
    print(f"\nN labs at once, busybox fixture, TCG, medians of {runs}\n")
    print("| labs | every VM at its installer, s | ÷ one lab | pxelab CPU per lab, s | pxelab peak RSS per lab, MiB | failed |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, wall, cpu, rss, failed in rows:
        print(f"| {n} | {wall:.1f} | {wall / base:.2f}× | {cpu:.2f} | {rss:.1f} | {failed} |")


if __name__ == "__main__":
    main()
