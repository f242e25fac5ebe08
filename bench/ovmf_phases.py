#!/usr/bin/env python3
"""Where OVMF's own time goes under TCG, without a debug build.

Debian's OVMF is a RELEASE build: it prints nothing before its boot
manager. Its phases are visible from outside all the same, in when it
reads QEMU's fw_cfg (QEMU's `fw_cfg_select` trace, timestamped): PEI's
first read, the DXE phase's first read (after the longest silence), and
BDS reading `boot_menu`. Each row boots the lab's x86-64 UEFI VM shape
(q35, a virtio disk, a virtio NIC with QEMU's iPXE ROM, user-mode
networking: nothing leaves QEMU) with one thing changed; rounds alternate.

    python3 bench/ovmf_phases.py [ROUNDS]
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
SHAPES = {
    "as the lab's VMs (qemu64, 512 MiB, VGA)": [],
    "2 GiB of memory": ["-m", "2048"],
    "CPU max": ["-cpu", "max"],
    "no VGA": ["-vga", "none"],
    "edk2's IPv4 and IPv6 stacks off": [
        "-fw_cfg", "name=opt/org.tianocore/IPv4Support,string=no",
        "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no",
    ],
}
LINE = re.compile(r"@(\d+\.\d+):fw_cfg_select \S+ key \S+ '([^']*)'")


def phases(extra, work):
    trace, vars_file, disk = (os.path.join(work, f) for f in ("fw.trace", "vars.fd", "disk.qcow2"))
    shutil.copy(VARS, vars_file)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "1G"], check=True)
    args = [
        "qemu-system-x86_64", "-M", "q35", "-cpu", "qemu64", "-m", "512", "-smp", "1", "-accel", "tcg",
        "-nographic", "-serial", "null", "-monitor", "none",
        "-drive", f"if=pflash,format=raw,readonly=on,file={CODE}", "-drive", f"if=pflash,format=raw,file={vars_file}",
        "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,bootindex=2",
        "-drive", f"if=none,id=d0,format=qcow2,file={disk}", "-device", "virtio-blk-pci,drive=d0,bootindex=1",
        "-trace", f"fw_cfg_select,file={trace}", "-msg", "timestamp=on",
    ] + extra
    subprocess.run(["timeout", "10"] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reads = [(float(m.group(1)), m.group(2)) for m in map(LINE.search, open(trace)) if m]
    start = reads[0][0]  # QEMU's own read, as the machine is made
    gaps = [i for i in range(2, len(reads)) if reads[i][0] - reads[i - 1][0] > 0.5]
    bds = next(t for t, key in reads if key == "boot_menu")
    return reads[1][0] - start, reads[gaps[0]][0] - start, bds - start


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    found = {name: [] for name in SHAPES}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(rounds):
            for name, extra in SHAPES.items():
                found[name].append(phases(extra, work))
    print("| OVMF, TCG (seconds from QEMU's start, medians) | PEI | DXE | BDS |")
    print("| --- | ---: | ---: | ---: |")
    for name, runs in found.items():
        cols = [statistics.median(r[i] for r in runs) for i in range(3)]
        print(f"| {name} | {cols[0]:.2f} | {cols[1]:.2f} | {cols[2]:.2f} |")


if __name__ == "__main__":
    main()
