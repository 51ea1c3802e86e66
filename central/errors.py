"""Central's faults (expected refusals are :class:`broker.Reason` values, not these).

CentralError
 ├── ConfigError   (ValueError)    settings or keys that cannot work
 ├── StorageError  (RuntimeError)  the database refused or failed
 │    └── MigrationError           the schema cannot be brought to the wanted version
 └── NotFoundError      (LookupError)   an admin asked for something that does not exist
"""


class CentralError(Exception):
    """Root of every fault raised by ``central``."""


class ConfigError(CentralError, ValueError):
    """Settings or keys that cannot work."""


class StorageError(CentralError, RuntimeError):
    """The database refused or failed."""


class MigrationError(StorageError):
    """The schema cannot be brought to the wanted version."""


class NotFoundError(CentralError, LookupError):
    """An admin asked for something that does not exist."""
