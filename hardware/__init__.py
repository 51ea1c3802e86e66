"""Kiosk hardware behind small interfaces: camera, QR decoder, lights, buzzer, button."""

from hardware.errors import CameraError, DecoderError, HardwareError
from hardware.interfaces import Button, Buzzer, Camera, Capture, Decoder, Frame, Lights, Rgb

__all__ = [
    "Button",
    "Buzzer",
    "Camera",
    "CameraError",
    "Capture",
    "Decoder",
    "DecoderError",
    "Frame",
    "HardwareError",
    "Lights",
    "Rgb",
]
