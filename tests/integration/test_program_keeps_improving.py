"""A program keeps improving, through Kafka with the worker in this process (issue 18, part 1).

register -> optimize (v2) -> deploy v2 -> optimize again (v3) -> deploy v3 -> roll back to
v2 -> optimize with another optimizer (v4) -> deploy v4, each answer checked, and the
refusals on the way (a rollback to a version that never served, a deploy of the version
serving) answered with a machine-readable reason.
"""

from __future__ import annotations

from typing import Any

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

DEMOS = {"max_bootstrapped_demos": 2, "max_labeled_demos": 2}


async def test_optimize_deploy_optimize_again_roll_back_and_redeploy(
    stack: Stack, unique: str
) -> None:
    settings, topics, _, _ = stack
    program_id, dataset_id = f"add-{unique}", f"sums-{unique}"
    register, dataset = register_commands(unique)

    async with TopicReader(settings.bootstrap_servers, topics.results) as results:

        async def ask(command_type: str, **data: Any) -> dict[str, Any]:
            envelope = command(command_type, {"program_id": program_id, **data})
            reply = (await send_and_wait(settings, topics, results, envelope))[envelope.id]
            print(command_type, data, "->", reply["type"].rsplit(".", 1)[-1], reply["data"])
            return reply

        def optimize(optimizer: str, config: dict[str, Any]) -> Any:
            return ask("OptimizeProgram", dataset_id=dataset_id, optimizer=optimizer, config=config)

        await send_and_wait(settings, topics, results, register, dataset)
        first = await optimize("BootstrapFewShot", DEMOS)
        deploy_v2 = await ask("DeployProgram", version=2)
        second = await optimize("BootstrapFewShot", {**DEMOS, "max_rounds": 2})
        deploy_v3 = await ask("DeployProgram", version=3)
        never_served = await ask("RollbackProgram", version=1)
        rollback = await ask("RollbackProgram", version=2)
        serving_again = await ask("DeployProgram", version=2)
        third = await optimize("LabeledFewShot", {"k": 3})
        deploy_v4 = await ask("DeployProgram", version=4)
        executed = await ask("ExecuteProgram", inputs={"question": "What is 6 plus 3?"})

    for reply, version, optimizer in ((first, 2, "BootstrapFewShot"), (second, 3, None)):
        assert reply["type"] == "dspyops.result.OptimizationCompleted", reply
        assert reply["data"]["version"] == version
        assert optimizer in (None, reply["data"]["optimizer"])
    assert third["type"] == "dspyops.result.OptimizationCompleted", third
    assert (third["data"]["version"], third["data"]["optimizer"]) == (4, "LabeledFewShot")

    def program_state(reply: dict[str, Any]) -> tuple[Any, ...]:
        data = reply["data"]
        kind = reply["type"].rsplit(".", 1)[-1]
        return kind, data["status"], data["latest_version"], data["deployed_version"]

    assert program_state(deploy_v2) == ("ProgramDeployed", "deployed", 2, 2)
    assert program_state(deploy_v3) == ("ProgramDeployed", "deployed", 3, 3)
    assert program_state(rollback) == ("ProgramRolledBack", "deployed", 3, 2)
    assert rollback["data"]["previous_version"] == 3
    assert program_state(deploy_v4) == ("ProgramDeployed", "deployed", 4, 4)

    # The refusals say why, where: the version is the problem, not the status.
    for refused, words in ((never_served, "never served"), (serving_again, "serving already")):
        assert refused["type"] == "dspyops.result.CommandRejected", refused
        (error,) = refused["data"]["errors"]
        assert (error["type"], error["loc"]) == ("illegal_transition", ["version"])
        assert words in error["msg"]

    # Executions use the version deployed last.
    assert executed["type"] == "dspyops.result.ExecutionSucceeded", executed
    assert executed["data"]["version"] == 4

    store = open_store(settings.effective_database_url, settings.event_store_schema)
    try:
        program = store.program(program_id)
        assert (program.status, program.latest_version, program.deployed_version) == (
            "deployed",
            4,
            4,
        )
        assert program.served_versions == [2, 3, 4]
        versions = [(v["number"], v["source"], v["optimizer"]) for v in program.versions]
        assert versions == [
            (1, "registered", None),
            (2, "optimized", "BootstrapFewShot"),
            (3, "optimized", "BootstrapFewShot"),
            (4, "optimized", "LabeledFewShot"),
        ]
    finally:
        store.close()
