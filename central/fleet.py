"""Keeps Mosquitto's password and ACL files in step with the kiosks central has enrolled."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
from datetime import datetime
from pathlib import Path

from broker import auth
from central.storage.fleet import FleetWrites

log = logging.getLogger(__name__)


class BrokerAccounts:
    """Writes the broker's files from the database and tells the broker to reload them.

    Only the instance on the broker's host has ``auth_dir``; others leave it unset and
    that instance picks their changes up on its next :meth:`sync`.
    """

    def __init__(self, store: FleetWrites, auth_dir: Path | None, pid_file: Path | None) -> None:
        self._store = store
        self._auth_dir = auth_dir
        self._pid_file = pid_file
        self._written: str | None = None
        self._lock = asyncio.Lock()

    @property
    def managed(self) -> bool:
        """Whether this instance writes the broker's files."""
        return self._auth_dir is not None

    async def ensure_central(
        self, username: str | None, password: str | None, now: datetime
    ) -> None:
        """Make sure this instance's own broker user exists with its current password."""
        if not self.managed or username is None or password is None:
            return
        accounts = {a.username: a for a in await self._store.broker_accounts()}
        current = accounts.get(username)
        if current is None or not auth.check_password(password, current.password_hash):
            await self._store.set_central_account(
                username, auth.hash_password(password), now, f"central:{username}"
            )
        await self.sync()

    async def sync(self) -> bool:
        """Rewrite the files if the accounts changed, then reload; whether anything changed."""
        if self._auth_dir is None:
            return False
        async with self._lock:
            accounts = list(await self._store.broker_accounts())
            digest = hashlib.sha256(
                (auth.password_file(accounts) + auth.acl_file(accounts)).encode()
            ).hexdigest()
            if digest == self._written:
                return False
            await asyncio.to_thread(auth.write_files, self._auth_dir, accounts)
            self._written = digest
            self._reload()
            log.info("broker accounts written (%d users)", len(accounts))
            return True

    def _reload(self) -> None:
        # With no pid file, a systemd path unit on the broker host reloads Mosquitto when
        # the files change (systemd/cs-broker-reload.path).
        if self._pid_file is None:
            return
        try:
            os.kill(int(self._pid_file.read_text().strip()), signal.SIGHUP)
        except (OSError, ValueError) as exc:
            log.error(  # noqa: TRY400 - the reason is the message; a traceback adds nothing
                "could not tell the broker to reload (%s): %s", self._pid_file, exc
            )

    async def run(self, every_s: float = 10.0) -> None:
        """Pick up accounts other instances changed."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.sync()
            except Exception:
                # A database hiccup must not stop the loop; the next round tries again.
                log.exception("broker account sync failed")
