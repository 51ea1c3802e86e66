"""The one exception the wire contract raises: a message that breaks the contract."""


class ContractError(ValueError):
    """A topic or payload that does not follow the wire contract.

    ``reason`` is a short machine-readable word (``too_large``, ``not_json``,
    ``bad_version``, ``bad_fields``, ``kiosk_mismatch``, ``bad_topic``) so the
    consumer can count refusals by kind without parsing messages.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
