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


def program_span_attributes(span: dict[str, Any]) -> dict[str, Any]:
    """OpenInference's attributes (and dspyops' own) for one span of an execution's trace."""
    kind = span["kind"]
    if kind in SPAN_KINDS:
        oi_kind = SPAN_KINDS[kind]
    elif span.get("type") == "ReAct":
        oi_kind = OpenInferenceSpanKindValues.AGENT.value
    else:
        oi_kind = OpenInferenceSpanKindValues.CHAIN.value
    attributes: dict[str, Any] = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: oi_kind,
        "dspyops.span.kind": kind,
        "dspyops.span.type": str(span.get("type", "")),
    }
    for field, value_key, mime_key in (
        ("inputs", SpanAttributes.INPUT_VALUE, SpanAttributes.INPUT_MIME_TYPE),
        ("outputs", SpanAttributes.OUTPUT_VALUE, SpanAttributes.OUTPUT_MIME_TYPE),
    ):
        if span.get(field) is not None:
            attributes[value_key] = to_json(span[field]).decode()
            attributes[mime_key] = "application/json"
    usage = span.get("usage") or {}
    if kind == "lm":
        attributes[SpanAttributes.LLM_MODEL_NAME] = str(span.get("model", span["name"]))
        for key, attribute in (
            ("prompt_tokens", SpanAttributes.LLM_TOKEN_COUNT_PROMPT),
            ("completion_tokens", SpanAttributes.LLM_TOKEN_COUNT_COMPLETION),
            ("total_tokens", SpanAttributes.LLM_TOKEN_COUNT_TOTAL),
        ):
            if key in usage:
                attributes[attribute] = usage[key]
        if span.get("cost_usd") is not None:
            attributes[SpanAttributes.LLM_COST_TOTAL] = span["cost_usd"]
    if kind == "tool":
        attributes[SpanAttributes.TOOL_NAME] = span["name"]
    if kind == "retrieval":
        attributes["dspyops.corpus.id"] = str(span.get("corpus"))
        if span.get("corpus_version") is not None:
            attributes["dspyops.corpus.version"] = span["corpus_version"]
        for n, doc_id in enumerate(span.get("document_ids") or []):
            attributes[f"retrieval.documents.{n}.document.id"] = str(doc_id)
    return attributes
