#!/usr/bin/env bash
# Checks that each crate in vendor/ is exactly its published source plus the
# patch in vendor/patches (see vendor/README.md). The published .crate is
# taken from cargo's registry cache, or downloaded from crates.io.
#
# With --update, rewrites each patch from the published source and the
# copy in vendor/ instead: run it after changing a vendored crate.
#
# Usage: scripts/vendor-check.sh [--update]   (make vendor-check; part of make test)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
update=no; [ "${1:-}" = --update ] && update=yes
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
tab=$'\t'
status=0
for patch in "$root"/vendor/patches/*.patch; do
    crate_version=$(basename "$patch" .patch)          # e.g. libunftp-0.24.0
    name=${crate_version%-*} version=${crate_version##*-}
    cached=$(ls ~/.cargo/registry/cache/*/"$crate_version.crate" 2>/dev/null | head -1 || true)
    if [ -z "$cached" ]; then
        cached=$work/$crate_version.crate
        curl -sSfL -o "$cached" "https://static.crates.io/crates/$name/$crate_version.crate" \
            || { echo "vendor-check: cannot get $crate_version.crate from crates.io" >&2; exit 4; }
    fi
    tar xzf "$cached" -C "$work"
    if [ "$update" = yes ]; then
        # Paths relative to vendor/, no timestamps: the patch changes only when the code does.
        (cd "$work" && diff -ru "$crate_version/src" "$root/vendor/$name/src" || true) \
            | sed -e "s|$root/vendor/||" -e "s@^\(---\|+++\) \([^$tab]*\)$tab.*@\1 \2@" >"$patch"
        echo "vendor-check: wrote vendor/patches/$(basename "$patch")"
        continue
    fi
    patch -s -p1 -d "$work/$crate_version" <"$patch"
    if diff -r "$work/$crate_version/src" "$root/vendor/$name/src" >"$work/diff"; then
        echo "vendor-check: vendor/$name = $name $version + patches/$(basename "$patch")"
    else
        echo "vendor-check: vendor/$name/src differs from $name $version + its patch" \
            "(after changing it on purpose: scripts/vendor-check.sh --update):" >&2
        head -40 "$work/diff" >&2; status=1
    fi
done
exit $status
