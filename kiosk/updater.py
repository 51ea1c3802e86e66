"""Fleet updates on the kiosk: take an offer at idle, download, verify, unpack, restart onto it;
confirm a new version once it is healthy, or leave it for the launcher to roll back.

The order protects members and scans: nothing is fetched while a session is open or a
scan waits in the outbox, and the restart waits for idle again. The artifact is checked
against its signed SHA-256 under the kiosk's own trusted release keys (broker/release.py)
before pip unpacks it; central is trusted for nothing but availability.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import httpx

from broker.messages import UpdateOffer, UpdateProgress, UpdateRefusal, UpdateState
from broker.release import check_artifact, public_key
from kiosk import __version__
from kiosk.clock import Clock
from kiosk.releases import ReleaseDir, ReleaseState, begin_trial, confirm, refused
from kiosk.settings import KioskSettings

log = logging.getLogger(__name__)
_WHEEL = "communityshare_kiosks-{version}-py3-none-any.whl"


class KioskFacts(Protocol):
    """What the updater needs to know about, and ask of, the running kiosk."""

    def idle(self) -> bool:
        """No member session open and no scan waiting in the outbox."""

    def healthy(self) -> bool:
        """Broker connected, camera delivering, frames decoding."""

    def publish_status(self) -> None:
        """Report the update's progress now (retained status)."""

    def restart(self) -> None:
        """Stop cleanly so systemd starts the launcher again."""


@dataclass
class _Failure(Exception):  # noqa: N818 - internal: carries a refusal out of the install steps
    why: UpdateRefusal


class Updater:
    """One kiosk's side of fleet updates; ``run`` is one task of the kiosk's TaskGroup."""

    def __init__(self, settings: KioskSettings, facts: KioskFacts, clock: Clock) -> None:
        self.settings = settings
        self._facts = facts
        self._clock = clock
        self._releases = ReleaseDir(settings.state_dir)
        self._trusted = [public_key(k) for k in settings.update_keys]
        self._offers: asyncio.Queue[UpdateOffer] = asyncio.Queue(maxsize=1)
        self.state: ReleaseState = self._releases.load()
        self._downloading: UpdateProgress | None = None

    @property
    def progress(self) -> UpdateProgress | None:
        """What the kiosk's status reports about updates."""
        return self._downloading or self.state.last

    def offer(self, offer: UpdateOffer) -> None:
        """Central offered a release (from the MQTT callback); the newest offer wins."""
        if offer.version == __version__:
            return  # already running it: the status says so
        if self._offers.full():
            self._offers.get_nowait()
        self._offers.put_nowait(offer)

    async def run(self) -> None:
        """Confirm a trial of this version, then serve offers until cancelled."""
        await self._confirm_trial()
        while True:
            offer = await self._offers.get()
            await self._take(offer)

    async def _confirm_trial(self) -> None:
        trial = self.state.trial
        if trial is None or trial.version != __version__:
            return
        while self._clock.wall() < trial.deadline:
            if self._facts.healthy():
                self._save(confirm(self.state))
                log.info("release %s is healthy; it stays", trial.version)
                self._facts.publish_status()
                return
            await asyncio.sleep(0.2)
        # Not healthy in time: stop, and the launcher (the base install) rolls back.
        log.error("release %s not healthy by its deadline; restarting to roll back", __version__)
        self._facts.restart()

    async def _take(self, offer: UpdateOffer) -> None:
        last = self.state.last
        if (
            last is not None
            and last.rollout_id == offer.rollout_id
            and last.state
            in (
                UpdateState.REFUSED,
                UpdateState.ROLLED_BACK,
            )
        ):
            self._facts.publish_status()  # central asks again: tell it again, do nothing
            return
        if offer.version in self.state.failed:
            self._refuse(offer, UpdateRefusal.ROLLED_BACK_BEFORE)
            return
        await self._until_idle()
        self._downloading = UpdateProgress(
            rollout_id=offer.rollout_id, version=offer.version, state=UpdateState.DOWNLOADING
        )
        self._facts.publish_status()
        try:
            data = await self._download(offer)
            self._verify(offer, data)
            await self._unpack(offer.version, data)
        except _Failure as failure:
            self._downloading = None
            self._refuse(offer, failure.why)
            return
        self._downloading = None
        # A member may have walked up during the download: restart only at idle.
        await self._until_idle()
        deadline = self._clock.wall() + timedelta(seconds=self.settings.update_health_s)
        self._save(begin_trial(self.state, offer.version, offer.rollout_id, deadline))
        log.info("release %s installed; restarting onto it", offer.version)
        self._facts.publish_status()
        self._facts.restart()

    def _verify(self, offer: UpdateOffer, data: bytes) -> None:
        why = check_artifact(
            data,
            version=offer.version,
            sha256=offer.sha256,
            signature=offer.signature,
            trusted=self._trusted,
        )
        if why is not None:
            raise _Failure(why)

    async def _until_idle(self) -> None:
        # Polled: "idle" joins the walk-up state and the outbox, which change in many
        # places; a look every second costs nothing and keeps them unaware of updates.
        while not self._facts.idle():  # noqa: ASYNC110
            await asyncio.sleep(self.settings.update_check_every_s)

    async def _download(self, offer: UpdateOffer) -> bytes:
        ca = self.settings.update_ca or self.settings.claim_ca
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca)) if ca is not None else True
        )
        try:
            async with (
                httpx.AsyncClient(verify=verify, timeout=60) as client,
                client.stream("GET", offer.url) as response,
            ):
                if response.status_code != 200:
                    raise _Failure(UpdateRefusal.DOWNLOAD_FAILED)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > offer.size:  # never hold more than the signed size
                        raise _Failure(UpdateRefusal.TOO_LARGE)
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            log.warning("download of %s failed: %s", offer.version, type(exc).__name__)
            raise _Failure(UpdateRefusal.DOWNLOAD_FAILED) from None
        return b"".join(chunks)

    async def _unpack(self, version: str, data: bytes) -> None:
        """The verified wheel into ``releases/<version>`` (pip, offline, no dependencies)."""
        target = self._releases.path(version)
        work = self._releases.root / f".{version}.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        wheel = work / _WHEEL.format(version=version)
        wheel.write_bytes(data)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "pip", "--isolated", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-index", "--no-deps", "--target", str(work / "site"), str(wheel)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            log.error("pip could not unpack %s: %s", version, err.decode(errors="replace")[-300:])
            raise _Failure(UpdateRefusal.INSTALL_FAILED)
        shutil.rmtree(target, ignore_errors=True)
        (work / "site").rename(target)
        shutil.rmtree(work, ignore_errors=True)

    def _refuse(self, offer: UpdateOffer, why: UpdateRefusal) -> None:
        log.warning("refused release %s: %s", offer.version, why.value)
        self._save(refused(self.state, offer.rollout_id, offer.version, why))
        self._facts.publish_status()

    def _save(self, state: ReleaseState) -> None:
        self.state = state
        self._releases.save(state)
