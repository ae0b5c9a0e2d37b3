"""Calls that failed during a run, tallied by error code.

Codes are ``runtime.lm_errors``' (``classify``). With each code goes the class of its first
exception (``LMAuthError``, ``LMServerError``): enough to say why, without quoting an
exception's text, which is the executor's to format.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from dspyops.runtime.lm_errors import classify


@dataclass(frozen=True)
class Failed:
    """Why one call failed."""

    code: str
    kind: str

    @classmethod
    def of(cls, exc: BaseException) -> Failed:
        return cls(classify(exc), type(exc).__name__)


class Tally:
    """Calls counted as they end, the failed ones by code; DSPy may end them in threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self._codes: Counter[str] = Counter()
        self._kinds: dict[str, str] = {}

    def add(self, failed: Failed | None) -> None:
        """One call ended; ``failed`` says why it failed, None when it did not."""
        with self._lock:
            self.calls += 1
            if failed is not None:
                self._codes[failed.code] += 1
                self._kinds.setdefault(failed.code, failed.kind)

    @property
    def failed(self) -> int:
        with self._lock:
            return sum(self._codes.values())

    @property
    def all_failed(self) -> bool:
        with self._lock:
            return self.calls > 0 and sum(self._codes.values()) == self.calls

    def codes(self) -> dict[str, int]:
        with self._lock:
            return dict(self._codes)

    def most_common(self) -> str:
        """The code of most failures; among equals, the one seen first."""
        with self._lock:
            return self._codes.most_common(1)[0][0]

    def summary(self, unit: str) -> str:
        """``"2 of 6 examples failed: 2 lm_error (LMServerError)"``."""
        with self._lock:
            failed = sum(self._codes.values())
            why = ", ".join(
                f"{n} {code} ({self._kinds[code]})" for code, n in self._codes.most_common()
            )
            return f"{failed} of {self.calls} {unit} failed: {why}"
