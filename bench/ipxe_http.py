#!/usr/bin/env python3
"""A TCG guest's iPXE fetching the kernel and initrd: pxelab's HTTP against nginx's.

`pxelab up` loads the big-initrd fixture's 106 MB initrd into its VM over
iPXE's HTTP at about 55 MB/s, where direct kernel boot has QEMU copy it in
at once; this bench asks whose limit that rate is. The same VM (pxelab's
devices, TCG, 1 vCPU, 1 GiB) PXE-boots on an isolated network made for the
bench, and QEMU's iPXE ROM fetches the same two files, alternating, from:
- **nginx** (Debian's, unpacked by bench/servers.sh: sendfile on), serving
  the kernel and initrd extracted from the ISO;
- **`pxelab serve`**, serving them from inside the ISO.
Both run on the bridge's address at once; the network's <bootp> names an
iPXE script on nginx that each round rewrites to point at one of them. The
times are each server's own: nginx's `$request_time` and pxelab's transfer
event, from the request to the last byte written. Medians of REPS rounds,
pxelab's rate over nginx's.

Usage: bench/ipxe_http.py [REPS] [ISO]   (root, libvirtd running; after
`make build fixtures` and bench/servers.sh has unpacked the peers)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchnet  # noqa: E402
import up_vs_manual as manual_bench  # noqa: E402

ROOT = manual_bench.ROOT
NET, IP = manual_bench.NET, manual_bench.IP
NGINX = os.path.join(manual_bench.OUT, "peers", "usr", "sbin", "nginx")
FILES = [("vmlinuz", "images/pxeboot/vmlinuz"), ("initrd.img", "images/pxeboot/initrd.img")]
NGINX_PORT = 8080


def start_nginx(work, www):
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    sendfile on;
    tcp_nopush on;
    log_format t '$uri $body_bytes_sent $request_time';
    access_log {work}/access.log t;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{ listen {IP}:{NGINX_PORT}; root {www}; }}
}}
""")
    return subprocess.Popen([NGINX, "-p", work, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_pxelab(iso, seen):
    """`pxelab serve` on port 80; its transfer events go into `seen` (path → seconds)."""
    proc = subprocess.Popen([manual_bench.PXELAB, "--json", "serve", "--iso", iso, "--bind", IP],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc.stdout.readline()

    def read():
        for event in benchnet.events(proc.stdout):
            if event.get("event") == "transfer" and event.get("complete"):
                seen[event["path"]] = (event["bytes"], event["duration"])
    threading.Thread(target=read, daemon=True).start()
    return proc


def nginx_times(work):
    seen = {}
    try:
        with open(os.path.join(work, "access.log")) as f:
            for line in f:
                uri, sent, secs = line.split()
                seen[uri] = (int(sent), float(secs))
    except FileNotFoundError:
        pass
    return seen


def one_boot(work, www, server, urls, seen_pxelab, rep):
    """Boots a VM whose iPXE fetches `urls` from `server`; (bytes, seconds) of the initrd."""
    with open(os.path.join(www, "boot.ipxe"), "w") as f:
        f.write(f"#!ipxe\nkernel {urls[0]}\ninitrd {urls[1]}\nboot\n")
    open(os.path.join(work, "access.log"), "w").close()
    seen_pxelab.clear()
    vm = f"pxbench-ipxe-{rep}"
    log = os.path.join(work, f"{vm}.log")
    manual_bench.virsh("vol-create-as", "pxelab", f"{vm}.qcow2", "1G", "--format", "qcow2")
    try:
        with open(os.path.join(work, "dom.xml"), "w") as f:
            f.write(manual_bench.domain_xml(vm, 1024, f"{vm}.qcow2", log))
        manual_bench.virsh("define", os.path.join(work, "dom.xml"))
        manual_bench.virsh("start", vm)
        deadline = time.monotonic() + 180
        initrd = "/" + urls[1].split("/", 3)[3]
        while time.monotonic() < deadline:
            seen = nginx_times(work) if server == "nginx" else seen_pxelab
            if initrd in seen:
                return seen[initrd]
            time.sleep(0.2)
        raise RuntimeError(f"{server}: the guest never fetched {initrd}")
    finally:
        manual_bench.virsh("destroy", vm, check=False)
        manual_bench.virsh("undefine", vm, check=False)
        manual_bench.virsh("vol-delete", "--pool", "pxelab", f"{vm}.qcow2", check=False)


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    iso = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "fixtures", "out", "centos-bigrd.iso")
    for need in [manual_bench.PXELAB, NGINX]:
        if not os.path.exists(need):
            sys.exit(f"bench: {need} is missing: run `make build` and bench/servers.sh first")
    work = tempfile.mkdtemp(prefix="pxbench-ipxe-")
    os.chmod(work, 0o755)
    www = os.path.join(work, "www")
    os.makedirs(www)
    os.chmod(www, 0o755)
    args = []
    for name, path in FILES:
        args += ["-extract", "/" + path, os.path.join(www, name)]
    manual_bench.sh("xorriso", "-osirrox", "on", "-indev", iso, *args)
    for name, _ in FILES:
        os.chmod(os.path.join(www, name), 0o644)
    benchnet.remove_network(NET)
    original = manual_bench.make_network()
    patched = original.replace("</dhcp>", f"  <bootp file='http://{IP}:{NGINX_PORT}/boot.ipxe'/>\n    </dhcp>")
    with open(os.path.join(work, "net.xml"), "w") as f:
        f.write(patched)
    manual_bench.virsh("net-define", os.path.join(work, "net.xml"))
    manual_bench.virsh("net-destroy", NET)
    manual_bench.virsh("net-start", NET)
    seen_pxelab = {}
    procs = [start_nginx(work, www), start_pxelab(iso, seen_pxelab)]
    urls = {
        "nginx": [f"http://{IP}:{NGINX_PORT}/{name}" for name, _ in FILES],
        "pxelab": [f"http://{IP}/iso/{path}" for _, path in FILES],
    }
    rates = {"nginx": [], "pxelab": []}
    try:
        time.sleep(0.5)
        for rep in range(reps):
            for server in ("pxelab", "nginx"):
                size, secs = one_boot(work, www, server, urls[server], seen_pxelab, rep)
                rates[server].append(size / secs / 1e6)
                print(f"  run {rep + 1}: {server} {size / 1e6:.1f} MB in {secs:.2f} s ({rates[server][-1]:.1f} MB/s)", flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        benchnet.remove_network(NET)
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\n{reps} runs each, medians; TCG, 1 vCPU, 1 GiB; QEMU's iPXE ROM ({os.path.basename(iso)}'s initrd)\n")
    print("| server | MB/s into the guest | ÷ nginx |")
    print("| --- | ---: | ---: |")
    for k in ("pxelab", "nginx"):
        print(f"| {k} | {med[k]:.1f} | {med[k] / med['nginx']:.2f}× |")


if __name__ == "__main__":
    main()
