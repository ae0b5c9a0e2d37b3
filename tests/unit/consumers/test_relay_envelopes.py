"""The CloudEvent the relay publishes for a stored event: keyed by its aggregate, with the
user-facing id (program, dataset, corpus, ...) as its subject."""

from __future__ import annotations

from typing import Any

from dspyops.aggregates.app import CommandContext, DspyOps, handle
from dspyops.aggregates.app.persistence import in_memory_env
from dspyops.consumers.relay import event_envelope
from dspyops.events.commands import Document, RegisterCorpus, RegisterDataset


def test_events_name_their_corpus_or_dataset_as_subject() -> None:
    app = DspyOps(in_memory_env())
    corpus = RegisterCorpus(corpus_id="facts", name="f", documents=[Document(id="d", text="x")])
    handle(app, corpus, CommandContext(command_id="c1", correlation_id="c1"))
    dataset = RegisterDataset(dataset_id="golden", name="g", examples=[{"q": "a"}])
    handle(app, dataset, CommandContext(command_id="c2", correlation_id="c2"))
    published = {}
    for notification in app.notification_log.select(start=1, limit=10):
        key, envelope = event_envelope(app, notification)
        assert key == str(notification.originator_id)
        published[envelope.type] = envelope.subject
    assert published["dspyops.event.Corpus.Registered"] == "facts"
    assert published["dspyops.event.Dataset.Registered"] == "golden"


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_an_event_goes_out_with_the_trace_context_of_the_command_that_recorded_it() -> None:
    app = DspyOps(in_memory_env())
    traced = CommandContext(
        command_id="c1", correlation_id="c1", traceparent=TRACEPARENT, tracestate="v=1"
    )
    handle(app, RegisterDataset(dataset_id="traced", name="t", examples=[{"q": "a"}]), traced)
    # Without a context (tracing off, none sent), and as every event stored before.
    plain = CommandContext(command_id="c2", correlation_id="c2")
    handle(app, RegisterDataset(dataset_id="plain", name="p", examples=[{"q": "a"}]), plain)
    envelopes = [event_envelope(app, n)[1] for n in app.notification_log.select(start=1, limit=10)]
    by_command: dict[str, list[dict[str, Any]]] = {}
    for envelope in envelopes:
        by_command.setdefault(str(envelope.causationid), []).append(envelope.model_dump())
    # The dataset's event and the command's handled record, each with the context.
    assert len(by_command["c1"]) == 2
    for sent in by_command["c1"]:
        assert (sent["traceparent"], sent["tracestate"]) == (TRACEPARENT, "v=1")
        assert "traceparent" not in sent["data"]
        assert "tracestate" not in sent["data"]
    for sent in by_command["c2"]:
        assert "traceparent" not in sent
        assert "tracestate" not in sent
    # Kept in the stored event's state, which still loads as the aggregate it was.
    assert app.dataset("traced").version == app.dataset("plain").version == 1
