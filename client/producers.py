"""How every Kafka producer of dspyops writes (the client's, the tests' and the scripts';
the worker's faust producer is set the same way in consumers/faust_app.py).

- `acks=all`: a write is acknowledged once every in-sync replica has it; with the
  `min.insync.replicas=2` dspyops gives its topics on a cluster, that is at least two
  brokers, so losing one loses no acknowledged command or result.
- idempotence: a batch retried after its acknowledgement was lost (a leader that died
  mid-request) is dropped by the broker, which knows this producer's id and sequence,
  instead of being written twice.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from dspyops.client.security import PLAINTEXT, KafkaSecurity

# Commands and results up to 4 MB (the broker's message.max.bytes of the local stack).
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def durable_producer(
    bootstrap_servers: str, security: KafkaSecurity = PLAINTEXT, **options: Any
) -> AIOKafkaProducer:
    """An aiokafka producer with `acks=all` and idempotence; `options` adds others."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_REQUEST_BYTES,
        **options,
        **security.aiokafka_kwargs(),
    )
