"""`dspyops demo`: the seed's scenarios end to end, on a running stack or one it starts."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, NoReturn

import typer

from dspyops.cli.console import EXIT_TIMEOUT, EXIT_UNAVAILABLE, fail, out, print_json
from dspyops.cli.demo_canary import CanaryDemo, CanaryStats
from dspyops.cli.demo_loop import LoopDemo, LoopRun
from dspyops.cli.demo_rag import RagDemo, RagRun, RagTrace
from dspyops.cli.demo_steps import Demo, DemoRun, ReadSide
from dspyops.cli.dev_commands import run_dir
from dspyops.cli.read_api import ReadApi, ReadApiError
from dspyops.cli.readiness import api_health, worker_answers
from dspyops.cli.services import LocalServices
from dspyops.cli.startup import StartupError, bring_up, interrupt_on_signals, uninterrupted
from dspyops.client import CommandError, CommandTimeoutError
from dspyops.settings import Settings, get_settings

# How long a running worker gets to answer before the demo decides none is running.
WORKER_PROBE_S = 8.0


def demo(
    lm: Annotated[
        str, typer.Option(help="LM profile the program uses (server-side, DSPYOPS_LM_PROFILES).")
    ] = "default",
    json_out: Annotated[
        bool, typer.Option("--json", help="Also print what the API served, as JSON.")
    ] = False,
) -> None:
    """Register, execute, optimize, deploy and execute again; read it all from the API; canary
    a new version at 10 % and compare it with production; then the same for a RAG pipeline
    over a corpus, and its trace."""
    settings = get_settings()
    # Holds only what the demo itself starts; stopping it leaves a running stack alone.
    services = LocalServices(settings, run_dir(settings))
    problem: BaseException | None = None
    served: dict[str, Any] = {}
    with interrupt_on_signals():
        try:
            served = _run(settings, services, lm)
        except (StartupError, CommandError, ReadApiError) as exc:
            problem = exc
        except KeyboardInterrupt:
            problem = KeyboardInterrupt()
        finally:
            _stop(services)
    if problem is not None:
        _fail_for(problem)
    if json_out:
        print_json(served)


def _run(settings: Settings, services: LocalServices, lm: str) -> dict[str, Any]:
    if not _stack_running(settings):
        out.print(
            f"no worker and API answer for topics {settings.topic_prefix}* and port "
            f"{settings.api_port}: starting them for the demo (stopped at the end)",
            highlight=False,
        )
        bring_up(services, out)
    _banner(settings, lm)
    run = asyncio.run(Demo(settings, out, lm=lm).commands())
    served = ReadSide(ReadApi(settings), out).show(run)
    canary = asyncio.run(CanaryDemo(settings, out, run).commands())
    served["canary_metrics"] = CanaryStats(ReadApi(settings), out).show(canary)
    rag = asyncio.run(RagDemo(settings, out, lm=lm).commands())
    served["rag_execution"] = RagTrace(ReadApi(settings), out).show(rag)
    loop = asyncio.run(LoopDemo(settings, out, ReadApi(settings), lm=lm).commands())
    served["feedback_loop"] = {
        "program_id": loop.program_id,
        "judge_id": loop.judge_id,
        "dataset_id": loop.dataset_id,
        "promoted": loop.promoted,
        "deployed_version": loop.deployed.version if loop.deployed else None,
    }
    _summary(run, rag, loop, settings.api_url)
    return served


def _fail_for(problem: BaseException) -> NoReturn:
    if isinstance(problem, StartupError):
        fail(str(problem), problem.hint, code=EXIT_UNAVAILABLE)
    if isinstance(problem, CommandTimeoutError):
        fail(str(problem), "is the worker busy or stopped? see `dspyops watch`", code=EXIT_TIMEOUT)
    if isinstance(problem, CommandError):
        fail(str(problem), "`dspyops watch --from-beginning` shows every result")
    if isinstance(problem, ReadApiError):
        fail(str(problem), problem.hint, code=problem.code)
    raise typer.Exit(130)


def _summary(run: DemoRun, rag: RagRun, loop: LoopRun, api_url: str) -> None:
    assert run.optimized is not None
    assert rag.optimized is not None
    assert loop.deployed is not None
    out.rule("[bold]done", align="left")
    out.print(
        f"program {run.program_id} serves version {run.optimized.version} and pipeline "
        f"{rag.program_id} version {rag.optimized.version} (both optimized from version 1); "
        f"{loop.program_id} serves version {loop.deployed.version}, learnt from its "
        f"production feedback and judged by {loop.judge_id}. "
        f"Next: `dspyops programs`, `dspyops executions {rag.program_id}`, "
        f"`dspyops watch --program {run.program_id}`; in a browser, while the API runs "
        f"(`dspyops dev`): {api_url}/ui/programs/{run.program_id}",
        highlight=False,
    )


def _stack_running(settings: Settings) -> bool:
    return api_health(settings) is not None and worker_answers(settings, timeout_s=WORKER_PROBE_S)


def _banner(settings: Settings, lm: str) -> None:
    out.print(
        f"Kafka {settings.bootstrap_servers}, topics {settings.topic_prefix}*, LM profile {lm!r}",
        highlight=False,
    )
    if settings.lm_profiles is None:
        out.print(
            "[yellow]no DSPYOPS_LM_PROFILES here: unless the worker has one, 'default' is the "
            "labelled offline LM (canned answers, no network)[/]"
        )


def _stop(services: LocalServices) -> None:
    with uninterrupted():
        stopped = services.stop()
    if stopped:
        out.print(f"stopped what the demo started: {', '.join(stopped)}")
