"""Built DSPy modules per program version: versions are immutable, so each is built once."""

from __future__ import annotations

from collections import OrderedDict

import dspy

from dspyops.aggregates.app import ExecutionPlan
from dspyops.runtime.modules import build_module
from dspyops.signatures.dspy_signature import dspy_signature


class ModuleCache:
    def __init__(self, maxsize: int = 1024) -> None:
        self._maxsize = maxsize
        self._modules: OrderedDict[tuple[str, int], dspy.Module] = OrderedDict()

    def get(self, plan: ExecutionPlan) -> dspy.Module:
        key = (plan.program_id, plan.version)
        module = self._modules.get(key)
        if module is None:
            module = build_module(plan.module, dspy_signature(plan.compiled()), plan.state)
            self._modules[key] = module
            if len(self._modules) > self._maxsize:
                self._modules.popitem(last=False)
        else:
            self._modules.move_to_end(key)
        return module
