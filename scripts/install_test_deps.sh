#!/usr/bin/env bash
# What the remote-target tests need besides Python packages: OpenSSH's server (sshd) and
# client, from Debian. Idempotent: does nothing when they are there; without root or apt it
# says why and the tests that need sshd skip with their reason.
set -euo pipefail
if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
    # Debian's package starts a system sshd where it can; the tests start their own and never use it.
else
    echo "openssh-server not installed (needs root and apt): the remote-target tests will skip"
fi
