"""Program budgets: whether one more execution may start, decided against what all workers
have admitted so far.

A program's budget (`SetBudget`) limits its executions to US dollars per UTC day and to
executions per minute (any 60 seconds). An execution's cost is known only once it ends,
so admitting one *reserves* an estimate of it: the highest cost among the program's
latest finished executions. An execution starts only if what is spent today, plus the
estimates of those still running, plus its own estimate stays within the day's dollars:
with 200 in flight the day ends over budget only by what executions cost above the
estimate. While no execution has ended yet, executions start one at a time until one
ends and gives the estimate. Executions of a model without a known price cost nothing
here.

The `SpendLedger` holds the reservations for every worker (PostgreSQL in production:
`dspyops.spend_ledger`); `InMemoryLedger` serves the in-memory store of the unit tests.
The decision itself (`refusal`) is here, the same for both.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from dspyops.aggregates.errors import DomainError

BUDGET_EXCEEDED = "budget_exceeded"
MINUTE = timedelta(seconds=60)
# Costs of the latest finished executions the estimate is the highest of.
ESTIMATE_WINDOW = 20
# A reservation not settled after this long belongs to an execution whose worker died
# (its redelivery re-admits it under the same id): its estimate still counts, but it no
# longer holds back a program whose cost is not known yet. Executions time out sooner.
STALE_AFTER = timedelta(minutes=2)


class BudgetExceeded(DomainError):
    error_type = BUDGET_EXCEEDED


@dataclass(frozen=True)
class Spend:
    """What a program's executions have taken, as one worker sees it at admission."""

    now: datetime
    # Executions admitted in the last 60 seconds, and when the oldest of them was.
    last_minute: int = 0
    oldest_in_minute: datetime | None = None
    # US dollars of today's (UTC) finished executions, and today's running estimates.
    usd_today: float = 0.0
    usd_reserved: float = 0.0
    # Running executions admitted before any had ended, and executions ended so far.
    unestimated_running: int = 0
    ended: int = 0
    # The cost one more execution is expected to have; None while none is known.
    estimate: float | None = None


class ReservedByAnother(Exception):
    """The execution id is reserved by another command (one reusing it while it runs)."""

    def __init__(self, command_id: str) -> None:
        super().__init__(command_id)
        self.command_id = command_id


class Wait(Exception):
    """Not refused, but not yet: plan the command again when a running execution has
    ended. The worker waits without holding a thread (`consumers.processing`); the wait
    is bounded by STALE_AFTER, after which the running execution no longer counts."""


def refusal(budget: dict[str, Any], program_id: str, spend: Spend) -> BudgetExceeded | None:
    """Why one more execution of `program_id` may not start now; None if it may.

    Raises `Wait` while the program's cost is unknown and one execution is running.
    """
    per_minute = budget.get("executions_per_minute")
    if per_minute is not None and spend.last_minute >= per_minute:
        oldest = spend.oldest_in_minute or spend.now
        retry_after = max(0.0, (oldest + MINUTE - spend.now).total_seconds())
        return BudgetExceeded(
            errors=[
                {
                    "loc": ["program_id"],
                    "msg": f"program {program_id!r} started {spend.last_minute} "
                    f"execution{'' if spend.last_minute == 1 else 's'} in the last minute, "
                    f"its budget allows {per_minute} per minute; "
                    f"retry after {math.ceil(retry_after)} s",
                    "type": BUDGET_EXCEEDED,
                    "ctx": {
                        "limit": "executions_per_minute",
                        "spent": spend.last_minute,
                        "allowed": per_minute,
                        "retry_after_s": round(retry_after, 3),
                    },
                }
            ]
        )
    per_day = budget.get("usd_per_day")
    if per_day is None:
        return None
    # No execution ended yet, so no estimate: one at a time until the first ends. (Once
    # some ended without a known price, the dollars cannot be counted; nothing waits.)
    if spend.estimate is None and not spend.ended and spend.unestimated_running:
        raise Wait(program_id)
    committed = spend.usd_today + spend.usd_reserved
    if committed + (spend.estimate or 0.0) <= per_day:
        return None
    day = spend.now.astimezone(UTC).date().isoformat()
    return BudgetExceeded(
        errors=[
            {
                "loc": ["program_id"],
                "msg": f"program {program_id!r} has spent ${spend.usd_today:.6f} on "
                f"{day} (UTC) and ${spend.usd_reserved:.6f} is running; one more "
                f"execution (about ${spend.estimate or 0.0:.6f}) would pass its budget "
                f"of ${per_day:.6f} per day",
                "type": BUDGET_EXCEEDED,
                "ctx": {
                    "limit": "usd_per_day",
                    "spent": round(spend.usd_today, 9),
                    "running": round(spend.usd_reserved, 9),
                    "estimate": None if spend.estimate is None else round(spend.estimate, 9),
                    "allowed": per_day,
                    "day": day,
                },
            }
        ]
    )


