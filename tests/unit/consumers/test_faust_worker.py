"""faust's worker as dspyops starts it: the level asked for is the level the process logs at."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import faust
import pytest

from dspyops.consumers.log_format import logging_config
from dspyops.consumers.worker import faust_worker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("level", ["warn", "error"])
def test_at_warning_or_above_debug_lines_are_never_made_into_records(
    root_logger: logging.Logger, level: str
) -> None:
    loop = asyncio.new_event_loop()
    try:
        app = faust.App("t-logging", broker="kafka://127.0.0.1:1", web_enabled=False)
        worker = faust_worker(
            app, loop, loglevel=level, logging_config=logging_config("console", level)
        )
        worker._setup_logging()  # what execute_from_commandline does first
    finally:
        loop.close()
    # faust's spinner set the root logger to DEBUG, so every aiokafka debug line was made.
    assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
    assert root_logger.level >= logging.WARNING
