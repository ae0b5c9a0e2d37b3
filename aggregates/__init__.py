"""Event-sourced aggregates and the application service that records their events."""

from dspyops.aggregates.application import ConflictsExhausted, DspyOps
from dspyops.aggregates.context import CommandContext, Outcome
from dspyops.aggregates.errors import (
    AlreadyExists,
    DomainError,
    IllegalTransition,
    InvalidInput,
    NotFound,
)
from dspyops.aggregates.handlers import COMMAND_HANDLERS
from dspyops.aggregates.plans import EvaluationPlan, ExecutionPlan, OptimizationPlan

__all__ = [
    "COMMAND_HANDLERS",
    "AlreadyExists",
    "CommandContext",
    "ConflictsExhausted",
    "DomainError",
    "DspyOps",
    "EvaluationPlan",
    "ExecutionPlan",
    "IllegalTransition",
    "InvalidInput",
    "NotFound",
    "OptimizationPlan",
    "Outcome",
]
