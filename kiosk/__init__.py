"""The kiosk service that runs on each shelf's Raspberry Pi."""

__version__ = "0.1.0"
