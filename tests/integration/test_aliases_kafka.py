"""Aliases through Kafka with the worker in this process (issue 18, part 2).

A program with two versions serves v1 as `production`; `canary` is set on v2 with a
reason, executions name it, the version, or neither; the refusals (version and alias
together, an unknown alias, SetAlias on `production`) say which field is at fault; the
alias is removed and executions naming it are refused. The store keeps the actor and
reason of each change.
"""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.program import Program
from dspyops.bootstrap import open_store
from tests.support.kafka import TopicReader, command
from tests.support.optimization import (
    Stack,
    register_commands,
    send_and_wait,
    settings_for_test,
    stack,
)

__all__ = ["settings_for_test", "stack"]  # fixtures

QUESTION = {"question": "What is 6 plus 3?"}


async def test_set_alias_execute_by_alias_and_remove_it(stack: Stack, unique: str) -> None:
    settings, topics, _, _ = stack
    program_id = f"add-{unique}"
    register, _ = register_commands(unique)

    async with TopicReader(settings.bootstrap_servers, topics.results) as results:

        async def ask(command_type: str, **data: Any) -> dict[str, Any]:
            envelope = command(command_type, {"program_id": program_id, **data}, actor="ops")
            reply = (await send_and_wait(settings, topics, results, envelope))[envelope.id]
            return reply

        await send_and_wait(settings, topics, results, register)
        await ask("UpdateProgram", instructions="Answer with the number only.")
        await ask("DeployProgram", version=1)
        canary = await ask("SetAlias", alias="canary", version=2, reason="shorter answers")
        by_alias = await ask("ExecuteProgram", inputs=QUESTION, alias="canary")
        by_default = await ask("ExecuteProgram", inputs=QUESTION)
        by_production = await ask("ExecuteProgram", inputs=QUESTION, alias="production")
        both = await ask("ExecuteProgram", inputs=QUESTION, alias="canary", version=2)
        unknown = await ask("ExecuteProgram", inputs=QUESTION, alias="staging")
        production = await ask("SetAlias", alias="production", version=2)
        bad_name = await ask("SetAlias", alias="Canary", version=2)
        removed = await ask("RemoveAlias", alias="canary", reason="done")
        after_removal = await ask("ExecuteProgram", inputs=QUESTION, alias="canary")

    assert canary["type"] == "dspyops.result.ProgramAliasSet", canary
    assert (canary["data"]["alias"], canary["data"]["version"]) == ("canary", 2)
    assert canary["data"]["deployed_version"] == 1
    for reply, version in ((by_alias, 2), (by_default, 1), (by_production, 1)):
        assert reply["type"] == "dspyops.result.ExecutionSucceeded", reply
        assert reply["data"]["version"] == version
    for reply, kind, loc in (
        (both, "invalid_input", ["alias"]),
        (unknown, "not_found", ["alias"]),
        (production, "illegal_transition", ["alias"]),
        (after_removal, "not_found", ["alias"]),
    ):
        assert reply["type"] == "dspyops.result.CommandRejected", reply
        (error,) = reply["data"]["errors"]
        assert (error["type"], error["loc"]) == (kind, loc), error
    # A name outside [a-z][a-z0-9-]{0,31} is refused by the command's schema.
    assert bad_name["type"] == "dspyops.result.CommandRejected", bad_name
    assert [e["loc"] for e in bad_name["data"]["errors"]] == [["data", "alias"]]
    assert removed["type"] == "dspyops.result.ProgramAliasRemoved", removed
    assert (removed["data"]["alias"], removed["data"]["version"]) == ("canary", 2)

    store = open_store(settings.effective_database_url, settings.event_store_schema)
    try:
        program = store.program(program_id)
        assert program.aliases == {"production": 1}
        changes = [
            (type(e).__name__, e.alias, e.version, e.reason, e.actor)
            for e in store.events.get(program.id)
            if isinstance(e, Program.AliasSet | Program.AliasRemoved)
        ]
        assert changes == [
            ("AliasSet", "canary", 2, "shorter answers", "ops"),
            ("AliasRemoved", "canary", 2, "done", "ops"),
        ]
    finally:
        store.close()
