"""`dspyops send TYPE --data FILE|-`: publish any command and print its result; and
`dspyops feedback EXECUTION_ID --score X`, a RecordFeedback built from options."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dspyops.cli.console import (
    EXIT_REJECTED,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    JsonOpt,
    err,
    fail,
    out,
    print_json,
)
from dspyops.cli.infra.kafka import kafka_problem
from dspyops.client import (
    CommandError,
    CommandTimeoutError,
    DspyopsClient,
    KafkaRefusedError,
    Reply,
    TopicsMissingError,
)
from dspyops.client.errors import raise_for
from dspyops.events.commands import COMMAND_TYPES
from dspyops.events.envelope import COMMAND_TYPE_PREFIX
from dspyops.settings import Settings, get_settings

STACK_HINT = "start the stack with `dspyops dev`, or set KAFKA_BOOTSTRAP_SERVERS"

# The options every command that publishes shares (send, feedback, promote).
CommandIdOpt = Annotated[
    str | None, typer.Option("--id", help="Command id (idempotency key). Default: new.")
]
ActorOpt = Annotated[str | None, typer.Option(help="Who asks; kept in the audit trail.")]
TimeoutOpt = Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the result.")]


def send(
    command_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="The command, e.g. RegisterProgram.")
    ],
    data: Annotated[
        str,
        typer.Option("--data", "-d", metavar="FILE|-", help="JSON object: a file or - (stdin)."),
    ],
    command_id: CommandIdOpt = None,
    correlation_id: Annotated[str | None, typer.Option("--correlation-id")] = None,
    actor: ActorOpt = None,
    timeout: TimeoutOpt = 60.0,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Publish; do not wait.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Publish one command on its topic and print its terminal result."""
    name = _command_name(command_type)
    payload = _read_data(data)
    publish(name, payload, command_id, correlation_id, actor, timeout, no_wait, json_out)


def feedback(
    execution_id: Annotated[str, typer.Argument(help="The execution the feedback is about.")],
    score: Annotated[
        float | None, typer.Option(help="On the program's feedback scale: 0..1 for now.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="A short verdict, e.g. good.")] = None,
    comment: Annotated[str | None, typer.Option(help="Free text.")] = None,
    corrected: Annotated[
        str | None,
        typer.Option(
            metavar="JSON", help="What it should have answered: a JSON object of its outputs."
        ),
    ] = None,
    command_id: CommandIdOpt = None,
    actor: ActorOpt = None,
    timeout: TimeoutOpt = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Record feedback on an execution (RecordFeedback) and print the result."""
    payload: dict[str, Any] = {"execution_id": execution_id}
    given = {"score": score, "label": label, "comment": comment}
    payload.update({k: v for k, v in given.items() if v is not None})
    if corrected is not None:
        payload["corrected_outputs"] = _json_object(corrected, "--corrected")
    publish("RecordFeedback", payload, command_id, None, actor, timeout, False, json_out)


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{where} is not JSON: {exc.msg} at column {exc.colno}", code=EXIT_USAGE)
    if not isinstance(value, dict):
        fail(f"{where} holds {type(value).__name__}, not a JSON object", code=EXIT_USAGE)
    return value


def publish(
    name: str,
    payload: dict[str, Any],
    command_id: str | None,
    correlation_id: str | None,
    actor: str | None,
    timeout: float,
    no_wait: bool,
    json_out: bool,
) -> None:
    settings = get_settings()
    problem = kafka_problem(settings.bootstrap_servers, settings.kafka_security, timeout_s=3.0)
    if problem is not None:
        fail(problem.message, problem.hint or STACK_HINT, code=EXIT_UNAVAILABLE)
    reply = asyncio.run(
        _send(
            settings, name, payload, command_id, correlation_id, actor, timeout, no_wait, json_out
        )
    )
    if reply is None:
        return
    _print_reply(reply, json_out)
    if reply.failed:
        try:
            raise_for(reply)
        except CommandError as exc:
            fail(str(exc), "the whole result is above", code=EXIT_REJECTED)


def _command_name(command_type: str) -> str:
    name = command_type.removeprefix(COMMAND_TYPE_PREFIX)
    if name not in COMMAND_TYPES:
        fail(
            f"unknown command type {command_type!r}",
            f"one of: {', '.join(COMMAND_TYPES)}",
            code=EXIT_USAGE,
        )
    return name


def _read_data(source: str) -> dict[str, Any]:
    where = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        fail(
            f"cannot read {where}: {exc.strerror}",
            "pass a JSON file, or - to read stdin",
            code=EXIT_USAGE,
        )
    except UnicodeDecodeError:
        fail(f"{where} is not UTF-8 text", code=EXIT_USAGE)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(
            f"{where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            'the data is the command\'s `data` object, e.g. {"program_id": "qa"}',
            code=EXIT_USAGE,
        )
    if not isinstance(value, dict):
        fail(f"{where} holds {type(value).__name__}, not a JSON object", code=EXIT_USAGE)
    return value


async def _send(
    settings: Settings,
    name: str,
    payload: dict[str, Any],
    command_id: str | None,
    correlation_id: str | None,
    actor: str | None,
    timeout_s: float,
    no_wait: bool,
    json_out: bool,
) -> Reply | None:
    client = DspyopsClient(
        settings.bootstrap_servers,
        topic_prefix=settings.topic_prefix,
        actor=actor,
        source="urn:dspyops:cli",
        security=settings.kafka_security,
    )
    try:
        await client.start()
    except TopicsMissingError:
        fail(
            f"no topics with prefix {settings.topic_prefix!r}: no worker has run here",
            "start one with `dspyops dev` (or `dspyops worker`)",
            code=EXIT_UNAVAILABLE,
        )
    except KafkaRefusedError as exc:
        fail(str(exc), exc.refusal.hint or STACK_HINT, code=EXIT_UNAVAILABLE)
    except ConnectionError as exc:
        fail(str(exc), STACK_HINT, code=EXIT_UNAVAILABLE)
    try:
        envelope = client.envelope(name, payload, id=command_id, correlation_id=correlation_id)
        if no_wait:
            await client.publish(envelope)
            _say(f"published {name} {envelope.id}", json_out)
            if json_out:
                print_json({"id": envelope.id, "type": envelope.type})
            return None

        def progress(reply: Reply) -> None:
            data = reply.data
            _say(
                f"… {reply.type} {data.get('step')}/{data.get('total')} {data.get('message', '')}",
                True,
            )

        try:
            return await client.request(
                envelope, timeout_s=timeout_s, on_progress=progress, check=False
            )
        except CommandTimeoutError:
            fail(
                f"no result for {name} {envelope.id} within {timeout_s:g}s",
                "is a worker running? `dspyops watch` shows results as they come",
                code=EXIT_TIMEOUT,
            )
    except KafkaRefusedError as exc:
        fail(str(exc), exc.refusal.hint, code=EXIT_UNAVAILABLE)
    finally:
        await client.close()


def _say(line: str, to_stderr: bool) -> None:
    (err if to_stderr else out).print(line, highlight=False)


def _print_reply(reply: Reply, json_out: bool) -> None:
    if json_out:
        print_json(reply.envelope.model_dump(mode="json", exclude_none=True))
        return
    colour = "red" if reply.failed else "green"
    out.print(f"[bold {colour}]{reply.type}[/] [dim](command {reply.envelope.causationid})[/]")
    out.print_json(data=reply.data)
