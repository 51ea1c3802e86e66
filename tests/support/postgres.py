"""Fresh PostgreSQL databases for tests, on the server scripts/setup.sh starts."""

from __future__ import annotations

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
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
