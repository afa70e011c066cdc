"""Keeping secrets out of everything the job writes: logs, tags, params, messages."""

from __future__ import annotations

import logging
import re

MASK = "***"
# Bearer tokens and SAS signatures can appear in library error messages even when we never held them.
_PATTERNS = (
    # Real tokens are hundreds of characters; 16 keeps "Bearer token not provided." readable.
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]{16,}=*"),
    re.compile(r"(?i)(sig=)[^&\s\"']+"),
    # Token responses carry tokens without "Bearer "; a JWT is three base64url segments, the first `{"`.
    re.compile(r"()\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    # Secret-named keys in form bodies (key=value), JSON ("key": "value") and reprs (key='value'):
    # a quoted value is masked up to its closing quote, a bare one up to the next separator.
    re.compile(
        r"""(?i)((?:client_secret|access_token|refresh_token)["']?\s*[=:]\s*["']?)"""
        r"""(?:(?<=")[^"]*|(?<=')[^']*|[^&\s"',;}]+)"""
    ),
)


class Redactor:
    """Masks every registered secret value, and token-shaped strings, in text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        # Very short values would mask ordinary words; real secrets are long.
        if secret and len(secret) >= 6:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text

    def install(self, logger: logging.Logger | None = None) -> None:
        """Redact every record that reaches the root logger's handlers."""
        target = logger or logging.getLogger()
        for handler in target.handlers:
            if not any(isinstance(f, _RedactingFilter) for f in handler.filters):
                handler.addFilter(_RedactingFilter(self))


class _RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
