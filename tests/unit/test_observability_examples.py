"""examples/observability stays true: the dashboard queries only metrics dspyops exposes,
and the scrape config points at the ports the settings default to."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import yaml

from dspyops import metrics
from dspyops.api.routes.prometheus import SCRAPED
from dspyops.events.codec import UndecodableCode
from dspyops.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "observability"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exposed() -> set[str]:
    """Every sample name the worker, projector and API can expose."""
    names = set(SCRAPED)
    for registry in (metrics.WORKER, metrics.PROJECTOR, metrics.API):
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def test_every_metric_the_dashboard_queries_is_exposed() -> None:
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queried = {name for expr in exprs for name in re.findall(r"\bdspyops_[a-z_]+", expr)}
    assert len(queried) >= 12
    assert queried <= exposed(), queried - exposed()


def test_every_query_names_its_series() -> None:
    # A legend per query: Grafana and scripts/observability-screenshots name series by it.
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        assert all(target.get("legendFormat") for target in panel["targets"]), panel["title"]


def test_every_dead_letter_reason_is_served_before_the_first() -> None:
    # Served (at 0 until one comes) from the start, so increase() counts the first one.
    for reason in get_args(UndecodableCode):
        labels = {"reason": reason}
        assert metrics.WORKER.get_sample_value("dspyops_dead_letters_total", labels) is not None


def test_the_names_follow_the_convention() -> None:
    # process_* (CPU, memory) are prometheus-client's own, named as every exporter does.
    for name in exposed() - {n for n in exposed() if n.startswith("process_")}:
        assert name.startswith("dspyops_")
        assert name == name.lower()


def test_the_scrape_config_uses_the_default_ports() -> None:
    config = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    settings = Settings()
    assert targets == {
        "dspyops-worker": f"{settings.metrics_host}:{settings.worker_metrics_port}",
        "dspyops-projector": f"{settings.metrics_host}:{settings.projector_metrics_port}",
        "dspyops-api": f"{settings.api_host}:{settings.api_port}",
    }
