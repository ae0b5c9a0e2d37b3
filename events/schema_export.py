"""JSON Schemas and an AsyncAPI 3.0 document of the wire contract, generated from the models.

Teams in any language produce and consume from these files without reading our code.
Output is deterministic (sorted keys, fixed order), so it can be committed and diffed.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dspyops.events.commands import (
    COMMAND_TYPES,
    EXECUTION_COMMANDS,
    GATED_COMMANDS,
    OPTIMIZATION_COMMANDS,
)
from dspyops.events.deadletter import DEADLETTER_TYPE, Undeliverable
from dspyops.events.envelope import (
    COMMAND_TYPE_PREFIX,
    EVENT_TYPE_PREFIX,
    RESULT_TYPE_PREFIX,
    Envelope,
)
from dspyops.events.results import RESULT_TYPES
from dspyops.events.topics import Topics

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
CONTRACT_VERSION = "1.0.0"
ASYNCAPI_FILE = "asyncapi.json"
KAFKA_BINDING_VERSION = "0.5.0"
# Marks results that end a command (progress results do not); consumers wait for these.
TERMINAL_KEYWORD = "x-dspyops-terminal"

Schema = dict[str, Any]


# ---- JSON Schema per message type ----------------------------------------------------


def envelope_schema() -> Schema:
    """The envelope every message shares, `data` left open."""
    return {"$schema": JSON_SCHEMA_DIALECT, **Envelope.model_json_schema()}


def message_schema(type_: str, payload: type[BaseModel]) -> Schema:
    """The whole envelope of one message type: `type` fixed, `data` the payload's schema."""
    schema = Envelope.model_json_schema()
    payload_schema = payload.model_json_schema()
    defs: Schema = {**schema.pop("$defs", {}), **payload_schema.pop("$defs", {})}
    defs[payload.__name__] = payload_schema
    schema["$defs"] = defs
    schema["title"] = type_
    schema["description"] = _doc(payload) or f"A {type_} message."
    schema["properties"]["type"] = {"const": type_, "title": "Type", "type": "string"}
    schema["properties"]["data"] = {"$ref": f"#/$defs/{payload.__name__}"}
    schema["required"] = [*schema["required"], "data"]
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def command_schema(name: str) -> Schema:
    return message_schema(COMMAND_TYPE_PREFIX + name, COMMAND_TYPES[name])


def result_schema(name: str) -> Schema:
    cls = RESULT_TYPES[name]
    return {**message_schema(RESULT_TYPE_PREFIX + name, cls), TERMINAL_KEYWORD: cls.terminal}


def deadletter_schema() -> Schema:
    return message_schema(DEADLETTER_TYPE, Undeliverable)


def domain_event_schema() -> Schema:
    """Stored domain events: the envelope with a `dspyops.event.` type and open `data`."""
    schema = envelope_schema()
    schema["title"] = "Domain event"
    schema["description"] = "One stored domain event, relayed in store order."
    schema["properties"]["type"] = {
        "pattern": "^" + re.escape(EVENT_TYPE_PREFIX),
        "title": "Type",
        "type": "string",
    }
    return schema


def schema_files() -> dict[str, Schema]:
    """Relative path -> JSON Schema, for every message type."""
    files: dict[str, Schema] = {"envelope.json": envelope_schema()}
    files.update({f"commands/{name}.json": command_schema(name) for name in COMMAND_TYPES})
    files.update({f"results/{name}.json": result_schema(name) for name in RESULT_TYPES})
    files["deadletter/Undeliverable.json"] = deadletter_schema()
    return files


# ---- AsyncAPI ------------------------------------------------------------------------

# (channel id, topic attribute, what the key is, summary)
_CHANNELS = (
    ("programCommands", "programs",
     "the program id (the dataset id for dataset commands, the corpus id for corpus commands)",
     "Commands that change programs, datasets and corpora (DeployProgram and "
     "SetTrafficSplit without a gate)."),
    ("executionCommands", "executions", "the execution id (or the command id)",
     "Commands that run a program."),
    ("optimizationCommands", "optimizations", "the program id",
     "Commands that optimize or evaluate a program, and DeployProgram and "
     "SetTrafficSplit with a gate."),
    ("results", "results", "the correlation id",
     "Exactly one terminal result per command, and progress results for long jobs."),
    ("events", "events", "the aggregate id",
     "Every stored domain event, in store order (at least once)."),
    ("deadletter", "deadletter", "the original record's key",
     "Records that could not be decoded at all, with the reason."),
)  # fmt: skip