# The decision a ledger applies while it holds the program's lock: raises Wait, or
# returns the refusal (nothing reserved) or None (the execution is reserved).
Decide = Callable[[Spend], BudgetExceeded | None]


class SpendLedger(Protocol):
    def admit(
        self, program_id: str, execution_id: str, command_id: str, decide: Decide
    ) -> BudgetExceeded | None:
        """Reserve `execution_id` unless `decide` refuses (or raises `Wait`: nothing is
        reserved); an execution already reserved by this command (redelivered) is admitted
        again without counting twice; reserved by another, `ReservedByAnother`."""
        ...

    def settle(self, costs: Sequence[tuple[str, float | None]]) -> None:
        """The executions' real costs (None: unknown, not counted) replace their estimates."""
        ...

    def close(self) -> None: ...


@dataclass
class _Reservation:
    command_id: str
    program_id: str
    at: datetime
    estimate: float | None
    cost: float | None = None
    settled: bool = False


@dataclass
class InMemoryLedger:
    """The ledger of one process (the unit tests' in-memory store), same rules."""

    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _rows: dict[str, _Reservation] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(
        self, program_id: str, execution_id: str, command_id: str, decide: Decide
    ) -> BudgetExceeded | None:
        with self._lock:
            reserved = self._rows.get(execution_id)
            if reserved is not None:
                if reserved.command_id != command_id:
                    raise ReservedByAnother(reserved.command_id)
                return None
            spend = self._spend(program_id)
            refused = decide(spend)
            if refused is None:
                self._rows[execution_id] = _Reservation(
                    command_id, program_id, spend.now, spend.estimate
                )
            return refused

    def settle(self, costs: Sequence[tuple[str, float | None]]) -> None:
        with self._lock:
            for execution_id, cost in costs:
                row = self._rows.get(execution_id)
                if row is not None:
                    row.cost, row.settled = cost, True

    def close(self) -> None:
        pass

    def _spend(self, program_id: str) -> Spend:
        now = self.clock()
        day_start = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), UTC)
        rows = [row for row in self._rows.values() if row.program_id == program_id]
        minute = [row.at for row in rows if row.at > now - MINUTE]
        today = [row for row in rows if row.at >= day_start]
        priced = sorted(
            (row for row in rows if row.settled and row.cost is not None), key=lambda r: r.at
        )
        return Spend(
            now=now,
            last_minute=len(minute),
            oldest_in_minute=min(minute, default=None),
            usd_today=sum(row.cost or 0.0 for row in today if row.settled),
            usd_reserved=sum(row.estimate or 0.0 for row in today if not row.settled),
            unestimated_running=sum(
                1
                for row in rows
                if not row.settled and row.estimate is None and row.at > now - STALE_AFTER
            ),
            ended=sum(1 for row in rows if row.settled),
            estimate=max((row.cost or 0.0 for row in priced[-ESTIMATE_WINDOW:]), default=None),
        )
