"""Promotion gates: a gated command's two evaluation runs, then its one outcome.

The runs are ordinary evaluations (`EvaluationJobs`), scored at once in two run threads;
each ends recorded on its own Evaluation aggregate (score, per-example results) without
an outcome. Then `finish_gate` applies or refuses the change and stores the command's
outcome. The command's offset is held until that outcome is on Kafka: a worker that dies
mid-gate gets the command again, and its plan holds only the runs that had not ended.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass

from dspyops.aggregates.app import CommandContext, DspyOps, GatePlan, Outcome, finish_gate
from dspyops.consumers.evaluations import EvaluationJobs
from dspyops.consumers.store_calls import in_store
from dspyops.events.envelope import Envelope

log = logging.getLogger(__name__)


@dataclass
class GateJobs:
    app: DspyOps
    evaluations: EvaluationJobs
    store_executor: Executor | None = None

    async def run(self, envelope: Envelope, planned: GatePlan, ctx: CommandContext) -> Outcome:
        """Score what is left of the gate, then apply or refuse the gated command."""
        if planned.resumed:
            log.warning(
                "gate of %s %s was interrupted; %d of its runs left to score",
                planned.command_type,
                ctx.command_id,
                len(planned.runs),
            )
        # A run's own failure is recorded on it and judged by finish_gate; only an
        # outage (transient: the command is redelivered and resumes) raises here.
        runs = [
            asyncio.ensure_future(self.evaluations.evaluate(envelope, run, ctx))
            for run in planned.runs
        ]
        try:
            await asyncio.gather(*runs)
        except BaseException:
            # One run's outage retries the whole gate: its siblings stop here rather than
            # go on beside the retry (which runs the open ones again) and end twice.
            for run in runs:
                run.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
            raise
        outcome: Outcome = await in_store(self.store_executor, finish_gate, self.app, planned)
        return outcome
