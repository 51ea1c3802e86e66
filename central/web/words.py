"""A kiosk's verdict in words for the member's phone (the kiosk itself has only lights)."""

from __future__ import annotations

from broker.messages import Reason, Verdict

# Reasons with their own sentence; every other refusal reads "Refused: <reason>".
_KEYS = {
    Reason.SESSION_OPENED: "said_session_opened",
    Reason.CHECKED_OUT: "said_checked_out",
    Reason.RETURNED: "said_returned",
    Reason.SESSION_CLOSED: "said_session_closed",
    Reason.ITEM_UNAVAILABLE: "said_unavailable",
    Reason.LIMIT_REACHED: "said_limit",
}


def say(verdict: Verdict, texts: dict[str, str]) -> str:
    """One sentence: "Jigsaw checked out, due Sat 14 Dec"."""
    key = _KEYS.get(verdict.reason)
    if key is None:
        return texts["said_refused"].format(reason=verdict.reason.value)
    due = verdict.due_at.strftime("%a %d %b") if verdict.due_at else ""
    return texts[key].format(item=verdict.item_name or "", due=due)