def asyncapi_document(topics: Topics) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every topic, seen from a client of dspyops."""
    schemas: Schema = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    channel_messages = _channel_messages()
    for channel_id, attribute, key, summary in _CHANNELS:
        names = []
        for name, schema in channel_messages[channel_id]:
            _hoist(name, schema, schemas)
            messages[name] = _message(name, schema, key)
            names.append(name)
        channels[channel_id] = {
            "address": getattr(topics, attribute),
            "description": summary,
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            "title": getattr(topics, attribute),
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "dspyops",
            "version": CONTRACT_VERSION,
            "description": (
                "DSPy programs run through Kafka. Every message is a CloudEvents 1.0 "
                "structured JSON envelope (UTF-8, at most 1 MiB). Send commands, receive "
                f"results. Topic prefix in this document: `{topics.prefix}`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Kafka cluster dspyops reads and writes.",
                "variables": {
                    "bootstrap": {
                        "default": "127.0.0.1:9092",
                        "description": "host:port of a broker (KAFKA_BOOTSTRAP_SERVERS).",
                    }
                },
            }
        },
        "channels": channels,
        "operations": _operations(channels),
        "components": {"messages": messages, "schemas": schemas},
    }


def _channel_messages() -> dict[str, list[tuple[str, Schema]]]:
    by_channel: dict[str, list[tuple[str, Schema]]] = {c[0]: [] for c in _CHANNELS}
    for name, cls in COMMAND_TYPES.items():
        if cls in EXECUTION_COMMANDS:
            channel = "executionCommands"
        elif cls in OPTIMIZATION_COMMANDS:
            channel = "optimizationCommands"
        else:
            channel = "programCommands"
        by_channel[channel].append((name, command_schema(name)))
        if cls in GATED_COMMANDS:
            # With a gate it runs evaluations, so it travels with the runs.
            by_channel["optimizationCommands"].append((name, command_schema(name)))
    by_channel["results"] = [(name, result_schema(name)) for name in RESULT_TYPES]
    by_channel["events"] = [("DomainEvent", domain_event_schema())]
    by_channel["deadletter"] = [("Undeliverable", deadletter_schema())]
    return by_channel


def _operations(channels: dict[str, Any]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for channel_id, channel in channels.items():
        action = "send" if channel_id.endswith("Commands") else "receive"
        operations[action + channel_id[0].upper() + channel_id[1:]] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{name}"} for name in channel["messages"]
            ],
            "summary": channel["description"],
        }
    return operations


def _message(name: str, schema: Schema, key: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": schema["title"],
        "summary": schema.get("description", "").split("\n", 1)[0],
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{_envelope_name(name)}"},
        "correlationId": {
            "description": "Shared by a command and all its results.",
            "location": "$message.payload#/correlationid",
        },
        "bindings": {
            "kafka": {
                "bindingVersion": KAFKA_BINDING_VERSION,
                "key": {"description": f"UTF-8 text: {key}.", "type": "string"},
            }
        },
    }
    if TERMINAL_KEYWORD in schema:
        message[TERMINAL_KEYWORD] = schema[TERMINAL_KEYWORD]
    return message


def _hoist(name: str, schema: Schema, into: Schema) -> None:
    """Move a file schema into components/schemas, its `$defs` shared and refs rewritten."""
    schema = _rewrite_refs(copy.deepcopy(schema))
    schema.pop("$schema", None)
    for def_name, definition in schema.pop("$defs", {}).items():
        _add(into, def_name, definition)
    _add(into, _envelope_name(name), schema)


def _add(into: Schema, name: str, schema: Schema) -> None:
    if name in into and into[name] != schema:
        raise ValueError(f"two different schemas are both named {name!r}")
    into[name] = schema


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                v.replace("#/$defs/", "#/components/schemas/", 1)
                if k == "$ref" and isinstance(v, str)
                else _rewrite_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _envelope_name(message_name: str) -> str:
    return f"{message_name}Envelope"


def _doc(cls: type) -> str:
    return (cls.__doc__ or "").strip()


# ---- files ---------------------------------------------------------------------------


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(out_dir: Path, *, topics: Topics) -> list[Path]:
    """Write every schema and the AsyncAPI document under `out_dir`; return the paths written.

    Raises OSError when `out_dir` cannot be created or written.
    """
    documents = {**schema_files(), ASYNCAPI_FILE: asyncapi_document(topics)}
    written = []
    for relative, document in sorted(documents.items()):
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(document), encoding="utf-8")
        written.append(path)
    return written
