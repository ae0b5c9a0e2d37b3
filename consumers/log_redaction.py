"""Every line a worker process logs or prints, redacted: faust's, aiokafka's, DSPy's, LiteLLM's.

Installed once, first thing in ``run_worker``:

- a log record factory wrapping the current one: each record leaves the factory with
  its message rendered (``msg % args``), redacted, and ``args`` emptied, and with its
  traceback (``exc_info``) and ``stack_info`` rendered and redacted into ``exc_text`` /
  ``stack_info``. Every logger of every library builds its records there, before any
  handler or formatter sees them.
- ``sys.stdout`` / ``sys.stderr`` wrapped: prints, warnings and tracebacks written
  straight to the streams (uncaught exceptions, a library's own print) are redacted as
  written. faust's worker redirects both streams into a logger once it runs; the
  wrapper covers what is written before, around and after that.
- LiteLLM's print channels off (see ``quiet_litellm``).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import traceback
from typing import Any, TextIO, cast

from dspyops.runtime.redaction import Redactor

# LiteLLM prints the whole request of every call (api_base, headers) when this is set.
_LITELLM_PAYLOAD_PRINT = "LITELLM_PRINT_STANDARD_LOGGING_PAYLOAD"


def install_log_redaction(redactor: Redactor) -> None:
    """Redact every log record made and every text written to stdout/stderr from now on."""
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs), redactor)

    logging.setLogRecordFactory(factory)
    sys.stdout = cast(TextIO, RedactingStream(sys.stdout, redactor))
    sys.stderr = cast(TextIO, RedactingStream(sys.stderr, redactor))
    quiet_litellm()


def redact_record(record: logging.LogRecord, redactor: Redactor) -> logging.LogRecord:
    """`record` with its message and traceback rendered to redacted text."""
    try:
        message = record.getMessage()
    except Exception:  # bad arguments: logging would say so later; keep what is there
        message = f"{record.msg!s} {record.args!r}"
    record.msg = redactor.redact(message)
    # An empty tuple, not None: some formatters (mode's) wrap a None into (None,).
    record.args = ()
    if record.exc_info:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redactor.redact(text)
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redactor.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redactor.redact(record.stack_info)
    return record


class RedactingStream(io.TextIOBase):
    """A text stream that redacts what is written to it, then writes to `stream`."""

    def __init__(self, stream: TextIO, redactor: Redactor) -> None:
        self._stream = stream
        self._redactor = redactor

    def write(self, text: str) -> int:
        self._stream.write(self._redactor.redact(text))
        return len(text)

    def flush(self) -> None:
        # Also called when this wrapper is collected, possibly after `stream` closed.
        if not getattr(self._stream, "closed", False):
            self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def quiet_litellm() -> None:
    """LiteLLM's own prints (not logs) off: its debug hints, verbose mode, payload dumps.

    DSPy sets ``litellm.suppress_debug_info`` whenever it loads LiteLLM; the worker's
    native LM path does not load it at all (importing it takes seconds), so the flags
    are set here only if it is loaded already. Its logs go through the record factory.
    """
    os.environ.pop(_LITELLM_PAYLOAD_PRINT, None)
    litellm: Any = sys.modules.get("litellm")
    if litellm is not None:
        litellm.suppress_debug_info = True
        litellm.set_verbose = False
