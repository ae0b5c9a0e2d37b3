"""The dashboard screenshot in docs/observability.md, taken from a real stack under load.

Grafana does not install on this machine, so Prometheus draws the dashboard: every panel
of examples/observability/grafana-dashboard.json, with its PromQL, becomes a graph on a
Prometheus console page (its built-in dashboards, drawn with the graph UI's library),
and headless chromium screenshots that page. On the way it checks that every query of
the dashboard returns series from the live Prometheus, a stronger check than the unit
test's (which only checks metric names).

What runs: `dspyops dev --fresh` on topic prefix `screenshots.` with schemas and ports of
its own (Kafka and PostgreSQL started only if they are not running, and then stopped at
the end), an OpenAI-compatible LM server in this process (tests/support/openai_server.py)
behind two LM profiles, one priced and one not, and a Prometheus scraping the worker,
projector and API every 2 s. The load: executions of two programs (a few fed a question
the LM answers with junk, so they fail), a burst that the worker has to catch up on, an
optimization then evaluations, reads from the API, and records that are not commands
(dead letters).

Run by scripts/observability-screenshots, which installs prometheus and chromium first:

    scripts/observability-screenshots [--seconds 90]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from dspyops.cli import demo_data
from dspyops.client import CommandError, DspyopsClient
from dspyops.client.producers import durable_producer
from dspyops.events.commands import (
    EvaluateProgram,
    ExecuteProgram,
    OptimizeProgram,
    RegisterDataset,
    RegisterProgram,
)
from dspyops.settings import Settings
from tests.support.openai_server import Messages, OpenAIServer, chat_reply

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "observability"
OUTPUT = ROOT / "docs" / "observability" / "dashboard.png"

PREFIX = "screenshots."
PROMETHEUS = "127.0.0.1:9190"
PORTS = {"dspyops-api": 8190, "dspyops-worker": 9191, "dspyops-projector": 9192}
SCRAPE_S = 2
STACK_ENV = {
    "DSPYOPS_TOPIC_PREFIX": PREFIX,
    "DSPYOPS_EVENT_STORE_SCHEMA": "screenshots",
    "DSPYOPS_READ_MODEL_SCHEMA": "screenshots_read",
    "DSPYOPS_API_PORT": str(PORTS["dspyops-api"]),
    "DSPYOPS_WORKER_METRICS_PORT": str(PORTS["dspyops-worker"]),
    "DSPYOPS_PROJECTOR_METRICS_PORT": str(PORTS["dspyops-projector"]),
    "SCREENSHOTS_LM_KEY": "not-a-real-key",
}
JUNK = "answer with junk"
PANEL_HEIGHT_PX = 250
PAGE_WIDTH_PX = 1400


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90, help="how long the load runs")
    args = parser.parse_args()
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    bootstrap = Settings().bootstrap_servers
    with (
        tempfile.TemporaryDirectory(prefix="dspyops-screenshots-") as tmp,
        OpenAIServer(lm_responder) as lm,
        running(dev_stack(Path(tmp), lm.base_url), "dspyops dev", stop=signal.SIGINT),
        running(prometheus(Path(tmp), dashboard), "prometheus", stop=signal.SIGTERM),
    ):
        started = time.time()
        asyncio.run(Load(bootstrap, args.seconds).run())
        time.sleep(3 * SCRAPE_S)  # the last values scraped
        empty = check_queries(dashboard)
        screenshot(len(dashboard["panels"]), duration_s=time.time() - started)
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({OUTPUT.stat().st_size // 1024} KB)")
    if empty:
        print(f"no series for: {', '.join(empty)}", file=sys.stderr)
    return 1 if empty else 0


# --- the processes -------------------------------------------------------------------


@contextlib.contextmanager
def running(
    proc: subprocess.Popen[bytes], name: str, *, stop: signal.Signals
) -> Iterator[subprocess.Popen[bytes]]:
    """Stop `proc` at the end, however the block ends."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            print(f"stopping {name}")
            proc.send_signal(stop)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()


