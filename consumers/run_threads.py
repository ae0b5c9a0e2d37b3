"""What optimization and evaluation jobs share: a DSPy run in a pool thread.

The run gets plain values (`program_spec`), never aggregates; a worker that stops while
a run's thread works tells it to stop (`abandon`) and leaves the command unacknowledged,
to be redelivered and started again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dspyops.aggregates.app import EvaluationPlan, OptimizationPlan
from dspyops.runtime.optimize import ProgramSpec
from dspyops.runtime.run_state import RunState
from dspyops.signatures.dspy_signature import dspy_signature

SHUTDOWN = "worker_shutdown"


def abandon(future: asyncio.Future[Any], state: RunState) -> None:
    """The worker is stopping: end the run's thread soon, leave the command unacknowledged.

    Pool threads are joined when the interpreter exits, so a run left going would hold a
    shutdown up to its time limit; stopped, it is redelivered and started again.
    """
    state.stop(SHUTDOWN)
    future.add_done_callback(lambda f: f.cancelled() or f.exception())


def program_spec(plan: OptimizationPlan | EvaluationPlan) -> ProgramSpec:
    compiled = plan.compiled()
    return ProgramSpec(
        signature=dspy_signature(compiled),
        module=plan.module,
        state=plan.state,
        input_names=list(compiled.input_names),
        output_names=list(compiled.output_names),
    )
