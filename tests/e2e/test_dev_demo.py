"""The newcomer's path: `dspyops dev` in the background, `dspyops demo`, the CLI against that
stack, and Ctrl-C leaving nothing behind. One `dev` serves the module's tests in order."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.dev_process import DevProcess, dspyops, gone, processes_with_prefix


@pytest.fixture(scope="module")
def dev(e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    process = DevProcess(e2e_env, tmp_path_factory.mktemp("dev") / "dev.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.kill()


def api(env: dict[str, str], path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{env['DSPYOPS_API_PORT']}{path}", params=params, timeout=10)


def eventually(check: Callable[[], Any], timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out waiting for the read side"
        time.sleep(0.3)
    return value


def test_dev_shows_where_everything_runs(dev: DevProcess) -> None:
    out = dev.output
    prefix = dev.env["DSPYOPS_TOPIC_PREFIX"]
    for service in ("kafka", "postgres", "worker", "api", "projector"):
        assert re.search(rf"✓ {service}\b", out), out
    assert f"http://127.0.0.1:{dev.env['DSPYOPS_API_PORT']}" in out
    assert re.search(rf"console +http://127\.0\.0\.1:{dev.env['DSPYOPS_API_PORT']}/ui\b", out)
    assert f"{prefix}commands.programs" in out
    assert f"{prefix}results" in out
    assert {p.cmdline()[-1] for p in dev.descendants()} >= {"projector", "api"}


def test_demo_completes_and_the_api_serves_the_new_version(dev: DevProcess) -> None:
    done = dspyops(dev.env, "demo", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    found = re.search(r"program (qa-\w+) serves version (\d+)", out)
    assert found, out
    program_id, version = found[1], int(found[2])
    assert version == 2
    # The console's page of the program, where the summary points.
    console = re.search(r"(http://\S+/ui/programs/(qa-\w+))", out)
    assert console, out
    assert console[2] == program_id
    page = httpx.get(console[1], timeout=10)
    assert page.status_code == 200
    assert program_id in page.text
    assert "✓ OptimizationCompleted version 2" in out
    assert "✓ ProgramDeployed" in out
    assert "offline profile answered" in out  # no LM profile configured here
    assert "starting them for the demo" not in out  # it used the running `dev`

    program = api(dev.env, f"/programs/{program_id}").json()
    assert program["deployed_version"] == version
    assert program["status"] == "deployed"
    versions = api(dev.env, f"/programs/{program_id}/versions").json()
    assert [v["optimizer"] for v in versions] == [None, "BootstrapFewShot", None]

    # The canary: version 3 on 10 % of production, 80 executions routed by key.
    assert "✓ ProgramUpdated version 3" in out
    assert "✓ ProgramTrafficSplitSet production: v2 90 %, v3 10 %" in out
    batch = r"80 executions, routing keys user-000..user-079, in [\d.]+ s: v2 (\d+), v3 (\d+)"
    ran = re.search(batch, out)
    assert ran, out
    on_v2, on_v3 = int(ran[1]), int(ran[2])
    assert on_v2 + on_v3 == 80
    assert on_v3 > 0  # 0.9 ** 80: once in about 4,600 runs none goes to v3
    serving = api(dev.env, f"/programs/{program_id}/serving").json()
    assert serving["weights"]["production"] == {"2": 90, "3": 10}
    metrics = api(dev.env, f"/programs/{program_id}/metrics").json()
    counts = {row["version"]: row["succeeded"] for row in metrics["by_version"]}
    assert counts == {1: 1, 2: 1 + on_v2, 3: on_v3}
    (compared,) = [c for c in metrics["comparison"] if c["version"] == 3]
    assert compared["baseline_version"] == 2
    table = re.search(r"│ executions +│ (\d+) +│ (\d+) +│", out)
    assert table, out
    assert (int(table[1]), int(table[2])) == (1 + on_v2, on_v3)
    diff = re.escape(f"{compared['latency_mean_diff_ms']:+.1f}")
    assert re.search(rf"│ latency mean ms +│ [\d.]+ +│ [\d.]+ +│ {diff} \[", out), out

    # The second scenario: a retrieve -> answer pipeline over a corpus, and its trace.
    found = re.search(r"pipeline (rag-\w+) version (\d+)", out)
    assert found, out
    rag_id = found[1]
    assert "✓ CorpusRegistered" in out
    assert re.search(r"step retrieve \(Retrieve\): \d+ ms", out), out
    assert re.search(r"retrieval retrieve, [\d.]+ ms, facts-\w+ v1 -> \['doc-13'\]", out), out
    rag = api(dev.env, f"/programs/{rag_id}").json()
    assert rag["deployed_version"] == int(found[2]) == 2
    executions = api(dev.env, f"/programs/{rag_id}/executions").json()["items"]
    detail = api(dev.env, f"/executions/{executions[0]['execution_id']}").json()
    steps = [span["name"] for span in detail["trace"]["children"]]
    assert steps == ["retrieve", "answer"]
    shown = dspyops(dev.env, "execution", executions[0]["execution_id"])
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"{rag_id} version 2: succeeded (offline)" in shown.stdout
    assert re.search(r"├── retrieval retrieve, [\d.]+ ms, facts-\w+ v1", shown.stdout), shown.stdout
    assert re.search(r"└── step answer, [\d.]+ ms", shown.stdout), shown.stdout

    # The feedback loop: corrected production executions promoted, a judged optimization,
    # a gated deploy (offline: the judge's scores are canned, the flow is real).
    found = re.search(r"(qa-loop-\w+) serves version (\d+), learnt from", out)
    assert found, out
    loop_id = found[1]
    assert "11 corrected (score 0 and the right answer), 1 rated good" in out
    assert "✓ ExecutionsPromoted 11 examples appended to qa-from-production-" in out
    assert re.search(r"✓ OptimizationCompleted version 2 from dataset version 2: judge:judge-", out)
    assert re.search(r"✓ ProgramDeployed version 2 serves: the gate scored it", out), out
    looped = api(dev.env, f"/programs/{loop_id}").json()
    assert looped["deployed_version"] == 2
    (made,) = [v for v in api(dev.env, f"/programs/{loop_id}/versions").json() if v["number"] == 2]
    assert made["metric"].startswith("judge:judge-")
    examples = api(dev.env, f"/datasets/{made['dataset_id']}/examples").json()["items"]
    assert len(examples) == 11
    assert all(e["source_execution_id"] for e in examples)


def test_cli_send_watch_and_tables_against_the_stack(dev: DevProcess, tmp_path: Path) -> None:
    env = dev.env
    data = tmp_path / "program.json"
    data.write_text(
        json.dumps(
            {
                "program_id": "cli-qa",
                "name": "CLI QA",
                "signature": "question: str -> answer: str",
                "lm": "offline",
            }
        )
    )
    sent = dspyops(env, "send", "RegisterProgram", "--data", str(data), "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["type"] == "dspyops.result.ProgramRegistered"

    again = dspyops(env, "send", "RegisterProgram", "--data", str(data))
    assert again.returncode == 5  # rejected: the program exists
    assert "CommandRejected" in again.stdout

    executed = dspyops(
        env,
        "send",
        "ExecuteProgram",
        "--data",
        "-",
        "--json",
        input='{"program_id": "cli-qa", "inputs": {"question": "why?"}}',
    )
    assert executed.returncode == 0, executed.stderr
    assert json.loads(executed.stdout)["data"]["offline"] is True

    watched = dspyops(
        env, "watch", "--from-beginning", "--only", "results", "--program", "cli-qa",
        "--max", "3", "--json",
    )  # fmt: skip
    types = [json.loads(line)["type"].rsplit(".", 1)[-1] for line in watched.stdout.splitlines()]
    # Results are keyed by correlation id, so partitions (and their order) differ.
    assert sorted(types) == ["CommandRejected", "ExecutionSucceeded", "ProgramRegistered"]

    def listed() -> list[dict]:
        rows = json.loads(dspyops(env, "programs", "--json").stdout)
        return [r for r in rows if r["program_id"] == "cli-qa"]

    assert eventually(listed)[0]["name"] == "CLI QA"
    table = dspyops(env, "programs")
    assert "cli-qa" in table.stdout
    assert "question: str -> answer: str" in table.stdout

    def executions() -> list[dict]:
        return json.loads(dspyops(env, "executions", "cli-qa", "--json").stdout)

    assert eventually(executions)[0]["status"] == "succeeded"
    assert "succeeded" in dspyops(env, "executions", "cli-qa").stdout


def test_ctrl_c_stops_every_child(dev: DevProcess) -> None:
    children = dev.descendants()
    assert len(children) == 3  # worker, projector, API
    dev.signal_group(signal.SIGINT)
    assert dev.wait(60) == 0, dev.output
    stopped = re.search(r"^stopped (.+); data kept for next time$", dev.output, re.MULTILINE)
    assert stopped, dev.output
    assert sorted(stopped[1].split(", ")) == ["api", "projector", "worker"]
    assert all(gone(child) for child in children)
    assert processes_with_prefix(dev.env["DSPYOPS_TOPIC_PREFIX"]) == []


def test_fresh_starts_empty_and_sigterm_to_dev_alone_stops_children(
    e2e_env: dict[str, str], tmp_path: Path
) -> None:
    # The data of the tests above is still there (dev keeps it) until --fresh.
    process = DevProcess(e2e_env, tmp_path / "dev.log", "--fresh")
    try:
        process.wait_ready()
        assert "✓ fresh" in process.output
        assert json.loads(dspyops(e2e_env, "programs", "--json").stdout) == []
        children = process.descendants()
        process.proc.send_signal(signal.SIGTERM)  # to `dev` only, not its group
        assert process.wait(60) == 0, process.output
        assert all(gone(child) for child in children)
        assert processes_with_prefix(e2e_env["DSPYOPS_TOPIC_PREFIX"]) == []
    finally:
        process.kill()


def test_a_child_that_dies_stops_dev_and_the_others(
    e2e_env: dict[str, str], tmp_path: Path
) -> None:
    process = DevProcess(e2e_env, tmp_path / "dev.log")
    try:
        process.wait_ready()
        children = process.descendants()
        api_child = next(c for c in children if c.cmdline()[-1] == "api")
        api_child.kill()
        assert process.wait(60) == 1, process.output
        assert "api exited" in process.output
        assert all(gone(child) for child in children)
        assert processes_with_prefix(e2e_env["DSPYOPS_TOPIC_PREFIX"]) == []
    finally:
        process.kill()
