"""How the CLI tells that a worker, projector or API is up, by asking each of them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg

from dspyops.client import CommandTimeoutError, DspyopsClient, TopicsMissingError
from dspyops.projections.lag import read_lag
from dspyops.settings import Settings

PROBE_SOURCE = "urn:dspyops:probe"


def api_health(settings: Settings, *, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The API's /health document when it answers 200, else None."""
    try:
        response = httpx.get(f"{settings.api_url}/health", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


def projection_lag(settings: Settings) -> int | None:
    """Events the read models are behind; None until the projector has built its tables."""
    return asyncio.run(_projection_lag(settings))


async def _projection_lag(settings: Settings) -> int | None:
    try:
        conn = await psycopg.AsyncConnection.connect(
            settings.effective_database_url, connect_timeout=3, autocommit=True
        )
    except psycopg.Error:
        return None
    try:
        lag = await read_lag(conn, settings.event_store_schema, settings.read_model_schema)
    except psycopg.Error:
        return None
    finally:
        await conn.close()
    return int(lag["lag"]) if lag.get("built", True) else None


@contextlib.contextmanager
def _quiet_kafka_client() -> Iterator[None]:
    # While a worker creates its topics aiokafka logs leader errors that are expected then.
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def worker_answers(
    settings: Settings, *, timeout_s: float, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Send a harmless command (training a program that does not exist) and await its answer.

    The answer, a CommandRejected, proves a worker reads commands and publishes results.
    """
    with _quiet_kafka_client():
        return asyncio.run(_probe(settings, timeout_s, alive))


async def _probe(settings: Settings, timeout_s: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout_s
    client = DspyopsClient(
        settings.bootstrap_servers,
        topic_prefix=settings.topic_prefix,
        source=PROBE_SOURCE,
        security=settings.kafka_security,
    )
    # The worker creates the topics when it starts: until then there is nothing to read.
    while True:
        try:
            await client.start()
            break
        except (TopicsMissingError, ConnectionError):
            if time.monotonic() > deadline or not alive():
                return False
            await asyncio.sleep(0.5)
    try:
        envelope = client.envelope("TrainProgram", {"program_id": f"probe-{uuid.uuid4().hex[:12]}"})
        answer = asyncio.create_task(
            client.request(envelope, timeout_s=max(deadline - time.monotonic(), 1.0), check=False)
        )
        while not answer.done():
            if not alive():
                answer.cancel()
                return False
            await asyncio.wait({answer}, timeout=0.5)
        try:
            answer.result()
        except CommandTimeoutError:
            return False
        return True
    finally:
        await client.close()
