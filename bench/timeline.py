#!/usr/bin/env python3
"""Where a `pxelab up` boot spends its time: one run, one merged timeline.

Runs `pxelab up` on the busybox fixture (or ISO) on an isolated network
made for it, and prints, in seconds from the command's start:
- pxelab's JSON events (steps, stages, transfers);
- each new line of the VM's serial console, as it appears (20 ms polls);
- the DHCP, ARP, ICMP and ICMPv6 packets on the lab's bridge (tcpdump).
This is how the README's timeline table is measured.

Usage: bench/timeline.py [ISO] [-- EXTRA UP ARGS]
(root, libvirtd running, tcpdump installed; after `make build fixtures`)
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchnet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PXELAB = os.path.join(ROOT, "target", "release", "pxelab")
NET, BRIDGE, IP = "pxbench-tl", "pxbenchtl0", "10.252.5.1"
MARKER = "PXELAB-STAGE: installer ready"


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    iso = argv[0] if argv else os.path.join(ROOT, "fixtures", "out", "centos-busybox.iso")
    lines = []
    lock = threading.Lock()

    def add(source, text):
        with lock:
            lines.append((time.monotonic() - start, source, text))

    benchnet.remove_network(NET)
    benchnet.make_network(NET, BRIDGE, IP)
    state = tempfile.mkdtemp(prefix="pxbench-tl-")
    done = threading.Event()
    dumps = []

    def packets():
        # `up` restarts the network, which remakes the bridge: follow it.
        while not done.is_set():
            dump = subprocess.Popen(["tcpdump", "-l", "-n", "-i", os.environ.get("TL_IF", BRIDGE), "-tt", "udp port 67 or udp port 68 or icmp or icmp6 or arp"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            dumps.append(dump)
            for line in dump.stdout:
                stamp, _, rest = line.partition(" ")
                try:
                    at = float(stamp) - wall0
                except ValueError:
                    continue
                with lock:
                    lines.append((at, "net", rest.strip()))
            dump.wait()
            time.sleep(0.05)

    start = time.monotonic()
    wall0 = time.time()
    threading.Thread(target=packets, daemon=True).start()
    # The VM's memory is 512 MiB unless the extra arguments give one.
    memory = [] if "--memory" in extra else ["--memory", "512"]
    args = [PXELAB, "-c", benchnet.URI, "--json", "up", "--iso", iso, "--network", NET, "--vcpus", "1", *memory,
            "--disk-size", "1", "--wait-for", "installer", "--expect", MARKER, "--timeout", "300", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PXELAB_STATE_DIR": state})

    def serial():
        # A lab keeps its logs in labs/<network>/logs (older layouts: logs/).
        logs = os.path.join(state, "labs", NET, "logs")
        offsets, partial = {}, {}
        while not done.is_set():
            for name in [n for n in (os.listdir(logs) if os.path.isdir(logs) else []) if n.endswith(".serial.log")]:
                path = os.path.join(logs, name)
                with open(path, "rb") as f:
                    f.seek(offsets.get(name, 0))
                    data = f.read()
                offsets[name] = offsets.get(name, 0) + len(data)
                text = partial.get(name, "") + data.decode("utf-8", "replace")
                *complete, partial[name] = re.split(r"\r?\n|\r", text)
                for line in complete:
                    line = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line).strip()
                    if line:
                        add("serial", line[:120])
            time.sleep(0.02)

    threading.Thread(target=serial, daemon=True).start()
    for event in benchnet.events(proc.stdout):
        kind = event.get("event")
        if kind in ("progress",):
            continue
        detail = {k: v for k, v in event.items() if k not in ("event", "vms", "kernel_args")}
        add("pxelab", f"{kind} {json.dumps(detail)[:150]}")
    proc.wait()
    done.set()
    for dump in dumps:
        dump.terminate()
    benchnet.remove_network(NET)
    for at, source, text in sorted(lines):
        print(f"{at:7.2f}  {source:6}  {text}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
