"""What is recorded of one program call: its Completion, its LM spans priced, its cost,
and the worker's metrics for it (executions, and a judge's calls, are recorded alike)."""

from __future__ import annotations

from typing import Any

from dspyops import metrics
from dspyops.aggregates.app import CommandContext, Completion, ExecutionPlan
from dspyops.events.results import ErrorInfo, Usage
from dspyops.runtime.executor import ExecutionOutcome
from dspyops.runtime.pricing import cost_usd, profile_prices
from dspyops.runtime.profiles import LMProfile, ProfileRegistry


def completion_of(
    plan: ExecutionPlan,
    ctx: CommandContext,
    outcome: ExecutionOutcome,
    profile: LMProfile,
    profiles: ProfileRegistry,
) -> Completion:
    """What `complete_executions` records of one program call on `profile`: its LM
    spans priced, its cost, counted in the worker's metrics."""
    lms = lm_spans(outcome.trace)
    price_lm_spans(lms, profile_prices(profiles, plan.lm))
    cost = execution_cost(profile, outcome)
    _count(plan.program_id, outcome, cost, lms)
    failure = None
    if not outcome.ok:
        failure = ErrorInfo(
            code=outcome.error_code or "internal_error", message=outcome.error_message or ""
        )
    return Completion(
        plan=plan,
        ctx=ctx,
        outputs=outcome.outputs if outcome.ok else None,
        error=failure,
        latency_ms=outcome.latency_ms,
        usage=Usage(**outcome.usage.model_dump()),
        model=outcome.model,
        offline=profile.offline,
        trace=outcome.trace,
        steps=outcome.steps,
        failed_step=outcome.failed_step,
        cost_usd=cost,
    )


def _count(
    program_id: str, outcome: ExecutionOutcome, cost: float | None, lms: list[dict[str, Any]]
) -> None:
    """The execution in the worker's metrics (an output that fails the signature check
    afterwards still counts as the program's run it was)."""
    metrics.EXECUTIONS.labels(program_id, "succeeded" if outcome.ok else "failed").inc()
    metrics.EXECUTION_SECONDS.labels(program_id).observe(outcome.latency_ms / 1000)
    metrics.LM_TOKENS.labels(program_id, "prompt").inc(outcome.usage.prompt_tokens)
    metrics.LM_TOKENS.labels(program_id, "completion").inc(outcome.usage.completion_tokens)
    if cost is None:
        metrics.UNPRICED.labels(program_id).inc()
    else:
        metrics.COST.labels(program_id).inc(cost)
    for span in lms:
        if span.get("latency_ms") is not None:
            model = str(span.get("model") or span.get("name"))
            metrics.LM_CALL_SECONDS.labels(model).observe(span["latency_ms"] / 1000)


def lm_spans(span: dict[str, Any] | None) -> list[dict[str, Any]]:
    if span is None:
        return []
    found = [span] if span.get("kind") == "lm" else []
    for child in span.get("children", []):
        found += lm_spans(child)
    return found


def execution_cost(profile: LMProfile, outcome: ExecutionOutcome) -> float | None:
    """What an execution cost: nothing without an LM call; unknown (None) when its LM
    calls came without token counts or the model has no known price."""
    if outcome.lm_calls == 0:
        return 0.0
    if not outcome.usage_reported:
        return None
    return cost_usd(profile, outcome.usage.prompt_tokens, outcome.usage.completion_tokens)


def price_lm_spans(lms: list[dict[str, Any]], prices: tuple[float, float] | None) -> None:
    """Each LM span (`lm_spans` of a trace) gets its `cost_usd` (None: the price or its
    tokens unknown)."""
    for span in lms:
        usage = span.get("usage") or {}
        known = prices is not None and "prompt_tokens" in usage and "completion_tokens" in usage
        span["cost_usd"] = (
            usage["prompt_tokens"] * prices[0] + usage["completion_tokens"] * prices[1]
            if known and prices is not None
            else None
        )
