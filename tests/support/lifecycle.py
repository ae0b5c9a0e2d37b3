"""The program lifecycle as the tests expect it, shared by the aggregate and service tests."""

from __future__ import annotations

# The lifecycle table of aggregates/program.py, written out rather than derived from the
# code's table so a wrong table fails here. Missing pairs are forbidden. A program keeps
# improving: it is optimized, evaluated and deployed again from any status but deprecated;
# "deployed" stays once a version serves. Deploy and rollback also check the version
# (tests/unit/aggregates/test_program.py).
ALLOWED: dict[tuple[str, str], str] = {
    ("draft", "train"): "training",
    ("draft", "optimize"): "optimized",
    ("draft", "evaluate"): "draft",
    ("draft", "update"): "draft",
    ("draft", "deploy"): "deployed",
    ("training", "optimize"): "optimized",
    ("training", "evaluate"): "training",
    ("training", "update"): "training",
    ("training", "deploy"): "deployed",
    ("optimized", "optimize"): "optimized",
    ("optimized", "evaluate"): "optimized",
    ("optimized", "deploy"): "deployed",
    ("optimized", "deprecate"): "deprecated",
    ("optimized", "update"): "optimized",
    ("deployed", "optimize"): "deployed",
    ("deployed", "evaluate"): "deployed",
    ("deployed", "deploy"): "deployed",
    ("deployed", "rollback"): "deployed",
    ("deployed", "deprecate"): "deprecated",
    ("deployed", "update"): "deployed",
}
