#!/usr/bin/env bash
# Host packages for the emulated aarch64 device of the slow ARM tests (tests/devices/arm64.py):
# QEMU 10's user-mode emulator from bookworm-backports (Debian 12's QEMU 7.2 crashes inside
# LiteRT's Interpreter.invoke), mmdebstrap for the arm64 root filesystem, OpenSSH for the sshd
# run inside it. Idempotent and quiet: a second run only checks. Without root or apt it says
# so and exits 0: the ARM tests then skip with their reason.
set -euo pipefail

BACKPORTS_LIST=/etc/apt/sources.list.d/edge-deeplab-bookworm-backports.sources
QEMU_MIN_MAJOR=10
HOST_PACKAGES="mmdebstrap binfmt-support openssh-server openssh-client"

qemu_major() {
    local version
    version=$(dpkg-query -W -f='${Version}' qemu-user-static 2>/dev/null || true)
    version=${version#*:}  # drop the epoch
    echo "${version%%.*}"
}

ready() {
    [ "$(qemu_major)" -ge "$QEMU_MIN_MAJOR" ] 2>/dev/null || return 1
    for pkg in $HOST_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || return 1
    done
}

register_binfmt() {
    # Debian's QEMU 10 registers its handlers through systemd-binfmt, which a container or a
    # CI runner without systemd never runs: write its line into binfmt_misc ourselves. A
    # handler registered before an upgrade keeps the old binary open (its F flag): $1=renew
    # drops it first.
    local handler=/proc/sys/fs/binfmt_misc/qemu-aarch64 conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || return 0
    fi
    if [ -e "$handler" ] && [ "${1:-}" = renew ]; then
        echo -1 > "$handler"
    fi
    if [ ! -e "$handler" ] && [ -f "$conf" ]; then
        cat "$conf" > /proc/sys/fs/binfmt_misc/register
    fi
}

if ready; then
    [ "$(id -u)" = 0 ] && register_binfmt
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "not root or no apt-get: the emulated aarch64 device cannot be built; the ARM tests will skip"
    exit 0
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
    echo "not Debian bookworm (${VERSION_CODENAME:-unknown}): install qemu-user-static >= $QEMU_MIN_MAJOR," \
         "mmdebstrap, binfmt-support and openssh-server yourself; the ARM tests skip until then"
    exit 0
fi
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > "$BACKPORTS_LIST" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $HOST_PACKAGES >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-user-static >/dev/null
register_binfmt renew
echo "installed: qemu-user-static $(dpkg-query -W -f='${Version}' qemu-user-static), $HOST_PACKAGES"
