"""The program lifecycle as the tests expect it, shared by the aggregate and service tests."""

from __future__ import annotations

# The seed's state machine plus update/rollback, written out rather than derived from the
# code's table so a wrong table fails here. Missing pairs are forbidden.
ALLOWED: dict[tuple[str, str], str] = {
    ("draft", "train"): "training",
    ("draft", "optimize"): "optimized",
    ("draft", "update"): "draft",
    ("training", "optimize"): "optimized",
    ("training", "update"): "training",
    ("optimized", "deploy"): "deployed",
    ("optimized", "deprecate"): "deprecated",
    ("optimized", "update"): "optimized",
    ("deployed", "rollback"): "deployed",
    ("deployed", "deprecate"): "deprecated",
    ("deployed", "update"): "deployed",
}
