"""RegisterProgram refuses what could never run: an LM profile the workers do not have, a
signature whose stored (canonical) form is over the limit."""

from __future__ import annotations

from dspyops.aggregates.app import Checks, CommandContext, DspyOps, handle, in_memory_env
from dspyops.events.commands import MAX_SIGNATURE_CHARS, RegisterProgram

PROFILES = Checks(lm_profiles=frozenset({"default", "offline", "fast"}))


def register(app: DspyOps, **fields: object) -> dict:
    command = RegisterProgram.model_validate(
        {"program_id": "p", "name": "P", "signature": "q: str -> a: str", **fields}
    )
    outcome = handle(app, command, CommandContext(command_id="c", correlation_id="c"))
    return {"type": outcome.result_type, **outcome.data}


def test_an_lm_profile_the_workers_do_not_have_is_refused_at_registration() -> None:
    outcome = register(DspyOps(in_memory_env(), checks=PROFILES), lm="nosuchprofile")
    assert outcome["type"] == "CommandRejected"
    (error,) = outcome["errors"]
    assert (error["loc"], error["type"]) == (["lm"], "unknown_lm_profile")
    assert "default, fast, offline" in error["msg"]


def test_a_known_profile_registers() -> None:
    outcome = register(DspyOps(in_memory_env(), checks=PROFILES), lm="fast")
    assert (outcome["type"], outcome["lm"]) == ("ProgramRegistered", "fast")


def test_a_signature_whose_canonical_form_is_too_long_is_refused() -> None:
    # The drill's case: 8,411 characters sent, 10,310 once canonical ("1, 2" with spaces).
    # The stored text is what every execution parses, so it is what must fit.
    values = ",".join(str(i) for i in range(1_900))
    signature = f"q: str -> a: Literal[{values}]"
    assert len(signature) == 8_411 <= MAX_SIGNATURE_CHARS
    outcome = register(DspyOps(in_memory_env()), signature=signature)
    assert outcome["type"] == "CommandRejected"
    (error,) = outcome["errors"]
    assert (error["loc"], error["type"]) == (["signature"], "too_long")
    assert "canonical form" in error["msg"]
