"""Fresh PostgreSQL databases for tests, on the server scripts/setup.sh starts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg

# scripts/setup.sh creates this role on the local cluster; CI and developers share it.
ADMIN_DSN = os.environ.get(
    "CS_TEST_POSTGRES_DSN", "postgresql://cs_test:cs_test@127.0.0.1:5432/postgres"
)


def dsn_for(database: str) -> str:
    """The admin DSN pointed at ``database``."""
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create an empty database for one test; drop it afterwards. Yields its DSN."""
    name = f"cs_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield dsn_for(name)
    finally:
        await _drop(name)


async def _drop(name: str) -> None:
    # A session we cannot see may still be leaving (a central's pool, autovacuum): retry.
    for attempt in range(20):
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except (asyncpg.ObjectInUseError, asyncpg.InsufficientPrivilegeError):
            if attempt == 19:
                raise
        else:
            return
        finally:
            await admin.close()
        await asyncio.sleep(0.25)
