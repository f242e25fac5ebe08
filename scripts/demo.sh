#!/usr/bin/env bash
# The main job on the demo ISO, as far as it is built: `pxelab up` (patch the
# network, boot a VM) is not implemented yet, so the demo shows the parts
# that are: what pxelab reads from the ISO without mounting it, the boot menu
# it serves, and its TFTP and FTP servers answering real clients on loopback.
set -euo pipefail
pxelab=$1 iso=$2
work=$(mktemp -d)
trap 'kill "${serve_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== pxelab iso inspect $iso"
"$pxelab" iso inspect "$iso"
echo
echo "== pxelab serve on 127.0.0.1 (TFTP port 6969, FTP port 2121)"
"$pxelab" serve --iso "$iso" --bind 127.0.0.1 --tftp-port 6969 --ftp-port 2121 --passive-ports 50500-50550 \
    >"$work/serve.out" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 1 50); do grep -q serving "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
cat "$work/serve.out"
echo
echo "== what a PXE client fetches over TFTP"
for f in pxelinux.0 ldlinux.c32 pxelinux.cfg/default boot.msg iso/images/pxeboot/vmlinuz iso/images/pxeboot/initrd.img; do
    curl -s --tftp-blksize 1468 -o "$work/f" "tftp://127.0.0.1:6969/$f"
    printf '  %-32s %10s bytes\n' "$f" "$(stat -c %s "$work/f")"
done
echo
echo "== pxelinux.cfg/default"
curl -s tftp://127.0.0.1:6969/pxelinux.cfg/default | sed 's/^/  /'
echo
echo "== what the installer fetches over FTP (inst.repo=)"
curl -s ftp://127.0.0.1:2121/.treeinfo | sed -n '/\[stage2\]/,$p' | sed 's/^/  /'
curl -s -o "$work/stage2" ftp://127.0.0.1:2121/images/install.img
xorriso -osirrox on -indev "$iso" -extract /images/install.img "$work/reference" >/dev/null 2>&1
echo "  images/install.img over FTP: md5 $(md5sum <"$work/stage2" | cut -d' ' -f1)"
echo "  the same file extracted by xorriso: md5 $(md5sum <"$work/reference" | cut -d' ' -f1)"
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
echo
echo "== the server's transfer log"
sed 's/\x1b\[[0-9;]*m//g' "$work/serve.log" | grep -E 'transfer|refused' | sed 's/^/  /'
echo
echo "pxelab up (patch the network's DHCP and boot a VM into this installer) is not implemented yet."
