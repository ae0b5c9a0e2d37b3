"""`dspyops infra up|down|status`: the local Kafka broker and PostgreSQL server."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dspyops.cli.console import fail, out, print_json
from dspyops.cli.infra.kafka import KafkaError
from dspyops.cli.infra.postgres import PostgresError
from dspyops.cli.infra.stack import Stack
from dspyops.settings import get_settings

app = typer.Typer(help="Start, stop and inspect the local Kafka broker and PostgreSQL.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@app.command()
def up(json_out: JsonOpt = False) -> None:
    """Start Kafka and PostgreSQL (unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set)."""
    stack = Stack(get_settings())
    report: dict[str, Any] = {}
    try:
        report["kafka"] = _kafka_up(stack)
        report["postgres"] = _postgres_up(stack)
    except KafkaError as exc:
        fail(str(exc), "check Java 17+ and Maven, or point KAFKA_BOOTSTRAP_SERVERS at a cluster")
    except PostgresError as exc:
        fail(str(exc), "or point DATABASE_URL at an existing PostgreSQL server")
    if not stack.kafka_answers():
        fail(f"Kafka at {stack.settings.bootstrap_servers} does not answer metadata requests")
    if not stack.postgres_answers():
        fail("PostgreSQL does not accept connections", "check DATABASE_URL")
    _show(report, json_out)


@app.command()
def down(json_out: JsonOpt = False) -> None:
    """Stop what `infra up` started; data folders are kept for next time."""
    stack = Stack(get_settings())
    report: dict[str, Any] = {}
    report["kafka"] = {"stopped": stack.kafka.stop()} if stack.kafka else {"external": True}
    report["postgres"] = (
        {"stopped": stack.postgres.stop()} if stack.postgres else {"external": True}
    )
    _show(report, json_out)


@app.command()
def status(json_out: JsonOpt = False) -> None:
    """Tell whether Kafka and PostgreSQL are running and where; exit 1 if either is down."""
    stack = Stack(get_settings())
    s = stack.settings
    kafka_up = stack.kafka_answers()
    pg_up = stack.postgres_answers()
    report = {
        "kafka": {
            "bootstrap_servers": s.bootstrap_servers,
            "external": s.kafka_is_external,
            "running": kafka_up,
            "pid": stack.kafka.pid() if stack.kafka else None,
        },
        "postgres": {
            "url": _redact(s.effective_database_url),
            "external": s.postgres_is_external,
            "running": pg_up,
            "pid": stack.postgres.pid() if stack.postgres else None,
        },
    }
    _show(report, json_out)
    if not (kafka_up and pg_up):
        raise typer.Exit(1)


def _kafka_up(stack: Stack) -> dict[str, Any]:
    s = stack.settings
    if stack.kafka is None:
        return {"bootstrap_servers": s.bootstrap_servers, "external": True}
    seconds = stack.kafka.start()
    return {
        "bootstrap_servers": stack.kafka.bootstrap_servers,
        "version": stack.kafka.version,
        "started_in_s": round(seconds, 2),
        "pid": stack.kafka.pid(),
        "log": str(stack.kafka.log_file),
        "data": str(stack.kafka.data_dir),
    }


def _postgres_up(stack: Stack) -> dict[str, Any]:
    if stack.postgres is None:
        return {"url": _redact(stack.settings.effective_database_url), "external": True}
    seconds = stack.postgres.start()
    return {
        "url": stack.postgres.url,
        "started_in_s": round(seconds, 2),
        "pid": stack.postgres.pid(),
        "data": str(stack.postgres.data_dir),
    }


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _show(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(report)
        return
    for service, facts in report.items():
        line = ", ".join(f"{k}={v}" for k, v in facts.items() if v is not None)
        out.print(f"[bold]{service}[/]: {line}")
