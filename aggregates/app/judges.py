"""Judge programs as metrics: ``metric: "judge:<program_id>[@alias]"``.

Any registered program whose outputs include a numeric ``score`` with a declared range
(``score: float[0, 1]``, ``score: int[1, 5]``) can score another program's predictions.
The judge is checked when the run is planned, and its version is resolved then (the
alias's version; without an alias the deployed one, else the latest) and recorded on the
run (``JudgeRef``): a run that resumes uses the same judge version.

How a judge's inputs are filled, per judge input name (``bind_inputs``):

1. a name of the judged program's outputs: the prediction's value;
2. a name of the judged program's inputs: the example's value;
3. ``reference`` or ``gold``, when the judged program has exactly one output, or
   ``reference_<output>`` / ``gold_<output>`` for any output: the example's label of
   that output.

A judge input bound by none of these is refused (loc ``metric``), as is a judge whose
``score`` is missing, not a number, or without a range. The score is normalised to 0..1
from its declared range; an output ``rationale`` (a ``str``), if the judge has one, is
the feedback GEPA reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.plans import JudgePlan, plan_fields
from dspyops.aggregates.errors import DomainError, ErrorDict
from dspyops.aggregates.program import DEPRECATED, Program
from dspyops.signatures import CompiledSignature
from dspyops.signatures.spec import FieldSpec, ScalarType

PREFIX = "judge:"
SCORE = "score"
RATIONALE = "rationale"
# Input names bound to the judged program's one labelled output.
REFERENCE_NAMES = ("reference", "gold")
# Binding sources: where a judge input's value comes from.
OUTPUT, INPUT, LABEL = "output", "input", "label"


@dataclass(frozen=True)
class JudgeName:
    program_id: str
    alias: str | None


def judge_name(metric: str) -> JudgeName | None:
    """``"judge:grader@production"`` -> JudgeName("grader", "production"); None for
    any other metric."""
    if not isinstance(metric, str) or not metric.startswith(PREFIX):
        return None
    program_id, _, alias = metric[len(PREFIX) :].strip().partition("@")
    return JudgeName(program_id.strip(), alias.strip() or None)


def _problem(msg: str, type_: str) -> ErrorDict:
    return {"loc": ["metric"], "msg": msg, "type": type_}


def bind_inputs(
    judge: CompiledSignature, judged: CompiledSignature
) -> tuple[dict[str, list[str]], list[ErrorDict]]:
    """Each judge input's source, ``{name: [OUTPUT|INPUT|LABEL, field]}``, and the
    inputs that cannot be bound (module docstring: the rules, in order)."""
    outputs, inputs = judged.output_names, judged.input_names
    bindings: dict[str, list[str]] = {}
    unbound: list[str] = []
    for name in judge.input_names:
        if name in outputs:
            bindings[name] = [OUTPUT, name]
        elif name in inputs:
            bindings[name] = [INPUT, name]
        elif name in REFERENCE_NAMES and len(outputs) == 1:
            bindings[name] = [LABEL, outputs[0]]
        elif (labelled := _labelled(name, outputs)) is not None:
            bindings[name] = [LABEL, labelled]
        else:
            unbound.append(name)
    if not unbound:
        return bindings, []
    msg = (
        f"the judge's inputs {', '.join(unbound)} cannot be filled: a judge input is named "
        f"like an output ({', '.join(outputs)}) or an input ({', '.join(inputs) or 'none'}) "
        "of the judged program, or is reference/gold (one output) or reference_<output>"
    )
    return {}, [_problem(msg, "judge_input_unbound")]


def _labelled(name: str, outputs: tuple[str, ...]) -> str | None:
    for prefix in REFERENCE_NAMES:
        field = name.removeprefix(f"{prefix}_")
        if field != name and field in outputs:
            return field
    return None


def score_range(judge: CompiledSignature) -> tuple[tuple[float, float] | None, list[ErrorDict]]:
    """The declared range of the judge's ``score`` output, or why it has none usable."""
    field = _output(judge, SCORE)
    if field is None:
        return None, [_problem("the judge has no output named score", "judge_no_score")]
    numeric = isinstance(field.type, ScalarType) and field.type.name in ("int", "float")
    if not numeric:
        return None, [_problem("the judge's score must be an int or a float", "judge_score_type")]
    bound = field.constraint
    if bound is None or bound.kind != "range" or not bound.high > bound.low:
        msg = "the judge's score needs a declared range, e.g. score: float[0, 1]"
        return None, [_problem(msg, "judge_score_unbounded")]
    return (float(bound.low), float(bound.high)), []


def _output(compiled: CompiledSignature, name: str) -> FieldSpec | None:
    return next((f for f in compiled.parsed.outputs if f.name == name), None)


def _rationale(judge: CompiledSignature) -> str | None:
    field = _output(judge, RATIONALE)
    return RATIONALE if field is not None and field.type == ScalarType("str") else None


