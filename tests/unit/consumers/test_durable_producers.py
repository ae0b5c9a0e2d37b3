"""Every producer of dspyops writes with acks=all and idempotence (client/producers.py)."""

from __future__ import annotations

from pathlib import Path

from dspyops.client.producers import durable_producer
from dspyops.consumers.faust_app import create_app
from dspyops.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


async def test_the_workers_faust_producer_waits_for_all_replicas_and_is_idempotent() -> None:
    producer = create_app(Settings()).producer
    made = producer._new_producer()  # type: ignore[attr-defined]
    # aiokafka has no public getter: an idempotent producer holds a transaction manager.
    assert made._txn_manager is not None
    assert made.client is not None
    assert producer._settings_extra() == {"acks": "all", "enable_idempotence": True}  # type: ignore[attr-defined]


async def test_the_shared_producer_waits_for_all_replicas_and_is_idempotent() -> None:
    made = durable_producer("127.0.0.1:1")
    assert made._txn_manager is not None


def test_no_other_code_makes_its_own_producer() -> None:
    """Outside tests of the broker itself, producers come from durable_producer."""
    makers = {
        str(path.relative_to(ROOT))
        for folder in ("client", "consumers", "cli", "api", "bench", "scripts", "tests/support")
        for path in (ROOT / folder).rglob("*.py")
        if "AIOKafkaProducer(" in path.read_text()
    }
    assert makers == {"client/producers.py"}
