"""The read side the console's browser tests (and its screenshots) look at: a store seeded
with `read_story`, an execution with a trace, read models projected from it, and the real
API as a `dspyops api` process with a token. Holds no tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from dspyops.aggregates.app import DspyOps, evaluations, handle
from dspyops.aggregates.app.context import Outcome
from dspyops.bootstrap import open_store
from dspyops.events.commands import (
    EvaluateProgram,
    ExecuteProgram,
    RegisterProgram,
    SetOnlineEvaluation,
    SetTrafficSplit,
    SplitGuard,
)
from dspyops.projections.projector import Projector
from tests.support.executions import complete
from tests.support.read_story import ctx, schemas, seed_story

REPO = Path(__file__).resolve().parents[2]
TRACED_ID = "traced-1"


@dataclass
class ConsoleStack:
    url: str
    token: str
    database_url: str
    event_store_schema: str
    read_schema: str
    store: DspyOps
    projector: Projector
    story: dict[str, Any]

    def project(self) -> int:
        """Apply the events stored since the last call (what a running projector does)."""
        return self.projector.catch_up()

    def event_count(self) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.dspyops_events").format(
                    sql.Identifier(self.event_store_schema)
                )
            ).fetchone()
        assert row is not None
        return int(row[0])


def trace_tree() -> dict[str, Any]:
    """A program's trace as runtime/trace.py records it: a step, a retrieval, a predictor
    with its LM call."""
    lm = {
        "kind": "lm",
        "name": "offline/echo",
        "type": "LM",
        "start_ms": 6.0,
        "latency_ms": 30.0,
        "model": "offline/echo",
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        "error": None,
        "children": [],
    }
    return {
        "kind": "program",
        "name": "qa",
        "type": "Predict",
        "start_ms": 0.0,
        "latency_ms": 40.0,
        "error": None,
        "usage": {"total_tokens": 15},
        "children": [
            {
                "kind": "retrieval",
                "name": "search",
                "type": "Retrieve",
                "start_ms": 1.0,
                "latency_ms": 4.0,
                "corpus": "docs",
                "corpus_version": 2,
                "document_ids": ["d1", "d7"],
                "error": None,
                "children": [],
            },
            {
                "kind": "predictor",
                "name": "answer",
                "type": "Predict",
                "start_ms": 5.0,
                "latency_ms": 32.0,
                "error": None,
                "children": [lm],
            },
        ],
    }


def traced_execution(app: DspyOps, execution_id: str = TRACED_ID) -> str:
    c = ctx("ivan")
    command = ExecuteProgram(
        program_id="qa", inputs={"question": "Why?", "context": "c"}, execution_id=execution_id
    )
    plan = handle(app, command, c)
    complete(
        app,
        plan,
        c,
        outputs={"answer": "Because.", "confidence": 0.9},
        latency_ms=40.0,
        usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        model="offline/echo",
        offline=True,
        trace=trace_tree(),
    )
    return execution_id


def canary_and_second_evaluation(app: DspyOps) -> str:
    """A 90/10 split of production (v1) with v3, guarded, three executions of v3, and an
    evaluation of v3 on the dataset and examples `ev1` scored v1 on, with outputs: what
    the program page's splits and comparison and the compare page show. Returns the
    evaluation's id."""
    split = SetTrafficSplit(
        program_id="qa",
        weights={"1": 90, "3": 10},
        guard=SplitGuard(max_error_rate=0.2),
        reason="try one-word answers",
    )
    applied = handle(app, split, ctx("gina"))
    assert isinstance(applied, Outcome), applied
    assert applied.result_type == "ProgramTrafficSplitSet"
    # Executions of v3 beside v1's: the program page compares them.
    for latency_ms in (8.0, 12.0, 16.0):
        c = ctx("hana")
        command = ExecuteProgram(
            program_id="qa", inputs={"question": "q?", "context": "c"}, version=3
        )
        plan = handle(app, command, c)
        complete(
            app,
            plan,
            c,
            outputs={"answer": "a", "confidence": 0.5},
            latency_ms=latency_ms,
            usage={"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10},
            model="offline/echo",
            offline=True,
        )
    run_id = "ev2"
    handle(
        app,
        EvaluateProgram(program_id="qa", dataset_id="ds", version=3, evaluation_id=run_id),
        ctx(),
    )
    per_example: list[dict[str, Any]] = [
        {"index": 0, "score": 0.0, "outputs": {"answer": "No.", "confidence": 0.4}},
        {"index": 1, "score": 1.0, "outputs": {"answer": "a1", "confidence": 0.8}},
    ]
    evaluations.complete_evaluation(app, run_id, 0.5, per_example)
    return run_id


ONLINE_JUDGE = "watcher"


def online_evaluation(app: DspyOps) -> str:
    """A judge program scoring 5 % of qa's executions (SetOnlineEvaluation): what the
    program page's online evaluation shows. Returns the judge's id."""
    judge = RegisterProgram(
        program_id=ONLINE_JUDGE,
        name="Answer watcher",
        signature="question: str, answer: str -> score: int[1, 5], rationale: str",
    )
    handle(app, judge, ctx())
    judged = handle(
        app, SetOnlineEvaluation(program_id="qa", judge=ONLINE_JUDGE, sample_percent=5), ctx()
    )
    assert isinstance(judged, Outcome), judged
    assert judged.result_type == "OnlineEvaluationSet", judged
    return ONLINE_JUDGE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def console_stack(database_url: str, bootstrap_servers: str, log: Path) -> Iterator[ConsoleStack]:
    suffix = uuid.uuid4().hex[:10]
    es, rs = f"test_ui_es_{suffix}", f"test_ui_rd_{suffix}"
    token = f"console-{suffix}"
    with schemas(database_url, es, rs):
        store = open_store(database_url, es)
        story = seed_story(store)
        story["traced"] = traced_execution(store)
        story["second_evaluation"] = canary_and_second_evaluation(store)
        story["online_judge"] = online_evaluation(store)
        projector = Projector(database_url, event_store_schema=es, read_schema=rs)
        projector.catch_up()
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "DSPYOPS_EVENT_STORE_SCHEMA": es,
            "DSPYOPS_READ_MODEL_SCHEMA": rs,
            "DSPYOPS_API_TOKEN": token,
        }
        with log.open("wb") as out:
            api = subprocess.Popen(
                [sys.executable, "-m", "dspyops.cli.main", "api", "--port", str(port)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_for(url, api, log)
            yield ConsoleStack(url, token, database_url, es, rs, store, projector, story)
        finally:
            api.terminate()
            try:
                api.wait(15)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait(5)
            projector.close()
            store.close()


def _wait_for(url: str, api: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise AssertionError(f"dspyops api exited {api.returncode}:\n{log.read_text()}")
        try:
            httpx.get(f"{url}/health", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"dspyops api did not answer in 30 s:\n{log.read_text()}")
