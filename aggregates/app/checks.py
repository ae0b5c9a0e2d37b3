"""What the domain cannot check by itself, injected by the composition root.

The optimizers, scoring functions and LM profiles live in the runtime, which the domain
does not import; the worker hands their checks in (`dspyops.bootstrap`), so a bad
optimizer config or an unknown metric is rejected when the command is planned, before
any LM call. Unit tests run with the defaults: every name is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dspyops.aggregates.errors import ErrorDict

# (optimizer, metric, config) -> every problem with them.
OptimizerCheck = Callable[[str, str, dict[str, Any]], list[ErrorDict]]
# A metric name with its `:field` suffix (evaluations carry no config) -> its problems.
MetricCheck = Callable[[str], list[ErrorDict]]


def no_optimizer_errors(optimizer: str, metric: str, config: dict[str, Any]) -> list[ErrorDict]:
    return []


def no_metric_errors(metric: str) -> list[ErrorDict]:
    return []


@dataclass(frozen=True)
class Checks:
    optimization: OptimizerCheck = field(default=no_optimizer_errors)
    metric: MetricCheck = field(default=no_metric_errors)