def resolve_judge(
    app: DspyOps, metric: str, judged: CompiledSignature
) -> tuple[dict[str, Any] | None, list[ErrorDict]]:
    """For a ``judge:`` metric: the judge version to pin on the run (``{"program_id",
    "version", "alias"}``), or its problems; (None, []) for any other metric."""
    name = judge_name(metric)
    if name is None:
        return None, []
    if not name.program_id:
        return None, [_problem("name the judge program: judge:<program_id>[@alias]", "missing")]
    try:
        program = app.program(name.program_id, copy=False)
        version = program.serving_version(alias=name.alias)
    except DomainError as exc:
        return None, [_problem(str(exc), "unknown_judge")]
    if program.status == DEPRECATED:
        msg = f"judge program {name.program_id!r} is deprecated"
        return None, [_problem(msg, "judge_deprecated")]
    compiled = app.compiled(program, version)
    _, range_errors = score_range(compiled)
    _, binding_errors = bind_inputs(compiled, judged)
    errors = range_errors + binding_errors
    if errors:
        return None, errors
    return {"program_id": program.program_id, "version": version["number"], "alias": name.alias}, []


def online_judge(
    app: DspyOps, judge: str, judged: CompiledSignature
) -> tuple[JudgeName, list[ErrorDict]]:
    """SetOnlineEvaluation's `judge` ("<program_id>[@alias]") checked as a metric's is,
    and more: production executions have no labels, so every judge input must be
    filled from the execution's inputs or outputs. Problems have loc ``judge``."""
    name = judge_name(f"{PREFIX}{judge}")
    assert name is not None
    _, errors = resolve_judge(app, f"{PREFIX}{judge}", judged)
    if not errors:
        program = app.program(name.program_id, copy=False)
        compiled = app.compiled(program, program.serving_version(alias=name.alias))
        bindings, _ = bind_inputs(compiled, judged)
        labelled = sorted(n for n, (source, _) in bindings.items() if source == LABEL)
        if labelled:
            msg = (
                f"the judge's inputs {', '.join(labelled)} need a labelled example; an "
                "execution has only its inputs and outputs"
            )
            errors = [_problem(msg, "judge_input_unbound")]
    return name, [{**e, "loc": ["judge"]} for e in errors]


def online_judge_plan(
    app: DspyOps, online: dict[str, Any], judged: CompiledSignature
) -> JudgePlan | None:
    """The judge of an execution picked for online evaluation, at the version its alias
    (or deployment) names now; None when it can no longer judge (deprecated, alias
    removed, a new version whose inputs or score no longer fit)."""
    ref, errors = resolve_judge(
        app,
        f"{PREFIX}{online['judge']}" + (f"@{online['alias']}" if online.get("alias") else ""),
        judged,
    )
    if errors or ref is None:
        return None
    plan = judge_plan(app, ref, judged)
    if any(source == LABEL for source, _ in plan.bindings.values()):
        return None
    return plan


def execution_judge(
    app: DspyOps, program: Program, execution_id: str, judged: CompiledSignature
) -> JudgePlan | None:
    """The judge when the program's online evaluation picks this execution."""
    online = program.online_evaluation
    if online is None or not sampled(execution_id, online["sample_percent"]):
        return None
    return online_judge_plan(app, online, judged)


def sampled(execution_id: str, percent: float) -> bool:
    """Whether online evaluation judges this execution: the same answer for the same id
    on every worker (sha256 of the id, in 10,000 buckets)."""
    bucket = int.from_bytes(hashlib.sha256(execution_id.encode()).digest()[:8], "big") % 10_000
    return bucket < round(percent * 100)


def metric_problems(
    app: DspyOps, metric: str, judged: CompiledSignature
) -> tuple[dict[str, Any] | None, list[ErrorDict]]:
    """A run's metric checked: a judge resolved (`resolve_judge`), any other name by the
    worker's check; the judge to pin on the run, if any, and every problem."""
    if judge_name(metric) is not None:
        return resolve_judge(app, metric, judged)
    return None, app.checks.metric(metric)


def judge_plan(app: DspyOps, ref: dict[str, Any], judged: CompiledSignature) -> JudgePlan:
    """What the worker needs to call the judge pinned on a run (`resolve_judge`)."""
    program: Program = app.program(ref["program_id"], copy=False)
    version = program.get_version(ref["version"])
    compiled = app.compiled(program, version)
    # Both were checked when the run was planned, and a version never changes.
    bindings, _ = bind_inputs(compiled, judged)
    bounds, _ = score_range(compiled)
    assert bounds is not None
    return JudgePlan(
        **plan_fields(program, version),
        alias=ref.get("alias"),
        bindings=bindings,
        score_low=bounds[0],
        score_high=bounds[1],
        rationale=_rationale(compiled),
    )
