"""Keeps secrets out of logs: every secret the bridge handles is registered here, and a logging
filter masks each occurrence before a record is formatted anywhere.

This is the second line of defence. The first is that no code formats a secret, token,
signature or signed URL into a message at all; the tests scan logs for both.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from urllib.parse import quote

MASK = "***"
_MIN_LEN = 6  # shorter values would mask ordinary words; real secrets are far longer
TRANSIENT_KEPT = 16
"""Tokens and signatures kept masked at once. Each token brings a signature and a token; only the
live ones matter (a token lives 10 minutes), and a list that grew forever made every log record
slower (issue 11: 169 values after 56 tokens)."""


def _forms(value: str) -> frozenset[str]:
    return frozenset(f for f in (value, quote(value, safe=""), value.strip()) if len(f) >= _MIN_LEN)


class Redactor:
    """Values to mask: the permanent ones (Secret, app key, backend header) and a bounded list of
    the latest transient ones (tokens, signatures)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._permanent: frozenset[str] = frozenset()
        self._transient: deque[frozenset[str]] = deque(maxlen=TRANSIENT_KEPT)
        self._values: tuple[str, ...] = ()

    def register(self, value: str) -> None:
        """Mask ``value`` (and its percent-encoded form) for the life of the process."""
        if len(value) < _MIN_LEN:
            return
        with self._lock:
            self._permanent = self._permanent | _forms(value)
            self._rebuild()

    def register_transient(self, value: str) -> None:
        """Mask ``value`` until ``TRANSIENT_KEPT`` newer transient values have been registered."""
        if len(value) < _MIN_LEN:
            return
        with self._lock:
            forms = _forms(value)
            if forms not in self._transient:
                self._transient.append(forms)
                self._rebuild()

    def _rebuild(self) -> None:
        every = set(self._permanent).union(*self._transient)
        self._values = tuple(sorted(every, key=len, reverse=True))

    def __len__(self) -> int:
        return len(self._values)

    def redact(self, text: str) -> str:
        for value in self._values:
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
