"""The per-producer command rate limit (rate_limits.py) on its own."""

from __future__ import annotations

import pytest

from dspyops.rate_limits import CommandRateLimit, parse_rates
from dspyops.settings import Settings


def test_a_producer_over_its_rate_is_refused_with_the_wait_and_the_others_go_on() -> None:
    limit = CommandRateLimit("3/minute")
    assert [limit.admission(f"a{i}", "urn:a", None) for i in range(3)] == [[], [], []]
    (refusal,) = limit.admission("a3", "urn:a", None)
    assert (refusal["loc"], refusal["type"]) == (["source"], "rate_limited")
    assert refusal["ctx"]["limit"] == "3 per 1 minute"
    assert refusal["ctx"]["producer"] == "urn:a"
    assert 0 < refusal["ctx"]["retry_after_s"] <= 60
    assert "send again in" in refusal["msg"]
    # Another producer has a window of its own.
    assert limit.admission("b0", "urn:b", None) == []


def test_an_id_admitted_before_is_admitted_again_without_counting() -> None:
    limit = CommandRateLimit("2/minute")
    assert limit.admission("a0", "urn:a", None) == []
    for _ in range(5):  # a conflict retried, a budget wait: the same command again
        assert limit.admission("a0", "urn:a", None) == []
    assert limit.admission("a1", "urn:a", None) == []
    assert limit.admission("a2", "urn:a", None) != []


def test_by_actor_and_every_rate_of_several() -> None:
    limit = CommandRateLimit("5/minute;2/second", key="actor")
    assert limit.admission("1", "urn:same", "ann") == []
    assert limit.admission("2", "urn:same", "ann") == []
    (refusal,) = limit.admission("3", "urn:same", "ann")
    assert (refusal["loc"], refusal["ctx"]["limit"]) == (["actor"], "2 per 1 second")
    assert limit.admission("4", "urn:same", "bob") == []
    assert limit.admission("5", "urn:same", None) == []  # unnamed: a bucket of its own


def test_a_rate_that_does_not_parse_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"'lots' is not a rate limit: write e\.g\. '100/second'"):
        parse_rates("lots")
    with pytest.raises(ValueError, match="is not a rate limit"):
        Settings(command_rate_limit="100 per fortnight")
    assert Settings(command_rate_limit="100/second").command_rate_limit == "100/second"
    assert Settings(command_rate_limit="").command_rate_limit is None  # blank: no limit
