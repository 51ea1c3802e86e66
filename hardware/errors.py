"""Hardware faults.

HardwareError
 ├── CameraError   (RuntimeError)  camera failed to open, stalled or vanished
 └── DecoderError  (RuntimeError)  the decoder library is missing or broken
"""


class HardwareError(Exception):
    """Root of every fault raised by ``hardware``."""


class CameraError(HardwareError, RuntimeError):
    """The camera could not deliver a frame in time."""


class DecoderError(HardwareError, RuntimeError):
    """The QR decoder could not run."""
