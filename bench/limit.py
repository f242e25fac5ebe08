#!/usr/bin/env python3
"""How close `pxelab up` comes to the floor: direct kernel boot.

Three methods, one run, alternating, on the same VM shape (TCG, 1 vCPU, the
fixture's memory, pxelab's devices) and the same serial-console marker:
- **direct kernel boot**, what `virt-install --location` and Anaconda's
  kickstart-tests do: extract the ISO's kernel and initrd (xorriso), start
  `pxelab serve` on the bridge for the installer's later fetches, define a
  VM with <kernel>/<initrd>/<cmdline> (the command line `pxelab up` gave in
  the same round) and start it. No option ROM, no DHCP before the kernel.
  Its clock starts before the extraction.
- **`pxelab up`**, from the command's start to its `reached` event;
- **the manual method** of `bench/up_vs_manual.py` (the seed's steps).
Then, on the busybox fixture, `pxelab up --firmware uefi` and `--secure-boot`
against BIOS, alternating likewise, and direct kernel boot under OVMF
against SeaBIOS: what the firmware costs with no network boot at all.

Each round runs on a fresh isolated network made for the bench; STP is
libvirt's default (on, as on the host's `default` network) unless
BENCH_STP=off. dnsmasq pings a new address before leasing it, as on any
network pxelab has not patched, unless BENCH_NOPING=1 (then the direct and
manual methods' guests get the no-ping `pxelab up` gives its lab, and only
the boot paths differ). Medians of REPS runs, the order of the methods
rotated from round to round (the first run after the network is made, or
after another fixture, starts with colder caches: the ISO, QEMU, the
firmware), after one untimed `pxelab up` per part that gives direct boot
its command line and warms them.

Usage: bench/limit.py [REPS]   (LIMIT_ONLY=busybox, or =firmware, for a part;
root; after `make build fixtures` and
bench/servers.sh has unpacked the peers into bench/out/peers)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchnet  # noqa: E402
import up_vs_manual as manual_bench  # noqa: E402

ROOT = manual_bench.ROOT
PXELAB = manual_bench.PXELAB
NET, IP = manual_bench.NET, manual_bench.IP
FIXTURES = manual_bench.FIXTURES
BUSYBOX = FIXTURES[0]


def direct_xml(vm, memory, volume, log, kernel, initrd, cmdline, uefi=False):
    """The manual method's VM (pxelab's devices), booted from a kernel instead of the network.
    With `uefi`, OVMF on q35 as pxelab's UEFI VMs have it (OVMF loads the kernel itself)."""
    xml = manual_bench.domain_xml(vm, memory, volume, log)
    boot = f"<kernel>{kernel}</kernel><initrd>{initrd}</initrd><cmdline>{cmdline}</cmdline>"
    if uefi:
        os_direct = (f"<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type><firmware><feature enabled='no' name='secure-boot'/>"
                     f"<feature enabled='no' name='enrolled-keys'/></firmware>{boot}</os>")
    else:
        os_direct = f"<os><type arch='x86_64' machine='pc'>hvm</type>{boot}<bios useserial='yes'/></os>"
    start, end = xml.index("<os>"), xml.index("</os>") + len("</os>")
    xml = xml[:start] + os_direct + xml[end:]
    # No network boot entry: the disk is all there is to boot otherwise.
    return xml.replace("<boot order='1'/>", "").replace("<boot order='2'/>", "")


