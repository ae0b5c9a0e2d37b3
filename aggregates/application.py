"""DspyOps: the application service that turns commands into stored events.

It is composed of the core (`service.Service`: conflict retries, stored outcomes,
loading), the execution flow and the optimization/evaluation flow; the plain program and
dataset commands go through `handle` and the handler table in `handlers`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dspyops.aggregates.context import CommandContext, Outcome
from dspyops.aggregates.execution_service import ExecutionService
from dspyops.aggregates.handlers import COMMAND_HANDLERS
from dspyops.aggregates.outcomes import subject_of
from dspyops.aggregates.plans import EvaluationPlan, ExecutionPlan, OptimizationPlan
from dspyops.aggregates.program import Program
from dspyops.aggregates.run_service import RunService
from dspyops.aggregates.service import ConflictsExhausted, no_config_errors
from dspyops.events.commands import Command


class DspyOps(ExecutionService, RunService):
    # Programs live long and collect many events; executions and runs stay short.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Program: 50}

    def handle(self, command: Command, ctx: CommandContext) -> Outcome:
        """Apply `command` once: run its handler, or return the outcome stored before."""
        handler = COMMAND_HANDLERS.get(type(command))
        if handler is None:
            raise TypeError(
                f"{type(command).__name__} has no handler: executions, optimizations and "
                "evaluations go through plan_execution, plan_optimization and plan_evaluation"
            )
        if not ctx.command_type:
            ctx = ctx.model_copy(update={"command_type": type(command).__name__})
        return self.attempt(ctx, lambda _: handler(self, command, ctx), subject_of(command, ctx))


# Re-exported: callers import the whole service surface from here.
__all__ = [
    "CommandContext",
    "ConflictsExhausted",
    "DspyOps",
    "EvaluationPlan",
    "ExecutionPlan",
    "OptimizationPlan",
    "Outcome",
    "no_config_errors",
]
