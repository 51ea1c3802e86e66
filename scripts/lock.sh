#!/usr/bin/env bash
# Regenerates the pinned, hashed lock of each role (kiosk, central, admin, dev) from pyproject.toml.
# Run after changing a dependency; commit the four files. Needs the dev venv (it carries uv).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.venv/bin/uv
for role in kiosk central admin dev; do
    # --universal: one lock for the Pi (aarch64) and x86_64 servers, with markers where they
    # differ; the hashes cover every wheel of each pinned version, so both platforms verify.
    "$uv" pip compile pyproject.toml --quiet --extra "$role" --universal --python-version 3.11 \
        --generate-hashes --no-header --annotation-style line \
        --custom-compile-command "scripts/lock.sh" --output-file "requirements/$role.lock"
    sed -i "1i # The $role role's dependencies, pinned with hashes. Regenerate: scripts/lock.sh" \
        "requirements/$role.lock"
done
