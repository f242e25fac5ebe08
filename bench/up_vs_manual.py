#!/usr/bin/env python3
"""Time from nothing to a VM in the installer: `pxelab up` vs the seed's manual method.

The manual method is the seed's page of steps, scripted so that no person's
typing is counted, and given every wait it can drop by hand: extract the ISO
(xorriso: the seed mounts it, which this kernel cannot), copy pxelinux and
the ISO's kernel and initrd into a TFTP root, write pxelinux.cfg/default with
`TIMEOUT 1` (0.1 s: the menu shows and boots at once) and boot.msg, start
tftpd-hpa (UDP 69) and vsftpd (TCP 21) on the bridge address with the ISO's
tree, add <bootp> to the network and restart it, create a PXE-booting VM.
Its clock starts before the extraction, its first step.

`pxelab up` is timed from the command's start to its `reached` event on the
pipe, with `--expect` on the same serial-console marker the manual method
waits for. Both use the same VM (TCG, 1 vCPU, the memory the fixture names,
pxelab's devices: virtio disk and NIC, VGA, virtio RNG, serial console) on
an isolated network made for the bench.

Each fixture runs REPS times per method, alternating; the table gives medians
and pxelab's time divided by the manual time (below 1 means pxelab is faster).

Usage: bench/up_vs_manual.py [REPS]   (root; after `make build fixtures` and bench/servers.sh
has unpacked the peers into bench/out/peers)
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchnet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
PXELAB = os.path.join(ROOT, "target", "release", "pxelab")
PEERS = os.path.join(OUT, "peers", "usr", "sbin")
URI = "qemu:///system"
NET, BRIDGE, IP = "pxbench", "pxbench0", "10.252.1.1"
SYSLINUX = [("/usr/lib/PXELINUX/pxelinux.0", "pxelinux.0")] + [
    (f"/usr/lib/syslinux/modules/bios/{m}", m) for m in ["ldlinux.c32", "menu.c32", "vesamenu.c32", "libcom32.c32", "libutil.c32"]
]
FIXTURES = [
    # name, iso, kernel, initrd, marker on the serial console, memory MiB
    ("busybox", "centos-busybox.iso", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", r"PXELAB-STAGE: installer ready", 512),
    ("debian-installer", "centos-di.iso", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", r"Select a language|Choose the language", 1024),
    ("big initrd (100 MiB)", "centos-bigrd.iso", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", r"PXELAB-STAGE: installer ready", 1024),
]
ARGS = f"inst.repo=ftp://{IP}/ console=tty0 console=ttyS0,115200"


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def virsh(*args, check=True):
    return benchnet.virsh(*args, check=check)


def make_network():
    return benchnet.make_network(NET, BRIDGE, IP)


def remove_network():
    benchnet.remove_network(NET)


def wait_serial(path, marker, deadline):
    pattern = re.compile(marker)
    while time.monotonic() < deadline:
        try:
            with open(path, errors="replace") as f:
                if pattern.search(f.read()):
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    return False


def domain_xml(name, memory, volume, log):
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><bios useserial='yes'/></os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <devices>
    <disk type='volume' device='disk'><driver name='qemu' type='qcow2'/><source pool='pxelab' volume='{volume}'/><target dev='vda' bus='virtio'/><boot order='2'/></disk>
    <interface type='network'><source network='{NET}'/><model type='virtio'/><boot order='1'/></interface>
    <serial type='pty'><log file='{log}' append='off'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' autoport='yes'><listen type='address' address='127.0.0.1'/></graphics>
    <video><model type='vga'/></video>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
"""


