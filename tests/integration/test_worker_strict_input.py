"""The drill's malformed commands against a real worker process, through Kafka.

Each was accepted before (and one NUL then stopped the read side for good): text
PostgreSQL cannot store, lax types, a number for a time, an unknown LM profile, a
signature too long once canonical, a reused command id. Now each ends as the contract
says, and the read side projects what the worker stored without skipping anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.codec import encode
from dspyops.events.envelope import Envelope, command_envelope
from dspyops.events.topics import Topics, command_topic
from dspyops.projections.projector import Projector
from tests.support.kafka import TopicReader, command, produce, send_commands
from tests.support.worker_process import WorkerProcess

SIGNATURE = "question: str -> answer: str"
NUL = "a\u0000b"
SURROGATE = "a\ud800b"


def raw(envelope: Envelope, **attributes: Any) -> bytes:
    """The envelope's JSON with attributes or data fields replaced, as a producer sent it."""
    message = json.loads(encode(envelope))
    data = attributes.pop("data", None)
    message.update(attributes)
    if data is not None:
        message["data"] = {**message["data"], **data}
    return json.dumps(message).encode()


def rejected_data(program: str, unique: str) -> list[tuple[str, Envelope, dict[str, Any], list]]:
    """(label, envelope, data fields to replace, the loc the rejection must name)."""
    register = {"program_id": f"{program}-{unique}", "name": "n", "signature": SIGNATURE}
    execute = {"program_id": program, "inputs": {"question": "q"}}
    return [
        ("name", command("RegisterProgram", register), {"name": NUL}, ["data", "name"]),
        (
            "instructions",
            command("RegisterProgram", {**register, "program_id": f"i-{unique}"}),
            {"instructions": SURROGATE},
            ["data", "instructions"],
        ),
        (
            "description",
            command("RegisterProgram", {**register, "program_id": f"d-{unique}"}),
            {"description": NUL},
            ["data", "description"],
        ),
        (
            "field_descriptions",
            command("RegisterProgram", {**register, "program_id": f"f-{unique}"}),
            {"field_descriptions": {"answer": NUL}},
            ["data", "field_descriptions", "answer"],
        ),
        (
            "update instructions",
            command("UpdateProgram", {"program_id": program, "instructions": "x"}),
            {"instructions": NUL},
            ["data", "instructions"],
        ),
        (
            "inputs",
            command("ExecuteProgram", execute),
            {"inputs": {"question": NUL}},
            ["data", "inputs", "question"],
        ),
        (
            "dataset name",
            command("RegisterDataset", {"dataset_id": f"ds-{unique}", "name": "d"}),
            {"name": NUL},
            ["data", "name"],
        ),
        (
            "version true",
            command("ExecuteProgram", execute),
            {"version": True},
            ["data", "version"],
        ),
        (
            "version string",
            command("ExecuteProgram", execute),
            {"version": "1"},
            ["data", "version"],
        ),
        (
            "dev_fraction string",
            command("RegisterDataset", {"dataset_id": f"df-{unique}", "name": "d"}),
            {"dev_fraction": "0.5"},
            ["data", "dev_fraction"],
        ),
    ]


async def test_malformed_commands_end_as_the_contract_says_and_nothing_wedges(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    program = f"p-{unique}"
    good = command("RegisterProgram", {"program_id": program, "name": "p", "signature": SIGNATURE})
    data_cases = rejected_data(program, unique)
    # Envelope attributes that cannot be stored: the envelope is dead-lettered by name.
    execute = command("ExecuteProgram", {"program_id": program, "inputs": {"question": "q"}})
    envelope_cases = {
        "actor": raw(execute, id=f"a-{unique}", actor=NUL),
        "correlationid": raw(execute, id=f"c-{unique}", correlationid=NUL),
        "id": raw(execute, id=NUL),
        "time": raw(execute, id=f"t-{unique}", time=5),
    }
    unknown_lm = command(
        "RegisterProgram",
        {"program_id": f"lm-{unique}", "name": "n", "signature": SIGNATURE, "lm": "nosuchprofile"},
    )
    values = ",".join(str(i) for i in range(1_900))
    too_long = command(
        "RegisterProgram",
        {
            "program_id": f"long-{unique}",
            "name": "n",
            "signature": f"q: str -> a: Literal[{values}]",
        },
    )
    # The id of `good` again, on another command: refused, never applied.
    reused = command_envelope(
        "ExecuteProgram", {"program_id": program, "inputs": {"question": "q"}}, id=good.id
    )
    with WorkerProcess(env, tmp_path / "worker.log"):
        async with (
            TopicReader(bootstrap, topics.results) as results,
            TopicReader(bootstrap, topics.deadletter) as dead,
        ):
            await send_commands(bootstrap, topics, [good])
            await results.results_for([good.id], timeout_s=90)
            records = [
                (command_topic(topics, e.short_type), e.id.encode(), raw(e, data=fields))
                for _, e, fields, _ in data_cases
            ]
            records += [
                (topics.executions, name.encode(), value) for name, value in envelope_cases.items()
            ]
            await produce(bootstrap, records)
            await send_commands(bootstrap, topics, [unknown_lm, too_long, reused])
            ids = [e.id for _, e, _, _ in data_cases] + [unknown_lm.id, too_long.id]
            answered = await results.results_for(ids, timeout_s=90)
            letters = await dead.wait_for(lambda m: len(m) >= len(envelope_cases), timeout_s=60)
            await results.wait_for(
                lambda ms: sum(m.get("causationid") == good.id for m in ms) >= 2, timeout_s=60
            )
    for label, envelope, _, loc in data_cases:
        (result,) = answered[envelope.id]
        assert result["type"] == "dspyops.result.CommandRejected", label
        assert [e["loc"] for e in result["data"]["errors"]] == [loc], label
    for envelope, loc, error_type in (
        (unknown_lm, ["lm"], "unknown_lm_profile"),
        (too_long, ["signature"], "too_long"),
    ):
        (result,) = answered[envelope.id]
        (error,) = result["data"]["errors"]
        assert (error["loc"], error["type"]) == (loc, error_type)
    reasons = sorted(letter["data"]["error"]["message"].split(":")[0] for letter in letters)
    assert reasons == ["actor", "correlationid", "id", "time"]
    assert {letter["data"]["error"]["code"] for letter in letters} == {"not_envelope"}
    replies_to_good_id = [m for m in results.messages if m.get("causationid") == good.id]
    assert [m["type"].rsplit(".", 1)[-1] for m in replies_to_good_id] == [
        "ProgramRegistered",
        "CommandRejected",
    ]
    assert replies_to_good_id[1]["data"]["errors"][0]["type"] == "id_reused"
    # The read side projects everything the worker stored, skipping nothing.
    projector = Projector(
        database_url,
        event_store_schema=env["DSPYOPS_EVENT_STORE_SCHEMA"],
        read_schema=f"read_{unique}",
    )
    try:
        assert projector.catch_up() > 0
    finally:
        projector.close()
    with psycopg.connect(database_url) as conn:
        skipped = conn.execute(f'SELECT count(*) FROM "read_{unique}".projection_errors').fetchone()
        programs = conn.execute(f'SELECT program_id FROM "read_{unique}".programs').fetchall()
    assert skipped == (0,)
    assert programs == [(program,)]
