#!/usr/bin/env python3
"""Time from `pxelab up` to `installed` for the FAI CD (fixtures/out/fai-cd.iso),
with where the time goes.

Each run: an isolated network made for the run (removed after it), `pxelab up
--wait-for installed --expect-installed 'pxelab-fai login:'` (TCG by the host's
choice, 2 vCPUs, 2 GiB, a 6 GiB disk), pxelab's own stage events (firmware and
PXE to `dhcp`/`bootloader`, the kernel and initrd to `kernel`, dracut and the
root fetched to `installer`), and the VM's serial console read as it is written,
each line of FAI's that starts a task (`Calling task_partition` ...) stamped on
the lab's clock (the clock starts when `up` starts, as pxelab's does).

Usage (root, libvirtd, after `make build fixtures`):
    bash scripts/with-libvirtd.sh python3 bench/fai_install.py [RUNS]
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PXELAB = os.environ.get("PXELAB", "target/release/pxelab")
NET, BRIDGE, SUBNET = "pxfai1", "pxfaib1", "10.231.31"
# Phases, each from the event or console line that starts it to the next one's.
PHASES = [
    ("firmware, PXE, kernel and initrd", "start", "kernel"),
    ("dracut, the root fetched (573 MB)", "kernel", "installer"),
    ("FAI's set-up (config space, classes)", "installer", "task_partition"),
    ("partitioning (setup-storage)", "task_partition", "task_extrbase"),
    ("base system (base.tar.xz)", "task_extrbase", "task_updatebase"),
    ("packages (apt from the ISO's mirror)", "task_updatebase", "task_configure"),
    ("configuration and GRUB", "task_configure", "task_finish"),
    ("finish, reboot, the installed system to login", "task_finish", "installed"),
]


def sh(*args):
    subprocess.run(args, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def follow(path, start, marks, stop):
    """Stamps FAI's `Calling task_X` lines as they reach the serial log."""
    while not os.path.exists(path) and not stop.is_set():
        time.sleep(0.2)
    offset, partial = 0, ""
    while not stop.is_set():
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            data = b""
        if data:
            offset += len(data)
            lines = (partial + data.decode("utf-8", "replace")).split("\n")
            partial = lines.pop()
            for line in lines:
                m = re.match(r"Calling (task_\w+)", line.strip())
                if m and m.group(1) not in marks:
                    marks[m.group(1)] = time.monotonic() - start
        time.sleep(0.2)


def run_once(state):
    start = time.monotonic()
    proc = subprocess.Popen(
        [PXELAB, "--json", "up", "--iso", "fixtures/out/fai-cd.iso", "--network", NET, "--vcpus", "2", "--memory", "2048",
         "--disk-size", "6", "--wait-for", "installed", "--expect-installed", "pxelab-fai login:", "--timeout", "2400"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PXELAB_STATE_DIR": state})
    marks = {"start": 0.0}
    stop = threading.Event()
    follower = None
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "stage":
            marks.setdefault(event["stage"], event["at"])
            if follower is None:
                log = os.path.join(state, "labs", NET, "logs", f"{event['vm']}.serial.log")
                follower = threading.Thread(target=follow, args=(log, start, marks, stop), daemon=True)
                follower.start()
    proc.wait()
    stop.set()
    if proc.returncode != 0:
        print(proc.stderr.read()[-3000:], file=sys.stderr)
    return proc.returncode, marks


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as work:
        xml = os.path.join(work, "net.xml")
        with open(xml, "w") as f:
            f.write(f"<network><name>{NET}</name><bridge name='{BRIDGE}' stp='on' delay='0'/><ip address='{SUBNET}.1' netmask='255.255.255.0'>"
                    f"<dhcp><range start='{SUBNET}.10' end='{SUBNET}.50'/></dhcp></ip></network>")
        sh("virsh", "net-define", xml)
        sh("virsh", "net-start", NET)
        try:
            results = []
            for run in range(runs):
                code, marks = run_once(os.path.join(work, f"state{run}"))
                print(f"run {run + 1}: exit {code}, installed at {marks.get('installed', float('nan')):.1f} s", flush=True)
                if code == 0:
                    results.append(marks)
        finally:
            sh("virsh", "net-destroy", NET)
            sh("virsh", "net-undefine", NET)
    if not results:
        sys.exit("no run reached installed")
    print(f"\nFAI CD, `up` to `installed` (the installed system's login prompt): median of {len(results)}: "
          f"{statistics.median(m['installed'] for m in results):.1f} s\n")
    print("| phase | median s |\n| --- | ---: |")
    for name, a, b in PHASES:
        spans = [m[b] - m[a] for m in results if a in m and b in m]
        print(f"| {name} | {statistics.median(spans):.1f} |" if spans else f"| {name} | - |")


if __name__ == "__main__":
    main()
