"""ExecutionJobs with an in-memory event store: what a failed LM call records and replies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dspy import lm15

from dspyops.aggregates.app import DspyOps, ExecutionPlan, in_memory_env
from dspyops.consumers.completions import execution_cost, lm_spans, price_lm_spans
from dspyops.consumers.executions import ExecutionJobs
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.processing import Processor
from dspyops.consumers.records import Incoming
from dspyops.consumers.span_attributes import program_span_attributes
from dspyops.events.codec import encode
from dspyops.events.envelope import command_envelope
from dspyops.events.topics import Topics
from dspyops.runtime.executor import ExecutionOutcome
from dspyops.runtime.executor import Usage as RuntimeUsage
from dspyops.runtime.profiles import LMProfile, ProfileRegistry, load_profiles
from dspyops.runtime.redaction import Redactor
from dspyops.settings import Settings
from tests.support.scripted_lm import ScriptedLM

TOPICS = Topics("t.")
KEY_ENV = "ACME_SECRET_KEY_VARIABLE"
KEY = "sk-unit-8c1f0e6d4b2a9f7e5d3c1b0a"
URL = "http://llm.corp.internal:9000/v1"
PROFILES = {"p": {"model": "openai/x", "api_base": URL, "api_key_env": KEY_ENV}}


class EchoingProfiles(ProfileRegistry):
    """Profile 'p' as configured; its LM answers 401 echoing the key and the endpoint."""

    def __init__(self) -> None:
        super().__init__(load_profiles(json.dumps(PROFILES)))

    def build_lm(self, name: str) -> Any:
        super().build_lm(name)  # raises as the real one does when the key is missing
        echo = f"Incorrect API key provided: {KEY} for {URL}; check {KEY_ENV}"
        return ScriptedLM("unused", error=lm15.AuthError(echo, status=401))


async def execute(app: DspyOps) -> dict[str, Any]:
    profiles = EchoingProfiles()
    redactor = Redactor.for_worker(Settings(), profiles)
    jobs = ExecutionJobs(app, profiles, ModuleCache(), redactor=redactor)
    processor = Processor(app, TOPICS, {ExecutionPlan: jobs.run})
    register = {"program_id": "q", "name": "q", "signature": "question: str -> answer: str"}
    commands = [
        (TOPICS.programs, command_envelope("RegisterProgram", {**register, "lm": "p"})),
        (
            TOPICS.executions,
            command_envelope("ExecuteProgram", {"program_id": "q", "inputs": {"question": "?"}}),
        ),
    ]
    for topic, envelope in commands:
        (out,) = await processor.process(Incoming(topic, 0, 0, b"k", encode(envelope)))
    return out.envelope.model_dump(mode="json")


@pytest.fixture
def app() -> DspyOps:
    return DspyOps(in_memory_env())


async def test_a_failed_call_is_recorded_without_the_secrets_it_echoed(
    app: DspyOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)

    result = await execute(app)

    assert result["type"] == "dspyops.result.ExecutionFailed"
    error = result["data"]["error"]
    assert error["code"] == "lm_error"
    assert error["message"].startswith("LM call failed on profile 'p': HTTP 401")
    stored = json.dumps([n.state.decode() for n in app.recorder.select_notifications(1, 100)])
    for secret in (KEY, KEY[:8], KEY[-8:], KEY_ENV, "llm.corp.internal"):
        assert secret not in json.dumps(result)
        assert secret not in stored


async def test_a_profile_whose_key_is_not_set_fails_the_execution_not_the_command(
    app: DspyOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)

    result = await execute(app)

    assert result["type"] == "dspyops.result.ExecutionFailed"
    error = result["data"]["error"]
    assert error["code"] == "lm_error"
    assert "profile not usable on this worker" in error["message"]
    assert KEY_ENV not in error["message"]


@pytest.mark.parametrize(
    ("lm_calls", "reported", "expected"),
    [(0, True, 0.0), (0, False, 0.0), (2, False, None), (2, True, (30 * 2.0 + 7 * 8.0) / 1e6)],
)
def test_an_executions_cost_is_unknown_when_its_calls_reported_no_tokens(
    lm_calls: int, reported: bool, expected: float | None
) -> None:
    profile = LMProfile(
        name="p", model="openai/x", input_cost_per_million=2.0, output_cost_per_million=8.0
    )
    outcome = ExecutionOutcome(
        ok=True,
        latency_ms=1.0,
        model="openai/x",
        usage=RuntimeUsage(prompt_tokens=30, completion_tokens=7, total_tokens=37),
        lm_calls=lm_calls,
        usage_reported=reported,
    )
    assert execution_cost(profile, outcome) == (
        pytest.approx(expected) if expected is not None else None
    )


def test_each_lm_span_gets_its_cost_and_openinference_its_attribute() -> None:
    trace: dict[str, Any] = {
        "kind": "program",
        "children": [
            {"kind": "lm", "name": "m", "usage": {"prompt_tokens": 30, "completion_tokens": 7}},
            {"kind": "step", "children": [{"kind": "lm", "name": "m", "usage": {}}]},
        ],
    }

    price_lm_spans(lm_spans(trace), (2.0 / 1e6, 8.0 / 1e6))

    priced, unreported = trace["children"][0], trace["children"][1]["children"][0]
    assert priced["cost_usd"] == pytest.approx((30 * 2.0 + 7 * 8.0) / 1e6)
    assert unreported["cost_usd"] is None  # no tokens reported: unknown, not free
    assert program_span_attributes(priced)["llm.cost.total"] == priced["cost_usd"]
    assert "llm.cost.total" not in program_span_attributes(unreported)
    price_lm_spans(lm_spans(trace), None)
    assert priced["cost_usd"] is None


async def test_a_budgeted_execution_that_ends_in_an_internal_error_frees_its_reservation() -> None:
    """A plan whose module cannot be built ends the command (internal error, acknowledged):
    its reservation is settled, not left holding the program's budget for the day."""
    from dspyops.aggregates.app import CommandContext, handle
    from dspyops.aggregates.app.budgets import InMemoryLedger
    from dspyops.events.commands import ExecuteProgram, RegisterProgram, SetBudget

    class Broken(ModuleCache):
        def get(self, plan: Any) -> Any:
            raise RuntimeError("the plugin is not installed on this worker")

    ledger = InMemoryLedger()
    app = DspyOps(in_memory_env(), ledger=ledger)
    ctx = CommandContext(command_id="c", correlation_id="c", actor=None)
    handle(
        app,
        RegisterProgram(program_id="q", name="q", signature="question: str -> answer: str"),
        ctx.model_copy(update={"command_id": "r"}),
    )
    handle(
        app, SetBudget(program_id="q", usd_per_day=1.0), ctx.model_copy(update={"command_id": "b"})
    )
    plan = handle(app, ExecuteProgram(program_id="q", inputs={"question": "?"}), ctx)
    assert isinstance(plan, ExecutionPlan)
    assert plan.budgeted
    profiles = ProfileRegistry({"default": LMProfile(name="default", model="openai/x")})
    jobs = ExecutionJobs(app, profiles, Broken(), redactor=Redactor())

    with pytest.raises(RuntimeError):
        await jobs.run(command_envelope("ExecuteProgram", {}), plan, ctx)

    assert ledger._rows[plan.execution_id].settled
