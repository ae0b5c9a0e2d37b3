"""KRaft cluster ids that the storage tool's argument parser always accepts."""

from __future__ import annotations

import base64
import uuid

import pytest

from dspyops.cli.infra import kafka


def test_cluster_id_is_16_bytes_of_url_safe_base64() -> None:
    cluster_id = kafka.new_cluster_id()
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_an_id_starting_with_a_dash_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xf8 as the first byte encodes to '-' in URL-safe base64.
    dash_first = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15)
    plain = uuid.UUID(bytes=b"\x10" * 16)
    draws = iter([dash_first, dash_first, plain])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    cluster_id = kafka.new_cluster_id()
    assert not cluster_id.startswith("-")
    assert base64.urlsafe_b64decode(cluster_id + "==") == plain.bytes
