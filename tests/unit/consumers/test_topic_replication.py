"""How many replicas dspyops gives its topics, from the cluster's size and the settings."""

from __future__ import annotations

import pytest

from dspyops.consumers.topic_admin import Replication, TopicLayoutError
from dspyops.settings import Settings


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))]
)
def test_unset_replication_fits_the_cluster(brokers: int, expected: tuple[int, int]) -> None:
    assert Replication().for_brokers(brokers) == expected


def test_settings_override_the_cluster_size() -> None:
    settings = Settings.model_validate(
        {"topic_replication_factor": 5, "topic_min_insync_replicas": 3}
    )
    assert Replication.of(settings).for_brokers(3) == (5, 3)
    assert Replication(factor=2).for_brokers(3) == (2, 1)
    assert Replication(min_insync=1).for_brokers(3) == (3, 1)


def test_more_insync_replicas_than_replicas_is_refused() -> None:
    with pytest.raises(TopicLayoutError, match="no write could ever succeed"):
        Replication(factor=1, min_insync=2).for_brokers(3)
