#!/usr/bin/env bash
# Runs each fuzz target for SECONDS under AddressSanitizer, with libFuzzer's
# memory limits on (an allocation over 256 MB is a finding: "no huge
# allocation" for hostile ISOs). Exits non-zero on the first crash; its
# input is in fuzz/artifacts/TARGET/ and `cargo fuzz run TARGET FILE` replays it.
#
#   bash fuzz/run.sh SECONDS TARGET...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=$1; shift
export RUSTC_BOOTSTRAP=1   # stable toolchain; cargo fuzz passes -Z flags
cargo fuzz build -O >/dev/null 2>&1 || cargo fuzz build -O
for target in "$@"; do
    mkdir -p "fuzz/corpus/$target"
    # Seeds: valid inputs a random start takes long to find (a DHCP message
    # is 240 bytes before its first option).
    if [ -d "fuzz/seeds/$target" ]; then cp -n "fuzz/seeds/$target"/* "fuzz/corpus/$target/"; fi
    log=$(mktemp)
    if ! cargo fuzz run -O "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=16384 -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz: $target ok: $runs inputs in ${seconds}s, $cov, corpus $(ls "fuzz/corpus/$target" | wc -l)"
    rm -f "$log"
done
