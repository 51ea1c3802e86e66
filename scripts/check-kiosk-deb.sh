#!/usr/bin/env bash
# Installs the kiosk's Debian package into a clean Debian bookworm (a chroot made here with
# mmdebstrap from apt's own mirror) and checks it: the venv keeps the system numpy, the user
# has only video and gpio, the kiosk validates its config, its unit passes systemd-analyze.
# Usage: scripts/check-kiosk-deb.sh dist/communityshare-kiosk_<version>_<arch>.deb
set -euo pipefail
deb="$(realpath "$1")"
command -v mmdebstrap >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
}
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
# Hooks run with /proc and /dev mounted in the chroot; apt resolves the package's Depends.
# systemd: a Pi runs it, and systemd-analyze --root needs its targets.
mmdebstrap --quiet --variant=apt --mode=root --include=systemd \
    --customize-hook="copy-in $deb /tmp" \
    --customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/$(basename "$deb") >/dev/null" \
    --customize-hook='chroot "$1" /opt/communityshare/.venv/bin/python -c "import numpy, sys; sys.exit(0 if numpy.__file__.startswith(\"/usr/lib/python3/dist-packages/\") else \"numpy is not the system one: \" + numpy.__file__)"' \
    --customize-hook='chroot "$1" env CS_KIOSK_KIOSK_ID=KIOSK-CI /opt/communityshare/.venv/bin/cs-kiosk --validate-config >/dev/null' \
    bookworm "$root"
groups="$(chroot "$root" id -Gn cs-kiosk | tr ' ' '\n' | sort | tr '\n' ' ')"
[ "$groups" = "cs-kiosk gpio video " ] || { echo "check: cs-kiosk groups are: $groups" >&2; exit 1; }
[ -L "$root/etc/systemd/system/multi-user.target.wants/cs-kiosk.service" ] \
    || { echo "check: cs-kiosk.service is not enabled" >&2; exit 1; }
systemd-analyze verify --root="$root" /lib/systemd/system/cs-kiosk.service
echo "check: $(basename "$deb") installs on a clean bookworm; its unit verifies"
