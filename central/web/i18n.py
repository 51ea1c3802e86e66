"""The members' app in two languages: JSON catalogues in ``i18n/``, chosen per request."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import Request

LANGUAGES = ("en", "fr")
_DIR = Path(__file__).parent / "i18n"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Every text of the pages in ``lang`` (English fills any gap)."""
    english: dict[str, str] = json.loads((_DIR / "en.json").read_text())
    if lang == "en":
        return english
    return {**english, **json.loads((_DIR / f"{lang}.json").read_text())}


def pick(request: Request) -> str:
    """``?lang=`` if given, else the first supported language the browser asks for."""
    asked = request.query_params.get("lang") or request.cookies.get("lang") or ""
    if asked in LANGUAGES:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in LANGUAGES:
            return code
    return "en"
