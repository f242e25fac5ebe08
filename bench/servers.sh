#!/usr/bin/env bash
# Benchmark: pxelab's embedded TFTP and FTP servers against the real peers
# from Debian, in one run, on loopback only.
#
#   TFTP  the same 40 MiB file through pxelab, tftpd-hpa, atftpd and dnsmasq,
#         with curl at blksize 512 and 1468, and with atftp at windowsize 8
#   FTP   the same 100 MiB file through pxelab and vsftpd, with curl
#   HTTP  the same 100 MiB file through pxelab and nginx (Debian's, as
#         configured by its package: sendfile on), with curl
#
# Each case runs REPS times (default 5); the table shows medians, MiB/s, the
# CPU time the server used, the ratio pxelab/peer (speed: above 1 means pxelab
# is faster) and each server's peak RSS. pxelab runs twice: as shipped, and
# with --tftp-spin-us 0 (no busy-polling for ACKs) to show what that buys.
# The peers are unpacked from their .debs (apt-get download + dpkg -x) into
# bench/out/peers, so nothing is installed as a service and no daemon is
# left listening. dnsmasq's TFTP port is fixed at 69: it binds
# 127.0.0.1:69 only. Needs root (port 69 and 21 are not used otherwise).
#
# Usage: bench/servers.sh [REPS]    (make bench)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=$here/out
reps=${1:-5}
pxelab=$root/target/release/pxelab
[ -x "$pxelab" ] || { echo "bench: build pxelab first (make build)" >&2; exit 4; }
mkdir -p "$out/peers" "$out/debs" "$out/logs"

