#!/usr/bin/env bash
# Install the package into a clean Debian 12 root and check it: packaging/package-test.sh DEB CACHE
#
# The root is a debootstrap minbase of bookworm, made once and cached in CACHE
# (packaging/debian-root.sh), unpacked afresh into a temporary directory for every run. The
# test runs in a mount namespace of its own (unshare), so the /proc and /dev it mounts for
# the chroot vanish with it and the host's mounts are never touched. apt in the chroot
# resolves the package's dependencies from Debian's mirror. Then:
#   install -> the commands run (tutela doctor reports), every console script with its man
#              page (and completion where it has click's), the API, GUI and SNMP modules load
#              with their libraries (libpam), the GUI's files and the MIB are installed, every
#              kit is listed, units (not enabled), conffiles, /var/lib/tutela 0700, a node can
#              be initialised, a tutelad started that serves the API and GUI over HTTPS once
#              enabled, and the package refuses to be removed while it runs;
#   purge   -> nothing of tutela is left: the file tree is the one before the install.
set -euo pipefail

deb=$(realpath "$1")
cache=$2
here=$(cd "$(dirname "$0")" && pwd)
[[ $(id -u) = 0 ]] || { echo "package-test needs root (chroot, unshare)" >&2; exit 1; }

tarball=$("$here/debian-root.sh" "$cache")
work=$(mktemp -d /tmp/tutela-package-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir "$root"
tar -C "$root" -xzf "$tarball"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/tutela.deb"

cat >"$root/tmp/check.sh" <<'CHECK'
#!/bin/bash
# Runs inside the chroot.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
step() { echo "--- $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# man_has PAGE PATTERN: PAGE's man page has a line matching PATTERN. grep -c reads it all:
# grep -q would stop early, and zcat, killed by SIGPIPE, fail the pipe (pipefail).
man_has() { zcat "/usr/share/man/man8/$1.8.gz" | grep -c -- "$2" >/dev/null; }

# Everything but what apt, dpkg and this test change anyway.
tree() {
    find / -xdev \( -path /proc -o -path /dev -o -path /tmp -o -path /var/lib/dpkg \
        -o -path /var/lib/apt -o -path /var/cache -o -path /var/log -o -path /run \) \
        -prune -o -print | sort
}

step "apt-get install ./tutela.deb (dependencies from the mirror)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends /tmp/tutela.deb >/tmp/apt.log 2>&1 ||
    { tail -n 30 /tmp/apt.log; fail "apt-get install"; }
step "purge, to record the tree with the dependencies but without tutela"
dpkg --purge tutela >/dev/null
tree >/tmp/tree-before
step "dpkg -i tutela.deb"
dpkg -i /tmp/tutela.deb

step "the commands"
tutela --version
tutela --help >/dev/null
tutelad --help >/dev/null
tutela-witness --version
tutela-witness --help >/dev/null
export TUTELA_STATE_DIR=/tmp/node1
tutela init --cluster packaged --node node1 --address 127.0.0.1
[[ -f /tmp/node1/lcd.sqlite ]] || fail "tutela init made no LCD"
tutela status >/dev/null 2>&1 && fail "tutela status answers without a tutelad"

step "every console script: --help, a man page, completion for click's"
scripts=$(/opt/tutela/bin/python -c 'import importlib.metadata as m; print(*sorted(
    e.name for e in m.distribution("tutela").entry_points if e.group == "console_scripts"))')
[[ $(wc -w <<<"$scripts") -ge 17 ]] || fail "console scripts: $scripts"
for command in $scripts; do
    [[ $(readlink -f "/usr/bin/$command") = "/opt/tutela/bin/$command" ]] || fail "/usr/bin/$command"
    "$command" --help >/dev/null || fail "$command --help"
    man_has "$command" "^\.TH ${command^^} 8 " ||
        fail "no man page of $command"
done
for command in tutela tutela-witness lkstart cmviewcl cmmodpkg; do
    [[ -f /usr/share/bash-completion/completions/$command ]] || fail "bash completion: $command"
    [[ -f /usr/share/zsh/vendor-completions/_$command ]] || fail "zsh completion: $command"
done

step "the HTTPS API, the GUI, SNMP and mail notifications, the kits"
tutela api --help >/dev/null
tutela api serve --help >/dev/null
tutela api token --help >/dev/null
tutela gui --help >/dev/null
/opt/tutela/bin/python -m tutela.api --help >/dev/null
# python-pam loads libpam by ctypes: a login of nobody is refused, not an error.
/opt/tutela/bin/python -c 'import pam, tutela.api.app, tutela.api.server, tutela.apiauth.auth
import tutela.notifications.snmp, tutela.notifications.mail
assert pam.pam().authenticate("no-such-user", "x") is False' || fail "the API's modules"
/opt/tutela/bin/python -c 'from tutela.gui import STATIC_DIR
for name in ("index.html", "js/main.js", "css/tutela.css", "i18n/en.json", "i18n/ja.json"):
    assert (STATIC_DIR / name).is_file(), name' || fail "the GUI's static files"
mib=/usr/share/snmp/mibs/TUTELA-MIB.txt
[[ $(head -n 1 "$mib") = "TUTELA-MIB DEFINITIONS ::= BEGIN" ]] || fail "$mib"
tutela kit list --json >/tmp/kits.json
python3 -c 'import json, sys; kits = {k["kit"] for k in json.load(open("/tmp/kits.json"))}
wanted = {"ip", "filesystem", "generic", "process", "device", "postgresql", "mariadb",
          "apache", "nginx", "postfix", "samba", "nfs"}
sys.exit(f"kits missing: {wanted - kits}" if wanted - kits else 0)' || fail "tutela kit list"

step "tutela doctor (a root without a cluster: it runs and reports, 0, 1 or 3)"
doctor_rc=0; tutela doctor || doctor_rc=$?
[[ $doctor_rc =~ ^[013]$ ]] || fail "tutela doctor exited $doctor_rc"
tutela doctor --json >/tmp/doctor.json || true
python3 -c 'import json, sys; r = json.load(open("/tmp/doctor.json"))
sys.exit(not (r["findings"] and r["exit_code"] in (0, 1, 3) and r["cluster"] == "packaged"))' ||
    fail "tutela doctor --json: $(cat /tmp/doctor.json)"
TUTELA_STATE_DIR=/tmp/not-joined tutela doctor --json >/tmp/doctor.json || true
grep -q '"not initialised yet' /tmp/doctor.json || fail "tutela doctor before init"
unset TUTELA_STATE_DIR

step "man pages and completion (every command's page: above)"
man_has tutela '^\.SS "tutela hierarchy extend"' ||
    fail "tutela.8 lacks its subcommands"
grep -q "complete .*-F _tutela_completion tutela" /usr/share/bash-completion/completions/tutela
grep -q "^#compdef tutela-witness" /usr/share/zsh/vendor-completions/_tutela-witness

step "units installed, not enabled; configuration; state directory"
for unit in tutelad tutela-witness; do
    grep -q "^Type=notify" "/lib/systemd/system/$unit.service" || fail "$unit.service"
    [[ -z $(find /etc/systemd -name "$unit.service" 2>/dev/null) ]] || fail "$unit enabled"
done
grep -q "^/etc/tutela/tutelad.env$" /var/lib/dpkg/info/tutela.conffiles
[[ $(stat -c %a /var/lib/tutela) = 700 ]] || fail "/var/lib/tutela is not 0700"
[[ $(readlink -f /usr/bin/tutela) = /opt/tutela/bin/tutela ]]

step "a running tutelad keeps the package from being removed"
# In a network namespace of its own (loopback only), so its port is nobody else's.
unshare --net bash -euc '
    ip link set lo up
    tutela init --cluster packaged --node node1 --address 127.0.0.1 >/dev/null
    tutela start
    if dpkg --remove tutela 2>/tmp/refusal; then
        echo "FAIL: removed under a running tutelad" >&2; exit 1
    fi
    grep -q "tutelad is running on this node; stop it first" /tmp/refusal
    tutela config set settings.api.enabled true >/dev/null
    /opt/tutela/bin/python /tmp/gui-answers.py https://127.0.0.1:9443
    tutela gui | grep -q "https://" || { echo "FAIL: tutela gui" >&2; exit 1; }
    tutela stop
'
[[ -x /opt/tutela/bin/tutelad ]] || fail "the refused removal removed files"

step "a state directory in use, then dpkg --purge"
mkdir -p /var/lib/tutela-witness
touch /var/lib/tutela-witness/witness.log
dpkg --purge tutela
for left in /opt/tutela /etc/tutela /var/lib/tutela /var/lib/tutela-witness /usr/bin/tutela \
            /etc/logrotate.d/tutela /lib/systemd/system/tutelad.service; do
    [[ ! -e $left ]] || fail "$left is left after purge"
done
tree >/tmp/tree-after
diff -u /tmp/tree-before /tmp/tree-after || fail "purge left the files above"
echo "package test passed"
CHECK
chmod +x "$root/tmp/check.sh"

cat >"$root/tmp/gui-answers.py" <<'GUI'
"""Wait (60 s at most) until tutelad's API process serves the GUI's page and refuses an
unauthenticated status request: python gui-answers.py BASE_URL."""
import ssl
import sys
import time
import urllib.error
import urllib.request

base = sys.argv[1]
unverified = ssl._create_unverified_context()  # the node's own self-signed certificate
deadline = time.monotonic() + 60
while True:
    try:
        page = urllib.request.urlopen(base + "/", context=unverified, timeout=5).read()
        break
    except OSError as error:
        if time.monotonic() > deadline:
            sys.exit(f"FAIL: no GUI at {base}/: {error}")
        time.sleep(0.2)
assert b"<html" in page.lower(), page[:200]
try:
    urllib.request.urlopen(base + "/api/v1/status", context=unverified, timeout=5)
    sys.exit("FAIL: /api/v1/status answered without a login")
except urllib.error.HTTPError as error:
    assert error.code == 401, error.code
print(f"the GUI and API answer at {base}")
GUI

# A PID namespace too: whatever the test starts ends with it, even if it fails halfway.
unshare --mount --propagation private --pid --fork -- bash -euc '
    root=$1
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    chroot "$root" /tmp/check.sh
' _ "$root"
