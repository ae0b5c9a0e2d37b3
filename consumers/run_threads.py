"""What optimization and evaluation jobs share: a DSPy run in a pool thread.

The run gets plain values (`program_spec`), never aggregates; a worker that stops while
a run's thread works tells it to stop (`abandon`) and leaves the command unacknowledged,
to be redelivered and started again.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

from dspyops.aggregates.app import EvaluationPlan, OptimizationPlan, Plan
from dspyops.runtime.optimize import ProgramSpec
from dspyops.runtime.pipeline import Search
from dspyops.runtime.programs import ProgramShape, build_program
from dspyops.runtime.run_state import RunState
from dspyops.signatures.dspy_signature import dspy_signature

SHUTDOWN = "worker_shutdown"
T = TypeVar("T")


def in_run_thread(pool: Executor, work: Callable[[], T]) -> asyncio.Future[T]:
    """`work` in a pool thread, in a copy of the caller's context: the thread's log lines
    (DSPy's, LiteLLM's) name the command, as the worker's own lines do."""
    context = contextvars.copy_context()
    return asyncio.get_running_loop().run_in_executor(pool, context.run, work)


def abandon(future: asyncio.Future[Any], state: RunState) -> None:
    """The worker is stopping: end the run's thread soon, leave the command unacknowledged.

    Pool threads are joined when the interpreter exits, so a run left going would hold a
    shutdown up to its time limit; stopped, it is redelivered and started again.
    """
    state.stop(SHUTDOWN)
    future.add_done_callback(lambda f: f.cancelled() or f.exception())


def program_spec(
    plan: OptimizationPlan | EvaluationPlan, search: Search | None = None
) -> ProgramSpec:
    compiled = plan.compiled()
    shape = shape_of(plan)
    return ProgramSpec(
        signature=dspy_signature(compiled),
        module=plan.module,
        state=plan.state,
        input_names=list(compiled.input_names),
        output_names=list(compiled.output_names),
        build=partial(_build, shape, search),
        steps=[step["name"] for step in plan.steps or []],
    )


def shape_of(plan: Plan) -> ProgramShape:
    """What the plan says about the program's module, for `runtime.programs`."""
    return ProgramShape(
        module=plan.module,
        compiled=plan.compiled(),
        steps=plan.steps,
        outputs=plan.outputs,
        options=plan.options,
    )


def _build(shape: ProgramShape, search: Search | None, state: dict[str, Any] | None) -> Any:
    return build_program(shape, state, search=search)
