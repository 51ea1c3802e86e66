"""A kiosk's first-boot bundle: who it is, where its broker is and how to prove it.

Central hands it out (to the admin's CLI on enrolment, or to the kiosk itself when it
claims an enrolment QR); the kiosk moves it into its state directory on first start.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer

from broker.ids import ID_PATTERN
from broker.messages import KioskConfig

BUNDLE_FILE = "bundle.json"


class EnrolmentBundle(BaseModel):
    """Everything a kiosk needs to join the fleet (its password is the only secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = Field(default=1, description="Bundle format version.")
    kiosk_id: str = Field(pattern=ID_PATTERN, description="The kiosk's id and broker user.")
    shelf_id: str = Field(pattern=ID_PATTERN, description="The shelf it serves.")
    mqtt_host: str = Field(min_length=1, max_length=253, description="Broker host name.")
    mqtt_port: int = Field(ge=1, le=65535, description="Broker port (TLS when ca_pem is set).")
    ca_pem: str | None = Field(
        default=None, max_length=16_384, description="The project CA that signed the broker."
    )
    mqtt_password: SecretStr = Field(description="The kiosk's own broker password.")
    config: KioskConfig = Field(description="Its configuration at enrolment time.")

    @field_serializer("mqtt_password", when_used="json")
    def _reveal(self, value: SecretStr) -> str:
        # Written to a 0600 file or sent over HTTPS only; repr and logs still mask it.
        return value.get_secret_value()
