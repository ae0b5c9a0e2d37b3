"""A command's W3C trace context is carried on (and stored with its events) only when it
is well formed; anything else a producer sends is dropped as if none had come."""

from __future__ import annotations

import pytest

from dspyops.consumers.records import Incoming
from dspyops.consumers.telemetry import traceparent_of, tracestate_of
from dspyops.events.envelope import Envelope
from tests.support.kafka import command

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def _command(**extensions: str) -> Envelope:
    envelope = command("DeprecateProgram", {"program_id": "p"})
    return envelope.model_copy(update=extensions)


def _record(traceparent: str | None = None, tracestate: str | None = None) -> Incoming:
    return Incoming("t", 0, 0, None, b"{}", traceparent, tracestate)


def test_a_well_formed_context_is_carried_on_from_the_envelope_or_the_record() -> None:
    assert traceparent_of(_command(traceparent=GOOD)) == GOOD
    assert traceparent_of(_command(), _record(GOOD)) == GOOD
    assert tracestate_of(_command(tracestate=STATE)) == STATE
    assert tracestate_of(_command(), _record(tracestate=STATE)) == STATE


@pytest.mark.parametrize(
    "traceparent",
    [
        "junk",
        "x" * 2_500_000,  # a megabyte header would be stored in every event
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # an all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # an all-zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        GOOD.upper(),
    ],
)
def test_a_malformed_traceparent_is_dropped(traceparent: str) -> None:
    assert traceparent_of(_command(traceparent=traceparent)) is None
    assert traceparent_of(_command(), _record(traceparent)) is None


@pytest.mark.parametrize("tracestate", ["not a state!!", "a=" + "b" * 600, "=,=,="])
def test_a_malformed_tracestate_is_dropped(tracestate: str) -> None:
    assert tracestate_of(_command(tracestate=tracestate)) is None
    assert tracestate_of(_command(), _record(tracestate=tracestate)) is None
