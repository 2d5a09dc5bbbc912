#!/usr/bin/env bash
# Build the Debian package of tutela: packaging/build-deb.sh OUTDIR [PYTHON]
#
# Debian 12's python3 packages are too old for tutela's dependencies (pydantic 2), so the
# package carries a private virtualenv in /opt/tutela: Debian's own python3 (3.11), this
# project's wheel and its dependencies from PyPI, compiled at build time. /usr/bin/tutela,
# tutelad and tutela-witness link into it. PYTHON (default: .venv/bin/python) runs the
# build tools: the wheel build, the man page generator (packaging/manpages.py).
# Prints the path of the .deb. Needs dpkg-deb, /usr/bin/python3 with venv, and PyPI.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
out=$(realpath -m "$1")
# -s: a venv's python is a symlink to its base interpreter; resolved, the venv is lost
tools_python=$(realpath -ms "${2:-$project/.venv/bin/python}")
target_python=/usr/bin/python3   # the interpreter the package depends on: Debian's
prefix=/opt/tutela

version=$("$tools_python" -c 'import tomllib, sys
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$project/pyproject.toml")
revision=1
arch=$(dpkg --print-architecture)
deb="$out/tutela_${version}-${revision}_${arch}.deb"
root="$out/root"
venv="$root$prefix"

mkdir -p "$out"
exec 9>"$out/.lock"
flock -n 9 || { echo "another build of the package runs in $out" >&2; exit 1; }
rm -rf "$root" "$out/wheels" "$out/man" "$out/completion"
mkdir -p "$root" "$out/wheels"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$project" log -1 --format=%ct 2>/dev/null || date +%s)}

echo "building the wheel of tutela $version" >&2
"$tools_python" -m pip wheel -q --no-deps --wheel-dir "$out/wheels" "$project" >&2

echo "making the private virtualenv $prefix (Debian's $("$target_python" --version))" >&2
"$target_python" -m venv "$venv"
"$venv/bin/pip" install -q --no-compile --disable-pip-version-check "$out"/wheels/tutela-*.whl >&2
"$venv/bin/pip" uninstall -q -y pip setuptools >&2   # nothing installs into it after the build
# pip's note of where the wheel came from names this build directory: not for the package.
for note in "$venv"/lib/python3*/site-packages/tutela-*.dist-info; do
    rm "$note/direct_url.json"
    sed -i '/direct_url.json/d' "$note/RECORD"
done
# A venv names its own path in its scripts and pyvenv.cfg: make that the installed path.
grep -rlI --null "$root" "$venv" | xargs -0 -r sed -i "s|$root||g"
# Byte-code with the installed paths in tracebacks, valid whatever the files' mtimes.
"$venv/bin/python" -m compileall -q -j 0 -s "$root" -p / \
    --invalidation-mode unchecked-hash "$venv/lib" >&2

echo "commands, units, configuration, man pages, completion" >&2
install -d "$root/usr/bin"
# Every console script of the wheel ([project.scripts]): tutela, tutelad, tutela-witness and
# the LifeKeeper and Serviceguard commands (docs/compat.md).
for command in $("$venv/bin/python" -c 'import importlib.metadata as m; print(*sorted(
        e.name for e in m.distribution("tutela").entry_points if e.group == "console_scripts"))'); do
    ln -s "$prefix/bin/$command" "$root/usr/bin/$command"
done
install -D -m 0644 -t "$root/lib/systemd/system" \
    "$here/systemd/tutelad.service" "$here/systemd/tutela-witness.service"
install -D -m 0644 "$here/etc/tutelad.env" "$root/etc/tutela/tutelad.env"
install -D -m 0644 "$here/etc/witness.env" "$root/etc/tutela/witness.env"
install -D -m 0644 "$here/etc/logrotate" "$root/etc/logrotate.d/tutela"
# The MIB of tutela's SNMP traps, in the wheel's data (PREFIX/share/snmp/mibs), linked where
# net-snmp's tools (snmptrapd, snmptranslate) look by default.
mib=share/snmp/mibs/TUTELA-MIB.txt
[[ -f "$venv/$mib" ]] || { echo "the wheel has no $mib" >&2; exit 1; }
install -d "$root/usr/share/snmp/mibs"
ln -s "$prefix/$mib" "$root/usr/$mib"

PYTHONPATH="$project/src" "$tools_python" "$here/manpages.py" "$out/man" >/dev/null
install -d "$root/usr/share/man/man8"
for page in "$out"/man/*.8; do
    gzip -9n <"$page" >"$root/usr/share/man/man8/$(basename "$page").gz"
done
PYTHONPATH="$project/src" "$tools_python" "$here/completions.py" "$out/completion" >/dev/null
install -D -m 0644 -t "$root/usr/share/bash-completion/completions" "$out"/completion/bash/*
install -D -m 0644 -t "$root/usr/share/zsh/vendor-completions" "$out"/completion/zsh/*

install -D -m 0644 "$project/README.md" "$root/usr/share/doc/tutela/README.md"
cp -r "$project/docs" "$root/usr/share/doc/tutela/docs"
cat >"$root/usr/share/doc/tutela/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tutela

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
 The private virtualenv in $prefix holds third-party packages from PyPI under their own
 licenses, listed in each package's dist-info directory there.
EOF

install -d "$root/DEBIAN"
install -m 0755 -t "$root/DEBIAN" "$here/debian/postinst" "$here/debian/prerm" \
    "$here/debian/postrm"
printf '%s\n' /etc/tutela/tutelad.env /etc/tutela/witness.env /etc/logrotate.d/tutela \
    >"$root/DEBIAN/conffiles"
sed -e "s/@VERSION@/$version-$revision/" -e "s/@ARCH@/$arch/" \
    -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$root" | cut -f1)/" \
    "$here/debian/control" >"$root/DEBIAN/control"

find "$root" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0 -r touch -h -d "@$SOURCE_DATE_EPOCH"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
