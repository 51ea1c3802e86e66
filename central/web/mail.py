"""Sending mail by SMTP (the standard library's client, in a worker thread): links, reminders."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


@dataclass(frozen=True, slots=True)
class Mailer:
    """Where the members' app sends its e-mail."""

    host: str
    port: int
    sender: str

    async def send(
        self, to: str, subject: str, body: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send one plain-text message (with extra ``headers``, e.g. List-Unsubscribe).

        SMTP refusals raise :class:`smtplib.SMTPResponseException` and its kin (the code
        tells a temporary 4xx from a permanent 5xx); an unreachable server, ``OSError``.
        """
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        # Receiving servers score mail without these as likely spam.
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(body)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.send_message(message)
