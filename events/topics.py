"""Topic names: one place, prefix configurable (default `dspyops.`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PREFIX = "dspyops."


@dataclass(frozen=True)
class Topics:
    prefix: str = DEFAULT_PREFIX

    @property
    def programs(self) -> str:
        return f"{self.prefix}commands.programs"

    @property
    def executions(self) -> str:
        return f"{self.prefix}commands.executions"

    @property
    def optimizations(self) -> str:
        return f"{self.prefix}commands.optimizations"

    @property
    def results(self) -> str:
        return f"{self.prefix}results"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}deadletter"

    @property
    def commands(self) -> tuple[str, str, str]:
        return (self.programs, self.executions, self.optimizations)

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.commands, self.results, self.events, self.deadletter)


def command_topic(topics: Topics, command_type: str, data: Mapping[str, Any] | None = None) -> str:
    """The topic a command of `command_type` with payload `data` belongs on (raises
    KeyError if unknown). Only a gate in `data` moves a command: a gated DeployProgram
    or SetTrafficSplit runs evaluations, so it goes where runs go."""
    from dspyops.events.commands import (
        COMMAND_TYPES,
        EXECUTION_COMMANDS,
        GATED_COMMANDS,
        OPTIMIZATION_COMMANDS,
    )

    cls = COMMAND_TYPES[command_type]
    if cls in EXECUTION_COMMANDS:
        return topics.executions
    if cls in OPTIMIZATION_COMMANDS:
        return topics.optimizations
    if cls in GATED_COMMANDS and isinstance(data, Mapping) and data.get("gate") is not None:
        return topics.optimizations
    return topics.programs
