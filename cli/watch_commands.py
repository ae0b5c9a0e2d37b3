"""`dspyops watch`: tail the results and events topics, filtered, one line per message."""

from __future__ import annotations

import asyncio
import contextlib
import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from rich.markup import escape

from dspyops.cli.console import EXIT_UNAVAILABLE, fail, out
from dspyops.client.refusals import first_refusal
from dspyops.events.codec import Undecodable, decode_envelope
from dspyops.events.envelope import Envelope
from dspyops.events.topics import Topics
from dspyops.settings import Settings, get_settings

STACK_HINT = "start the stack with `dspyops dev`, or set KAFKA_BOOTSTRAP_SERVERS"


class Stream(StrEnum):
    all = "all"
    results = "results"
    events = "events"


def watch(
    program: Annotated[
        str | None, typer.Option("--program", "-p", help="Only messages about this id.")
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", "-t", help="Only types containing this text (repeatable)."),
    ] = None,
    only: Annotated[Stream, typer.Option(help="Which topics to tail.")] = Stream.all,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Replay what the topics hold first.")
    ] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after this many messages.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON envelope per line.")] = False,
) -> None:
    """Tail results and events as they arrive (Ctrl-C stops)."""
    settings = get_settings()
    topics = Topics(settings.topic_prefix)
    names = {
        Stream.all: [topics.results, topics.events],
        Stream.results: [topics.results],
        Stream.events: [topics.events],
    }[only]
    matcher = Matcher(program, [t.lower() for t in type_ or []])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(settings, names, matcher, from_beginning, max_messages, json_out))


class Matcher:
    def __init__(self, program: str | None, types: list[str]) -> None:
        self.program = program
        self.types = types

    def __call__(self, envelope: Envelope) -> bool:
        if self.types and not any(t in envelope.type.lower() for t in self.types):
            return False
        if self.program is None:
            return True
        data = envelope.data or {}
        # Results carry program_id; stored events name their aggregate or the command subject.
        about = {
            envelope.subject,
            envelope.aggregateid,
            data.get("program_id"),
            data.get("subject"),
        }
        return self.program in about


async def _tail(
    settings: Settings,
    names: list[str],
    matcher: Matcher,
    from_beginning: bool,
    max_messages: int | None,
    json_out: bool,
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",  # results may come in transactions
        auto_offset_reset="earliest" if from_beginning else "latest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **settings.kafka_security.aiokafka_kwargs(),
    )
    try:
        await asyncio.wait_for(consumer.start(), 10)
        missing = [n for n in names if n not in await consumer.topics()]
    except (TimeoutError, KafkaError, OSError) as exc:
        await consumer.stop()
        refusal = await first_refusal(settings.bootstrap_servers, settings.kafka_security, exc)
        fail(refusal.message, refusal.hint or STACK_HINT, code=EXIT_UNAVAILABLE)
    if missing:
        await consumer.stop()
        fail(
            f"topic {missing[0]} does not exist: no worker has run with this prefix",
            "start one with `dspyops dev` (or `dspyops worker`)",
            code=EXIT_UNAVAILABLE,
        )
    consumer.subscribe(names)
    if not json_out:
        out.print(f"[dim]watching {', '.join(names)} (Ctrl-C stops)[/]", highlight=False)
    shown = 0
    try:
        while max_messages is None or shown < max_messages:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    envelope = _decode(record.value)
                    if envelope is None or not matcher(envelope):
                        continue
                    _print(envelope, record.value, json_out)
                    shown += 1
                    if max_messages is not None and shown >= max_messages:
                        return
    finally:
        await consumer.stop()


def _decode(raw: bytes | None) -> Envelope | None:
    try:
        return decode_envelope(raw, commands_only=False)
    except Undecodable:
        return None


def _print(envelope: Envelope, raw: bytes | None, json_out: bool) -> None:
    if json_out:
        # The message as it travelled, one line each, for `jq` and friends.
        print(raw.decode() if raw else "{}", flush=True)
        return
    kind, _, name = envelope.type.removeprefix("dspyops.").partition(".")
    time = envelope.time.strftime("%H:%M:%S.%f")[:-3] if envelope.time else "--:--:--"
    colour = (
        "red" if "Rejected" in name or "Failed" in name else "cyan" if kind == "event" else "green"
    )
    subject = escape(envelope.subject or "")
    out.print(
        f"{time} [dim]{kind:<6}[/] [{colour}]{name:<28}[/] {subject:<24} "
        + escape(_brief(envelope.data)),
        highlight=False,
        soft_wrap=True,
    )


def _brief(data: dict[str, Any] | None, width: int = 100) -> str:
    text = json.dumps(data or {}, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"