# --- the peers, unpacked, not installed --------------------------------------
if [ ! -x "$out/peers/usr/sbin/in.tftpd" ] || [ ! -x "$out/peers/usr/sbin/atftpd" ] || [ ! -x "$out/peers/usr/sbin/vsftpd" ] || [ ! -x "$out/peers/usr/sbin/nginx" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends libwrap0 libpcre2-8-0 libcap2 libpam0g libssl3 zlib1g dnsmasq-base curl atftp >/dev/null
    (cd "$out/debs" && apt-get download -qq tftpd-hpa atftpd vsftpd nginx 2>/dev/null)
    for deb in "$out"/debs/*.deb; do dpkg -x "$deb" "$out/peers"; done
fi
[ -x /usr/bin/time ] || apt-get install -y -qq --no-install-recommends time >/dev/null
command -v dnsmasq >/dev/null || { echo "bench: dnsmasq missing (apt-get install dnsmasq-base)" >&2; exit 4; }

# --- the files ----------------------------------------------------------------
tree=$out/tree
if [ ! -f "$out/bench.iso" ]; then
    rm -rf "$tree"; mkdir -p "$tree"
    prng() ( set +o pipefail; openssl enc -aes-128-ctr -nosalt -pass "pass:$1" -pbkdf2 </dev/zero 2>/dev/null | head -c "$2" )
    prng bench40 $((40 * 1024 * 1024)) >"$tree/f40.bin"
    prng bench100 $((100 * 1024 * 1024)) >"$tree/f100.bin"
    xorriso -report_about WARNING -outdev "$out/bench.iso" -volid BENCH -map "$tree" / >/dev/null 2>&1
fi
chmod -R a+rX "$tree"

# --- helpers ------------------------------------------------------------------
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() { # wait_port udp|tcp PORT
    for _ in $(seq 1 100); do
        if [ "$1" = udp ]; then ss -Hlun "sport = :$2" | grep -q . && return 0
        else ss -Hltn "sport = :$2" | grep -q . && return 0; fi
        sleep 0.05
    done
    echo "bench: nothing listens on $1 port $2" >&2; return 1
}
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
now_ns() { date +%s%N; }
# CPU time, in ms, of everything on the host but the client: the host's busy
# time from /proc/stat minus the client's own (from /usr/bin/time). Per-process
# accounting would miss tftpd-hpa's and vsftpd's forked children.
hz=$(getconf CLK_TCK)
host_busy_ms() { awk -v hz="$hz" '/^cpu / {print int(($2 + $3 + $4 + $7 + $8 + $9) * 1000 / hz)}' /proc/stat; }

results=$out/results.tsv
: >"$results"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# measure NAME CASE EXPECTED_FILE CMD...: REPS timed runs, each checked byte
# for byte, with the CPU time the server spent on each (see host_busy_ms).
measure() {
    local name=$1 case=$2 want=$3; shift 3
    local times=() cpus=() dl=$out/dl.bin
    for _ in $(seq 1 "$reps"); do
        rm -f "$dl"
        local c0; c0=$(host_busy_ms)
        local t0; t0=$(now_ns)
        /usr/bin/time -f '%U %S' -o "$out/client.time" "$@" >/dev/null 2>&1 || { echo "bench: $name $case failed: $*" >&2; return 1; }
        local t1; t1=$(now_ns)
        local c1; c1=$(host_busy_ms)
        local client; client=$(awk '{print int(($1 + $2) * 1000)}' "$out/client.time")
        local server=$(( c1 - c0 - client )); [ "$server" -gt 0 ] || server=0
        cpus+=($server)
        cmp -s "$dl" "$want" || { echo "bench: $name $case served different bytes" >&2; return 1; }
        times+=($(( (t1 - t0) / 1000 )))
    done
    local us; us=$(printf '%s\n' "${times[@]}" | median)
    local cpu; cpu=$(printf '%s\n' "${cpus[@]}" | median)
    printf '%s\t%s\t%s\t%s\t%s\n' "$case" "$name" "$us" "$(stat -c %s "$want")" "$cpu" >>"$results"
    printf '  %-22s %-16s %8.3f s  server CPU %6.3f s\n' "$case" "$name" "$(echo "$us / 1000000" | bc -l)" "$(echo "$cpu / 1000" | bc -l)"
}

f40=$tree/f40.bin f100=$tree/f100.bin
tftp_cases() { # tftp_cases NAME PORT PATH_PREFIX WINDOWSIZE(yes|no)
    local name=$1 port=$2 prefix=$3
    measure "$name" "tftp blksize 512" "$f40" curl -s --tftp-blksize 512 -o "$out/dl.bin" "tftp://127.0.0.1:$port/${prefix}f40.bin"
    measure "$name" "tftp blksize 1468" "$f40" curl -s --tftp-blksize 1468 -o "$out/dl.bin" "tftp://127.0.0.1:$port/${prefix}f40.bin"
    if [ "$4" = yes ]; then
        measure "$name" "tftp 1468 window 8" "$f40" atftp --option "blksize 1468" --option "windowsize 8" -g -r "${prefix}f40.bin" -l "$out/dl.bin" 127.0.0.1 "$port"
    fi
}
rss=$out/rss.tsv
: >"$rss"

echo "bench: $reps runs per case, loopback only"

echo "pxelab ($($pxelab --version))"
"$pxelab" serve --iso "$out/bench.iso" --kernel f40.bin --initrd f40.bin --bind 127.0.0.1 \
    --tftp-port 6901 --ftp-port 2101 --http-port 8081 --passive-ports 51000-51050 >"$out/logs/pxelab.log" 2>&1 &
pxpid=$!; pids+=($pxpid)
wait_port udp 6901; wait_port tcp 2101; wait_port tcp 8081
tftp_cases pxelab 6901 iso/ yes
measure pxelab "ftp 100 MiB" "$f100" curl -s -o "$out/dl.bin" "ftp://127.0.0.1:2101/f100.bin"
measure pxelab "http 100 MiB" "$f100" curl -s -o "$out/dl.bin" "http://127.0.0.1:8081/iso/f100.bin"
printf 'pxelab\t%s\n' "$(peak_rss_kib $pxpid)" >>"$rss"
kill $pxpid; wait $pxpid 2>/dev/null || true

# The same without the ACK spin (--tftp-spin-us 0), to show what it buys.
echo "pxelab --tftp-spin-us 0"
"$pxelab" serve --iso "$out/bench.iso" --kernel f40.bin --initrd f40.bin --bind 127.0.0.1 \
    --tftp-port 6901 --ftp-port 2101 --http-port none --passive-ports 51000-51050 --tftp-spin-us 0 >"$out/logs/pxelab-nospin.log" 2>&1 &
pxpid=$!; pids+=($pxpid)
wait_port udp 6901
tftp_cases "pxelab, no spin" 6901 iso/ no
kill $pxpid; wait $pxpid 2>/dev/null || true

echo "tftpd-hpa"
"$out/peers/usr/sbin/in.tftpd" --foreground --listen --address 127.0.0.1:6902 --secure "$tree" >"$out/logs/tftpd-hpa.log" 2>&1 &
p=$!; pids+=($p); wait_port udp 6902
tftp_cases tftpd-hpa 6902 "" no
printf 'tftpd-hpa\t%s\n' "$(peak_rss_kib $p)" >>"$rss"; kill $p; wait $p 2>/dev/null || true

echo "atftpd"
"$out/peers/usr/sbin/atftpd" --daemon --no-fork --port 6903 --bind-address 127.0.0.1 --logfile "$out/logs/atftpd.log" "$tree" &
p=$!; pids+=($p); wait_port udp 6903
tftp_cases atftpd 6903 "" yes
printf 'atftpd\t%s\n' "$(peak_rss_kib $p)" >>"$rss"; kill $p; wait $p 2>/dev/null || true

echo "dnsmasq (TFTP only, 127.0.0.1:69)"
dnsmasq --keep-in-foreground --port=0 --listen-address=127.0.0.1 --bind-interfaces --interface=lo \
    --enable-tftp --tftp-root="$tree" --pid-file="$out/dnsmasq.pid" --log-facility="$out/logs/dnsmasq.log" --user=root &
p=$!; pids+=($p); wait_port udp 69
tftp_cases dnsmasq 69 "" yes
printf 'dnsmasq\t%s\n' "$(peak_rss_kib $p)" >>"$rss"; kill $p; wait $p 2>/dev/null || true

echo "vsftpd"
mkdir -p "$out/vsftpd-empty"
# vsftpd runs anonymous sessions as ftp_username and first changes to its
# home: daemon's (/usr/sbin) exists and it cannot write the tree.
cat >"$out/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=2102
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root=$tree
local_enable=NO
write_enable=NO
ftp_username=daemon
nopriv_user=nobody
secure_chroot_dir=$out/vsftpd-empty
pasv_enable=YES
pasv_min_port=51100
pasv_max_port=51150
pasv_address=127.0.0.1
seccomp_sandbox=NO
xferlog_enable=NO
EOF
"$out/peers/usr/sbin/vsftpd" "$out/vsftpd.conf" >"$out/logs/vsftpd.log" 2>&1 &
p=$!; pids+=($p); wait_port tcp 2102
measure vsftpd "ftp 100 MiB" "$f100" curl -s -o "$out/dl.bin" "ftp://127.0.0.1:2102/f100.bin"
printf 'vsftpd\t%s\n' "$(peak_rss_kib $p)" >>"$rss"; kill $p; wait $p 2>/dev/null || true

echo "nginx"
# Debian's own settings that matter here: sendfile on, a worker per core.
mkdir -p "$out/nginx"
cat >"$out/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $out/nginx/nginx.pid;
error_log $out/logs/nginx-error.log;
events { worker_connections 1024; }
http {
    sendfile on;
    tcp_nopush on;
    access_log off;
    client_body_temp_path $out/nginx/body;
    proxy_temp_path $out/nginx/proxy;
    fastcgi_temp_path $out/nginx/fastcgi;
    uwsgi_temp_path $out/nginx/uwsgi;
    scgi_temp_path $out/nginx/scgi;
    server { listen 127.0.0.1:8082; root $tree; }
}
EOF
"$out/peers/usr/sbin/nginx" -p "$out/nginx" -c "$out/nginx/nginx.conf" >"$out/logs/nginx.log" 2>&1 &
p=$!; pids+=($p); wait_port tcp 8082
measure nginx "http 100 MiB" "$f100" curl -s -o "$out/dl.bin" "http://127.0.0.1:8082/f100.bin"
# The master's children are the workers; their peak is what serving costs.
nginx_rss=0
for c in $(pgrep -P "$p"); do r=$(peak_rss_kib "$c"); [ "$r" -gt "$nginx_rss" ] && nginx_rss=$r; done
printf 'nginx (worker)\t%s\n' "$nginx_rss" >>"$rss"; kill $p; wait $p 2>/dev/null || true

# --- the table ----------------------------------------------------------------
echo
python3 - "$results" "$rss" <<'PY'
import sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
rss = dict(l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip())
cases = collections.OrderedDict()
for case, name, us, size, cpu in rows:
    cases.setdefault(case, {})[name] = (int(us), int(size), int(cpu))
print("| case | server | median s | MiB/s | server CPU s | pxelab speed ÷ peer |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for case, by in cases.items():
    px = by.get("pxelab")
    for name, (us, size, cpu) in by.items():
        mibs = size / (us / 1e6) / 2**20
        ratio = "" if name == "pxelab" or not px else f"{us / px[0]:.2f}×"
        print(f"| {case} | {name} | {us / 1e6:.3f} | {mibs:.1f} | {cpu / 1000:.2f} | {ratio} |")
print()
print("| server | peak RSS MiB |")
print("| --- | ---: |")
for name, kib in rss.items():
    print(f"| {name} | {int(kib) / 1024:.1f} |")
PY
