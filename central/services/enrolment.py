"""The fleet's membership: enrol a kiosk (its bundle), enrolment QR codes, claims, retire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, SecretStr

from broker import auth, topics
from broker.bundle import EnrolmentBundle
from broker.ids import is_id
from broker.messages import Reason, encode
from central.clock import Clock
from central.consumer import Publisher
from central.dynsec import BrokerControlError
from central.errors import StorageError
from central.fleet import BrokerAccounts
from central.services.claims import ClaimGate
from central.services.refusals import Refusal, RefusedError, audited
from central.storage.base import Store
from central.tokens import Enrolment, TokenSigner, fingerprint, new_id

# Seconds a caller refused for claiming too fast should wait before trying again.
CLAIM_RETRY_S = 10


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """What goes into every bundle: where kiosks find the broker and the CA to trust."""

    host: str
    port: int
    ca_pem: str | None


class EnrolCode(BaseModel):
    """The enrolment QR's text and what it will enrol."""

    claim_id: str
    kiosk_id: str
    shelf_id: str
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class KioskEnrolment:
    """Kiosks joining and leaving the fleet through one central instance."""

    store: Store
    signer: TokenSigner
    clock: Clock
    publisher: Publisher
    accounts: BrokerAccounts
    broker: BrokerAddress
    gate: ClaimGate
    actor: str

    async def _bundle(self, kiosk_id: str, password: str) -> dict[str, Any]:
        configs = await self.store.kiosk_configs()
        config = next((c for c in configs if c.kiosk_id == kiosk_id), None)
        if config is None:
            raise RefusedError(Refusal.NOT_FOUND, f"no kiosk {kiosk_id}")
        # Retained config first, so the kiosk finds it the moment it connects.
        self.publisher.publish(topics.config(kiosk_id), encode(config), retain=True)
        bundle = EnrolmentBundle(
            kiosk_id=kiosk_id,
            shelf_id=config.shelf_id,
            mqtt_host=self.broker.host,
            mqtt_port=self.broker.port,
            ca_pem=self.broker.ca_pem,
            mqtt_password=SecretStr(password),
            config=config,
        )
        # JSON mode writes the password in clear: this answer is the one place it goes.
        out: dict[str, Any] = bundle.model_dump(mode="json")
        return out

    async def _push(self, passwords: dict[str, str]) -> None:
        # Recorded but not confirmed by the broker: say so, rather than hand out a bundle
        # whose password the broker does not know (re-enrolling with --rotate repairs it).
        try:
            await self.accounts.sync(passwords=passwords)
        except BrokerControlError as exc:
            raise RefusedError(
                Refusal.UNCONFIRMED, f"recorded, but the broker did not confirm it: {exc}"
            ) from exc

    async def enrol(
        self, kiosk_id: str, shelf_id: str, session_timeout_s: float, *, rotate: bool
    ) -> dict[str, Any]:
        """Enrol a kiosk (or rotate its broker password); its bundle, password in clear."""
        if not is_id(kiosk_id):
            raise RefusedError(Refusal.INVALID, f"{kiosk_id!r} is not a valid kiosk id")
        password = auth.new_password()
        await audited(
            self.store,
            self.clock,
            self.actor,
            self.store.enrol_kiosk(
                kiosk_id,
                shelf_id,
                auth.hash_password(password),
                self.clock.now(),
                self.actor,
                session_timeout_s=session_timeout_s,
                rotate=rotate,
            ),
            "kiosk.rotate" if rotate else "kiosk.enrol",
            kiosk_id=kiosk_id,
        )
        await self._push({kiosk_id: password})
        return await self._bundle(kiosk_id, password)

    async def retire(self, kiosk_id: str, reason: str) -> None:
        """Take a kiosk out of the fleet: its broker account and retained config go."""
        await audited(
            self.store,
            self.clock,
            self.actor,
            self.store.retire_kiosk(kiosk_id, self.clock.now(), self.actor, reason),
            "kiosk.retire",
            kiosk_id=kiosk_id,
        )
        await self._push({})
        # Clear its retained config: nobody should find a retired kiosk's settings.
        self.publisher.publish(topics.config(kiosk_id), b"", retain=True)

    async def enrolment_code(self, kiosk_id: str, shelf_id: str, ttl_s: int) -> EnrolCode:
        """A one-time enrolment QR for a kiosk not enrolled yet."""
        now = self.clock.now()
        claim_id = new_id()
        expires_at = (now + timedelta(seconds=ttl_s)).replace(microsecond=0)
        await audited(
            self.store,
            self.clock,
            self.actor,
            self.store.issue_enrolment(claim_id, kiosk_id, shelf_id, now, expires_at, self.actor),
            "kiosk.enrol_code",
            kiosk_id=kiosk_id,
        )
        return EnrolCode(
            claim_id=claim_id,
            kiosk_id=kiosk_id,
            shelf_id=shelf_id,
            code=self.signer.enrolment(claim_id, shelf_id, expires_at),
            expires_at=expires_at,
        )

    async def claim(self, code: str, caller: str) -> dict[str, Any]:
        """A kiosk's claim of the enrolment QR it saw: its bundle, or a refusal.

        Refused claims are counted by the gate and written as one audit row per window,
        never a row per attempt: this route is open.
        """
        if not self.gate.admit(caller):
            await self.gate.refused(caller, Refusal.RATE_LIMITED.value)
            raise RefusedError(
                Refusal.RATE_LIMITED,
                {"reason": Refusal.RATE_LIMITED.value},
                retry_after_s=CLAIM_RETRY_S,
            )
        now = self.clock.now()
        token = self.signer.verify(code, now)
        actor = f"claim:{fingerprint(code)}"
        if not isinstance(token, Enrolment):
            reason = token if isinstance(token, Reason) else Reason.UNKNOWN_CODE
            await self.gate.refused(caller, reason.value)
            raise RefusedError(Refusal.FORBIDDEN, {"reason": reason.value})
        password = auth.new_password()
        try:
            outcome = await self.store.claim_enrolment(
                token.claim_id, auth.hash_password(password), now, actor
            )
        except StorageError as exc:
            # Not audited one by one: the route is open (a refused claim is tallied above).
            raise RefusedError(Refusal.CONFLICT, str(exc)) from exc
        if outcome.refusal is not None:
            raise RefusedError(Refusal.FORBIDDEN, {"reason": outcome.refusal.value})
        await self._push({outcome.kiosk_id: password})
        return await self._bundle(outcome.kiosk_id, password)
