"""Traffic splits: the executions addressed to an alias shared between versions by weight.

A split is a list of arms (`{"version", "percent"}`, percents summing to 100, ordered by
version) on one alias; the version the alias points at is always one of them (the
control arm). An execution goes to the arm its routing key hashes into: the hash is
stable (SHA-256 of program, alias and key, not Python's salted `hash`), so one user keeps
one version for as long as the split holds, in every worker and after every restart.
Only the bucket is recorded with the execution, never the key (it may name a person).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TypedDict

from dspyops.aggregates.errors import InvalidInput, NotFound, error

# Buckets a routing key hashes into: percents map to 100 buckets each, and 10,000 keeps
# the rounding of a hash into buckets far below the ±2 % a split is held to.
BUCKETS = 10_000


class Arm(TypedDict):
    version: int
    percent: int


def bucket_of(program_id: str, alias: str, routing_key: str) -> int:
    """The routing key's bucket, 0..BUCKETS-1, the same everywhere and always."""
    digest = hashlib.sha256(f"{program_id}\x00{alias}\x00{routing_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def arm_for(arms: list[Arm], bucket: int) -> int:
    """The version whose share of the buckets holds `bucket` (arms in version order)."""
    edge = 0
    for arm in arms:
        edge += arm["percent"] * (BUCKETS // 100)
        if bucket < edge:
            return arm["version"]
    raise ValueError(f"bucket {bucket} is outside a split summing to {edge // 100} %")


def checked_arms(weights: Mapping[str, int], latest_version: int, control: int) -> list[Arm]:
    """`weights` ({"<version>": percent}) as arms; InvalidInput or NotFound naming the
    weight at fault. The command's schema checked the keys' form and each percent."""
    problems = []
    arms: list[Arm] = []
    for key, percent in weights.items():
        version = int(key)
        if version > latest_version:
            raise NotFound(
                f"there is no version {version} (versions 1..{latest_version})",
                loc=["weights", key],
            )
        arms.append({"version": version, "percent": percent})
    total = sum(arm["percent"] for arm in arms)
    if total != 100:
        problems.append(error(["weights"], f"weights sum to {total}, not 100", "invalid_input"))
    if all(arm["version"] != control for arm in arms):
        problems.append(
            error(
                ["weights"],
                f"a split includes the version its alias points at ({control}): the control "
                "arm, which takes the weight of an arm the guard removes",
                "invalid_input",
            )
        )
    if problems:
        raise InvalidInput(errors=problems)
    return sorted(arms, key=lambda arm: arm["version"])


def describe(arms: list[Arm]) -> str:
    """`v2 90 % / v3 10 %`: a split as people read it."""
    return " / ".join(f"v{arm['version']} {arm['percent']} %" for arm in arms)


def without_arm(arms: list[Arm], version: int, control: int) -> list[Arm]:
    """The split once `version` is taken out: its percent goes to the control arm."""
    removed = next(arm["percent"] for arm in arms if arm["version"] == version)
    return [
        {"version": arm["version"], "percent": arm["percent"] + removed}
        if arm["version"] == control
        else arm
        for arm in arms
        if arm["version"] != version
    ]
