"""Kiosk settings: environment (``CS_KIOSK_*``) or systemd credentials, checked strictly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.ids import ID_PATTERN
from broker.messages import Sound
from broker.release import public_key

# A kiosk nobody has enrolled yet: it waits for a bundle or an enrolment QR.
UNENROLLED = "UNENROLLED"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PiCameraSettings(_Strict):
    """The Pi camera module through picamera2."""

    type: Literal["picamera"] = "picamera"
    lores_size: tuple[int, int] = Field(default=(640, 480), description="Scan stream size.")
    main_size: tuple[int, int] = Field(default=(1280, 960), description="Snapshot size.")
    fps: float = Field(default=30.0, gt=0, le=120, description="Frames per second.")
    autofocus: bool = Field(default=True, description="Continuous AF where the module has it.")
    exposure_us: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Fixed exposure in µs; automatic if unset."
    )
    focus: float | None = Field(
        default=None, ge=0, le=32, description="Fixed lens position in dioptres (turns AF off)."
    )


class SceneCameraSettings(_Strict):
    """A synthetic camera showing rendered codes (demo, tests, benchmarks)."""

    type: Literal["scene"] = "scene"
    fps: float = Field(default=30.0, gt=0, le=240, description="Frames per second.")
    size: tuple[int, int] = Field(default=(640, 480), description="Frame width and height.")


class ReplayCameraSettings(_Strict):
    """Frames replayed from image files."""

    type: Literal["replay"] = "replay"
    paths: list[Path] = Field(min_length=1, description="Images to serve, in order.")
    fps: float = Field(default=30.0, gt=0, le=240, description="Frames per second.")
    loop: bool = Field(default=True, description="Start again at the end.")


CameraSettings = Annotated[
    PiCameraSettings | SceneCameraSettings | ReplayCameraSettings, Field(discriminator="type")
]


class PinSettings(_Strict):
    """GPIO pins (BCM numbering) for the feedback devices."""

    red: int = Field(default=17, ge=0, le=27, description="Red LED.")
    green: int = Field(default=27, ge=0, le=27, description="Green LED.")
    blue: int = Field(default=22, ge=0, le=27, description="Blue LED.")
    buzzer: int = Field(default=23, ge=0, le=27, description="Buzzer.")
    button: int = Field(default=24, ge=0, le=27, description='The "done" button.')
    mock: bool = Field(default=False, description="Use gpiozero's MockFactory (no Pi).")


class KioskSettings(BaseSettings):
    """Everything one kiosk needs to run."""

    # hide_input_in_errors: a missing field must not echo the password back into the logs.
    model_config = SettingsConfigDict(
        env_prefix="CS_KIOSK_",
        env_nested_delimiter="__",
        extra="forbid",
        hide_input_in_errors=True,
    )

    kiosk_id: str = Field(
        default=UNENROLLED,
        pattern=ID_PATTERN,
        description="This kiosk's id (MQTT identity); taken from its enrolment if unset.",
    )
    state_dir: Path = Field(default=Path("var/kiosk"), description="Outbox and secrets.")
    mqtt_host: str = Field(default="127.0.0.1", description="Broker host.")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="Broker port.")
    mqtt_username: str | None = Field(default=None, description="This kiosk's broker user.")
    mqtt_password: SecretStr | None = Field(default=None, description="Broker password.")
    mqtt_tls_ca: Path | None = Field(
        default=None, description="Connect over TLS, trusting this CA (PEM)."
    )
    bundle_dir: Path | None = Field(
        default=None,
        description="Where an admin may drop a first-boot bundle (e.g. /boot/firmware/"
        "communityshare); read once, its secret moved into state_dir.",
    )
    claim_url: str | None = Field(
        default=None,
        description="Central's HTTPS address for zero-touch enrolment by QR (unenrolled kiosks).",
    )
    claim_ca: Path | None = Field(
        default=None, description="The CA that signed central's HTTPS certificate."
    )
    camera: CameraSettings = Field(
        default_factory=PiCameraSettings, description="Where frames come from."
    )
    decoder: Literal["pyzbar", "zxing-cpp"] = Field(
        default="zxing-cpp", description="QR decoder backend."
    )
    pins: PinSettings = Field(default_factory=PinSettings, description="Feedback pins.")
    session_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="Idle session end, until config arrives."
    )
    debounce_s: float = Field(
        default=1.5, gt=0, le=10, description="A code must leave view this long to count again."
    )
    frame_timeout_s: float = Field(
        default=2.0, gt=0, le=30, description="A camera silent this long is at fault."
    )
    resend_every_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="While online, re-send unanswered scans this often.",
    )
    verdict_timeout_s: float = Field(
        default=3.0, gt=0, le=30, description="Wait this long for central before saying so."
    )
    inspect_window_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="After a return, a press of the button this soon reports a problem "
        "with the item (0: never asks).",
    )
    status_every_s: float = Field(
        default=30.0, gt=0, le=3600, description="Report health (retained status) this often."
    )
    sound: Sound = Field(
        default=Sound.ALL, description="When the buzzer sounds, unless central says."
    )
    update_keys: list[str] = Field(
        default=[],
        max_length=8,
        description="Release keys this kiosk trusts (base64 Ed25519 public keys); with none "
        "it refuses every fleet update.",
    )
    update_ca: Path | None = Field(
        default=None,
        description="The CA of central's HTTPS for downloads (default: claim_ca, then the "
        "system's).",
    )
    update_health_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="A new version must have broker, camera and decoder working this soon "
        "after it starts, or the kiosk rolls back.",
    )
    update_check_every_s: float = Field(
        default=1.0, gt=0, le=60, description="How often a waiting update looks for idle."
    )

    @field_validator("update_keys")
    @classmethod
    def _keys_parse(cls, keys: list[str]) -> list[str]:
        for key in keys:
            public_key(key)  # ValueError names the problem; the key itself is public
        return keys


def load_settings(**overrides: Any) -> KioskSettings:
    """Settings from the environment, with systemd credentials if the unit passes any."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds:
        return KioskSettings(_secrets_dir=creds, **overrides)
    return KioskSettings(**overrides)
