"""The composition root: settings, the event store and the LM profiles, each opened one way.

The worker, the projector, the API, the benches and the tests get them here, so the
store is configured the same everywhere and a PostgreSQL schema is created in one place
(`create_schema`). The runtime (dspy) is imported only by what needs it: the worker's
checks and LM profiles; the projector and the API never load it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from dspyops.aggregates.app import Checks, DspyOps, eventsourcing_env
from dspyops.event_reads import select_many
from dspyops.settings import Settings
from dspyops.spend_ledger import PostgresLedger

if TYPE_CHECKING:
    from dspyops.runtime.profiles import ProfileRegistry

# Matches eventsourcing's PostgreSQL pool (POSTGRES_POOL_SIZE + max overflow): more
# threads than connections would only queue inside the pool.
STORE_THREADS = 10

__all__ = [
    "STORE_THREADS",
    "create_schema",
    "lm_profiles",
    "open_store",
    "open_worker_store",
    "worker_checks",
]


def create_schema(conn: psycopg.Connection, schema: str) -> None:
    """Create `schema` if missing: the one place dspyops issues CREATE SCHEMA."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def open_store(
    database_url: str,
    schema: str,
    *,
    checks: Checks | None = None,
    pool_size: int | None = None,
) -> DspyOps:
    """The event store in `schema` (created with its tables if missing)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, schema)
    env = eventsourcing_env(database_url, schema=schema)
    if pool_size is not None:
        env["POSTGRES_POOL_SIZE"] = str(pool_size)
    ledger = PostgresLedger(database_url, schema)
    return DspyOps(env, checks=checks, ledger=ledger, select_many=select_many)


def open_worker_store(settings: Settings, profiles: ProfileRegistry) -> DspyOps:
    """The event store as a worker opens it: its pool sized for its threads, runtime checks."""
    return open_store(
        settings.effective_database_url,
        settings.event_store_schema,
        checks=worker_checks(profiles, settings),
        pool_size=STORE_THREADS,
    )


def worker_checks(profiles: ProfileRegistry, settings: Settings | None = None) -> Checks:
    """What the worker checks for the domain before any LM call: optimizer configs and
    metric names when a run is planned, LM profile names when a program registers, and
    its producers' rate limit (from `settings`) on every command not handled before."""
    from dspyops.rate_limits import CommandRateLimit
    from dspyops.runtime.optimizers import validate_optimization
    from dspyops.runtime.scoring import validate_metric
    from dspyops.runtime.tools import check_tools

    admission = None
    if settings is not None and settings.command_rate_limit is not None:
        rates = CommandRateLimit(settings.command_rate_limit, settings.command_rate_limit_key)
        admission = rates.admission
    return Checks(
        admission=admission,
        optimization=validate_optimization,
        # Evaluations carry no config, only a metric name (with its `:field` suffix).
        metric=lambda metric: validate_metric(metric, {}),
        lm_profiles=frozenset(profiles.names()),
        tools=check_tools,
        plugin=_plugin_check,
    )


def _plugin_check(name: str, options: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Any]]:
    """A plugin module's problems, or what its program version records about it."""
    from dspyops.runtime.plugins import check_plugin, plugin_info

    errors = check_plugin(name, options, options_loc=("options",))
    if errors:
        return None, errors
    return dataclasses.asdict(plugin_info(name)), []


def lm_profiles(settings: Settings) -> ProfileRegistry:
    """The worker's LM profiles (DSPYOPS_LM_PROFILES); `offline` and `default` always exist."""
    from dspyops.runtime.profiles import ProfileRegistry

    return ProfileRegistry.from_settings(settings.lm_profiles)
