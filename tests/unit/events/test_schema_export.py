"""The exported JSON Schemas and AsyncAPI document match the models and hold together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dspyops.events.codec import Undecodable, encode
from dspyops.events.commands import (
    COMMAND_TYPES,
    EXECUTION_COMMANDS,
    GATED_COMMANDS,
    OPTIMIZATION_COMMANDS,
)
from dspyops.events.deadletter import DEADLETTER_TYPE, Undeliverable, deadletter_envelope
from dspyops.events.envelope import Envelope, command_envelope, result_envelope
from dspyops.events.results import RESULT_TYPES
from dspyops.events.schema_export import (
    ASYNCAPI_FILE,
    JSON_SCHEMA_DIALECT,
    TERMINAL_KEYWORD,
    asyncapi_document,
    export_schemas,
)
from dspyops.events.topics import Topics


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("schemas")
    export_schemas(out, topics=Topics())
    return out


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _validator(exported: Path, relative: str) -> Draft202012Validator:
    schema = _load(exported / relative)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _wire(envelope: Envelope) -> Any:
    return json.loads(encode(envelope))


def _without_defs(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "$defs"}


def test_writes_one_file_per_message_type(tmp_path):
    written = export_schemas(tmp_path, topics=Topics())
    expected = {
        "envelope.json",
        "deadletter/Undeliverable.json",
        ASYNCAPI_FILE,
        *(f"commands/{n}.json" for n in COMMAND_TYPES),
        *(f"results/{n}.json" for n in RESULT_TYPES),
    }
    assert {p.relative_to(tmp_path).as_posix() for p in written} == expected
    assert all(p.is_file() for p in written)


def test_output_is_deterministic(tmp_path):
    first = export_schemas(tmp_path / "a", topics=Topics())
    second = export_schemas(tmp_path / "b", topics=Topics())
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    text = (tmp_path / "a" / ASYNCAPI_FILE).read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", sorted(COMMAND_TYPES))
def test_command_schema_matches_model(exported, name):
    schema = _load(exported / "commands" / f"{name}.json")
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["properties"]["type"]["const"] == f"dspyops.command.{name}"
    assert schema["properties"]["data"] == {"$ref": f"#/$defs/{name}"}
    assert {"id", "type", "data"} <= set(schema["required"])
    model_schema = COMMAND_TYPES[name].model_json_schema()
    assert schema["$defs"][name] == _without_defs(model_schema)
    for def_name, definition in model_schema.get("$defs", {}).items():
        assert schema["$defs"][def_name] == definition


@pytest.mark.parametrize("name", sorted(RESULT_TYPES))
def test_result_schema_matches_model(exported, name):
    schema = _load(exported / "results" / f"{name}.json")
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["type"]["const"] == f"dspyops.result.{name}"
    assert schema["$defs"][name] == _without_defs(RESULT_TYPES[name].model_json_schema())
    assert schema[TERMINAL_KEYWORD] is RESULT_TYPES[name].terminal


_COMMAND_SAMPLES: dict[str, dict[str, Any]] = {
    "RegisterProgram": {"name": "qa", "signature": "question: str -> answer: str"},
    "UpdateProgram": {"program_id": "qa", "instructions": "Be brief."},
    "TrainProgram": {"program_id": "qa"},
    "DeployProgram": {
        "program_id": "qa",
        "version": 2,
        "gate": {"dataset_id": "qa-set", "metric": "exact_match", "min_delta": 0.02},
    },
    "RollbackProgram": {"program_id": "qa", "version": 1},
    "SetBudget": {"program_id": "qa", "usd_per_day": 5.0, "executions_per_minute": 600},
    "SetOnlineEvaluation": {"program_id": "qa", "judge": "grader", "sample_percent": 5.0},
    "SetAlias": {"program_id": "qa", "alias": "canary", "version": 3, "reason": "try v3"},
    "CancelGate": {"program_id": "qa", "command_id": "deploy-7"},
    "SetTrafficSplit": {
        "program_id": "qa",
        "weights": {"2": 90, "3": 10},
        "guard": {"max_error_rate": 0.2, "window": 50},
        "gate": {"dataset_id": "qa-set", "min_delta": 0.0},
    },
    "RemoveAlias": {"program_id": "qa", "alias": "canary"},
    "DeprecateProgram": {"program_id": "qa"},
    "RegisterDataset": {"name": "qa-set", "examples": [{"question": "q", "answer": "a"}]},
    "AppendExamples": {"dataset_id": "qa-set", "examples": [{"question": "q", "answer": "a"}]},
    "PromoteExecutions": {"dataset_id": "qa-set", "execution_ids": ["run-1", "run-2"]},
    "RegisterCorpus": {"name": "wiki", "documents": [{"id": "p1", "text": "Paris is in France."}]},
    "AppendDocuments": {
        "corpus_id": "wiki",
        "documents": [{"id": "p2", "text": "Lyon too.", "metadata": {"source": "atlas"}}],
    },
    "RemoveDocuments": {"corpus_id": "wiki", "document_ids": ["p1"]},
    "ExecuteProgram": {"program_id": "qa", "inputs": {"question": "why?"}, "alias": "canary"},
    "OptimizeProgram": {"program_id": "qa", "dataset_id": "qa-set"},
    "EvaluateProgram": {"program_id": "qa", "dataset_id": "qa-set"},
    "CancelOptimization": {"program_id": "qa", "optimization_id": "opt-1"},
    "RecordFeedback": {
        "execution_id": "run-1",
        "score": 0.5,
        "corrected_outputs": {"answer": "Paris"},
    },
}


def test_every_command_has_a_sample():
    assert set(_COMMAND_SAMPLES) == set(COMMAND_TYPES)


@pytest.mark.parametrize("name", sorted(COMMAND_TYPES))
def test_valid_commands_pass_and_bad_ones_fail(exported, name):
    validator = _validator(exported, f"commands/{name}.json")
    data = _COMMAND_SAMPLES[name]
    COMMAND_TYPES[name].model_validate(data)
    wire = _wire(command_envelope(name, data, actor="alice"))
    assert list(validator.iter_errors(wire)) == []
    assert not validator.is_valid({**wire, "data": {**data, "unknown_field": 1}})
    assert not validator.is_valid({**wire, "type": "dspyops.command.Other"})
    assert not validator.is_valid({k: v for k, v in wire.items() if k != "data"})
    assert not validator.is_valid({**wire, "specversion": "0.3"})


def test_results_and_dead_letters_validate(exported):
    cmd = command_envelope("ExecuteProgram", _COMMAND_SAMPLES["ExecuteProgram"])
    succeeded = result_envelope(
        cmd,
        "ExecutionSucceeded",
        {
            "execution_id": "e1",
            "program_id": "qa",
            "version": 1,
            "outputs": {"answer": "because"},
            "latency_ms": 1.5,
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            "model": "offline",
            "offline": True,
        },
        subject="qa",
    )
    rejected = result_envelope(
        cmd,
        "CommandRejected",
        {
            "command_type": "ExecuteProgram",
            "errors": [{"loc": ["data", "program_id"], "msg": "unknown", "type": "not_found"}],
        },
        subject="qa",
    )
    assert _validator(exported, "results/ExecutionSucceeded.json").is_valid(_wire(succeeded))
    assert _validator(exported, "results/CommandRejected.json").is_valid(_wire(rejected))
    assert _validator(exported, "envelope.json").is_valid(_wire(rejected))
    assert not _validator(exported, "results/CommandRejected.json").is_valid(_wire(succeeded))

    letter = deadletter_envelope(
        b"\xff", key=None, topic="t", partition=0, offset=1, error=Undecodable("not_json", "x")
    )
    assert letter.type == DEADLETTER_TYPE
    Undeliverable.model_validate(letter.data)
    assert _validator(exported, "deadletter/Undeliverable.json").is_valid(_wire(letter))


# ---- AsyncAPI -----------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(document: Any, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.fixture(scope="module")
def asyncapi(exported: Path) -> dict[str, Any]:
    return _load(exported / ASYNCAPI_FILE)


def test_asyncapi_top_level(asyncapi):
    assert asyncapi["asyncapi"] == "3.0.0"
    assert {"info", "servers", "channels", "operations", "components"} <= set(asyncapi)
    assert asyncapi["info"]["title"]
    assert asyncapi["info"]["version"]
    server = asyncapi["servers"]["kafka"]
    assert server["protocol"] == "kafka"
    assert server["host"] == "{bootstrap}"
    assert "default" in server["variables"]["bootstrap"]


def test_every_ref_resolves(asyncapi):
    refs = _refs(asyncapi)
    assert len(refs) > 100
    for ref in refs:
        _resolve(asyncapi, ref)


def test_channels_are_the_topics(asyncapi):
    topics = Topics()
    addresses = {c["address"] for c in asyncapi["channels"].values()}
    assert addresses == set(topics.all)


def _messages_on(asyncapi: dict[str, Any], address: str) -> set[str]:
    (channel,) = [c for c in asyncapi["channels"].values() if c["address"] == address]
    return {_resolve(asyncapi, m["$ref"])["name"] for m in channel["messages"].values()}


def test_every_command_is_on_its_topic(asyncapi):
    topics = Topics()
    assert _messages_on(asyncapi, topics.executions) == {c.__name__ for c in EXECUTION_COMMANDS}
    # A gated command (DeployProgram, SetTrafficSplit with a gate) travels with the runs;
    # without, it is a program command.
    assert _messages_on(asyncapi, topics.optimizations) == {
        c.__name__ for c in (*OPTIMIZATION_COMMANDS, *GATED_COMMANDS)
    }
    assert {c.__name__ for c in GATED_COMMANDS} <= _messages_on(asyncapi, topics.programs)
    on_commands = set().union(*(_messages_on(asyncapi, t) for t in topics.commands))
    assert on_commands == set(COMMAND_TYPES)


def test_every_result_is_on_the_results_topic(asyncapi):
    assert _messages_on(asyncapi, Topics().results) == set(RESULT_TYPES)
    assert _messages_on(asyncapi, Topics().deadletter) == {"Undeliverable"}


def test_operations_send_commands_and_receive_the_rest(asyncapi):
    topics = Topics()
    actions: dict[str, str] = {}
    for op in asyncapi["operations"].values():
        channel = _resolve(asyncapi, op["channel"]["$ref"])
        actions[channel["address"]] = op["action"]
        for message in op["messages"]:
            assert message["$ref"].startswith(op["channel"]["$ref"] + "/messages/")
    assert actions == {t: "send" if t in topics.commands else "receive" for t in topics.all}


def test_messages_describe_key_and_payload(asyncapi):
    for name, message in asyncapi["components"]["messages"].items():
        assert message["name"] == name
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        payload = _resolve(asyncapi, message["payload"]["$ref"])
        assert payload["type"] == "object"
        assert "$schema" not in payload


def test_component_schemas_validate_like_the_files(asyncapi, exported):
    # The hoisted component validates the same sample as the standalone file.
    data = _COMMAND_SAMPLES["RegisterDataset"]
    wire = _wire(command_envelope("RegisterDataset", data))
    schema = {"$ref": "#/components/schemas/RegisterDatasetEnvelope", **asyncapi}
    validator = Draft202012Validator(schema)
    assert validator.is_valid(wire)
    assert not validator.is_valid({**wire, "data": {"name": ""}})


def test_prefix_is_used_in_addresses():
    document = asyncapi_document(Topics(prefix="acme.dspy."))
    addresses = {c["address"] for c in document["channels"].values()}
    assert "acme.dspy.commands.programs" in addresses
    assert all(a.startswith("acme.dspy.") for a in addresses)
