"""Keeping the API key out of every message: endpoints echo it back in error bodies (a 401
saying ``Incorrect API key provided: sk-...``), and those bodies become console lines, the
``error`` field of judged rows and log records. Everything the client reports passes here."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

MASK = "***"


class Redactor:
    """Replaces each secret (the API key, a password in the endpoint URL) with ``***``."""

    def __init__(self, api_key: str | None, base_url: str = "") -> None:
        password = urlsplit(base_url).password if base_url else None
        # Longest first, so that a secret containing another is masked whole.
        self.secrets = sorted({s for s in (api_key, password) if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


class RedactingFilter(logging.Filter):
    """A log filter that masks the secrets in every record it sees (``--verbose`` shows the
    HTTP library's own lines, which may carry an echoed key)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redact.secrets:
            record.msg = self.redact(record.getMessage())
            record.args = ()
        return True
