"""The HTTP client every ``cs-admin`` command talks to central's admin API through."""

from __future__ import annotations

import argparse
import os
import ssl
from pathlib import Path
from typing import Any

import httpx

from provisioning.errors import RefusedError, UsageError


def _token(args: argparse.Namespace) -> str:
    # What the admin typed on this command line beats what the shell environment holds.
    if args.token:
        return str(args.token)
    if args.token_file is not None:
        try:
            return Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read token file {args.token_file}: {exc.strerror}") from exc
    token = os.environ.get("CS_ADMIN_TOKEN", "")
    if not token:
        raise UsageError("no admin token: pass --token, --token-file or set CS_ADMIN_TOKEN")
    return token


def open_client(args: argparse.Namespace) -> httpx.Client:
    """A client for central at ``--url``, carrying the admin token, trusting ``--ca``."""
    token = _token(args)
    # Central's HTTPS certificate comes from the project CA, not a public one.
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=args.ca) if args.ca else True
    return httpx.Client(
        base_url=args.url,
        timeout=10,
        verify=verify,
        headers={"Authorization": f"Bearer {token}"},
    )


def refusal(response: httpx.Response) -> RefusedError:
    """The error to raise for a refused request, with central's status and reason."""
    return RefusedError(f"central refused ({response.status_code}): {refusal_detail(response)}")


def refusal_detail(response: httpx.Response) -> str:
    """Central's reason in words: FastAPI's validation list becomes ``field: message``."""
    try:
        detail = response.json().get("detail", "")
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(detail, list):
        parts = []
        for error in detail:
            where = ".".join(str(p) for p in error.get("loc", []) if p != "body")
            parts.append(f"{where}: {error.get('msg', error)}" if where else str(error))
        return "; ".join(parts)
    return str(detail)


def call(
    args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """One request to central; its JSON answer, or :class:`RefusedError` saying why not."""
    with open_client(args) as client:
        response = client.request(method, path, json=body)
    if response.status_code >= 400:
        raise refusal(response)
    if response.status_code == 204:
        return None  # done; nothing to say (the command says what it did)
    return response.json()
