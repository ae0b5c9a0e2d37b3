"""Recording one finished execution in tests, the way the worker records a batch of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dspyops.aggregates.app import CommandContext, Completion, DspyOps, ExecutionPlan, Outcome
from dspyops.aggregates.app.executions import complete_executions
from dspyops.events.results import ErrorInfo, Usage


def complete(
    app: DspyOps,
    plan: Any,
    ctx: CommandContext,
    *,
    outputs: dict[str, Any] | None = None,
    error: ErrorInfo | None = None,
    latency_ms: float = 1.0,
    usage: Mapping[str, int] | None = None,
    model: str = "",
    offline: bool = False,
    cost_usd: float | None = None,
    trace: dict[str, Any] | None = None,
) -> Outcome:
    """The outcome of recording `plan`'s execution with these outputs or this error."""
    assert isinstance(plan, ExecutionPlan), plan
    completion = Completion(
        plan=plan,
        ctx=ctx,
        outputs=outputs,
        error=error,
        latency_ms=latency_ms,
        usage=Usage(**dict(usage or {})),
        model=model,
        offline=offline,
        cost_usd=cost_usd,
        trace=trace,
    )
    (outcome,) = complete_executions(app, [completion])
    return outcome
