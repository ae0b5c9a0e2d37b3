"""What the domain cannot check by itself, injected by the composition root.

The optimizers, scoring functions and LM profiles live in the runtime, which the domain
does not import; the worker hands their checks in (`dspyops.bootstrap`), so a bad
optimizer config, an unknown metric or an LM profile the workers do not have is
rejected when the command is handled, before any LM call. Unit tests run with the
defaults: every name is accepted.
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
# Tool names a ReAct step uses -> the unknown ones (loc: their index).
ToolCheck = Callable[[list[str]], list[ErrorDict]]
# (plugin name, options) -> (what the version records about it, problems).
PluginCheck = Callable[[str, dict[str, Any]], tuple[dict[str, Any] | None, list[ErrorDict]]]
# (command id, producer source, actor) -> why the command may not be applied now (a rate
# limit's refusal, with its retry-after); asked for each command from a producer (one
# with a `source`) not handled before, never for the worker's own.
Admission = Callable[[str, str | None, str | None], list[ErrorDict]]


def no_optimizer_errors(optimizer: str, metric: str, config: dict[str, Any]) -> list[ErrorDict]:
    return []


def no_metric_errors(metric: str) -> list[ErrorDict]:
    return []


def no_tool_errors(tools: list[str]) -> list[ErrorDict]:
    return []


def no_plugins(name: str, options: dict[str, Any]) -> tuple[dict[str, Any] | None, list[ErrorDict]]:
    msg = f"no plugin module {name!r} is installed (no worker's registry was given)"
    return None, [{"loc": ["module"], "msg": msg, "type": "unknown_plugin"}]


@dataclass(frozen=True)
class Checks:
    optimization: OptimizerCheck = field(default=no_optimizer_errors)
    metric: MetricCheck = field(default=no_metric_errors)
    tools: ToolCheck = field(default=no_tool_errors)
    plugin: PluginCheck = field(default=no_plugins)
    # The workers' rate limit per producer (DSPYOPS_COMMAND_RATE_LIMIT); None: no limit,
    # and no read on the command path to honour one.
    admission: Admission | None = None
    # The LM profile names the workers have; None accepts any (no worker to ask).
    lm_profiles: frozenset[str] | None = None

    def lm_profile_errors(self, name: str) -> list[ErrorDict]:
        if self.lm_profiles is None or name in self.lm_profiles:
            return []
        known = ", ".join(sorted(self.lm_profiles))
        return [
            {
                "loc": ["lm"],
                "msg": f"unknown LM profile {name!r}; the workers have: {known}",
                "type": "unknown_lm_profile",
            }
        ]