def manual(fixture, original_xml, rep):
    name, iso, kernel, initrd, marker, memory = fixture
    work = tempfile.mkdtemp(prefix="pxbench-manual-")
    ftp, tftp = os.path.join(work, "ftp"), os.path.join(work, "tftp")
    vm, procs = f"pxbench-manual-{rep}", []
    log = os.path.join(work, "serial.log")
    start = time.monotonic()
    try:
        # The mount's stand-in: xorriso extracts the ISO.
        sh("xorriso", "-osirrox", "on", "-indev", os.path.join(ROOT, "fixtures", "out", iso), "-extract", "/", ftp)
        sh("chmod", "-R", "a+rX", ftp)
        # The seed: copy syslinux and the ISO's kernel and initrd into the TFTP root, write the menu.
        os.makedirs(os.path.join(tftp, "pxelinux.cfg"))
        os.makedirs(os.path.join(tftp, "kernel", "x"))
        for src, dst in SYSLINUX:
            shutil.copy(src, os.path.join(tftp, dst))
        shutil.copy(os.path.join(ftp, kernel), os.path.join(tftp, "kernel", "x", "vmlinuz"))
        shutil.copy(os.path.join(ftp, initrd), os.path.join(tftp, "kernel", "x", "initrd.img"))
        with open(os.path.join(tftp, "pxelinux.cfg", "default"), "w") as f:
            f.write(
                "SERIAL 0 115200\nUI vesamenu.c32\nTIMEOUT 1\nDISPLAY boot.msg\nMENU TITLE Welcome to PXE Server System\n\n"
                "LABEL local\n  MENU LABEL Boot from local drive\n  LOCALBOOT 0\n\n"
                f"LABEL install\n  MENU LABEL Install\n  MENU DEFAULT\n  KERNEL kernel/x/vmlinuz\n  APPEND initrd=kernel/x/initrd.img {ARGS}\n"
            )
        with open(os.path.join(tftp, "boot.msg"), "w") as f:
            f.write("Welcome to PXE Server System\n")
        # tftpd-hpa and vsftpd on the bridge address.
        procs.append(subprocess.Popen([os.path.join(PEERS, "in.tftpd"), "--foreground", "--listen", "--address", f"{IP}:69", "--secure", tftp],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        os.makedirs(os.path.join(work, "empty"))
        conf = os.path.join(work, "vsftpd.conf")
        with open(conf, "w") as f:
            f.write(f"listen=YES\nlisten_ipv6=NO\nlisten_address={IP}\nlisten_port=21\nbackground=NO\nanonymous_enable=YES\n"
                    f"no_anon_password=YES\nanon_root={ftp}\nlocal_enable=NO\nwrite_enable=NO\nftp_username=daemon\n"
                    f"nopriv_user=nobody\nsecure_chroot_dir={work}/empty\npasv_enable=YES\npasv_min_port=50000\n"
                    f"pasv_max_port=50100\nseccomp_sandbox=NO\nxferlog_enable=NO\n")
        procs.append(subprocess.Popen([os.path.join(PEERS, "vsftpd"), conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # virsh net-edit: add <bootp>, then restart the network.
        patched = original_xml.replace("</dhcp>", f"  <bootp file='pxelinux.0' server='{IP}'/>\n    </dhcp>")
        with open(os.path.join(work, "net.xml"), "w") as f:
            f.write(patched)
        virsh("net-define", os.path.join(work, "net.xml"))
        virsh("net-destroy", NET)
        virsh("net-start", NET)
        # virt-manager's part: a disk and a PXE-booting VM.
        virsh("vol-create-as", "pxelab", f"{vm}.qcow2", "1G", "--format", "qcow2")
        with open(os.path.join(work, "dom.xml"), "w") as f:
            f.write(domain_xml(vm, memory, f"{vm}.qcow2", log))
        virsh("define", os.path.join(work, "dom.xml"))
        virsh("start", vm)
        ok = wait_serial(log, marker, time.monotonic() + 600)
        elapsed = time.monotonic() - start
        if not ok:
            raise RuntimeError(f"manual {name}: the marker never appeared")
        return elapsed
    finally:
        virsh("destroy", vm, check=False)
        virsh("undefine", vm, check=False)
        virsh("vol-delete", "--pool", "pxelab", f"{vm}.qcow2", check=False)
        for p in procs:
            p.terminate()
            p.wait()
        with open(os.path.join(work, "orig.xml"), "w") as f:
            f.write(original_xml)
        virsh("net-define", os.path.join(work, "orig.xml"))
        virsh("net-destroy", NET, check=False)
        virsh("net-start", NET)
        shutil.rmtree(work, ignore_errors=True)


def pxelab_up(fixture, extra=()):
    """`pxelab up` to the marker: (seconds, the kernel command line it gave)."""
    name, iso, _, _, marker, memory = fixture
    state = tempfile.mkdtemp(prefix="pxbench-state-")
    start = time.monotonic()
    proc = subprocess.Popen(
        [PXELAB, "-c", URI, "--json", "up", "--iso", os.path.join(ROOT, "fixtures", "out", iso), "--network", NET,
         "--memory", str(memory), "--vcpus", "1", "--disk-size", "1", "--accel", "tcg",
         "--wait-for", "installer", "--expect", marker, "--timeout", "600", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, PXELAB_STATE_DIR=state))
    elapsed, args = None, None
    for event in benchnet.events(proc.stdout):
        if event.get("event") == "ready":
            args = event.get("kernel_args")
        elif event.get("event") == "reached":
            elapsed = time.monotonic() - start
    proc.wait()
    shutil.rmtree(state, ignore_errors=True)
    if proc.returncode != 0 or elapsed is None:
        raise RuntimeError(f"pxelab {name} {' '.join(extra)}: exit {proc.returncode}")
    return elapsed, args


def with_pxelab(fixture):
    return pxelab_up(fixture)[0]


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    for need in [PXELAB, os.path.join(PEERS, "in.tftpd"), os.path.join(PEERS, "vsftpd")]:
        if not os.path.exists(need):
            sys.exit(f"bench: {need} is missing: run `make build` and bench/servers.sh first")
    if virsh("pool-info", "pxelab", check=False).returncode != 0:
        sys.exit("bench: the storage pool `pxelab` is missing: run `pxelab vm new` once, or `make test`")
    remove_network()
    original = make_network()
    results = {}
    try:
        for fixture in FIXTURES:
            times = {"pxelab": [], "manual": []}
            for rep in range(reps):
                times["pxelab"].append(with_pxelab(fixture))
                times["manual"].append(manual(fixture, original, rep))
                print(f"  {fixture[0]} run {rep + 1}: pxelab {times['pxelab'][-1]:.1f} s, manual {times['manual'][-1]:.1f} s", flush=True)
            results[fixture[0]] = times
    finally:
        remove_network()
    print()
    print(f"{reps} runs each, medians; TCG, 1 vCPU; the manual menu waits 0.1 s (TIMEOUT 1)")
    print()
    print("| fixture | pxelab up (median s) | manual, tftpd-hpa + vsftpd (median s) | pxelab ÷ manual |")
    print("| --- | ---: | ---: | ---: |")
    for name, times in results.items():
        p, m = statistics.median(times["pxelab"]), statistics.median(times["manual"])
        print(f"| {name} | {p:.1f} | {m:.1f} | {p / m:.2f}× |")


if __name__ == "__main__":
    main()
