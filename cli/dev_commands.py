"""`dspyops dev`: the whole local stack in one terminal, stopped by Ctrl-C."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from dspyops.cli.console import EXIT_ERROR, EXIT_UNAVAILABLE, fail, out
from dspyops.cli.infra_commands import _redact
from dspyops.cli.services import LocalServices
from dspyops.cli.startup import StartupError, bring_up, interrupt_on_signals, uninterrupted
from dspyops.events.topics import Topics
from dspyops.settings import Settings, get_settings


def run_dir(settings: Settings) -> Path:
    """Logs and the worker's data folder, one folder per topic prefix."""
    return settings.state_dir / "run" / (settings.topic_prefix.rstrip(".") or "default")


def dev(
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Start empty: delete this prefix's topics, the event store and read models.",
        ),
    ] = False,
) -> None:
    """Kafka and PostgreSQL, then worker, projector and API; Ctrl-C stops what it started."""
    settings = get_settings()
    services = LocalServices(settings, run_dir(settings))
    code = 0
    problem: StartupError | None = None
    with interrupt_on_signals():
        try:
            bring_up(services, out, fresh=fresh)
            _show_where(services)
            while (dead := services.dead()) is None:
                time.sleep(0.5)
            out.print(f"[bold red]{dead.name} exited[/]; its log ends:")
            out.print(dead.log_tail(), markup=False, highlight=False)
            code = EXIT_ERROR
        except KeyboardInterrupt:
            out.print("\nstopping…")
        except StartupError as exc:
            problem = exc
        finally:
            with uninterrupted():
                stopped = services.stop()
    if stopped:
        out.print(f"stopped {', '.join(stopped)}; data kept for next time")
    if problem is not None:
        fail(str(problem), problem.hint, code=EXIT_UNAVAILABLE)
    raise typer.Exit(code)


def _show_where(services: LocalServices) -> None:
    s = services.settings
    url = s.api_url
    topics = Topics(s.topic_prefix)
    facts = {
        "API": f"{url}  (OpenAPI docs {url}/docs, health {url}/health)",
        "console": f"{url}/ui  (read-only, in a browser)",
        "Kafka": s.bootstrap_servers,
        "PostgreSQL": _redact(s.effective_database_url),
        "send to": ", ".join(topics.commands),
        "read from": f"{topics.results}, {topics.events}, {topics.deadletter}",
        "logs": str(services.run_dir),
        "metrics": _where_metrics_go(s),
        "traces": where_traces_go(),
    }
    for name, value in facts.items():
        out.print(f"  {name:<11} {value}", highlight=False, soft_wrap=True)
    out.print("[bold green]ready[/] — Ctrl-C stops the worker, projector and API")


def _where_metrics_go(s: Settings) -> str:
    def at(port: int) -> str:
        return f"http://{s.metrics_host}:{port}/metrics" if port else "off"

    worker, projector = at(s.worker_metrics_port), at(s.projector_metrics_port)
    return f"worker {worker}, projector {projector}, API {s.api_url}/metrics"


def where_traces_go(environ: dict[str, str] | None = None) -> str:
    """One line for `dspyops dev`: where the worker sends its traces, if anywhere."""
    # Imported here: OpenTelemetry is the server extra's, and only dev needs this line.
    from dspyops.consumers.telemetry import tracing_configured

    env = os.environ if environ is None else environ
    exporter = tracing_configured(dict(env))
    if exporter is None:
        return "off (set OTEL_EXPORTER_OTLP_ENDPOINT to send them over OTLP/HTTP)"
    if exporter == "console":
        return "to the worker's log (OTEL_TRACES_EXPORTER=console)"
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318").rstrip("/") + "/v1/traces"
    )
    return f"OTLP/HTTP to {endpoint}"
