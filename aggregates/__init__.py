"""Event-sourced aggregates and the application service that records their events."""

from aggregates.application import ConflictsExhausted, DspyOps
from aggregates.context import CommandContext, Outcome
from aggregates.errors import AlreadyExists, DomainError, IllegalTransition, InvalidInput, NotFound
from aggregates.handlers import COMMAND_HANDLERS
from aggregates.plans import EvaluationPlan, ExecutionPlan, OptimizationPlan

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
