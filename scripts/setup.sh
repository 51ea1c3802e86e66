#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to run and test CommunityShare kiosks.
# Idempotent: a second run only checks. Uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# grep reads all of it (no -q): with pipefail, ldconfig killed by SIGPIPE after an early
# match would fail the test, and every run would apt-get install libzbar0 again.
ldconfig -p 2>/dev/null | grep 'libzbar\.so\.0' >/dev/null || need+=(libzbar0)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)  # tests rasterise label-sheet PDFs
# The Pi-install test builds a kiosk venv over Debian's own python3 and its numpy and Pillow,
# as Raspberry Pi OS ships them (tests/e2e/test_pi_install.py).
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import numpy, PIL, ensurepip' >/dev/null 2>&1 \
    || need+=(python3 python3-venv python3-numpy python3-pil)
# The members' app's browser tests drive Debian's chromium through Playwright (never
# `playwright install`: no browser downloads).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ "${#need[@]}" -gt 0 ]; then
    echo "setup: installing ${need[*]}" >&2
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# PostgreSQL: the second storage backend, used by the tests and by multi-instance central.
# Start the packaged cluster if it is down, and make the role the tests connect as.
as_postgres=(runuser -u postgres --)
if [ "$(id -u)" -ne 0 ]; then as_postgres=(sudo -u postgres); fi
cluster="$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')"
if [ -z "$cluster" ]; then
    "${sudo_cmd[@]}" pg_createcluster 15 main >/dev/null
    cluster="$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')"
fi
if ! pg_lsclusters --no-header | awk 'NR==1 {print $4}' | grep -q online; then
    # shellcheck disable=SC2086  # "version name" is two arguments
    "${sudo_cmd[@]}" pg_ctlcluster $cluster start
fi
if ! "${as_postgres[@]}" psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'cs_test'" | grep -q 1; then
    "${as_postgres[@]}" psql -qc "CREATE ROLE cs_test LOGIN CREATEDB PASSWORD 'cs_test'"
fi
# Tests drop their databases WITH (FORCE); an autovacuum worker on one runs as the
# superuser, and only this lets the test role end it.
"${as_postgres[@]}" psql -qc "GRANT pg_signal_backend TO cs_test" >/dev/null

python3 - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"setup: Python 3.11 is required (Raspberry Pi OS Bookworm's), found {sys.version.split()[0]}")
PY

# The venv is rebuilt only when the pinned requirements or pyproject change. This machine
# builds, tests and demonstrates every role, so it takes the dev lock (requirements/dev.lock:
# kiosk + central + admin + test tools); a kiosk or a central installs only its own lock.
stamp=.venv/.installed
lock=requirements/dev.lock
if [ ! -x .venv/bin/python ] || [ "$lock" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: building .venv from $lock" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check --require-hashes -r "$lock"
    .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
    touch "$stamp"
fi
