"""The CloudEvent the relay publishes for a stored event: keyed by its aggregate, with the
user-facing id (program, dataset, corpus, ...) as its subject."""

from __future__ import annotations

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
