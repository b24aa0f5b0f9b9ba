"""Keeps secrets out of logs: every secret the bridge handles is registered here, and a logging
filter masks each occurrence before a record is formatted anywhere.

This is the second line of defence. The first is that no code formats a secret, token,
signature or signed URL into a message at all; the tests scan logs for both.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

MASK = "***"
_MIN_LEN = 6  # shorter values would mask ordinary words; real secrets are far longer


class Redactor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()

    def register(self, value: str) -> None:
        """Mask ``value`` (and its percent-encoded form) from now on."""
        if len(value) < _MIN_LEN:
            return
        forms = {value, quote(value, safe=""), value.strip()}
        with self._lock:
            self._values = self._values | forms

    def redact(self, text: str) -> str:
        values = self._values
        if not values:
            return text
        for value in sorted(values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text


REDACTOR = Redactor()


class RedactingFilter(logging.Filter):
    """Renders the record's message, masks registered secrets in it, and drops args and traceback
    text from the record so no handler can format the raw values again."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not break logging
            message = str(record.msg)
        if record.exc_info and record.exc_info[0] is not None:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            record.exc_info = None
            record.exc_text = None
        record.msg = REDACTOR.redact(message)
        record.args = None
        return True
