"""Built DSPy modules per program version: versions are immutable, so each is built once.

A pipeline whose steps search corpora is built per corpus version too: the key holds the
versions the execution was planned with.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import dspy

from dspyops.aggregates.app import ExecutionPlan
from dspyops.consumers.run_threads import shape_of
from dspyops.runtime.pipeline import Search
from dspyops.runtime.programs import build_program

Key = tuple[str, int, tuple[tuple[str, int], ...]]


class ModuleCache:
    def __init__(
        self, maxsize: int = 1024, search: Callable[[ExecutionPlan], Search] | None = None
    ) -> None:
        self._maxsize = maxsize
        # The corpus search a plan's program uses (its corpus versions bound).
        self._search = search
        self._modules: OrderedDict[Key, dspy.Module] = OrderedDict()

    def get(self, plan: ExecutionPlan) -> dspy.Module:
        key = (plan.program_id, plan.version, tuple(sorted(plan.corpora.items())))
        module = self._modules.get(key)
        if module is None:
            search = self._search(plan) if self._search is not None else None
            module = build_program(shape_of(plan), plan.state, search=search, corpora=plan.corpora)
            self._modules[key] = module
            if len(self._modules) > self._maxsize:
                self._modules.popitem(last=False)
        else:
            self._modules.move_to_end(key)
        return module
