"""The worker's log redaction: records from any logger, tracebacks, prints, LiteLLM's flags."""

from __future__ import annotations

import io
import logging
import os
import sys
import types
from collections.abc import Iterator

import pytest
from mode.utils.logging import ExtensionFormatter

from dspyops.consumers.log_redaction import (
    RedactingStream,
    install_log_redaction,
    quiet_litellm,
    redact_record,
)
from dspyops.runtime.redaction import REDACTED, Redactor, key_secrets

KEY = "sk-test-4f8a1c9e2b7d6a5f3e0c"
REDACTOR = Redactor({**key_secrets(KEY), "http://10.9.8.7:4000/v1": "[profile 'p' endpoint]"})


def make_record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, args, exc_info)


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_record_is_rendered_then_redacted() -> None:
    record = redact_record(make_record("key %s at %s", KEY, "http://10.9.8.7:4000/v1"), REDACTOR)
    assert record.msg == f"key {REDACTED} at [profile 'p' endpoint]"
    assert record.args == ()
    assert record.getMessage() == record.msg


def test_a_traceback_is_rendered_redacted_and_the_exception_dropped() -> None:
    exc = raised(RuntimeError(f"Incorrect API key provided: {KEY[:12]}...{KEY[-8:]}"))
    record = redact_record(make_record("failed", exc=exc), REDACTOR)
    assert record.exc_info is None
    assert record.exc_text is not None
    assert "RuntimeError" in record.exc_text
    assert "Traceback" in record.exc_text
    text = logging.Formatter().format(record)
    assert KEY[:8] not in text
    assert KEY[-8:] not in text


def test_stack_info_is_redacted() -> None:
    record = make_record("m")
    record.stack_info = f"Stack (most recent call last):\n  call({KEY!r})"
    assert KEY not in (redact_record(record, REDACTOR).stack_info or "")


def test_bad_arguments_do_not_break_logging() -> None:
    record = redact_record(make_record("%d items", KEY), REDACTOR)
    assert KEY not in record.msg
    assert "%d items" in record.msg


def test_mode_formatter_formats_a_rendered_message_holding_a_percent_sign() -> None:
    # faust's formatter re-applies args; with None it would format "100%" % (None,).
    record = redact_record(make_record("done: %s", "100%"), REDACTOR)
    assert ExtensionFormatter(stream=io.StringIO()).format(record).endswith("done: 100%")


def test_a_stream_redacts_what_is_written() -> None:
    out = io.StringIO()
    stream = RedactingStream(out, REDACTOR)
    print(f"token {KEY}", file=stream)
    assert out.getvalue() == f"token {REDACTED}\n"
    assert stream.encoding == out.encoding


@pytest.fixture
def restored_factory() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)


@pytest.mark.usefixtures("restored_factory")
def test_installed_every_logger_and_print_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Streams replaced here, not in a fixture: pytest resets them between test phases.
    out, err, captured = io.StringIO(), io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    install_log_redaction(REDACTOR)
    handler = logging.StreamHandler(captured)
    logger = logging.getLogger("aiokafka.some.library")
    logger.addHandler(handler)
    try:
        logger.error("sent %s", KEY)
        try:
            raise ValueError(f"echo {KEY}")
        except ValueError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
    print(f"printed {KEY}")
    print(f"warned {KEY}", file=sys.stderr)

    for text in (captured.getvalue(), out.getvalue(), err.getvalue()):
        assert text
        assert KEY[:8] not in text
    assert "ValueError: echo [redacted]" in captured.getvalue()


def test_litellm_prints_are_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(suppress_debug_info=False, set_verbose=True)
    monkeypatch.setitem(sys.modules, "litellm", fake)
    monkeypatch.setenv("LITELLM_PRINT_STANDARD_LOGGING_PAYLOAD", "1")

    quiet_litellm()

    assert fake.suppress_debug_info is True
    assert fake.set_verbose is False
    assert "LITELLM_PRINT_STANDARD_LOGGING_PAYLOAD" not in os.environ
