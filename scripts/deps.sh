#!/usr/bin/env bash
# Installs the system packages pxelab builds, tests and benchmarks with, on
# Debian 12 (bookworm). libvirt and QEMU come from bookworm-backports, whose
# apt source this adds when it is missing. Idempotent; needs root.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "deps: run as root (sudo make deps): apt-get needs it" >&2
    exit 4
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
    echo "deps: this script knows Debian 12 (bookworm); this is ${PRETTY_NAME:-unknown}. Install the packages listed in scripts/deps.sh by hand." >&2
    exit 4
fi

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deps: adding the bookworm-backports apt source"
    cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq

# libvirt and QEMU, both from backports (qemu-utils here already is);
# qemu-system-arm and AAVMF (qemu-efi-aarch64) for ARM64 guests, from the
# same suite, so both emulators are one QEMU version.
apt-get install -y -qq -t bookworm-backports --no-install-recommends \
    libvirt-dev libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu \
    qemu-system-x86 qemu-system-arm qemu-utils qemu-block-extra dnsmasq-base ipxe-qemu ovmf qemu-efi-aarch64 >/dev/null

# Build, fixtures (ISO tooling, the kernel/initrd sources, syslinux) and test clients.
apt-get install -y -qq --no-install-recommends \
    pkg-config gcc g++ make patch openssl xz-utils zstd python3 iptables \
    xorriso cpio busybox-static syslinux-common pxelinux isolinux syslinux mtools dosfstools fdisk \
    debian-installer-12-netboot-amd64 debian-installer-12-netboot-arm64 grub-efi-amd64-signed shim-signed \
    curl wget atftp lftp iproute2 procps psmisc python3-junitparser yamllint \
    zsh fish groff-base man-db tcpdump lintian dpkg-dev >/dev/null

# The real installers' fixtures, built by their own tools (fixtures/fai.sh,
# fixtures/live.sh): FAI's nfsroot, mirror and CD, and live-build.
apt-get install -y -qq --no-install-recommends \
    fai-server fai-setup-storage reprepro live-build debootstrap squashfs-tools >/dev/null

# The remote-host test runs its own sshd on loopback (libvirt's qemu+ssh).
# The package would start the system's sshd on install: policy-rc.d (exit
# 101) stops that, and is removed again unless it was there before.
if ! dpkg -s openssh-server >/dev/null 2>&1; then
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
    [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

if ! command -v cargo >/dev/null; then
    echo "deps: cargo not found: install Rust (https://rustup.rs) or 'apt-get install cargo'" >&2
    exit 4
fi
# The fuzzer driver (make fuzz, and the smoke run in make test). It runs on
# the stable toolchain with RUSTC_BOOTSTRAP=1 (the sanitizer flags are
# nightly-only otherwise); a new machine has no nightly to fetch.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "deps: installing cargo-fuzz"
    cargo install cargo-fuzz --version 0.13.2 --locked -q
fi
# `make deb` (and its test) packages with cargo-deb.
if ! cargo deb --version >/dev/null 2>&1; then
    echo "deps: installing cargo-deb"
    cargo install cargo-deb --version 3.8.0 --locked -q
fi
echo "deps: ok"
