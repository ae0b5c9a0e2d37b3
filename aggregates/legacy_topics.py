"""Where events stored by earlier layouts find their classes today.

eventsourcing stores each event (and snapshot) with the topic of its class,
`module:QualName`. Until the move to one package (2026-11), the modules were top-level
(`aggregates.program:Program.Registered`); now they live under `dspyops.`. Events are
forever, so every old topic stays registered here: an aggregate's topic resolves its
events too (`...:Program` covers `...:Program.Registered`). Add a line whenever a stored
class moves or is renamed; never remove one.
"""

from __future__ import annotations

import threading

from eventsourcing.utils import register_topic

from dspyops.aggregates.dataset import Dataset
from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.execution import Execution
from dspyops.aggregates.handled import HandledCommand
from dspyops.aggregates.optimization import Optimization
from dspyops.aggregates.program import Program
from dspyops.aggregates.run import Run

# Old topic -> the class it names now.
LEGACY_TOPICS: dict[str, type] = {
    # Layout before 2026-11: top-level `aggregates` package.
    "aggregates.program:Program": Program,
    "aggregates.dataset:Dataset": Dataset,
    "aggregates.execution:Execution": Execution,
    "aggregates.handled:HandledCommand": HandledCommand,
    "aggregates.run:Run": Run,
    "aggregates.optimization:Optimization": Optimization,
    "aggregates.evaluation:Evaluation": Evaluation,
}

_lock = threading.Lock()
_registered = False


def register_legacy_topics() -> None:
    """Register every old topic once per process (the application calls this on start)."""
    global _registered
    with _lock:
        if _registered:
            return
        for topic, cls in LEGACY_TOPICS.items():
            register_topic(topic, cls)
        _registered = True
