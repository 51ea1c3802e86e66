"""The kiosk service that runs on each shelf's Raspberry Pi."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The installed distribution's version, so a fleet release built with
    # scripts/build-kiosk-deb.sh --version reports exactly the version it was built as.
    __version__ = version("communityshare-kiosks")
except PackageNotFoundError:  # a bare checkout on sys.path, never installed
    __version__ = "0.0.0"
