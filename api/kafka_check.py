"""Whether Kafka answers a metadata request, within a short timeout."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaClient

from dspyops.client.security import KafkaSecurity


async def kafka_answers(
    bootstrap_servers: str, security: KafkaSecurity, timeout_s: float = 2.0
) -> bool:
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=2000,
        **security.aiokafka_kwargs(),
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return True
    except Exception:
        # Any failure (refused, timeout, bad address) means "not available" to a health check.
        return False
    finally:
        await client.close()
