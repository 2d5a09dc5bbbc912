#!/usr/bin/env bash
# Make (once) and print the path of a cached tarball of a clean Debian 12 root (debootstrap
# minbase), for the package test. Usage: packaging/debian-root.sh CACHE_DIR
# The mirror is the one apt on this machine uses for bookworm (deb.debian.org if none is found).
set -euo pipefail

cache=$1
tarball="$cache/debian12-minbase.tar.gz"
if [[ -s $tarball ]]; then
    echo "$tarball"
    exit 0
fi

mirror_from_apt() {
    local uri
    uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' \
              /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' \
                               /etc/apt/sources.list 2>/dev/null || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

command -v debootstrap >/dev/null || {
    echo "debootstrap is not installed: apt-get install debootstrap" >&2
    exit 1
}
mkdir -p "$cache"
work=$(mktemp -d "$cache/root.XXXXXX")
trap 'rm -rf "$work"' EXIT
mirror=$(mirror_from_apt)
echo "debootstrap bookworm from $mirror (once; cached in $tarball)" >&2
debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    exit 1
}
rm -rf "$work/root/var/cache/apt/archives/"*.deb
tar -C "$work/root" -czf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
echo "$tarball"
