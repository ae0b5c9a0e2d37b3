"""Making a built program traced: its sub-modules, ReAct tools and LM.

`instrument` prepares a program once (the worker caches built programs): each of its
sub-modules, each ReAct tool and the LM get a traced subclass of their own class, whose
calls open and close a span (`runtime.trace`) while an execution is being recorded and
only read a context variable otherwise. A subclass, not a wrapper attribute, because
optimizers and BestOfN deep-copy modules, and a copy must trace itself, not call the
original. DSPy's own callbacks are not used: once any is set, DSPy binds arguments with
`inspect.getcallargs` and checks a runtime Protocol on every module, adapter and LM call,
which cost a third of a pipeline's time (`bench/bench_execute.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dspy

from dspyops.runtime.dspy_threads import propagate_context
from dspyops.runtime.trace import LABEL, TRACED, Frame, current


def instrument(program: dspy.Module, *, steps: Sequence[str] = ()) -> dspy.Module:
    """Make `program`'s sub-modules and ReAct tools traced, in place; once per program."""
    propagate_context()  # spans from DSPy's worker threads nest where they belong
    if _is_traced(program):
        return program
    step_names = set(steps)
    for path, module in program.named_sub_modules():
        name = path.removeprefix("self").lstrip(".") or "program"
        setattr(module, LABEL, (_kind(name, module, step_names), name))
        _trace(module, ("forward", "aforward"))
        tools = getattr(module, "tools", None)
        for tool in tools.values() if isinstance(tools, dict) else ():
            if isinstance(tool, dspy.Tool):
                _trace(tool, ("__call__", "acall"))
    return program


def instrument_lm(lm: dspy.BaseLM) -> dspy.BaseLM:
    """Make `lm`'s calls traced, in place (idempotent)."""
    if not _is_traced(lm):
        _trace(lm, ("__call__", "acall"))
    return lm


def _is_traced(instance: Any) -> bool:
    return type(instance) in TRACED.values()


def _trace(instance: Any, methods: tuple[str, ...]) -> None:
    base = type(instance)
    if base in TRACED.values():
        return
    traced = TRACED.get(base)
    if traced is None:
        namespace: dict[str, Any] = {
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
        }
        for name in methods:
            method = getattr(base, name, None)
            if method is not None:
                namespace[name] = _traced_method(method, is_async=name.startswith("a"))
        metaclass: Any = type(base)  # dspy.Module's ProgramMeta, pydantic's for dspy.Tool
        traced = TRACED[base] = metaclass(base.__name__, (base,), namespace)
    # object's own setattr: pydantic models (dspy.Tool) refuse `__class__` otherwise.
    object.__setattr__(instance, "__class__", traced)


def _traced_method(method: Callable[..., Any], *, is_async: bool) -> Callable[..., Any]:
    if is_async:

        async def traced_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            frame = current.get()
            if frame is None or (frame.span is not None and frame.span.owner == id(self)):
                return await method(self, *args, **kwargs)
            recorder = frame.recorder
            span = recorder.open_span(frame.span, self, args, kwargs)
            token = current.set(Frame(recorder, span))
            try:
                result = await method(self, *args, **kwargs)
            except BaseException as exc:
                recorder.close_span(span, None, exc)
                raise
            finally:
                current.reset(token)
            recorder.close_span(span, result, None)
            return result

        return traced_async

    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        frame = current.get()
        # The same object calling itself (an aforward that calls forward): one span.
        if frame is None or (frame.span is not None and frame.span.owner == id(self)):
            return method(self, *args, **kwargs)
        recorder = frame.recorder
        span = recorder.open_span(frame.span, self, args, kwargs)
        token = current.set(Frame(recorder, span))
        try:
            result = method(self, *args, **kwargs)
        except BaseException as exc:
            recorder.close_span(span, None, exc)
            raise
        finally:
            current.reset(token)
        recorder.close_span(span, result, None)
        return result

    return traced


def _kind(name: str, instance: dspy.Module, steps: set[str]) -> str:
    if name == "program":
        return "program"
    if type(instance).__name__ == "Retrieve":
        return "retrieval"
    if name in steps:
        return "step"
    return "predictor" if isinstance(instance, dspy.Predict) else "module"
