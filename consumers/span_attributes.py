"""The attributes of an execution's spans in OpenTelemetry, named as OpenInference names them.

OpenInference (Arize) is the convention Phoenix, Langfuse and MLflow read for LLM
applications: a span kind (LLM, CHAIN, TOOL, RETRIEVER, AGENT), inputs and outputs as
JSON, the model and its token counts, tool names and retrieved document ids.
"""

from __future__ import annotations

from typing import Any

from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from pydantic_core import to_json

# Our span kinds -> OpenInference's.
SPAN_KINDS = {
    "lm": OpenInferenceSpanKindValues.LLM.value,
    "tool": OpenInferenceSpanKindValues.TOOL.value,
    "retrieval": OpenInferenceSpanKindValues.RETRIEVER.value,
}
_AGENT = OpenInferenceSpanKindValues.AGENT.value
_CHAIN = OpenInferenceSpanKindValues.CHAIN.value
# Names read once: a worker makes these attributes for each span of each execution.
_KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
_VALUES = (
    ("inputs", SpanAttributes.INPUT_VALUE, SpanAttributes.INPUT_MIME_TYPE),
    ("outputs", SpanAttributes.OUTPUT_VALUE, SpanAttributes.OUTPUT_MIME_TYPE),
)
_TOKENS = (
    ("prompt_tokens", SpanAttributes.LLM_TOKEN_COUNT_PROMPT),
    ("completion_tokens", SpanAttributes.LLM_TOKEN_COUNT_COMPLETION),
    ("total_tokens", SpanAttributes.LLM_TOKEN_COUNT_TOTAL),
)
_MODEL, _COST = SpanAttributes.LLM_MODEL_NAME, SpanAttributes.LLM_COST_TOTAL
_JSON = "application/json"


def program_span_attributes(span: dict[str, Any]) -> dict[str, Any]:
    """OpenInference's attributes (and dspyops' own) for one span of an execution's trace."""
    kind = span["kind"]
    oi_kind = SPAN_KINDS.get(kind)
    if oi_kind is None:
        oi_kind = _AGENT if span.get("type") == "ReAct" else _CHAIN
    attributes: dict[str, Any] = {
        _KIND: oi_kind,
        "dspyops.span.kind": kind,
        "dspyops.span.type": str(span.get("type", "")),
    }
    for field, value_key, mime_key in _VALUES:
        value = span.get(field)
        if value is not None:
            attributes[value_key] = to_json(value).decode()
            attributes[mime_key] = _JSON
    if kind == "lm":
        attributes[_MODEL] = str(span.get("model", span["name"]))
        usage = span.get("usage")
        if usage:
            for key, attribute in _TOKENS:
                if key in usage:
                    attributes[attribute] = usage[key]
        if span.get("cost_usd") is not None:
            attributes[_COST] = span["cost_usd"]
    elif kind == "tool":
        attributes[SpanAttributes.TOOL_NAME] = span["name"]
    elif kind == "retrieval":
        attributes["dspyops.corpus.id"] = str(span.get("corpus"))
        if span.get("corpus_version") is not None:
            attributes["dspyops.corpus.version"] = span["corpus_version"]
        for n, doc_id in enumerate(span.get("document_ids") or []):
            attributes[f"retrieval.documents.{n}.document.id"] = str(doc_id)
    return attributes
