"""Pydantic models for every payload on the wire, with the protocol version."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from broker.codes import ALPHANUMERIC, MAX_CODE_LENGTH
from broker.errors import ContractError
from broker.ids import EventId, ItemId, KioskId, MemberId, ShelfId

PROTOCOL_VERSION = 1
# Scan payloads are a few hundred bytes; anything near this is an attack or a bug.
MAX_PAYLOAD_BYTES = 4096
# Every time on the wire lies in this range once converted to UTC. A type check alone lets
# through "0001-01-01T00:00:00+14:00", which is year 0 in UTC: converting it (to store
# it, or to compare it with another time) raises OverflowError deep inside central.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _sane_time(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # pydantic reports only ValueError as a validation error
        raise ValueError("time out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"time outside {EARLIEST.year}..{LATEST.year} (UTC)")
    return utc


# A timezone-aware time between EARLIEST and LATEST, handed on in UTC.
WireTime = Annotated[AwareDatetime, AfterValidator(_sane_time)]


def _qr_text(value: str) -> str:
    if not ALPHANUMERIC.issuperset(value):
        raise ValueError("code is not QR alphanumeric text")
    return value


# Printable ASCII only: these strings reach logs, the console and the audit log.
_Printable = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]*$")]


class Reason(StrEnum):
    """Why a scan got its verdict (which ones are acceptances: :attr:`accepted`)."""

    SESSION_OPENED = "SESSION_OPENED"
    CHECKED_OUT = "CHECKED_OUT"
    RETURNED = "RETURNED"
    SESSION_CLOSED = "SESSION_CLOSED"
    EXPIRED = "EXPIRED"
    ALREADY_USED = "ALREADY_USED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    REVOKED = "REVOKED"
    UNKNOWN_CODE = "UNKNOWN_CODE"
    MEMBER_SUSPENDED = "MEMBER_SUSPENDED"
    LIMIT_REACHED = "LIMIT_REACHED"
    ITEM_UNAVAILABLE = "ITEM_UNAVAILABLE"
    NOT_CHECKED_OUT = "NOT_CHECKED_OUT"
    WRONG_SHELF = "WRONG_SHELF"  # a return at a kiosk of another shelf (not a return point)
    NO_SESSION = "NO_SESSION"
    RATE_LIMITED = "RATE_LIMITED"
    KIOSK_BLOCKED = "KIOSK_BLOCKED"
    FEATURE_DISABLED = "FEATURE_DISABLED"
    MALFORMED = "MALFORMED"
    # Circulation (docs/circulation.md).
    HOLD_PLACED = "HOLD_PLACED"  # the item is out: the member joined its waitlist
    RENEWED = "RENEWED"  # the member's own loan, scanned again in a session
    RETURNED_TO_HOLD = "RETURNED_TO_HOLD"  # returned; goes to the hold shelf for the next member
    RESERVED = "RESERVED"  # held or booked for someone else
    HOLD_WAITING = "HOLD_WAITING"  # renewal refused: someone waits for it
    RENEWAL_LIMIT = "RENEWAL_LIMIT"
    TOO_OVERDUE = "TOO_OVERDUE"  # renewal refused: overdue past the grace period
    NEEDS_TRAINING = "NEEDS_TRAINING"
    NEEDS_AGREEMENT = "NEEDS_AGREEMENT"
    OVERDUE_BLOCK = "OVERDUE_BLOCK"  # checkout refused: the member has something long overdue
    PROBLEM_REPORTED = "PROBLEM_REPORTED"  # inspection at return: the item went to repair

    @property
    def accepted(self) -> bool:
        """Whether this reason means the scan did what the member wanted."""
        return self in _ACCEPTED


_ACCEPTED = frozenset(
    {
        Reason.SESSION_OPENED,
        Reason.CHECKED_OUT,
        Reason.RETURNED,
        Reason.SESSION_CLOSED,
        Reason.HOLD_PLACED,
        Reason.RENEWED,
        Reason.RETURNED_TO_HOLD,
        Reason.PROBLEM_REPORTED,
    }
)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = Field(default=1, description="Protocol version.")


class _Settings(BaseModel):
    """A group of settings inside a message (versioned by the message around it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeScan(_Message):
    """A kiosk saw a QR code (kiosk → central, QoS 1)."""

    type: Literal["code"] = "code"
    event_id: EventId = Field(description="Minted by the kiosk; keys idempotency.")
    kiosk_id: KioskId = Field(description="Must match the kiosk in the topic.")
    code: Annotated[str, AfterValidator(_qr_text)] = Field(
        max_length=MAX_CODE_LENGTH, description="Raw decoded QR text (QR alphanumeric)."
    )
    scanned_at: WireTime = Field(description="When the camera saw it (kiosk clock).")
    queued: bool = Field(default=False, description="Taken while offline, sent later.")


class SessionDone(_Message):
    """The member pressed "done" (kiosk → central, QoS 1)."""

    type: Literal["done"] = "done"
    event_id: EventId
    kiosk_id: KioskId
    scanned_at: WireTime


class ProblemReport(_Message):
    """After a return the member pressed the button: something is wrong with the item
    (kiosk → central, QoS 1, on the kiosk's scan topic)."""

    type: Literal["problem"] = "problem"
    event_id: EventId
    kiosk_id: KioskId
    scanned_at: WireTime
    return_event_id: EventId = Field(description="The return scan this report is about.")


# Everything a kiosk sends on its scan topic.
AnyEvent = CodeScan | SessionDone | ProblemReport
KioskEvent = Annotated[AnyEvent, Field(discriminator="type")]
_EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(KioskEvent)


class Verdict(_Message):
    """Central's answer to one event (central → the scanning kiosk, QoS 1)."""

    event_id: EventId
    kiosk_id: KioskId
    reason: Reason
    accepted: bool
    item_id: ItemId | None = None
    item_name: str | None = Field(default=None, max_length=80)
    member_name: str | None = Field(default=None, max_length=80, description="Greeting only.")
    session_open: bool = Field(description="Whether a session is open at this kiosk now.")
    session_expires_at: WireTime | None = None
    due_at: WireTime | None = None
    decided_at: WireTime


class AvailabilityState(StrEnum):
    """Where an item stands."""

    AVAILABLE = "available"
    CHECKED_OUT = "checked_out"
    HELD = "held"  # on the hold shelf, for the member whose hold is ready
    MAINTENANCE = "maintenance"
    RETIRED = "retired"


class Availability(_Message):
    """One item's state (central → kiosks, retained per item)."""

    item_id: ItemId
    shelf_id: ShelfId
    name: str = Field(max_length=80)
    state: AvailabilityState
    due_at: WireTime | None = None
    seq: int = Field(ge=0, description="Grows with every change, so stale copies lose.")
    changed_at: WireTime


class KioskState(StrEnum):
    """Presence as the broker and the kiosk report it."""

    ONLINE = "online"
    OFFLINE = "offline"
    STOPPED = "stopped"


# A release's version: what pip and dpkg accept, and safe in a file name.
ReleaseVersion = Annotated[str, StringConstraints(pattern=r"^[0-9][0-9A-Za-z.+~-]{0,31}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class UpdateState(StrEnum):
    """Where a fleet update stands on one kiosk, as the kiosk reports it."""

    DOWNLOADING = "downloading"
    INSTALLED = "installed"  # on disk and chosen; the kiosk restarts onto it for a trial
    HEALTHY = "healthy"  # the new version came back with broker, camera and decoder working
    ROLLED_BACK = "rolled_back"  # it did not: the kiosk went back to the version before
    REFUSED = "refused"  # never installed: bad hash, bad signature, failed download


class UpdateRefusal(StrEnum):
    """Why a kiosk refused an update or rolled it back (a reason code, never free text)."""

    BAD_HASH = "BAD_HASH"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    NO_TRUSTED_KEY = "NO_TRUSTED_KEY"
    TOO_LARGE = "TOO_LARGE"
    DOWNLOAD_FAILED = "DOWNLOAD_FAILED"
    INSTALL_FAILED = "INSTALL_FAILED"
    NOT_HEALTHY = "NOT_HEALTHY"  # up, but not broker + camera + decode within the deadline
    CRASH_LOOP = "CRASH_LOOP"  # it kept exiting before it could become healthy
    ROLLED_BACK_BEFORE = "ROLLED_BACK_BEFORE"  # this version failed here once: not retried


class UpdateProgress(_Settings):
    """One kiosk's part in one rollout (inside its status)."""

    rollout_id: int = Field(ge=1, description="The rollout that offered it.")
    version: ReleaseVersion = Field(description="The version offered.")
    state: UpdateState
    reason: UpdateRefusal | None = Field(default=None, description="Why refused or rolled back.")


class UpdateOffer(_Message):
    """Central asks one kiosk to install a release (central → kiosk command topic, QoS 1).

    Not retained: central repeats it to every kiosk of the cohort that is online and not
    yet on the version, so a kiosk that was off catches up when it returns.
    """

    command: Literal["update"] = "update"
    rollout_id: int = Field(ge=1, description="Reported back in the kiosk's status.")
    version: ReleaseVersion
    url: str = Field(max_length=500, description="Where central serves the artifact (HTTPS).")
    sha256: Sha256Hex = Field(description="SHA-256 of the artifact, hex.")
    size: int = Field(ge=1, le=64 * 1024 * 1024, description="Artifact size in bytes.")
    signature: str = Field(
        max_length=200, description="Base64 Ed25519 signature by a release key (broker.release)."
    )
    issued_at: AwareDatetime


class KioskStatus(_Message):
    """A kiosk's presence and health (kiosk → all, retained, last will ``offline``)."""

    kiosk_id: KioskId
    state: KioskState
    software_version: _Printable = Field(max_length=32)
    config_version: int = Field(ge=0, description="The configuration the kiosk runs.")
    outbox_depth: int = Field(default=0, ge=0)
    camera_ok: bool = True
    at: WireTime
    # The health figures below came after the first release: optional, so old kiosks'
    # retained statuses still parse.
    camera_fps: float | None = Field(
        default=None, ge=0, le=1000, description="Frames read per second, recently."
    )
    decode_ms: float | None = Field(
        default=None, ge=0, le=60_000, description="Median decode time of the recent frames."
    )
    config_problem: _Printable | None = Field(
        default=None, max_length=200, description="Why part of the configuration is not applied."
    )
    # Left out (None) while there are none, so a healthy kiosk's status encodes exactly as
    # before and centrals that predate these fields keep accepting it.
    frame_errors: int | None = Field(
        default=None, ge=1, description="Frames the decoder could not read since the kiosk started."
    )
    frame_error: str | None = Field(
        default=None, max_length=40, description="Why the most recent such frame failed."
    )
    update: UpdateProgress | None = Field(
        default=None, description="Where the newest fleet update offered to this kiosk stands."
    )


class Sound(StrEnum):
    """When the kiosk's buzzer sounds."""

    ALL = "all"  # every pattern that beeps
    REFUSALS = "refusals"  # refusals and identify only: accepted scans are lights only
    OFF = "off"  # never (a quiet room): the LEDs still say everything


class FeedbackConfig(_Settings):
    """How the kiosk signals to members; unset fields keep the kiosk's own."""

    sound: Sound | None = Field(default=None, description="When the buzzer sounds.")


_Gpio = Annotated[int, Field(ge=0, le=27)]


class PinConfig(_Settings):
    """GPIO pins (BCM numbers) of the feedback devices; unset ones keep the kiosk's own."""

    red: _Gpio | None = Field(default=None, description="Red LED.")
    green: _Gpio | None = Field(default=None, description="Green LED.")
    blue: _Gpio | None = Field(default=None, description="Blue LED.")
    buzzer: _Gpio | None = Field(default=None, description="Buzzer.")
    button: _Gpio | None = Field(default=None, description='The "done" button.')

    @model_validator(mode="after")
    def _one_device_per_pin(self) -> PinConfig:
        given = [pin for pin in self.model_dump().values() if pin is not None]
        if len(set(given)) != len(given):
            raise ValueError(f"two devices on one pin: {sorted(given)}")
        return self


_Side = Annotated[int, Field(ge=64, le=4096)]


class CameraConfig(_Settings):
    """Camera settings (picamera2 takes all of them); unset ones keep the kiosk's own."""

    size: tuple[_Side, _Side] | None = Field(
        default=None, description="Scan stream width and height in pixels."
    )
    fps: float | None = Field(default=None, gt=0, le=120, description="Frames per second.")
    exposure_us: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Fixed exposure in µs (else automatic)."
    )
    focus: float | None = Field(
        default=None,
        ge=0,
        le=32,
        description="Fixed lens position in dioptres, 0 is infinity (else autofocus).",
    )


class KioskConfig(_Message):
    """What central wants a kiosk to do (central → kiosk, retained).

    The groups after ``checkout_enabled`` came later and are optional: a kiosk keeps its
    own settings for whatever is unset, and old retained configs still parse.
    """

    kiosk_id: KioskId
    shelf_id: ShelfId
    config_version: int = Field(ge=0)
    session_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    checkout_enabled: bool = True
    # None when nothing in the group is set, so such a config encodes exactly as the
    # first release's did and kiosks still running that release keep accepting it.
    pins: PinConfig | None = Field(default=None, description="GPIO pins.")
    camera: CameraConfig | None = Field(default=None, description="Camera settings.")
    feedback: FeedbackConfig | None = Field(default=None, description="Buzzer and patterns.")


class KioskCommand(_Message):
    """A one-off instruction to a kiosk (central → kiosk)."""

    command: Literal["identify"]
    issued_at: WireTime


KioskOrder = Annotated[KioskCommand | UpdateOffer, Field(discriminator="command")]
_ORDER_ADAPTER: TypeAdapter[KioskCommand | UpdateOffer] = TypeAdapter(KioskOrder)


class SecurityAlert(_Message):
    """Something operators must look at (central → alerts topic)."""

    kind: str = Field(max_length=64)
    kiosk_id: KioskId | None = None
    member_id: MemberId | None = None
    detail: str = Field(max_length=500)
    at: WireTime


_M = TypeVar("_M", bound=BaseModel)


def _load_json(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        # RecursionError: "[[[[…" nests past the parser's stack in a few hundred bytes.
        raise ContractError("not_json", type(exc).__name__) from None


def _check_version(data: Any) -> None:
    if not isinstance(data, dict):
        raise ContractError("bad_fields", "payload is not a JSON object")
    version = data.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # True == 1 must not pass
        raise ContractError("bad_version", f"protocol version {version!r} unsupported")


def parse_message(model: type[_M], payload: bytes) -> _M:
    """Decode one payload into ``model`` or raise :class:`ContractError`."""
    data = _load_json(payload)
    _check_version(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ContractError("bad_fields", _summary(exc)) from None


def parse_event(kiosk_id: str, payload: bytes) -> AnyEvent:
    """Decode a kiosk event that arrived on ``kiosk_id``'s scan topic."""
    data = _load_json(payload)
    _check_version(data)
    try:
        event = _EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ContractError("bad_fields", _summary(exc)) from None
    if event.kiosk_id != kiosk_id:
        # A kiosk may only speak for itself; the broker ACL pins the topic, this pins
        # the payload to the topic.
        raise ContractError("kiosk_mismatch", f"payload kiosk {event.kiosk_id} on {kiosk_id}")
    return event


def parse_command(payload: bytes) -> KioskCommand | UpdateOffer:
    """Decode what central sent on a kiosk's command topic."""
    data = _load_json(payload)
    _check_version(data)
    try:
        return _ORDER_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ContractError("bad_fields", _summary(exc)) from None


def _summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])


def encode(message: BaseModel) -> bytes:
    """The canonical JSON bytes of a message."""
    return message.model_dump_json(exclude_none=True).encode()


def utc_iso(moment: datetime) -> str:
    """An ISO-8601 UTC string, for logs and the demo."""
    return moment.isoformat(timespec="milliseconds")
