"""Failed LM calls are told apart from wrong answers, and no version comes from a run with them.

The LM is scripted per question: ``_failing`` raises an lm15 error (DSPy turns it into its
own ``LM*Error``, as it does for an HTTP provider) for the questions it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import dspy
import pytest
from dspy import lm15
from dspy.lm15 import Request

from dspyops.runtime.evaluate import score_program, to_examples
from dspyops.runtime.failures import Failed, Tally
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.modules import build_module
from dspyops.runtime.optimize import ProgramSpec, run_evaluation, run_optimization
from dspyops.runtime.redaction import Redactor
from dspyops.runtime.run_state import EXAMPLES_ERRORED, LM_CALLS_FAILED, RunFailed, RunState
from dspyops.runtime.scoring import build_metric
from dspyops.signatures import compile_signature
from dspyops.signatures.dspy_signature import dspy_signature
from tests.support.openai_server import chat_reply
from tests.support.optimization import ANSWERS, EXAMPLES, few_shot_reply, prompt_text
from tests.support.scripted_lm import ScriptedLM

ERRORS = LMErrors("test", Redactor())

COMPILED = compile_signature("question: str -> answer: str")
SIGNATURE = dspy_signature(COMPILED)
SPEC = ProgramSpec(SIGNATURE, "Predict", None, COMPILED.input_names, COMPILED.output_names)
TRAIN, DEV = EXAMPLES[:12], EXAMPLES[12:]
METRIC = build_metric("exact_match", {}, ["answer"])
_QUESTION = re.compile(r"\[\[ ## question ## \]\]\n(.*?)\n")


def _question(request: Request) -> str:
    return str(_QUESTION.findall(prompt_text(request))[-1])


def _right(request: Request) -> str:
    return chat_reply(answer=ANSWERS[_question(request)])


def _failing(errors: dict[str, Exception], reply: Callable[[Request], str] = _right) -> ScriptedLM:
    """Raises ``errors[question]`` for those questions, else answers with ``reply``."""

    def answer(request: Request) -> str:
        error = errors.get(_question(request))
        if error is not None:
            raise error
        return reply(request)

    return ScriptedLM(answer)


def _questions(rows: list[dict[str, Any]], *indices: int) -> list[str]:
    return [rows[i]["question"] for i in indices]


def _score(lm: dspy.BaseLM, *, num_threads: int = 1, metric: Any = METRIC) -> Any:
    with dspy.context(lm=lm):
        program = build_module("Predict", SIGNATURE)
        return score_program(
            program, to_examples(DEV, ["question"]), metric, num_threads=num_threads
        )


def _direct_score(lm: dspy.BaseLM) -> float:
    evaluate = dspy.Evaluate(devset=to_examples(DEV, ["question"]), metric=METRIC)
    with dspy.context(lm=lm):
        return float(evaluate(build_module("Predict", SIGNATURE)).score) / 100


# --- scoring: errored examples --------------------------------------------------------


@pytest.mark.parametrize("num_threads", [1, 4])
def test_an_example_whose_lm_call_failed_is_errored_with_its_code(num_threads: int) -> None:
    errors: dict[str, Exception] = {
        q: lm15.ServerError("bad gateway") for q in _questions(DEV, 1, 4)
    }
    errors[DEV[5]["question"]] = lm15.RateLimitError("slow down")
    lm = _failing(errors)

    scored = _score(lm, num_threads=num_threads)

    marked = {e["index"]: e.get("error") for e in scored.per_example}
    assert marked == {0: None, 1: "lm_error", 2: None, 3: None, 4: "lm_error", 5: "lm_rate_limited"}
    assert scored.errored == 3
    assert scored.errors.codes() == {"lm_error": 2, "lm_rate_limited": 1}
    assert all(
        e["score"] == 0.0 and e["outputs"] is None for e in scored.per_example if "error" in e
    )
    # Errored examples count 0, as in DSPy: the score is dspy.Evaluate's.
    assert scored.score == _direct_score(lm) == round(3 / 6, 4)


def test_a_healthy_run_has_no_errored_example_and_dspy_evaluates_score() -> None:
    lm = ScriptedLM(few_shot_reply)  # "I do not know" without demos: scored 0, no error

    scored = _score(lm)

    assert scored.errored == 0
    assert not [e for e in scored.per_example if "error" in e]
    assert scored.score == _direct_score(lm) == 0.0
    assert scored.per_example[0]["outputs"] == {"answer": "I do not know"}


def test_an_answer_that_does_not_parse_is_a_wrong_answer_not_an_error() -> None:
    def reply(request: Request) -> str:
        return "no sections at all" if _question(request) == DEV[0]["question"] else _right(request)

    scored = _score(ScriptedLM(reply))

    assert scored.errored == 0
    assert scored.per_example[0]["score"] == 0.0
    assert scored.score == round(5 / 6, 4)


def test_a_metric_that_raises_leaves_its_example_errored() -> None:
    def metric(gold: Any, pred: Any, trace: Any = None) -> float:
        if gold["question"] == DEV[2]["question"]:
            raise ValueError("cannot score this one")
        return METRIC(gold, pred, trace)

    scored = _score(ScriptedLM(_right), metric=metric)

    assert [(e["index"], e["error"]) for e in scored.per_example if "error" in e] == [
        (2, "internal_error")
    ]
    assert scored.score == round(5 / 6, 4)


def test_tally_names_the_most_frequent_code_and_the_first_exception_of_each() -> None:
    tally = Tally()
    for failed in [
        Failed("lm_timeout", "LMTimeoutError"),
        None,
        Failed("lm_error", "LMServerError"),
        Failed("lm_error", "LMAuthError"),
    ]:
        tally.add(failed)
    assert (tally.calls, tally.failed, tally.all_failed) == (4, 3, False)
    assert tally.most_common() == "lm_error"
    expected = "3 of 4 examples failed: 2 lm_error (LMServerError), 1 lm_timeout (LMTimeoutError)"
    assert tally.summary("examples") == expected


# --- evaluations -----------------------------------------------------------------------


def _evaluate(lm: dspy.BaseLM) -> Any:
    return run_evaluation(
        SPEC, metric_name="exact_match", devset=DEV, lm=lm, state=RunState(60), errors=ERRORS
    )


def test_an_evaluation_whose_every_call_failed_fails_with_the_most_frequent_code() -> None:
    errors: dict[str, Exception] = {q["question"]: lm15.RateLimitError("slow") for q in DEV}
    errors[DEV[0]["question"]] = lm15.ServerError("bad gateway")

    with pytest.raises(RunFailed) as failed:
        _evaluate(_failing(errors))

    assert failed.value.code == "lm_rate_limited"
    assert failed.value.message == (
        "6 of 6 examples failed: 5 lm_rate_limited (LMRateLimitError), 1 lm_error"
        " (LMServerError); none could be scored"
    )


def test_an_evaluation_with_some_errored_examples_completes_and_counts_them() -> None:
    errors: dict[str, Exception] = {DEV[3]["question"]: lm15.TimeoutError("slow")}

    scored = _evaluate(_failing(errors))

    assert scored.errored == 1
    assert scored.per_example[3]["error"] == "lm_timeout"
    assert scored.score == round(5 / 6, 4)


# --- optimizations ---------------------------------------------------------------------


def _optimize(optimizer: str, config: dict[str, Any], lm: ScriptedLM) -> Any:
    return run_optimization(
        SPEC,
        optimizer=optimizer,
        metric_name="exact_match",
        config=config,
        trainset=TRAIN,
        devset=DEV,
        lm=lm,
        state=RunState(60),
        errors=ERRORS,
    )


def test_errored_baseline_examples_fail_the_run_before_it_compiles() -> None:
    lm = _failing({DEV[1]["question"]: lm15.ServerError("bad gateway")})

    with pytest.raises(RunFailed) as failed:
        _optimize("BootstrapFewShot", {}, lm)

    assert failed.value.code == EXAMPLES_ERRORED
    assert failed.value.message.startswith(
        "scoring the baseline: 1 of 6 examples failed: 1 lm_error (LMServerError)"
    )
    assert len(lm.engine_state.requests) == len(DEV)  # nothing compiled


@pytest.mark.parametrize(
    ("failing", "code", "calls"),
    [(TRAIN[:1], LM_CALLS_FAILED, "1 of 2 LM calls"), (TRAIN, "lm_error", "12 of 12 LM calls")],
)
def test_failed_lm_calls_while_compiling_fail_the_run(
    failing: list[dict[str, Any]], code: str, calls: str
) -> None:
    # Dev questions are answered: only the bootstrapping of training examples fails.
    lm = _failing({row["question"]: lm15.ServerError("bad gateway") for row in failing})
    config = {"max_bootstrapped_demos": 1, "max_labeled_demos": 0, "max_errors": 100}

    with pytest.raises(RunFailed) as failed:
        _optimize("BootstrapFewShot", config, lm)

    assert failed.value.code == code
    assert failed.value.message.startswith(f"compiling with BootstrapFewShot: {calls} failed")


@pytest.mark.parametrize(("failing", "code"), [(DEV[:2], EXAMPLES_ERRORED), (DEV, "lm_error")])
def test_errored_examples_of_the_optimized_program_fail_the_run(
    failing: list[dict[str, Any]], code: str
) -> None:
    questions = {row["question"] for row in failing}

    def answer(request: Request) -> str:
        demos_shown = len(_QUESTION.findall(prompt_text(request))) > 1
        if demos_shown and _question(request) in questions:
            raise lm15.ServerError("bad gateway")
        return _right(request)

    with pytest.raises(RunFailed) as failed:
        _optimize("LabeledFewShot", {"k": 2}, ScriptedLM(answer))

    assert failed.value.code == code
    n = len(failing)
    assert failed.value.message.startswith(
        f"scoring the optimized program: {n} of 6 examples failed: {n} lm_error"
    )
