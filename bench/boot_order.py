#!/usr/bin/env python3
"""What trying an empty disk before the network costs a UEFI VM.

pxelab's UEFI VMs try their disk first (see README, "The installed stage").
This boots the same firmware twice per round, alternating: the NIC first
and the empty disk second, then the other way round, and reads the time
from QEMU's start to the guest's first DHCPDISCOVER from a capture of the
guest's own NIC (QEMU's filter-dump, on user-mode networking: no packet
leaves QEMU). OVMF (x86-64, QEMU's iPXE EFI ROM as the lab's VMs have it)
and AAVMF (ARM64, edk2's own PXE), TCG, 1 vCPU, 512 MiB.

    python3 bench/boot_order.py [ROUNDS]
"""
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

FIRMWARES = {
    "OVMF (x86-64)": (
        ["qemu-system-x86_64", "-M", "q35", "-cpu", "qemu64"],
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
        "",
    ),
    "AAVMF (ARM64)": (
        ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57"],
        "/usr/share/AAVMF/AAVMF_CODE.fd",
        "/usr/share/AAVMF/AAVMF_VARS.fd",
        ",romfile=",
    ),
}


def first_dhcp(pcap):
    """Seconds (wall clock) of the first DHCPDISCOVER in a pcap, or None."""
    with open(pcap, "rb") as f:
        data = f.read()
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        # Ethernet, IPv4, UDP to port 67.
        if len(frame) > 42 and frame[12:14] == b"\x08\x00" and frame[23] == 17:
            ihl = (frame[14] & 0x0F) * 4
            if struct.unpack_from(">H", frame, 14 + ihl + 2)[0] == 67:
                return sec + usec / 1e6
    return None


def boot(name, disk_first, work):
    qemu, code, vars_template, rom = FIRMWARES[name]
    vars_file, pcap, disk = (os.path.join(work, f) for f in ("vars.fd", "nic.pcap", "disk.qcow2"))
    shutil.copy(vars_template, vars_file)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "1G"], check=True)
    if os.path.exists(pcap):
        os.remove(pcap)
    net_index, disk_index = (2, 1) if disk_first else (1, 2)
    args = qemu + [
        "-accel", "tcg", "-m", "512", "-smp", "1", "-nographic", "-serial", "null", "-monitor", "none",
        "-drive", f"if=pflash,format=raw,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,file={vars_file}",
        "-netdev", "user,id=n0", "-object", f"filter-dump,id=f0,netdev=n0,file={pcap}",
        "-device", f"virtio-net-pci,netdev=n0,bootindex={net_index}{rom}",
        "-drive", f"if=none,id=d0,format=qcow2,file={disk}",
        "-device", f"virtio-blk-pci,drive=d0,bootindex={disk_index}",
    ]
    start = time.time()
    qemu_process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.time() - start < 60:
            time.sleep(0.2)
            at = first_dhcp(pcap) if os.path.exists(pcap) else None
            if at is not None:
                return at - start
        return None
    finally:
        qemu_process.kill()
        qemu_process.wait()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as work:
        print("| firmware | NIC first (s) | empty disk first (s) | runs (NIC first; disk first) |")
        print("| --- | ---: | ---: | --- |")
        for name in FIRMWARES:
            times = {False: [], True: []}
            for _ in range(rounds):
                for disk_first in (False, True):
                    times[disk_first].append(boot(name, disk_first, work))
            runs = "; ".join(", ".join(f"{t:.2f}" for t in times[k]) for k in (False, True))
            print(f"| {name} | {statistics.median(times[False]):.2f} | {statistics.median(times[True]):.2f} | {runs} |", flush=True)


if __name__ == "__main__":
    main()