def dev_stack(tmp: Path, lm_url: str) -> subprocess.Popen[bytes]:
    """`dspyops dev --fresh` with this run's prefix, schemas, ports and LM profiles."""
    priced = {"input_cost_per_million": 0.15, "output_cost_per_million": 0.6}
    profile = {"api_base": lm_url, "api_key_env": "SCREENSHOTS_LM_KEY", "num_retries": 0}
    profiles = {
        "default": {"model": "openai/local-model", **profile, **priced},
        "unpriced": {"model": "openai/local-model-unpriced", **profile},
    }
    env = {**os.environ, **STACK_ENV, "DSPYOPS_LM_PROFILES": json.dumps(profiles)}
    log_path = tmp / "dev.log"
    print(f"starting dspyops dev (log {log_path})")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "dspyops"), "dev", "--fresh"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 300
    while b"Ctrl-C stops" not in log_path.read_bytes():  # its "ready" line
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"dspyops dev did not start:\n{log_path.read_text()}")
        time.sleep(1)
    return proc


def prometheus(tmp: Path, dashboard: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Prometheus with the example scrape config at this run's ports, and the console page."""
    config = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = f"{SCRAPE_S}s"
    for job in config["scrape_configs"]:
        host = job["static_configs"][0]["targets"][0].rsplit(":", 1)[0]
        job["static_configs"][0]["targets"] = [f"{host}:{PORTS[job['job_name']]}"]
    (tmp / "prometheus.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    (tmp / "consoles").mkdir()
    (tmp / "consoles" / "dspyops.html").write_text(console_page(dashboard))
    print(f"starting prometheus at http://{PROMETHEUS}")
    with (tmp / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address={PROMETHEUS}",
                f"--web.console.templates={tmp / 'consoles'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while not targets_up():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"prometheus did not scrape:\n{(tmp / 'prometheus.log').read_text()}")
        time.sleep(1)
    return proc


def targets_up() -> bool:
    with contextlib.suppress(OSError):
        return len(query("up == 1")) == len(PORTS)
    return False


# --- the load ------------------------------------------------------------------------


def lm_responder(messages: Messages) -> str:
    time.sleep(random.uniform(0.05, 0.6))  # latency worth a histogram
    if JUNK in messages[-1]["content"]:
        return "I refuse to follow the format."
    return chat_reply(answer="Paris", confidence=0.9)


class Load:
    def __init__(self, bootstrap: str, seconds: float) -> None:
        self.bootstrap = bootstrap
        self.seconds = seconds
        self.results: Counter[str] = Counter()
        self.deadline = 0.0

    async def run(self) -> None:
        async with DspyopsClient(self.bootstrap, topic_prefix=PREFIX, actor="screenshots") as c:
            await c.send(RegisterProgram(program_id="qa", name="QA", signature=demo_data.SIGNATURE))
            await c.send(
                RegisterProgram(
                    program_id="qa-unpriced",
                    name="QA on an unpriced model",
                    signature=demo_data.SIGNATURE,
                    lm="unpriced",
                )
            )
            await c.send(
                RegisterDataset(dataset_id="qa-golden", name="QA", examples=demo_data.EXAMPLES)
            )
            print(f"load for {self.seconds:.0f} s")
            self.deadline = time.monotonic() + self.seconds
            await asyncio.gather(
                *(self.execute(c) for _ in range(6)),
                self.burst(c),
                self.runs(c),
                self.api_reads(),
                self.dead_letters(),
            )
        print("results:", ", ".join(f"{n} {kind}" for kind, n in self.results.most_common()))

    def left(self) -> bool:
        return time.monotonic() < self.deadline

    def execute_command(self) -> ExecuteProgram:
        question = JUNK if random.random() < 0.08 else random.choice(demo_data.EXAMPLES)["question"]
        program = "qa-unpriced" if random.random() < 0.2 else "qa"
        return ExecuteProgram(program_id=program, inputs={"question": question, "context": "?"})

    async def execute(self, client: DspyopsClient) -> None:
        while self.left():
            with contextlib.suppress(CommandError):
                reply = await client.send(self.execute_command(), check=False, timeout_s=60)
                self.results[reply.type] += 1
            await asyncio.sleep(random.uniform(0.1, 0.8))

    async def burst(self, client: DspyopsClient) -> None:
        """300 executions at once, halfway: consumer lag the worker catches up on."""
        await asyncio.sleep(self.seconds / 2)
        for _ in range(300):
            command = self.execute_command()
            data = command.model_dump(mode="json", exclude_unset=True)
            await client.publish(client.envelope("ExecuteProgram", data))

    async def runs(self, client: DspyopsClient) -> None:
        """An optimization, then evaluations: runs in progress."""
        optimize = OptimizeProgram(program_id="qa", dataset_id="qa-golden", metric="exact_match")
        reply = await client.send(optimize, check=False, timeout_s=self.seconds)
        self.results[reply.type] += 1
        while self.left():
            evaluate = EvaluateProgram(program_id="qa", dataset_id="qa-golden")
            reply = await client.send(evaluate, check=False, timeout_s=self.seconds)
            self.results[reply.type] += 1
            await asyncio.sleep(5)

    async def api_reads(self) -> None:
        paths = ["/programs", "/programs/qa", "/programs/qa/executions", "/programs/qa/metrics"]
        paths.append("/programs/no-such-program")  # a 404 among the statuses
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS['dspyops-api']}") as api:
            while self.left():
                for path in paths:
                    await api.get(path)
                await asyncio.sleep(0.5)

    async def dead_letters(self) -> None:
        """Records on a command topic that are not commands: the worker dead-letters them."""
        producer = durable_producer(self.bootstrap)
        await producer.start()
        try:
            for value in [b"not json", b'{"type": "dspyops.command.Nope"}', b"[1, 2]"]:
                await asyncio.sleep(self.seconds / 4)
                await producer.send_and_wait(f"{PREFIX}commands.executions", value)
                self.results["dead letter sent"] += 1
        finally:
            await producer.stop()


# --- what Prometheus shows -----------------------------------------------------------


def query(expr: str) -> list[dict[str, Any]]:
    url = f"http://{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
    return result


def check_queries(dashboard: dict[str, Any]) -> list[str]:
    """Print each panel's series count from the live Prometheus; the titles with none."""
    empty = []
    for panel in dashboard["panels"]:
        counts = [len(query(target["expr"])) for target in panel["targets"]]
        print(f"  {sum(counts):>3} series  {panel['title']}  {counts if len(counts) > 1 else ''}")
        if not all(counts):
            empty.append(panel["title"])
    return empty


def console_page(dashboard: dict[str, Any]) -> str:
    """A Prometheus console page: one graph per dashboard panel, two a row, titled as there."""
    panels = []
    for n, panel in enumerate(dashboard["panels"]):
        exprs = [target["expr"] for target in panel["targets"]]
        # Grafana's {{label}} is the console graphs' [[label]] (and {{ is the template's).
        names = [target["legendFormat"] for target in panel["targets"]]
        names = [name.replace("{{", "[[").replace("}}", "]]") for name in names]
        graph = {"expr": exprs, "name": names, "height": 150}
        panels.append(
            f'<div><h6>{panel["title"]}</h6><div id="p{n}"></div><script>'
            f"new PromConsole.Graph(Object.assign({json.dumps(graph)}, "
            f'{{node: document.getElementById("p{n}"), duration: DURATION}}));</script></div>'
        )
    static = "/classic/static"
    return f"""<!doctype html>
<html lang="en"><head>
<link rel="stylesheet" href="{static}/rickshaw/rickshaw.min.css">
<link rel="stylesheet" href="{static}/bootstrap4/css/bootstrap.min.css">
<link rel="stylesheet" href="{static}/css/prom_console.css">
<script src="{static}/d3/d3.min.js"></script>
<script src="{static}/rickshaw/rickshaw.min.js"></script>
<script src="{static}/jquery/jquery.min.js"></script>
<script>
var PATH_PREFIX = "";
var DURATION = Number(new URLSearchParams(location.search).get("seconds")) || 300;
</script>
<script src="{static}/js/prom_console.js"></script>
<style>
body {{ padding: 8px 12px; width: {PAGE_WIDTH_PX}px; }}
.grid {{ display: grid; grid-template-columns: 1fr 1fr; column-gap: 24px;
  grid-auto-rows: {PANEL_HEIGHT_PX}px; }}
.grid > div {{ overflow: hidden; }}
h5 {{ font-size: 15px; margin-bottom: 8px; }}
h6 {{ margin: 0 0 4px; font-weight: bold; }}
</style>
</head><body>
<h5>dspyops: the panels of examples/observability/grafana-dashboard.json, each with its
PromQL, drawn by Prometheus (its console graphs: no Grafana here), from a local stack under
load (scripts/observability-screenshots)</h5>
<div class="grid">
{chr(10).join(panels)}
</div>
</body></html>
"""


def screenshot(panels: int, duration_s: float) -> None:
    rows = (panels + 1) // 2
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://{PROMETHEUS}/consoles/dspyops.html?seconds={int(duration_s) + 10}"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",  # as root
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={PAGE_WIDTH_PX + 24},{rows * PANEL_HEIGHT_PX + 60}",
            "--virtual-time-budget=15000",
            f"--screenshot={OUTPUT}",
            url,
        ],
        check=True,
        capture_output=True,
    )


if __name__ == "__main__":
    sys.exit(main())
