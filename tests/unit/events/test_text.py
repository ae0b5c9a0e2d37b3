"""Every text field of every command refuses NUL and lone surrogates, with its path.

The fields come from the commands' own JSON Schemas, so a command or field added later
is covered without editing this test; `VALID` needs one valid payload per command.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from dspyops.events.codec import InvalidCommand, decode_command, decode_envelope, encode
from dspyops.events.commands import COMMAND_TYPES
from dspyops.events.envelope import command_envelope
from dspyops.events.text import clean, refused_text, storable, text_problem

VALID: dict[str, dict[str, Any]] = {
    "RegisterProgram": {"name": "n", "signature": "q: str -> a: str"},
    "UpdateProgram": {"program_id": "p", "description": "d"},
    "TrainProgram": {"program_id": "p"},
    "DeployProgram": {
        "program_id": "p",
        "version": 1,
        "gate": {"dataset_id": "d", "metric": "exact_match", "min_delta": 0.02, "split": "dev"},
    },
    "RollbackProgram": {"program_id": "p", "version": 1},
    "SetBudget": {"program_id": "p", "usd_per_day": 2.5, "reason": "r"},
    "SetOnlineEvaluation": {"program_id": "p", "judge": "g@production", "reason": "r"},
    "SetAlias": {"program_id": "p", "alias": "staging", "version": 1, "reason": "r"},
    "SetTrafficSplit": {"program_id": "p", "weights": {"1": 90, "2": 10}, "reason": "r"},
    "CancelGate": {"program_id": "p", "command_id": "c"},
    "RemoveAlias": {"program_id": "p", "alias": "staging", "reason": "r"},
    "DeprecateProgram": {"program_id": "p"},
    "RegisterDataset": {"name": "d", "examples": [{"q": "x"}]},
    "AppendExamples": {"dataset_id": "d", "examples": [{"q": "x"}]},
    "PromoteExecutions": {"dataset_id": "d", "execution_ids": ["e1", "e2"]},
    "RegisterCorpus": {"name": "c", "documents": [{"id": "d1", "text": "x"}]},
    "AppendDocuments": {"corpus_id": "c", "documents": [{"id": "d2", "text": "y"}]},
    "RemoveDocuments": {"corpus_id": "c", "document_ids": ["d1"]},
    "ExecuteProgram": {"program_id": "p", "inputs": {"q": "x"}, "alias": "canary"},
    "OptimizeProgram": {"program_id": "p", "dataset_id": "d"},
    "EvaluateProgram": {"program_id": "p", "dataset_id": "d"},
    "CancelOptimization": {"program_id": "p", "optimization_id": "o"},
    "RecordFeedback": {"execution_id": "e", "score": 0.5, "label": "l", "comment": "c"},
}
BAD = {"nul": "a\u0000b", "surrogate": "a\ud800b"}


def _kinds(schema: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    if "$ref" in schema:
        return _kinds(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    kinds = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for option in schema.get("anyOf", []):
        kinds |= _kinds(option, defs)
    return kinds


def injections(name: str) -> Iterator[tuple[str, dict[str, Any], list[str | int]]]:
    """(label, data with one bad string, the loc the rejection must name)."""
    schema = COMMAND_TYPES[name].model_json_schema()
    defs = schema.get("$defs", {})
    for field, spec in schema["properties"].items():
        kinds = _kinds(spec, defs)
        for label, bad in BAD.items():
            base = dict(VALID[name])
            if "string" in kinds:
                yield f"{field}={label}", {**base, field: bad}, ["data", field]
            if "object" in kinds:
                yield f"{field}.value={label}", {**base, field: {"k": bad}}, ["data", field, "k"]
                key = bad.encode("unicode_escape").decode("ascii")
                yield f"{field}.key={label}", {**base, field: {bad: "v"}}, ["data", field, key]
            if "array" in kinds:
                loc: list[str | int] = ["data", field, 0, "k"]
                yield f"{field}[0].k={label}", {**base, field: [{"k": bad}]}, loc


CASES = [(name, *case) for name in COMMAND_TYPES for case in injections(name)]


def test_every_command_has_a_valid_payload_here_and_text_fields_to_try() -> None:
    assert set(VALID) == set(COMMAND_TYPES)
    for name, data in VALID.items():
        decode_command(command_envelope(name, data))
    assert {name for name, *_ in CASES} == set(COMMAND_TYPES)


@pytest.mark.parametrize(
    ("name", "label", "data", "loc"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_refused_text_in_any_field_is_rejected_with_that_field(
    name: str, label: str, data: dict[str, Any], loc: list[str | int]
) -> None:
    raw = json.dumps(json.loads(encode(command_envelope(name, {}))) | {"data": data}).encode()
    with pytest.raises(InvalidCommand) as info:
        decode_command(decode_envelope(raw))
    assert [(e.loc, e.type) for e in info.value.errors] == [(loc, "invalid_text")]


def test_the_rule_and_its_repair() -> None:
    assert text_problem("emoji 🙂, tab\t, bell\x07, é") is None
    assert "NUL" in (text_problem("\x00") or "")
    assert "surrogate" in (text_problem("\udc80") or "")
    assert clean("a\x00b\ud800c") == "a\ufffdb\ufffdc"
    assert storable({"k\x00": ["\ud800", 1, None]}) == {"k\ufffd": ["\ufffd", 1, None]}
    assert storable({"x": [float("nan"), float("inf"), 0.5]}) == {"x": [None, None, 0.5]}
    assert list(refused_text({"a": ["ok", "\x00"]})) == [(("a", 1), text_problem("\x00"))]
