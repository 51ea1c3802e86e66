#!/usr/bin/env bash
# Builds the kiosk's Debian package: the kiosk, its unit, its user, and the wheels of
# requirements/kiosk.lock, for this machine's architecture (build on arm64 for a Pi).
# Usage: scripts/build-kiosk-deb.sh [--version X.Y.Z] [--out DIR]   (prints the .deb's path)
# The project's wheel lands beside the .deb: that is the fleet release of this version.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
version="" out="$repo/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --version) version="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: $0 [--version X.Y.Z] [--out DIR]" >&2; exit 2 ;;
    esac
done
py=.venv/bin/python
[ -n "$version" ] || version="$("$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
arch="$(dpkg --print-architecture)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
app="$root/opt/communityshare"
mkdir -p "$app/wheels" "$app/requirements" "$root/lib/systemd/system" "$root/DEBIAN" "$out"

# The project's wheel, built from a copy so a release's version never edits the checkout.
src="$work/src"
mkdir "$src"
cp pyproject.toml README.md "$src/"
for package in broker central kiosk hardware provisioning demo; do
    cp -r "$package" "$src/"
done
find "$src" -name __pycache__ -prune -exec rm -rf {} +
sed -i "s/^version = \".*\"/version = \"$version\"/" "$src/pyproject.toml"
"$py" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$app/wheels" "$src"
# The same wheel is the fleet release (cs-admin release publish): kiosks unpack it over the base.
cp "$app/wheels/communityshare_kiosks-$version-py3-none-any.whl" "$out/"
# The kiosk's dependencies exactly as locked (hashes checked here and again at install).
"$py" -m pip download -q --disable-pip-version-check --require-hashes \
    -r requirements/kiosk.lock -d "$app/wheels"
cp requirements/kiosk.lock "$app/requirements/kiosk.lock"
cp systemd/cs-kiosk.service "$root/lib/systemd/system/"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/kiosk/$script" "$root/DEBIAN/$script"
done
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" \
    -e "s/@SIZE@/$(du -sk "$root" | cut -f1)/" packaging/kiosk/control > "$root/DEBIAN/control"
deb="$out/communityshare-kiosk_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
