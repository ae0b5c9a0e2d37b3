"""The worker's consumer lag gauge when its partitions move: the old ones drop out, also in
prometheus-client's multi-process mode (`dspyops worker --processes N`), which cannot
drop a series."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

# A faust app as ConsumerLag reads it: the assignment, high watermarks, committed offsets.
STUB_APP = """
from types import SimpleNamespace
from aiokafka import TopicPartition

def app(partitions, end=10, done=4):
    tps = {TopicPartition("t.commands.executions", p) for p in partitions}
    return SimpleNamespace(
        monitor=SimpleNamespace(tp_committed_offsets={tp: done for tp in tps}),
        consumer=SimpleNamespace(assignment=lambda: tps, highwater=lambda tp: end),
    )
"""


def _lags(exposition: str) -> dict[str, float]:
    return {
        line.split('partition="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("dspyops_consumer_lag_messages{")
    }


def _run(script: str, multiproc_dir: Path | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if multiproc_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    # prometheus-client warns (UserWarning) where it cannot remove a series: an error here.
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", STUB_APP + textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


SCRIPT = """
import sys
from dspyops import metrics
from dspyops.consumers.worker import ConsumerLag

lag = ConsumerLag()
lag.record(app([0, 1]))
lag.record(app([1], end=12))
sys.stdout.write(metrics.exposition(metrics.WORKER).decode())
"""


def test_a_partition_no_longer_assigned_drops_out() -> None:
    assert _lags(_run(SCRIPT, None)) == {"1": 8.0}


def test_in_multi_process_mode_it_reads_0_so_its_new_owner_shows(tmp_path: Path) -> None:
    # Another process now holds partition 0, 5 records behind; "max" over processes.
    _run(
        "from dspyops.consumers.worker import ConsumerLag\nConsumerLag().record(app([0], 9))",
        tmp_path,
    )
    assert _lags(_run(SCRIPT, tmp_path)) == {"0": 5.0, "1": 8.0}
