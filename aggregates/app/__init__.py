"""The application service: commands in, events and one stored outcome per command out.

`DspyOps` (application.py) is the eventsourcing Application: conflict retries, stored
outcomes, loading aggregates. `handle` (handlers.py) applies any command through the one
command table. Long-running commands return a `Plan`; the worker does the work and
records its end through `executions`, `optimizations` and `evaluations`.
"""

from dspyops.aggregates.app.application import ConflictsExhausted, DspyOps
from dspyops.aggregates.app.checks import Checks
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.executions import Completion
from dspyops.aggregates.app.handlers import COMMAND_HANDLERS, finish_gate, handle, handle_many
from dspyops.aggregates.app.persistence import eventsourcing_env, in_memory_env
from dspyops.aggregates.app.plans import (
    EvaluationPlan,
    ExecutionPlan,
    GatePlan,
    OptimizationPlan,
    Plan,
)

__all__ = [
    "COMMAND_HANDLERS",
    "Checks",
    "CommandContext",
    "Completion",
    "ConflictsExhausted",
    "DspyOps",
    "EvaluationPlan",
    "ExecutionPlan",
    "GatePlan",
    "OptimizationPlan",
    "Outcome",
    "Plan",
    "eventsourcing_env",
    "finish_gate",
    "handle",
    "handle_many",
    "in_memory_env",
]