def direct(fixture, cmdline, rep, uefi=False):
    """Direct kernel boot to the marker, clock from the extraction."""
    name, iso, kernel, initrd, marker, memory = fixture
    work = tempfile.mkdtemp(prefix="pxbench-direct-")
    os.chmod(work, 0o755)
    vm, log = f"pxbench-direct-{rep}", os.path.join(work, "serial.log")
    serve = None
    start = time.monotonic()
    try:
        manual_bench.sh("xorriso", "-osirrox", "on", "-indev", os.path.join(ROOT, "fixtures", "out", iso),
                        "-extract", "/" + kernel, os.path.join(work, "vmlinuz"), "-extract", "/" + initrd, os.path.join(work, "initrd.img"))
        for f in ("vmlinuz", "initrd.img"):
            os.chmod(os.path.join(work, f), 0o644)
        serve = subprocess.Popen([PXELAB, "serve", "--iso", os.path.join(ROOT, "fixtures", "out", iso), "--bind", IP, "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # Serving once it says so: its first line.
        serve.stdout.readline()
        manual_bench.virsh("vol-create-as", "pxelab", f"{vm}.qcow2", "1G", "--format", "qcow2")
        with open(os.path.join(work, "dom.xml"), "w") as f:
            f.write(direct_xml(vm, memory, f"{vm}.qcow2", log, os.path.join(work, "vmlinuz"), os.path.join(work, "initrd.img"), cmdline, uefi))
        manual_bench.virsh("define", os.path.join(work, "dom.xml"))
        manual_bench.virsh("start", vm)
        if not manual_bench.wait_serial(log, marker, time.monotonic() + 600):
            raise RuntimeError(f"direct {name}: the marker never appeared")
        return time.monotonic() - start
    finally:
        manual_bench.virsh("destroy", vm, check=False)
        manual_bench.virsh("undefine", "--nvram", vm, check=False)
        manual_bench.virsh("vol-delete", "--pool", "pxelab", f"{vm}.qcow2", check=False)
        if serve:
            serve.terminate()
            serve.wait()
        shutil.rmtree(work, ignore_errors=True)


def table(title, header, rows):
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    only = os.environ.get("LIMIT_ONLY", "")
    for need in [PXELAB, os.path.join(manual_bench.PEERS, "in.tftpd"), os.path.join(manual_bench.PEERS, "vsftpd")]:
        if not os.path.exists(need):
            sys.exit(f"bench: {need} is missing: run `make build` and bench/servers.sh first")
    if manual_bench.virsh("pool-info", "pxelab", check=False).returncode != 0:
        sys.exit("bench: the storage pool `pxelab` is missing: run `pxelab vm new` once, or `make test`")
    benchnet.remove_network(NET)
    original = manual_bench.make_network()
    boots = {}
    firmware = {"bios": [], "uefi": [], "secure boot": [], "direct kernel boot, bios": [], "direct kernel boot, uefi": []}
    try:
        for fixture in [f for f in FIXTURES if only in f[0]]:
            times = boots.setdefault(fixture[0], {"pxelab": [], "direct": [], "manual": []})
            # Direct boot takes the command line `pxelab up` gives.
            cmdline = manual_bench.pxelab_up(fixture)[1]
            for rep in range(reps):
                # Each method goes first once in three rounds: the first run
                # after the network is made, or after another fixture, starts
                # with colder caches (the ISO, QEMU, the firmware).
                methods = [
                    ("pxelab", lambda: manual_bench.pxelab_up(fixture)[0]),
                    ("direct", lambda: direct(fixture, cmdline, rep)),
                    ("manual", lambda: manual_bench.manual(fixture, original, rep)),
                ]
                for name, run in methods[rep % 3:] + methods[:rep % 3]:
                    times[name].append(run())
                print(f"  {fixture[0]} run {rep + 1}: pxelab {times['pxelab'][-1]:.1f} s, direct {times['direct'][-1]:.1f} s, "
                      f"manual {times['manual'][-1]:.1f} s", flush=True)
        if only in ("", "firmware"):
            cmdline = manual_bench.pxelab_up(BUSYBOX)[1]
            for rep in range(reps):
                methods = [
                    ("bios", lambda: manual_bench.pxelab_up(BUSYBOX)[0]),
                    ("uefi", lambda: manual_bench.pxelab_up(BUSYBOX, ["--firmware", "uefi"])[0]),
                    # The firmware's own share: the same two firmwares with no network boot at all.
                    ("direct kernel boot, bios", lambda: direct(BUSYBOX, cmdline, rep)),
                    ("direct kernel boot, uefi", lambda: direct(BUSYBOX, cmdline, rep, uefi=True)),
                    ("secure boot", lambda: manual_bench.pxelab_up(BUSYBOX, ["--firmware", "uefi", "--secure-boot"])[0]),
                ]
                for name, run in methods[rep % 5:] + methods[:rep % 5]:
                    firmware[name].append(run())
                print(f"  firmware run {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in firmware.items()), flush=True)
    finally:
        benchnet.remove_network(NET)
    stp = os.environ.get("BENCH_STP", "on")
    ping = "no ping" if os.environ.get("BENCH_NOPING") == "1" else "dnsmasq pings"
    med = statistics.median
    table(f"{reps} runs each, medians; TCG, 1 vCPU; STP {stp}; {ping}",
          ["fixture", "direct kernel boot (s)", "pxelab up (s)", "manual (s)", "pxelab ÷ direct", "pxelab ÷ manual"],
          [[name, f"{med(t['direct']):.1f}", f"{med(t['pxelab']):.1f}", f"{med(t['manual']):.1f}",
            f"{med(t['pxelab']) / med(t['direct']):.2f}×", f"{med(t['pxelab']) / med(t['manual']):.2f}×"] for name, t in boots.items()])
    if firmware["bios"]:
        bios, direct_bios = med(firmware["bios"]), med(firmware["direct kernel boot, bios"])
        table("busybox, by firmware (direct kernel boot: the firmware's own cost, no network boot)", ["method, firmware", "median (s)", "÷ BIOS, same method"],
              [[k, f"{med(v):.1f}", f"{med(v) / (direct_bios if k.startswith('direct') else bios):.2f}×"] for k, v in firmware.items()])


if __name__ == "__main__":
    main()
