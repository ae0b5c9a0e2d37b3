"""A real `dspyops worker` process whose 'default' LM profile is a scripted stub LM.

For benchmarks only: `python -m bench.stub_worker --delay-ms 200`. Same faust app, event
store and agents as the production worker; only the LM behind the profile differs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import dspy
from dspy.lm15 import Request

from dspyops.consumers.worker import build_worker_app, faust_worker, prepare_topics, tune_gc
from dspyops.runtime.offline import output_fields
from dspyops.runtime.profiles import LMProfile, ProfileRegistry
from dspyops.settings import get_settings
from tests.support.openai_server import chat_reply
from tests.support.scripted_lm import ScriptedLM

# What the stub answers, by output field: whichever predictor asks (one signature or a
# pipeline's steps) gets its own outputs.
VALUES = {
    "answer": "Paris",
    "confidence": 0.9,
    "query": "capital of France",
    "reasoning": "The context says so.",
}


def reply(request: Request) -> str:
    return chat_reply(**{name: VALUES.get(name, "x") for name in output_fields(request)})


class StubProfiles(ProfileRegistry):
    def __init__(self, lm: dspy.BaseLM) -> None:
        super().__init__({"default": LMProfile(name="default", model="stub/bench")})
        self._lm = lm

    def build_lm(self, name: str) -> dspy.BaseLM:
        self.get(name)
        return self._lm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--stats", help="file to write the LM's peak calls in flight to")
    args = parser.parse_args()
    settings = get_settings()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(prepare_topics(settings))
    # Keeps no prompts: bench_memory measures the worker's memory, not the stub's.
    lm = ScriptedLM(reply, delay_s=args.delay_ms / 1000, keep_requests=False)
    app = build_worker_app(settings, profiles=StubProfiles(lm), relay=False)
    if args.stats:
        stats = Path(args.stats)

        async def write_stats() -> None:
            engine = lm.engine_state
            stats.write_text(json.dumps({"peak_in_flight": engine.peak_in_flight}))  # noqa: ASYNC240

        app.timer(0.5)(write_stats)
    tune_gc()  # as run_worker does
    faust_worker(app, loop, loglevel="warn").execute_from_commandline()


if __name__ == "__main__":
    main()
