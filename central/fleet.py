"""Keeps the broker's accounts (Mosquitto's dynamic security plugin) in step with the fleet.

Central's database is the truth: one broker user per kiosk with its own role (its topics
and its shelf's availability) and one per central instance. The running broker is changed
live through ``$CONTROL/dynamic-security/v1``: no file rewrite, no reload, and the plugin
itself saves every change, so a broker restart keeps them. Why live commands rather
than rewriting the plugin's file: Mosquitto 2.0's plugin reads its file only at start
(SIGHUP does not reload it) and overwrites it on every command, so a file written behind
its back is either ignored or lost. The file is written here only to seed a broker that
has none.

A password exists in clear only while an enrolment is being answered, so it is pushed to
the broker then (``sync(passwords=...)``); every other difference (a retired kiosk, a
shelf change, a deleted user) is repaired by :meth:`BrokerAccounts.sync` from the
database alone, on each change and every few seconds, by whichever instance runs it:
the commands are idempotent, so several centrals reconciling at once agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker import auth
from central.dynsec import DynsecControl
from central.storage.base import Store

log = logging.getLogger(__name__)


def _acl_set(acls: list[dict[str, Any]]) -> set[tuple[str, str, bool]]:
    return {(str(a["acltype"]).lower(), str(a["topic"]), bool(a["allow"])) for a in acls}


def _a_kiosk(client: dict[str, Any]) -> bool:
    # Only users holding nothing but kiosk roles are ours to delete: an operator's own
    # administrator (made with mosquitto_ctrl) and other central instances are left alone.
    names = [str(r.get("rolename", "")) for r in client.get("roles", [])]
    return bool(names) and all(n.startswith(auth.KIOSK_ROLE_PREFIX) for n in names)


class BrokerAccounts:
    """Applies the database's broker accounts to the broker, and contains one kiosk at will.

    ``control`` False (a development broker with no plugin): nothing to manage. ``seed``:
    where the broker's plugin file lives, written from the database only if missing.
    """

    def __init__(
        self,
        store: Store,
        *,
        control: bool,
        seed: Path | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._now = now
        self._control_on = control
        self._seed = seed
        self._control: DynsecControl | None = None
        self._lock = asyncio.Lock()
        self._reported_missing: set[str] = set()

    @property
    def managed(self) -> bool:
        """Whether this instance administers the broker's accounts."""
        return self._control_on

    def attach(self, control: DynsecControl) -> None:
        """Use ``control`` (central's MQTT link) to reach the broker's plugin."""
        self._control = control

    async def ensure_central(
        self, username: str | None, password: str | None, now: datetime
    ) -> None:
        """Record this instance's own broker user; seed a broker that has no accounts yet."""
        if not self.managed or username is None or password is None:
            return
        accounts = {a.username: a for a in await self._store.broker_accounts()}
        current = accounts.get(username)
        if current is None or not auth.check_password(password, current.password_hash):
            await self._store.set_central_account(
                username, auth.hash_password(password), now, f"central:{username}"
            )
        if self._seed is not None and not self._seed.exists():
            accounts_now = await self._store.broker_accounts()
            await asyncio.to_thread(auth.write_seed, self._seed, accounts_now)
            log.warning("seeded %s; (re)start the broker to load it", self._seed)

    async def sync(self, passwords: Mapping[str, str] | None = None) -> bool:
        """Make the broker match the database; push ``passwords`` (user → clear text)
        given by an enrolment. Whether anything was changed."""
        if not self.managed or self._control is None:
            return False
        passwords = passwords or {}
        async with self._lock:
            want = {a.username: a for a in await self._store.broker_accounts()}
            listed = await self._control.run(
                [auth.list_clients(), auth.list_roles(), auth.get_default_access()]
            )
            clients = {str(c["username"]): c for c in listed[0]["data"]["clients"]}
            roles = {str(r["rolename"]): r for r in listed[1]["data"]["roles"]}
            defaults = {str(a["acltype"]): a["allow"] for a in listed[2]["data"]["acls"]}
            commands = [] if defaults == auth.DEFAULT_ACCESS else [auth.set_default_access()]
            commands += self._role_changes(want, roles)
            commands += self._client_changes(want, clients, passwords)
            wanted_roles = {auth.role_name(a) for a in want.values()}
            commands += [
                auth.delete_role(name)
                for name in roles
                if name.startswith(auth.KIOSK_ROLE_PREFIX) and name not in wanted_roles
            ]
            if not commands:
                return False
            answers = await self._control.run(commands)
            for answer in answers:
                if "error" in answer:
                    log.error("broker refused %s: %s", answer.get("command"), answer["error"])
            log.info("broker accounts changed (%d commands)", len(commands))
            return True

    @staticmethod
    def _role_changes(want: dict[str, auth.Account], roles: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for account in want.values():
            name, acls = auth.role_name(account), auth.role_acls(account)
            if name not in roles:
                out.append(auth.create_role(name, acls))
            elif _acl_set(roles[name].get("acls", [])) != _acl_set(acls):
                # A shelf change: applies to the kiosk's next message, no reconnect.
                out.append(auth.modify_role(name, acls))
            roles[name] = {"acls": acls}  # several central users share one role
        return out

    def _client_changes(
        self,
        want: dict[str, auth.Account],
        clients: dict[str, dict[str, Any]],
        passwords: Mapping[str, str],
    ) -> list[dict[str, Any]]:
        out = []
        for username, account in want.items():
            password = passwords.get(username)
            client = clients.get(username)
            if client is None:
                if password is not None:
                    out.append(auth.create_client(account, password))
                elif username not in self._reported_missing:
                    # Only a hash is stored, and the plugin takes passwords in clear: a
                    # user the broker lost must be re-enrolled (or the broker re-seeded).
                    self._reported_missing.add(username)
                    log.error("broker has no user %s: re-enrol it", username)
                continue
            self._reported_missing.discard(username)
            until = auth.quarantined_until(client)
            if until is not None and until <= self._now():
                out += auth.release_client(username)  # its quarantine is over
            if password is not None:
                out.append(auth.set_password(username, password))  # drops the old login
            held = [str(r.get("rolename")) for r in client.get("roles", [])]
            if held != [auth.role_name(account)]:
                out.append(auth.set_roles(account))
        for username, client in clients.items():
            if username not in want and _a_kiosk(client):
                out.append(auth.delete_client(username))  # drops it at once
        return out

    async def disable(self, username: str) -> bool:
        """Refuse one kiosk's logins and drop its connection, e.g. while it floods; its
        password and role stay, so :meth:`enable` lets it straight back. Whether the
        broker did it."""
        return await self._one(auth.disable_client(username))

    async def quarantine(self, username: str, until: datetime) -> bool:
        """Shut a flooding kiosk out at the broker until ``until``; the next
        reconciliation after that, on any instance, lets it back in. Whether the broker
        did it."""
        if not self.managed or self._control is None:
            return False
        answers = await self._control.run(auth.quarantine_client(username, until))
        for answer in answers:
            if "error" in answer:
                log.warning("broker refused %s: %s", answer.get("command"), answer["error"])
                return False
        log.warning("kiosk %s shut out at the broker until %s", username, until.isoformat())
        return True

    async def enable(self, username: str) -> bool:
        """Let a disabled kiosk log in again. Whether the broker did it."""
        return await self._one(auth.enable_client(username))

    async def _one(self, command: dict[str, Any]) -> bool:
        if not self.managed or self._control is None:
            return False
        (answer,) = await self._control.run([command])
        if "error" in answer:
            log.warning("broker refused %s: %s", command["command"], answer["error"])
            return False
        return True

    async def run(self, every_s: float = 10.0) -> None:
        """Repair whatever drifted: changes made on other instances, a restarted broker."""
        while True:
            try:
                await self.sync()
            except Exception:
                # A database or broker hiccup must not stop the loop; the next round retries.
                log.exception("broker account sync failed")
            await asyncio.sleep(every_s)
