"""Central's admin HTTP API: one router module per resource, assembled by :mod:`central.api.app`."""
